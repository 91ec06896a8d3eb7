"""semiostream.detectors: the person + bed crop.

The interface and the paper's crop rule (``base``), the detectors by name (``registry.make_detector``) and one
module per detector (``yolox``: ONNX YOLOX; ``maskrcnn``: torchvision Mask R-CNN). The crop box type itself
is :class:`semiostream.core.roi.Roi`.

Importing this package is cheap: onnxruntime and torchvision's detection models are imported inside the
modules that need them.
"""
