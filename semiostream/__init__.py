"""semiostream: frontal- vs temporal-lobe seizure classification from 16-bit IR bed video.

Importing this package is cheap: heavy libraries (torch, DALI, TensorRT, zmq) are imported by the
subpackages that need them. Subpackages: ``core`` (the foundation), ``sources``, ``detectors``, ``models``,
``dali_pipes``, ``engines``, ``trt_build``, ``trainer``, ``bus``, ``archive``, ``review``, ``bench``, ``commands``
(docs/architecture.md shows their layers).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("semiostream")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
