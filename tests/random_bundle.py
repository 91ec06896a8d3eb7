"""Test bundles of the real Kinetics I3D and an untrained, seeded random classifier.

The classifier's last layer is scaled by 300 so that p(TLE) spreads over (0, 1) instead of sitting at
0.5, which makes "identical decisions" a meaningful check. Parity and plumbing tests compare runs on the
same weights; they do not need a trained classifier.
"""

from __future__ import annotations

import torch

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.models.bundle import save_bundle
from semiostream.models.classifier import SeizureClassifier
from semiostream.models.weights import load_i3d_checkpoint


def make_random_bundle(path, ckpt, seed: int, spec: PreprocessSpec | None = None, reuse: bool = True):
    """Write the bundle at ``path`` (kept if it already exists and ``reuse``) and return ``path``."""
    if reuse and (path / "bundle.json").is_file():
        return path
    torch.manual_seed(seed)
    clf = SeizureClassifier().eval()
    with torch.no_grad():
        clf.fc3.weight.mul_(300.0)
    return save_bundle(path, load_i3d_checkpoint(ckpt, in_channels=1), clf, spec,
                       provenance={"test": "seeded random classifier"})
