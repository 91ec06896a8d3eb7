"""Windows of an HTJ2K (or JPEG 2000) DICOM archive decoded and preprocessed in one DALI graph.

The graph is :func:`.pipeline.preprocess_encoded_frames`, the one the PNG/TIFF frame folders use: one
sample = one frame's codestream (uint8 bytes) -> ``fn.decoders.image`` (``device="mixed"`` on a GPU:
nvJPEG2000 decodes the HTJ2K codestream on the device; ``"cpu"``: OpenJPEG) -> crop -> intensity window
-> bilinear resize -> [-1, 1] -> centre pad, with no host round trip between decoding and the model
input on the GPU. The codestreams are taken from the file as stored (:meth:`.read_dicom.DicomSource.codestreams`:
only the window's bytes, found by the offset table, each checked against the archive's per-frame checksum
when it has one: a damaged frame is a ``SourceError`` naming it before anything is decoded), so the host
never decodes a pixel, except the first ``spec.percentile_frames`` frames of a window when the intensity
window is a percentile one.

The same graph runs with ``device="cpu"`` in the tests against the plain-torch reference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from semiostream.core.roi import Roi

from .pipeline import DaliImageWindowPreprocessor

#: transfer syntaxes whose codestreams DALI's image decoder takes (JPEG 2000 family, HTJ2K included)
GRAPH_SYNTAXES = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                  "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")

# OpenCV's OpenJPEG reader (DALI's CPU JPEG 2000 path) warns about the colour space of every grayscale frame
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def decodes_in_graph(source: Any) -> bool:
    """True if ``source`` is a DICOM file whose frames this graph can decode (JPEG 2000 / HTJ2K)."""
    from semiostream.sources.read_dicom import DicomSource

    return isinstance(source, DicomSource) and source.header.transfer_syntax in GRAPH_SYNTAXES


class Htj2kWindowPreprocessor(DaliImageWindowPreprocessor):
    """Windows of an HTJ2K DICOM archive -> model input, decoded inside the DALI graph.

    Args (as :class:`~.pipeline.DaliImageWindowPreprocessor`): ``spec`` (the bundle's ``PreprocessSpec``),
    ``device`` (``"cpu"`` or ``"cuda:N"``: ``"mixed"`` decoding with nvJPEG2000), ``max_frames`` (frames per
    graph run), ``num_threads``, ``half`` (float16 output).
    """

    def __call__(self, source: Any, start: int, stop: int, roi: Roi | Sequence[int] | None,
                 intensity: tuple[float, float] | None = None) -> torch.Tensor:
        """Frames ``[start, stop)`` of a :class:`~.read_dicom.DicomSource` with JPEG 2000 / HTJ2K frames;
        ``intensity``: a held raw ``(lo, hi)`` (:mod:`.event_intensity`; then no frame is decoded on the
        host), else the spec's rule.

        Returns:
            ``[1, T, size, size]`` float32 (float16 with ``half``) in [-1, 1], on the preprocessor's device.

        Raises:
            TypeError: not a DICOM source with JPEG 2000 / HTJ2K frames (use :meth:`Source.read` + the
                window preprocessor for others).
            SourceError: a frame's bytes are missing or do not decode.
        """
        if not decodes_in_graph(source):
            raise TypeError("Htj2kWindowPreprocessor reads DICOM files with JPEG 2000 / HTJ2K frames")

        def chunk(s: int, e: int) -> list[np.ndarray]:
            return [np.frombuffer(c, np.uint8) for c in source.codestreams(s, e)]

        return self._window(source, start, stop, roi, intensity, chunk, lambda s, e: f"frames [{s}, {e})")
