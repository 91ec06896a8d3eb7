"""What makes two scorings of an input "the same": the key under which a finished input is remembered.

An input's key is the sha256 of

* the job (:meth:`~semiostream.core.segment.Segment.identity`: path, stream, segment, ROI, fps, manifest fields),
* the content of the video (sha256 of the file's bytes, or of every file of a frame folder:
  :func:`semiostream.trainer.features.sha256_of_path`), and
* the run's settings (:class:`RunSettings`: bundle id, backend, hop, ROI detector, threshold,
  preprocessing).

Content hashes are remembered by (absolute path, size, mtime) in ``hashes.json`` of the work folder (the
trainer's :class:`~semiostream.trainer.features.ContentHashMemo`), so an unchanged file is hashed
once, ever, and a touched or rewritten one is hashed again: a changed file gets a new key and is re-scored;
a different bundle or backend changes every key and everything is re-scored.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from semiostream.core.decision import DECISION_THRESHOLD
from semiostream.core.segment import Segment
from semiostream.trainer.features import ContentHashMemo

KEY_VERSION = 2  # 2: windows made at the bundle's rate (resampled), frame-rate columns


@dataclass(frozen=True)
class RunSettings:
    """The non-input parts of a result: change any and every input is scored again."""

    bundle_id: str
    backend: str  # as requested ("auto" when the Scorer chooses)
    hop: int | None  # None = non-overlapping windows (the bundle's window)
    detector: str  # "full", or "yolox:<sha256 of weights>" ...
    threshold: float = DECISION_THRESHOLD
    preprocessing: str = "auto"  # Scorer preprocessing: auto, dali, reference

    def digest(self) -> str:
        return hashlib.sha256(json.dumps({"v": KEY_VERSION, **asdict(self)}, sort_keys=True).encode()).hexdigest()


def input_key(job: Segment, content_sha256: str, settings: RunSettings) -> str:
    """40 hex digits naming one input's results under ``settings``."""
    blob = json.dumps({"job": job.identity(), "content": content_sha256, "run": settings.digest()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


class ContentHashes(ContentHashMemo):
    """The content-hash memo of a work folder: ``<folder>/hashes.json`` (the trainer's mechanism)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        super().__init__(Path(folder) / "hashes.json")
