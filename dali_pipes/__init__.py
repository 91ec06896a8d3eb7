"""semiostream.dali_pipes: from a window of 16-bit IR frames to the I3D input.

The DALI graphs on CPU and GPU (``pipeline``, ``pipeline_htj2k`` for DICOM HTJ2K archives), what they compute
with (``geometry``: resize and padding; ``intensity``: the 16->8-bit intensity window; ``event_intensity``: one
window held per event) and the plain-torch reference preprocessing (``reference.preprocess``, the oracle the
graphs are tested against). Frames come from :mod:`semiostream.sources`, the crop from
:mod:`semiostream.detectors`.

Importing this package is cheap: nvidia.dali is imported inside the modules that need it.
"""
