"""semiostream.dali_pipes: from 16-bit IR video to the I3D input.

Readers for IR sources (``readers.open_source``), windowing (``windows``), person+bed crop
(``roi``, ``detect_yolox``, ``detect_maskrcnn``), the plain-torch reference preprocessing
(``reference.preprocess``, the oracle), DALI pipelines on CPU and GPU (``pipeline``) and the
synthetic IR generator (``synth``).

Importing this package is cheap: nvidia.dali, PyAV, onnxruntime and torchvision's detection models are
imported inside the modules that need them.
"""
