"""The model bundle: the one artifact the trainer writes and everything else reads.

A bundle is a directory::

    bundle.json          format version, labels, preprocessing spec, model configs,
                         provenance (training run, CV metrics, whether the training data were
                         synthetic: :func:`training_data`), sha256 of every file
    i3d.safetensors      I3D feature extractor weights (``in_channels`` recorded in bundle.json)
    classifier.pt        SeizureClassifier state dict (loaded with ``torch.load(weights_only=True)``)
    onnx/*.onnx          derived: exported models (not hashed here; they carry their own metadata)
    engines/*.engine     derived: TensorRT engines with JSON sidecars

Runtime code reads preprocessing constants from :class:`PreprocessSpec` in the bundle; it never
re-derives them.

Verification (:func:`load_bundle`, :func:`check_bundle`): a bundle is self-contained. ``files`` lists
exactly the weight files named by ``i3d.file`` and ``classifier.file`` (nothing unlisted is ever loaded),
each under a path relative to the bundle directory that stays inside it (no absolute path, no ``..``, no
symbolic link leading out, only regular files), with its sha256. ``bundle_id`` is recomputed from the
verified content (the sha256 of every file, the preprocessing spec and the labels); a ``bundle.json`` that
claims another id is refused, so different weights can never run under a genuine bundle's id. The model
configs are not part of the id: they are checked against the shapes of the verified weights, and the rest
of them (dropout, regularisation) does not change inference. Every failure is a :class:`BundleError`
naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

import torch

from semiostream.core.files import atomic_write, file_kind, replacing, sha256_of
from semiostream.core.preprocess_spec import NewerSpecError, PreprocessSpec

FORMAT_NAME = "semiostream-bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
I3D_FILE = "i3d.safetensors"
CLASSIFIER_FILE = "classifier.pt"
DEFAULT_LABELS = ("FLE", "TLE")
#: a bundle.json larger than this is refused unread (a real one is a few kB)
MAX_BUNDLE_JSON_BYTES = 16 << 20


class BundleError(ValueError):
    """A bundle directory is missing, incomplete, corrupted or of an unsupported version."""


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
    with replacing(out / I3D_FILE) as tmp:
        save_file(i3d_state, str(tmp))
    with replacing(out / CLASSIFIER_FILE) as tmp:
        torch.save({k: v.detach().cpu() for k, v in classifier.state_dict().items()}, tmp)

    files = {name: sha256_of(out / name) for name in (I3D_FILE, CLASSIFIER_FILE)}
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
    atomic_write(out / BUNDLE_JSON, json.dumps(meta, indent=2) + "\n")
    return out


def _bundle_error(jf: Path, problem: str) -> BundleError:
    return BundleError(f"{jf}: {problem}; restore bundle.json from the bundle's source (or save the bundle again)")


def read_bundle_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``bundle.json`` (format, version, field types, file names) without reading weights.

    Checks that every weight file (``i3d.file``, ``classifier.file``) is listed in ``files`` and that ``files``
    lists nothing else, each under a relative name inside the bundle directory. Hashes, the bundle id and the
    weights themselves are checked by :func:`verify_bundle_files` / :func:`load_bundle`.

    Raises:
        BundleError: the directory or ``bundle.json`` is missing, unreadable, not UTF-8 JSON, of another format
            or version, or has a missing or mistyped field (the message names the file and the fix).
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle directory {root} does not exist; train one with `semiostream train` "
                          "or pass the path of an existing bundle")
    jf = root / BUNDLE_JSON
    kind = _file_kind(jf)
    if kind == "missing":
        raise BundleError(f"{root} is not a model bundle: {BUNDLE_JSON} is missing")
    if kind != "file":
        raise _bundle_error(jf, f"is {kind}, not a regular file")
    size = jf.stat().st_size
    if size > MAX_BUNDLE_JSON_BYTES:
        raise _bundle_error(jf, f"is {size} bytes, more than the {MAX_BUNDLE_JSON_BYTES} a bundle.json can be")
    try:
        text = jf.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bundle_error(jf, f"is not UTF-8 text (invalid byte at offset {e.start})") from e
    except OSError as e:
        raise BundleError(f"cannot read {jf} ({e.strerror or e}); check its permissions") from e
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bundle_error(jf, f"is not valid JSON ({e})") from e
    except (ValueError, RecursionError) as e:
        raise _bundle_error(jf, f"is not valid JSON ({type(e).__name__})") from e
    if not isinstance(meta, dict):
        raise _bundle_error(jf, f"holds a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT_NAME:
        raise BundleError(f"{jf} is not a semiostream bundle (format={meta.get('format')!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise BundleError(
            f"{jf} has bundle format version {version}; this semiostream reads version {FORMAT_VERSION}. "
            "Use the semiostream release that wrote it, or re-export the bundle."
        )
    for key in ("labels", "preprocess", "i3d", "classifier", "files", "bundle_id"):
        if key not in meta:
            raise BundleError(f"{jf} lacks the required field {key!r}; the bundle is incomplete")
    _check_fields(jf, meta)
    return meta


def _check_fields(jf: Path, meta: dict[str, Any]) -> None:
    """Types of the fields :func:`load_bundle` uses, and the rules for ``files`` (see the module docstring)."""
    labels = meta["labels"]
    if not (isinstance(labels, list) and len(labels) == 2 and all(isinstance(x, str) and x for x in labels)):
        raise _bundle_error(jf, f"'labels' must be a list of two names, e.g. [\"FLE\", \"TLE\"]; got {labels!r:.80}")
    if not isinstance(meta["bundle_id"], str):
        raise _bundle_error(jf, f"'bundle_id' must be a string; got {meta['bundle_id']!r:.80}")
    for key in ("preprocess", "i3d", "classifier"):
        if not isinstance(meta[key], dict):
            raise _bundle_error(jf, f"'{key}' must be an object; got {type(meta[key]).__name__}")
    files = meta["files"]
    if not isinstance(files, dict):
        raise _bundle_error(jf, f"'files' must map file names to sha256 digests; got {type(files).__name__}")
    normal: dict[str, str] = {}
    for name, digest in files.items():
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise _bundle_error(jf, f"files[{name!r}] must be a sha256 digest (64 lower-case hex digits)")
        key = _member_name(jf, name)
        if key in normal:
            raise _bundle_error(jf, f"'files' lists {key} twice ({normal[key]!r} and {name!r})")
        normal[key] = name
    weights: dict[str, str] = {}
    for role in ("i3d", "classifier"):
        name = meta[role].get("file")
        if not isinstance(name, str):
            raise _bundle_error(jf, f"'{role}.file' must name the {role} weight file; got {name!r:.80}")
        key = _member_name(jf, name)
        if key not in normal:
            raise _bundle_error(jf, f"the {role} weights {name} are not listed in 'files', so they cannot be "
                                    "verified; a bundle lists the sha256 of every weight file")
        if key in weights.values():
            raise _bundle_error(jf, f"'i3d.file' and 'classifier.file' both name {name}")
        weights[role] = key
    extra = sorted(set(normal) - set(weights.values()))
    if extra:
        raise _bundle_error(jf, f"'files' lists {extra[:3]}, which no model of the bundle uses; "
                                "'files' lists exactly the I3D and classifier weight files")


def _member_name(jf: Path, name: Any) -> str:
    """``name`` normalised (``./a`` -> ``a``) once it is known to be a relative path inside the bundle."""
    p = PurePosixPath(name) if isinstance(name, str) else None
    if (p is None or not name or "\\" in name or "\0" in name or p.is_absolute() or ".." in p.parts
            or str(p) in (".", BUNDLE_JSON)):
        raise _bundle_error(jf, f"file name {name!r:.120} must be a path relative to the bundle directory, "
                                "inside it (no absolute path, no '..')")
    return str(p)


def _file_kind(p: Path) -> str:
    """:func:`semiostream.core.files.file_kind` in a bundle's words: ``"file"``, ``"missing"`` (a dangling link
    too: the bundle lacks it), or what else ``p`` is (``"a folder"``, a FIFO, a symbolic link loop ...)."""
    kind = file_kind(p)
    return {"a dangling symbolic link": "missing", "folder": "a folder"}.get(kind, kind)


def _member_path(root: Path, name: str) -> Path:
    """The regular file ``root/name``, which must lie inside ``root`` after following symbolic links."""
    f = root / PurePosixPath(name)
    kind = _file_kind(f)
    if kind == "missing":
        raise BundleError(f"bundle {root} is missing {name}; copy the whole bundle directory")
    if kind != "file":
        raise BundleError(f"bundle {root}: {name} is {kind}, not a regular file; copy the bundle again from its "
                          "source")
    real, inside = f.resolve(), root.resolve()
    if not real.is_relative_to(inside):
        raise BundleError(f"bundle {root}: {name} is a symbolic link to {real}, outside the bundle directory; "
                          "a bundle is self-contained: copy the file into it (e.g. cp -rL)")
    return real


def _open_regular(root: Path, name: str) -> BinaryIO:
    """``root/name`` opened for reading, never blocking: a file swapped for a FIFO after the checks of
    :func:`_member_path` is refused, not waited on."""
    path = _member_path(root, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise BundleError(f"bundle {root}: cannot read {name} ({e.strerror or e}); check its permissions") from e
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise BundleError(f"bundle {root}: {name} is not a regular file; copy the bundle again from its source")
    return f


def _check_digest(root: Path, name: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise BundleError(
            f"bundle {root}: {name} has sha256 {actual[:12]}..., bundle.json expects {expected[:12]}...; "
            "the file was modified or truncated. Copy the bundle again from its source."
        )


def _check_bundle_id(root: Path, meta: dict[str, Any]) -> None:
    """``bundle_id`` must be the id of the (verified) content: a bundle.json claiming another one is refused."""
    want = _bundle_id(meta["files"], meta["preprocess"], meta["labels"])
    if meta["bundle_id"] != want:
        raise BundleError(
            f"bundle {root}: bundle.json claims bundle_id {meta['bundle_id']!r:.40} but its files, preprocessing "
            f"and labels give {want}; bundle.json was edited by hand. Restore the bundle from its source, or "
            "save it again with save_bundle (which records the id of the content)."
        )


def verify_bundle_files(path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Check every file listed in ``meta['files']`` (a regular file inside the bundle, with the recorded
    sha256) and that ``meta['bundle_id']`` is the id of that content. ``meta`` comes from
    :func:`read_bundle_json`.

    Raises:
        BundleError: a file is missing, outside the bundle, not a regular file or modified, or the id is not
            the content's.
    """
    root = Path(path)
    for name, digest in meta["files"].items():
        h = hashlib.sha256()
        with _open_regular(root, name) as f:
            while block := f.read(1 << 20):
                h.update(block)
        _check_digest(root, name, h.hexdigest(), digest)
    _check_bundle_id(root, meta)


