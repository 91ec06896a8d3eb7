"""The model bundle: the one artifact the trainer writes and everything else reads.

A bundle is a directory::

    bundle.json          format version, labels, preprocessing spec, model configs,
                         provenance (training run, CV metrics), sha256 of every file
    i3d.safetensors      I3D feature extractor weights (``in_channels`` recorded in bundle.json)
    classifier.pt        SeizureClassifier state dict (loaded with ``torch.load(weights_only=True)``)
    onnx/*.onnx          derived: exported models (not hashed here; they carry their own metadata)
    engines/*.engine     derived: TensorRT engines with JSON sidecars

Runtime code reads preprocessing constants from :class:`PreprocessSpec` in the bundle; it never
re-derives them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

FORMAT_NAME = "semiostream-bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
I3D_FILE = "i3d.safetensors"
CLASSIFIER_FILE = "classifier.pt"
DEFAULT_LABELS = ("FLE", "TLE")


class BundleError(ValueError):
    """A bundle directory is missing, incomplete, corrupted or of an unsupported version."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How a uint16 IR window becomes the I3D input ``[1, T, size, size]`` float32 in [-1, 1].

    Defaults are the paper's (Karácsony et al. 2020), except the 16->8-bit intensity step, which the
    paper does not specify; ours is an explicit intensity window recorded here.

    Attributes:
        window: frames per window (60 = 2 s at 30 fps).
        min_frames: shortest window kept (9 = shortest input giving one I3D feature step).
        intensity_mode: ``"fixed"`` maps raw ``[intensity_lo, intensity_hi]`` to [0, 1];
            ``"percentile"`` uses percentiles of the window's first frames instead.
        intensity_lo, intensity_hi: raw sensor units for ``"fixed"`` (values outside are clipped).
        percentile_lo, percentile_hi: percentiles in [0, 100] for ``"percentile"``.
        percentile_frames: how many leading frames of a window the percentiles are taken over.
        crop_expand: fraction by which the person+bed box grows on every side (0.2 = +20%).
        size: side of the square model input (224).
        pad_value: value of the centre-padding border, in the [-1, 1] output scale (-1).
    """

    window: int = 60
    min_frames: int = 9
    intensity_mode: Literal["fixed", "percentile"] = "percentile"
    intensity_lo: float = 0.0
    intensity_hi: float = 65535.0
    percentile_lo: float = 1.0
    percentile_hi: float = 99.0
    percentile_frames: int = 8
    crop_expand: float = 0.2
    size: int = 224
    pad_value: float = -1.0

    def __post_init__(self) -> None:
        problems = []
        if self.min_frames < 9:
            problems.append(f"min_frames={self.min_frames} is below 9, the shortest input I3D accepts")
        if self.window < self.min_frames:
            problems.append(f"window={self.window} is shorter than min_frames={self.min_frames}")
        if self.intensity_mode not in ("fixed", "percentile"):
            problems.append(f"intensity_mode={self.intensity_mode!r}; use 'fixed' or 'percentile'")
        if self.intensity_mode == "fixed" and not self.intensity_hi > self.intensity_lo:
            problems.append(
                f"intensity_hi={self.intensity_hi} must exceed intensity_lo={self.intensity_lo}"
            )
        if not 0 <= self.percentile_lo < self.percentile_hi <= 100:
            problems.append(
                f"percentiles ({self.percentile_lo}, {self.percentile_hi}) must satisfy 0 <= lo < hi <= 100"
            )
        if self.percentile_frames < 1:
            problems.append(f"percentile_frames={self.percentile_frames} must be >= 1")
        if not 0 <= self.crop_expand <= 2:
            problems.append(f"crop_expand={self.crop_expand} should be a fraction such as 0.2")
        if self.size < 32:
            problems.append(f"size={self.size} is too small for I3D; the paper uses 224")
        if problems:
            raise ValueError("invalid PreprocessSpec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BundleError(
                f"preprocess spec has unknown fields {unknown}; this bundle was written by a newer "
                "semiostream; upgrade semiostream to read it"
            )
        return cls(**d)


@dataclass
class Bundle:
    """A loaded bundle: models in eval mode plus everything runtime code needs to know."""

    path: Path
    i3d: torch.nn.Module
    classifier: torch.nn.Module
    spec: PreprocessSpec
    labels: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def bundle_id(self) -> str:
        """Short content id: changes whenever any weight file or the spec changes."""
        return self.meta["bundle_id"]

    @property
    def in_channels(self) -> int:
        return int(self.meta["i3d"]["in_channels"])


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _bundle_id(files: dict[str, str], spec: dict[str, Any], labels: list[str]) -> str:
    blob = json.dumps({"files": files, "preprocess": spec, "labels": labels}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_bundle(
    path: str | os.PathLike,
    i3d: torch.nn.Module,
    classifier: torch.nn.Module,
    spec: PreprocessSpec | None = None,
    labels: tuple[str, ...] | list[str] = DEFAULT_LABELS,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle directory (created if needed; existing weight files are replaced atomically).

    Args:
        path: bundle directory.
        i3d: an :class:`~semiostream.models.i3d.InceptionI3d` (its ``in_channels`` and
            ``num_classes`` are recorded).
        classifier: a :class:`~semiostream.models.classifier.SeizureClassifier`.
        spec: preprocessing spec; the paper's defaults if None.
        labels: class names in output order; p = probability of ``labels[1]``.
        provenance: free-form JSON-serialisable dict (training run, CV metrics, weight source).

    Returns:
        The bundle directory path.
    """
    from safetensors.torch import save_file

    spec = spec or PreprocessSpec()
    labels = list(labels)
    if len(labels) != 2:
        raise ValueError(f"a bundle has exactly two labels (negative, positive); got {labels}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    i3d_state = {k: v.detach().cpu().contiguous() for k, v in i3d.state_dict().items()}
    tmp = out / f".{I3D_FILE}.tmp"
    save_file(i3d_state, str(tmp))
    os.replace(tmp, out / I3D_FILE)

    tmp = out / f".{CLASSIFIER_FILE}.tmp"
    torch.save({k: v.detach().cpu() for k, v in classifier.state_dict().items()}, tmp)
    os.replace(tmp, out / CLASSIFIER_FILE)

    files = {name: sha256_file(out / name) for name in (I3D_FILE, CLASSIFIER_FILE)}
    spec_d = spec.to_dict()
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bundle_id": _bundle_id(files, spec_d, labels),
        "labels": labels,
        "preprocess": spec_d,
        "i3d": {"file": I3D_FILE, **i3d.config()},
        "classifier": {"file": CLASSIFIER_FILE, **classifier.config()},
        "provenance": provenance or {},
        "files": files,
    }
    _atomic_write_bytes(out / BUNDLE_JSON, (json.dumps(meta, indent=2) + "\n").encode())
    return out


