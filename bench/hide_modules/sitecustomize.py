"""Make listed modules absent for one Python process tree: ``PYTHONPATH=bench/hide_modules`` and
``SEMIOSTREAM_HIDE_MODULES=nvidia.dali,av,tensorrt``.

Each name is set to None in ``sys.modules``, which is Python's own way of saying "not installed":
``import av`` raises ModuleNotFoundError and ``importlib.util.find_spec("av")`` returns None, exactly as on a
machine without the package. Used to rehearse an image that lacks DALI, PyAV and TensorRT on a machine that
has them (tests/test_no_dali_pyav.py, ``bench/gpu_session.sh --rehearse``). It takes the place of any other
``sitecustomize`` later on the path, so use it only where there is none (a plain venv has none).
"""

import os
import sys

for _name in filter(None, (n.strip() for n in os.environ.get("SEMIOSTREAM_HIDE_MODULES", "").split(","))):
    sys.modules[_name] = None
