"""Fixtures for the archive (``semiostream score``) tests.

The bundle holds the real Kinetics-400 I3D and an **untrained, seeded random classifier** (its last layer
scaled up so that p(TLE) spreads over (0, 1)): these tests check plumbing, resumption and equivalence of the
two runners, not accuracy. Its spec uses 16-frame windows at 15 fps, the clips' rate (one I3D step, ~0.3-1 s per
window on 2 CPU cores).
Clips are tiny synthetic FFV1 videos (96x72, 15 fps, 33 frames = 2 windows each).
"""

from __future__ import annotations

import shutil

import pytest
from arc_helpers import make_bundle

from semiostream.sources.synth import SynthConfig, generate_dataset


@pytest.fixture(scope="session")
def arc_bundle(tmp_path_factory, kinetics_ckpt):
    return make_bundle(tmp_path_factory.mktemp("arc_bundle") / "bundle", kinetics_ckpt, seed=1234)


@pytest.fixture(scope="session")
def arc_clips_master(tmp_path_factory):
    """6 synthetic clips (3 patients x 2 seizures) + manifest.csv, written once per session."""
    out = tmp_path_factory.mktemp("arc_clips")
    generate_dataset(out, 3, 2, SynthConfig(width=96, height=72, fps=15, seconds=2.2), fmt="mkv", seed=5)
    return out


@pytest.fixture
def arc_clips(arc_clips_master, tmp_path):
    """A private copy of the clips (tests may add, damage or rewrite files)."""
    dst = tmp_path / "clips"
    shutil.copytree(arc_clips_master, dst)
    return dst