def check_bundle(path: str | os.PathLike) -> tuple[dict[str, Any], PreprocessSpec]:
    """``bundle.json`` and its preprocessing spec, after every check short of loading the weights.

    Raises:
        BundleError: see :func:`read_bundle_json` and :func:`verify_bundle_files`.
    """
    root = Path(path)
    meta = read_bundle_json(root)
    verify_bundle_files(root, meta)
    return meta, _spec(root, meta)


def _spec(root: Path, meta: dict[str, Any]) -> PreprocessSpec:
    try:
        return PreprocessSpec.from_dict(meta["preprocess"])
    except NewerSpecError as e:
        raise BundleError(f"bundle {root}: {e}") from e
    except (TypeError, ValueError) as e:
        raise _bundle_error(root / BUNDLE_JSON, f"'preprocess' is not a valid spec ({_one_line(e)})") from e


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def load_bundle(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Bundle:
    """Load a bundle directory after checking ``bundle.json``, every file's sha256 and the bundle id.

    Each weight file is read once: the bytes that were hashed are the bytes that are loaded.

    Returns:
        :class:`Bundle` with ``i3d`` and ``classifier`` in eval mode on ``map_location``.

    Raises:
        BundleError: the directory is missing, incomplete, modified, of another format version, or a weight
            file does not load into the models its ``bundle.json`` describes; never a raw unpickling,
            safetensors or type error.
    """
    from .classifier import SeizureClassifier
    from .i3d import InceptionI3d

    root = Path(path)
    meta = read_bundle_json(root)
    blobs: dict[str, bytes] = {}
    for name, digest in meta["files"].items():
        with _open_regular(root, name) as f:
            data = f.read()
        _check_digest(root, name, hashlib.sha256(data).hexdigest(), digest)
        blobs[_member_name(root / BUNDLE_JSON, name)] = data
    _check_bundle_id(root, meta)
    spec = _spec(root, meta)

    i3d_name = _member_name(root / BUNDLE_JSON, meta["i3d"]["file"])
    i3d = _build(root, "i3d", InceptionI3d, meta["i3d"], _safetensors_state(root, i3d_name, blobs[i3d_name]))
    cls_name = _member_name(root / BUNDLE_JSON, meta["classifier"]["file"])
    classifier = _build(root, "classifier", SeizureClassifier, meta["classifier"],
                        _pickled_state(root, cls_name, blobs[cls_name]))
    return Bundle(
        path=root,
        i3d=i3d.to(map_location).eval(),
        classifier=classifier.to(map_location).eval(),
        spec=spec,
        labels=tuple(meta["labels"]),
        meta=meta,
    )


def _safetensors_state(root: Path, name: str, data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as e:  # SafetensorError, or anything else a damaged header raises
        raise BundleError(f"bundle {root}: {name} is not a readable safetensors file ({_one_line(e)}); restore "
                          "the bundle from its source or save it again") from e


def _pickled_state(root: Path, name: str, data: bytes) -> Any:
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip archive), EOFError ...
        raise BundleError(f"bundle {root}: {name} is not a readable PyTorch state dict ({_one_line(e)}); "
                          "restore the bundle from its source or save it again") from e


def _build(root: Path, role: str, cls: type[torch.nn.Module], cfg: dict[str, Any], state: Any) -> torch.nn.Module:
    """``cls(**config)`` holding ``state``; the config is tried on the meta device first, so a config that does
    not fit the weights fails before any memory is allocated."""
    name = cfg["file"]
    kwargs = {k: v for k, v in cfg.items() if k != "file"}
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in state.items())):
        raise BundleError(f"bundle {root}: {name} holds a {type(state).__name__}, not a state dict of named "
                          f"tensors; save the bundle again with save_bundle")
    try:
        with torch.device("meta"):
            skeleton = cls(**kwargs)
    except Exception as e:  # TypeError (unknown or mistyped argument), ValueError ...
        raise _bundle_error(root / BUNDLE_JSON, f"'{role}' config {kwargs!r:.160} does not build the "
                                                f"{cls.__name__} ({_one_line(e)})") from e
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        shapes = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong[:3]]
        raise BundleError(
            f"bundle {root}: {name} does not match the {role} config in bundle.json (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, shapes {shapes}); the bundle was edited by hand or written by an "
            "incompatible version: save it again with save_bundle"
        )
    module = cls(**kwargs)
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as e:
        raise BundleError(f"bundle {root}: {name} does not load into the {role} model ({_one_line(e)}); save "
                          "the bundle again with save_bundle") from e
    return module


