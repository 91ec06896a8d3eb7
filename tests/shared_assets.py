"""The real test assets for tests in any folder (a uniquely named module: tests/ folders have no __init__.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


def asset(name: str) -> Path:
    """Path of a real test asset; skips the test (with the reason) when it is absent."""
    p = ASSETS / name
    if not p.is_file():
        pytest.skip(f"test asset {name} not found in {ASSETS} (see shared/assets/README.md)")
    return p
