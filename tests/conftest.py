"""Shared fixtures and marker handling.

Markers (registered in pyproject.toml):
  gpu  -- skipped unless torch sees a CUDA GPU;
  trt  -- skipped unless TensorRT imports and a GPU is present;
  slow -- skipped unless ``--runslow`` is given (or SEMIOSTREAM_RUNSLOW=1).
Real assets live in ``../shared/assets`` beside the project; tests that need one skip with the reason
when it is absent.

Tests run in random order (pytest-randomly; ``-p no:randomly`` for file order, ``--randomly-seed=N`` to
repeat one, which the run's summary names): each starts from the same logging configuration and torch random state whatever ran before.
Tests wait for conditions with :func:`waiting.wait_until`, never for a guessed time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest
from shared_assets import asset  # the one asset lookup

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """Say which random order ran (pytest-randomly prints it only in the header, which -q leaves out)."""
    seed = config.getoption("randomly_seed", default=None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"tests ran in random order: --randomly-seed={seed} repeats it")


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    runslow = config.getoption("--runslow") or os.environ.get("SEMIOSTREAM_RUNSLOW") == "1"
    has_gpu = _cuda_available()
    has_trt = importlib.util.find_spec("tensorrt") is not None
    skips = {
        "slow": None if runslow else pytest.mark.skip(reason="slow test: run with --runslow"),
        "gpu": None if has_gpu else pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda unavailable)"),
        "trt": None if (has_trt and has_gpu) else pytest.mark.skip(
            reason="needs TensorRT and a GPU (pip install 'semiostream[trt]' on a CUDA machine)"
        ),
    }
    for item in items:
        for name, mark in skips.items():
            if mark is not None and name in item.keywords:
                item.add_marker(mark)


@pytest.fixture(scope="session")
def kinetics_ckpt() -> Path:
    return asset("i3d-kinetics-400.ckpt")


@pytest.fixture
def get_asset():
    """``get_asset(name) -> Path``; skips the test when the asset is absent."""
    return asset


@pytest.fixture(autouse=True)
def _restore_logging():
    """``semiostream.cli.main`` points the root logger at the stream captured for one test (and sets its
    level from -v); put both back so that no later test logs into a closed stream or at another level."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _torch_seed(request):
    """Seed torch's global RNG before each test, as pytest-randomly does for ``random`` and numpy (with its
    seed; 0 without it): a test that draws from it unseeded gets the same numbers whichever tests ran before
    (a fresh import of torch here starts from a different seed each run)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        seed = request.config.getoption("randomly_seed", default=None)
        torch.manual_seed(seed if isinstance(seed, int) else 0)