# ------------------------------------------------------------------------------------- training data


@dataclass(frozen=True)
class TrainingData:
    """What a bundle says about the data its classifier was trained on (``provenance.data`` of bundle.json).

    Attributes:
        kind: ``"synthetic"`` (every training seizure was generated: ``semiostream synth`` / the demo),
            ``"partly synthetic"``, ``"not synthetic"`` (no training seizure was marked synthetic in the
            manifest) or ``"unknown"`` (the bundle records nothing: written before the trainer recorded it,
            or an imported classifier).
        text: one line for tables, reports and model cards, e.g.
            ``"SYNTHETIC training data (8 of 8 seizures): not valid for patients"``.
    """

    kind: Literal["synthetic", "partly synthetic", "not synthetic", "unknown"]
    text: str

    @property
    def synthetic(self) -> bool:
        """True when some or all of the training data were synthetic."""
        return self.kind in ("synthetic", "partly synthetic")


def training_data(meta: dict[str, Any]) -> TrainingData:
    """The training-data provenance of a bundle from its ``bundle.json`` (``meta``); never raises.

    The trainer records ``provenance.data.synthetic`` (bool: any training seizure synthetic),
    ``synthetic_seizures`` and ``seizures`` (counts). A bundle without them is ``"unknown"``
    ("provenance unknown"), so older bundles stay readable and are never presented as trained on real data.
    """
    prov = meta.get("provenance") if isinstance(meta, dict) else None
    data = prov.get("data") if isinstance(prov, dict) else None
    flag = data.get("synthetic") if isinstance(data, dict) else None
    if not isinstance(flag, bool):
        return TrainingData("unknown", "provenance unknown: the bundle does not record whether its training "
                                       "data were real or synthetic")
    k, n = data.get("synthetic_seizures"), data.get("seizures")
    counts = f" ({k} of {n} seizures)" if isinstance(k, int) and isinstance(n, int) else ""
    if not flag:
        of = f" of the {n}" if isinstance(n, int) else ""
        return TrainingData("not synthetic", f"training data not synthetic (none{of} training seizures was "
                                             "marked synthetic in the manifest)")
    if isinstance(k, int) and isinstance(n, int) and 0 < k < n:
        return TrainingData("partly synthetic", f"PARTLY SYNTHETIC training data{counts}: its results are not "
                                                "valid for patients")
    return TrainingData("synthetic", f"SYNTHETIC training data{counts}: a demonstration model, its results "
                                     "say nothing about patients")
