"""A seizure segment: one video (or the ``[onset, offset)`` part of one) and what is known about it.

One type for every part that handles one: a manifest row (:mod:`semiostream.trainer.manifest`), an input
of the archive scorer (:mod:`semiostream.archive.inputs`: a manifest row, or a plain file or folder scored
whole, which has no patient, seizure or label), and a seizure of the training data
(:class:`semiostream.trainer.dataset.FeatureSet`).

Imports nothing of this project.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LABELS = ("FLE", "TLE")
"""Class names; index = class id (the classifier outputs p(TLE), class 1)."""
STREAMS = ("ir", "depth")


@dataclass(frozen=True)
class Segment:
    """One video, or a segment of one, with its patient and label when a manifest gives them.

    Attributes:
        path: absolute path of the video file or frame folder.
        stream: ``"ir"`` or ``"depth"`` (Azure Kinect recordings).
        onset, offset: the segment in seconds from the first frame (None = start / end of the video).
        roi: fixed crop ``(x0, y0, x1, y1)`` in pixels, or None (detector / full frame).
        fps: frame-rate override (frames per second) for formats that store none, or None.
        patient_id, seizure_id: ids as strings (None: not from a manifest).
        label: ``"FLE"`` or ``"TLE"`` (None: not from a manifest); :attr:`y` is its class id (TLE = 1).
        synthetic: the clip is synthetic (generated), not a recording of a patient.
        row: the manifest's CSV line number (header = 1) or 1-based Parquet row, for messages; None when
            not from a manifest.
    """

    path: Path
    stream: str = "ir"
    onset: float | None = None
    offset: float | None = None
    roi: tuple[int, int, int, int] | None = None
    fps: float | None = None
    patient_id: str | None = None
    seizure_id: str | None = None
    label: str | None = None
    synthetic: bool = False
    row: int | None = None

    @property
    def y(self) -> int:
        """Class id of :attr:`label` (index into :data:`LABELS`; TLE = 1)."""
        return LABELS.index(self.label)

    @property
    def key(self) -> str:
        """``patient_id/seizure_id``: unique within a manifest."""
        return f"{self.patient_id}/{self.seizure_id}"

    @property
    def input_id(self) -> str:
        """``<path>[#<stream>][@<onset>-<offset>s]``: names the input in the archive's tables."""
        s = str(self.path)
        if self.stream != "ir":
            s += f"#{self.stream}"
        if self.onset is not None or self.offset is not None:
            a = "" if self.onset is None else f"{self.onset:g}"
            b = "" if self.offset is None else f"{self.offset:g}"
            s += f"@{a}-{b}s"
        return s

    def identity(self) -> dict:
        """Everything about the segment, except the file's content, that determines its scores (the archive's
        result key; ``row`` and ``synthetic`` do not change a score)."""
        return {"input_id": self.input_id, "roi": list(self.roi) if self.roi else None, "fps": self.fps,
                "patient_id": self.patient_id, "seizure_id": self.seizure_id, "label": self.label}

    def to_dict(self) -> dict[str, Any]:
        """The manifest row as JSON-able values (provenance, cache metadata)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["roi"] = list(self.roi) if self.roi else None
        return d
