"""Expand the command line's INPUTS (files, folders, manifests) into scoring jobs.

* a **file** with a supported video suffix (:func:`~semiostream.sources.source.supported_suffixes`),
  or a regular file without a suffix that starts like a DICOM file (``DICM`` preamble: PACS exports rarely
  have a suffix), is one job: the whole video;
* a **folder** is searched recursively: every supported video file is a job, and every frame folder
  (:func:`~semiostream.sources.read_images.frame_folder_problem`: at least 9 numbered PNG/TIFF frames and
  no videos beside them) is one job. Images in any other folder (previews beside recordings, a few stray
  pictures) are skipped, with the reason, not scored. Hidden entries and ``*.parts`` work folders are
  skipped, other files (README, CSV ...) ignored;
* a **manifest** (``.csv``, ``.parquet``, ``.pq``; see :mod:`semiostream.trainer.manifest`) gives one job per
  row: its video's ``[onset, offset)`` segment, with its ROI, stream, fps, patient, seizure and label.

A job is a :class:`~semiostream.core.segment.Segment` (the manifest's own rows, with the stream given on the
command line for rows that say ``ir``); its ``input_id`` is ``<absolute path>[#<stream>][@<onset>-<offset>s]``;
jobs are de-duplicated by it
(the first occurrence wins) and returned sorted by it.

Nothing here opens a video. A FIFO, device, socket or symbolic link loop with a video suffix (given
directly, met in a folder, or named by a manifest row) is still a job: it becomes an error row saying what
it is (:mod:`.guard`), and the rest of the archive is scored. A manifest must be a regular file (it is read
at once).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from semiostream.core.errors import UserError
from semiostream.core.segment import Segment

from .guard import absolute

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")


def is_manifest(p: Path) -> bool:
    return p.suffix.lower() in MANIFEST_SUFFIXES and not p.is_dir()


def _video_suffixes() -> set[str]:
    from semiostream.sources.source import supported_suffixes

    return set(supported_suffixes())


def scan_folder(root: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every video file and frame folder under ``root`` (recursive, sorted, hidden / ``*.parts`` skipped).

    ``skipped`` (when given) receives ``(folder, reason)`` for every folder holding images that is not a
    frame folder."""
    from semiostream.sources.read_images import IMAGE_SUFFIXES, frame_folder_problem

    suffixes = _video_suffixes()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(".parts"))
        names = [f for f in filenames if not f.startswith(".")]
        if any(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in names):
            problem = frame_folder_problem(dirpath, [f for f in names if os.path.isfile(os.path.join(dirpath, f))])
            if problem is None:
                found.append(Path(dirpath))
            elif skipped is not None:
                skipped.append((Path(dirpath), problem))
        found += [Path(dirpath) / f for f in names
                  if Path(f).suffix.lower() in suffixes or _suffixless_dicom(Path(dirpath) / f)]
    return sorted(found)


def _suffixless_dicom(p: Path) -> bool:
    """A regular file without a suffix that holds a DICOM Part 10 preamble (never opens FIFOs or devices)."""
    from semiostream.sources.read_dicom import is_dicom

    return not p.suffix and is_dicom(p)


def _manifest_jobs(p: Path, stream: str) -> list[Segment]:
    from semiostream.core.files import file_kind
    from semiostream.trainer.manifest import ManifestError, load_manifest

    kind = file_kind(p)
    if kind != "file":
        raise UserError(f"manifest {p} is {kind}, not a regular file; pass the manifest's file itself")
    try:
        manifest = load_manifest(p, check_files=False)  # a missing video becomes an error row, not a stop
    except ManifestError as e:
        raise UserError(str(e)) from e
    return [dataclasses.replace(r, path=absolute(r.path), stream=r.stream if r.stream != "ir" else stream,
                                row=None) for r in manifest.rows]


def expand_inputs(inputs: Sequence[str | os.PathLike], stream: str = "ir", fps: float | None = None,
                  skipped: list[tuple[Path, str]] | None = None) -> list[Segment]:
    """The jobs of the command line's INPUTS, de-duplicated and sorted by ``input_id``.

    Args:
        inputs: files, folders and manifests.
        stream: stream for plain files and folders (``"ir"`` or ``"depth"``); manifest rows keep theirs
            unless they say ``ir`` (the default).
        fps: frame-rate override for plain ``.npy`` files and frame folders (manifest rows keep theirs).
        skipped: receives ``(folder, reason)`` for every scanned folder of images that is not a frame folder
            (:func:`scan_folder`); they are not inputs, and not failures.

    Raises:
        UserError: an input does not exist, is a file of an unsupported type, is a bad manifest, or
            nothing was found at all. (A FIFO, device or symbolic link loop with a video suffix is a job,
            refused later with an error row.)
    """
    suffixes = _video_suffixes()
    jobs: list[Segment] = []
    for raw in inputs:
        p = absolute(raw)
        if not os.path.lexists(p):
            raise UserError(f"input {raw} does not exist; pass video files, folders or a manifest CSV")
        if is_manifest(p):
            jobs += _manifest_jobs(p, stream)
        elif p.is_dir():
            passed: list[tuple[Path, str]] = []
            found = scan_folder(p, passed)
            if not found:
                why = "".join(f"; {folder} is not a frame folder: {reason}" for folder, reason in passed[:3])
                raise UserError(f"folder {raw} holds no supported videos ({', '.join(sorted(suffixes))} or "
                                f"frame folders: at least 9 numbered PNG/TIFF frames, no videos beside them){why}")
            if skipped is not None:
                skipped += passed
            jobs += [Segment(f, stream, fps=fps) for f in found]
        elif p.suffix.lower() in suffixes or _suffixless_dicom(p):
            jobs.append(Segment(p, stream, fps=fps))
        else:
            raise UserError(f"input {raw}: unsupported file type {p.suffix or '(no suffix)'!r}; pass videos "
                            f"({', '.join(sorted(suffixes))}), folders, or a manifest ({', '.join(MANIFEST_SUFFIXES)})")
    return dedupe(jobs)


def dedupe(jobs: Iterable[Segment]) -> list[Segment]:
    """One job per ``input_id`` (the first; a differing duplicate is logged), sorted by ``input_id``."""
    seen: dict[str, Segment] = {}
    for j in jobs:
        first = seen.setdefault(j.input_id, j)
        if first is not j and first != j:
            log.warning("input %s is listed twice with different details; scoring it once, as first listed",
                        j.input_id)
    return [seen[k] for k in sorted(seen)]
