"""The dataset manifest: one row per seizure video (CSV, or Parquet when pyarrow is installed).

Columns (header names, case-insensitive; extra columns are ignored):

==============  ========  =====================================================================
column          required  meaning
==============  ========  =====================================================================
``path``        yes       video file or frame folder (relative paths are relative to the manifest)
``patient_id``  yes       subject id: cross-validation never splits one patient across train/val
``seizure_id``  yes       seizure id, unique per patient
``label``       yes       ``FLE`` or ``TLE`` (case-insensitive)
``onset``       no        start of the clinical segment, seconds from the first frame (default 0)
``offset``      no        end of the segment in seconds (default: end of the video)
``roi``         no        fixed crop ``x0 y0 x1 y1`` (pixels; spaces, commas or ``;`` between)
``stream``      no        ``ir`` (default) or ``depth`` (Azure Kinect recordings)
``fps``         no        frame rate for formats that store none (``.npy``, frame folders)
``synthetic``   no        ``yes`` when the clip is synthetic, not a recording of a patient (``semiostream
                          synth`` writes it); the trainer records in the bundle whether its training data were
                          synthetic (:func:`semiostream.models.bundle.training_data`). Default ``no``.
==============  ========  =====================================================================

:func:`load_manifest` reads each row as a :class:`~semiostream.core.segment.Segment` (the one seizure segment
type of the trainer and the archive scorer), checks every row and raises one :class:`ManifestError` listing
every problem with its row number (the CSV line number; the header is line 1). A patient with seizures of both labels is
allowed and reported in :attr:`Manifest.notes`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semiostream.core.segment import LABELS, STREAMS, Segment

REQUIRED = ("path", "patient_id", "seizure_id", "label")
OPTIONAL = ("onset", "offset", "roi", "stream", "fps", "synthetic")
YES, NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")


class ManifestError(ValueError):
    """The manifest cannot be used; ``problems`` lists every problem found (with row numbers)."""

    def __init__(self, source: str | os.PathLike, problems: Sequence[str]) -> None:
        self.source = str(source)
        self.problems = list(problems)
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        msg = f"manifest {self.source} has {len(self.problems)} problem(s):\n" + "\n".join(
            f"  - {p}" for p in shown
        )
        if more:
            msg += f"\n  ... and {more} more"
        super().__init__(msg)


@dataclass
class Manifest:
    """Validated manifest rows plus notes (things worth knowing that are not errors)."""

    source: Path
    rows: list[Segment]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.rows)

    def patients(self) -> list[str]:
        return sorted({r.patient_id for r in self.rows})

    def counts(self) -> dict[str, dict[str, int]]:
        """``{label: {"patients": n, "seizures": n}}`` (a two-label patient counts in both)."""
        out = {}
        for lab in LABELS:
            rows = [r for r in self.rows if r.label == lab]
            out[lab] = {"patients": len({r.patient_id for r in rows}), "seizures": len(rows)}
        return out

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{lab}: {c[lab]['seizures']} seizures of {c[lab]['patients']} patients" for lab in LABELS]
        return f"{len(self.rows)} seizures, {len(self.patients())} patients ({'; '.join(parts)})"


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise ManifestError(path, ["the file is empty; it needs a header row " + ",".join(REQUIRED)])
        header = [h.strip().lower() for h in reader.fieldnames]
        reader.fieldnames = header
        rows = []
        for rec in reader:
            if all((v or "").strip() == "" for k, v in rec.items() if k is not None):
                continue  # blank line
            extra = rec.pop(None, None)  # more cells than header columns
            if extra:
                rec["__extra__"] = ",".join(extra)
            rows.append((reader.line_num, {k: (v or "") for k, v in rec.items()}))
    return header, rows


def _read_parquet(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ManifestError(
            path, ["reading Parquet needs pyarrow (`pip install pyarrow`), or save the manifest as CSV"]
        ) from e
    table = pq.read_table(path)
    header = [h.strip().lower() for h in table.column_names]
    rows = []
    for i, rec in enumerate(table.to_pylist(), start=1):
        cells = {}
        for k, v in zip(header, rec.values(), strict=True):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells[k] = ""
            elif isinstance(v, (list, tuple)):
                cells[k] = " ".join(str(x) for x in v)
            else:
                cells[k] = str(v)
        rows.append((i, cells))
    return header, rows


def _parse_roi(text: str) -> tuple[int, int, int, int]:
    t = text.strip().strip("[]()")
    parts = [p for p in t.replace(",", " ").replace(";", " ").split() if p]
    if len(parts) != 4:
        raise ValueError("needs 4 numbers x0 y0 x1 y1")
    vals = [float(p) for p in parts]
    if any(v != int(v) for v in vals):
        raise ValueError("coordinates must be whole pixels")
    x0, y0, x1, y1 = (int(v) for v in vals)
    if x0 < 0 or y0 < 0 or x1 <= x0 or y1 <= y0:
        raise ValueError("needs 0 <= x0 < x1 and 0 <= y0 < y1")
    return (x0, y0, x1, y1)


def _parse_seconds(text: str, name: str, problems: list[str], where: str) -> float | None:
    t = text.strip()
    if not t:
        return None
    try:
        v = float(t)
    except ValueError:
        problems.append(f"{where}: {name} {t!r} is not a number of seconds")
        return None
    if not math.isfinite(v) or v < 0:
        problems.append(f"{where}: {name} {t!r} must be a finite number of seconds >= 0")
        return None
    return v


def load_manifest(path: str | os.PathLike, check_files: bool = True) -> Manifest:
    """Read and validate a manifest.

    Args:
        path: ``.csv`` (any other suffix is read as CSV too) or ``.parquet`` / ``.pq``.
        check_files: also require every ``path`` to exist (a file or a folder).

    Returns:
        :class:`Manifest` with absolute paths, canonical labels, and :attr:`Manifest.notes`.

    Raises:
        ManifestError: listing every problem: missing columns, unknown labels, missing files,
            bad numbers, duplicate seizures, an empty manifest.
    """
    src = Path(path)
    if not src.is_file():
        raise ManifestError(src, ["no such file; pass the CSV (or Parquet) file that lists the seizures"])
    if src.suffix.lower() in (".parquet", ".pq"):
        header, raw = _read_parquet(src)
    else:
        header, raw = _read_csv(src)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ManifestError(src, [
            f"missing column(s) {', '.join(missing)}; the header has {', '.join(header) or '(nothing)'} "
            f"and needs {', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})"
        ])
    if not raw:
        raise ManifestError(src, ["no data rows; add one row per seizure video"])

    base = src.resolve().parent
    problems: list[str] = []
    rows: list[Segment] = []
    seen: dict[tuple[str, str], int] = {}
    for line, rec in raw:
        where = f"row {line}"
        bad = len(problems)
        if rec.get("__extra__"):
            problems.append(f"{where}: more cells than header columns (quote an ROI that contains commas)")
        path_s = rec.get("path", "").strip()
        pid = rec.get("patient_id", "").strip()
        sid = rec.get("seizure_id", "").strip()
        lab = rec.get("label", "").strip()
        for name, val in (("path", path_s), ("patient_id", pid), ("seizure_id", sid), ("label", lab)):
            if not val:
                problems.append(f"{where}: {name} is empty")
        label = lab.upper()
        if lab and label not in LABELS:
            problems.append(f"{where}: unknown label {lab!r}; use FLE or TLE")
        p = Path(os.path.expanduser(path_s)) if path_s else None
        if p is not None and not p.is_absolute():
            p = base / p
        if p is not None and check_files and not p.exists():
            problems.append(f"{where}: video {p} does not exist; fix the path (relative paths are "
                            f"relative to the manifest's folder {base})")
        onset = _parse_seconds(rec.get("onset", ""), "onset", problems, where)
        offset = _parse_seconds(rec.get("offset", ""), "offset", problems, where)
        if onset is not None and offset is not None and offset <= onset:
            problems.append(f"{where}: offset {offset:g} s is not after onset {onset:g} s")
        roi = None
        if rec.get("roi", "").strip():
            try:
                roi = _parse_roi(rec["roi"])
            except ValueError as e:
                problems.append(f"{where}: roi {rec['roi']!r} is invalid ({e})")
        stream = (rec.get("stream", "").strip() or "ir").lower()
        if stream not in STREAMS:
            problems.append(f"{where}: stream {stream!r} is unknown; use ir or depth")
        fps = None
        if rec.get("fps", "").strip():
            try:
                fps = float(rec["fps"])
                if not (math.isfinite(fps) and fps > 0):
                    raise ValueError
            except ValueError:
                problems.append(f"{where}: fps {rec['fps']!r} must be a positive number")
                fps = None
        synthetic = rec.get("synthetic", "").strip().lower()
        if synthetic not in YES + NO:
            problems.append(f"{where}: synthetic {rec['synthetic']!r} must be yes or no")
        if pid and sid:
            if (pid, sid) in seen:
                problems.append(
                    f"{where}: seizure {sid!r} of patient {pid!r} is listed again (first at row "
                    f"{seen[(pid, sid)]}); give each seizure a unique seizure_id"
                )
            else:
                seen[(pid, sid)] = line
        if len(problems) == bad:
            rows.append(Segment(p, stream, onset, offset, roi, fps, pid, sid, label, synthetic in YES, line))
    if problems:
        raise ManifestError(src, problems)

    notes = []
    labels_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        labels_of[r.patient_id].add(r.label)
    for pid in sorted(labels_of):
        if len(labels_of[pid]) > 1:
            n = {lab: sum(1 for r in rows if r.patient_id == pid and r.label == lab) for lab in LABELS}
            notes.append(
                f"patient {pid} has seizures of both labels (FLE {n['FLE']}, TLE {n['TLE']}); allowed, "
                "and all of them stay on the same side of every cross-validation split"
            )
    for lab in LABELS:
        if not any(r.label == lab for r in rows):
            notes.append(f"no {lab} seizures: training needs both classes")
    return Manifest(src, rows, notes)


def write_manifest(path: str | os.PathLike, rows: Sequence[Segment | dict[str, Any]]) -> Path:
    """Write rows as a manifest CSV (the columns of :data:`REQUIRED` and :data:`OPTIONAL`)."""
    out = Path(path)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(REQUIRED + OPTIONAL)
        for r in rows:
            d = r.to_dict() if isinstance(r, Segment) else dict(r)
            roi = d.get("roi")
            roi_s = " ".join(str(int(v)) for v in roi) if roi else ""
            w.writerow([
                d["path"], d["patient_id"], d["seizure_id"], d["label"],
                "" if d.get("onset") is None else d["onset"],
                "" if d.get("offset") is None else d["offset"],
                roi_s, d.get("stream") or "ir", "" if d.get("fps") is None else d["fps"],
                "yes" if d.get("synthetic") else "no",
            ])
    return out


def manifest_json(manifest: Manifest) -> str:
    """The manifest as JSON (for provenance)."""
    return json.dumps([r.to_dict() for r in manifest.rows], indent=1)