def read_bundle_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``bundle.json`` without loading any weights."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle directory {root} does not exist; train one with `semiostream train` "
                          "or pass the path of an existing bundle")
    jf = root / BUNDLE_JSON
    if not jf.is_file():
        raise BundleError(f"{root} is not a model bundle: {BUNDLE_JSON} is missing")
    try:
        meta = json.loads(jf.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{jf} is not valid JSON ({e}); restore the bundle from its source") from e
    if meta.get("format") != FORMAT_NAME:
        raise BundleError(f"{jf} is not a semiostream bundle (format={meta.get('format')!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{jf} has bundle format version {version}; this semiostream reads version {FORMAT_VERSION}. "
            "Use the semiostream release that wrote it, or re-export the bundle."
        )
    for key in ("labels", "preprocess", "i3d", "classifier", "files", "bundle_id"):
        if key not in meta:
            raise BundleError(f"{jf} lacks the required field {key!r}; the bundle is incomplete")
    return meta


def verify_bundle_files(path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Check that every file listed in ``meta['files']`` exists and has the recorded sha256."""
    root = Path(path)
    for name, digest in meta["files"].items():
        f = root / name
        if not f.is_file():
            raise BundleError(f"bundle {root} is missing {name}; copy the whole bundle directory")
        actual = sha256_file(f)
        if actual != digest:
            raise BundleError(
                f"bundle {root}: {name} has sha256 {actual[:12]}..., bundle.json expects {digest[:12]}...; "
                "the file was modified or truncated. Copy the bundle again from its source."
            )


def load_bundle(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Bundle:
    """Load a bundle directory, checking format version and every file's sha256.

    Returns:
        :class:`Bundle` with ``i3d`` and ``classifier`` in eval mode on ``map_location``.

    Raises:
        BundleError: the directory is missing, incomplete, modified, or of another format version.
    """
    from safetensors.torch import load_file

    from .classifier import SeizureClassifier
    from .i3d import InceptionI3d

    root = Path(path)
    meta = read_bundle_json(root)
    verify_bundle_files(root, meta)
    spec = PreprocessSpec.from_dict(meta["preprocess"])

    i3d_cfg = {k: v for k, v in meta["i3d"].items() if k != "file"}
    i3d = InceptionI3d(**i3d_cfg)
    _load_state(i3d, load_file(str(root / meta["i3d"]["file"]), device=str(map_location)), root, "I3D")

    cls_cfg = {k: v for k, v in meta["classifier"].items() if k != "file"}
    classifier = SeizureClassifier(**cls_cfg)
    state = torch.load(root / meta["classifier"]["file"], map_location=map_location, weights_only=True)
    _load_state(classifier, state, root, "classifier")

    return Bundle(
        path=root,
        i3d=i3d.to(map_location).eval(),
        classifier=classifier.to(map_location).eval(),
        spec=spec,
        labels=tuple(meta["labels"]),
        meta=meta,
    )


def _load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], root: Path, what: str) -> None:
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BundleError(
            f"bundle {root}: {what} weights do not match the recorded config "
            f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}); "
            "the bundle was edited by hand or written by an incompatible version"
        )
