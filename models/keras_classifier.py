"""Import the paper's classifier trained in Keras (Keras 2 ``.h5`` or Keras 3 ``.keras``).

The file must hold a whole model (architecture + weights, as ``model.save`` writes it) of the paper's
architecture, in this order (an ``InputLayer`` may come first)::

    Masking(mask_value=-1) -> LSTM(u1, return_sequences=True) -> LSTM(u2)
    -> BatchNormalization -> Dropout -> Dense(d1, relu)
    -> BatchNormalization -> Dropout -> Dense(d2, relu)
    -> BatchNormalization -> Dropout -> Dense(1, sigmoid)

with any unit counts, as a ``Sequential`` or a functional model (Keras 2 or 3). A functional model must
be that one chain from its one input to its one output; the op layers Keras 3 records for the mask
(``NotEqual``, ``Any``, ``Squeeze``: ``any(not_equal(input, -1), axis=-1)``, what ``Masking(-1)``
computes) are imported as the mask the classifier applies, and must feed every LSTM (directly or through
``Masking``). Anything else is refused with a :class:`KerasModelError` naming the layer, what was
expected there and how to fix it. The file is read with ``h5py``/``zipfile``/``json`` only: neither Keras nor
TensorFlow is needed, and nothing in the file is executed.

Weight mapping (Keras gate order i, f, c, o equals PyTorch's i, f, g, o):

* LSTM ``kernel`` ``[D, 4H]`` -> ``weight_ih`` ``[4H, D]``; ``recurrent_kernel`` ``[H, 4H]`` ->
  ``weight_hh``; ``bias`` -> ``bias_ih`` (``bias_hh`` = 0);
* Dense ``kernel`` ``[in, out]`` -> ``weight`` ``[out, in]``; ``bias`` as is;
* BatchNormalization ``gamma``/``beta``/``moving_mean``/``moving_variance`` -> ``weight``/``bias``/
  ``running_mean``/``running_var`` (gamma = 1 with ``scale=False``, beta = 0 with ``center=False``).

``recurrent_activation="hard_sigmoid"`` is imported with the definition of the Keras version that
wrote the file (Keras 2: ``clip(0.2 x + 0.5)``; Keras 3: ``clip(x / 6 + 0.5)``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semiostream.core.files import sha256_of

from .classifier import MASK_VALUE, SeizureClassifier
from .weights import WeightsError

log = logging.getLogger(__name__)

HEAD = ("BatchNormalization", "Dropout", "Dense") * 3
BN_EPS = 1e-3  # SeizureClassifier's BatchNorm epsilon (Keras' default)


class KerasModelError(WeightsError):
    """A Keras file that is unreadable or not of the paper's classifier architecture."""


@dataclass
class KerasLayer:
    """One layer of the file: Keras class name, its config, and its weights in file order."""

    kind: str
    name: str
    config: dict[str, Any]
    weights: list[np.ndarray] = field(default_factory=list)


@dataclass
class KerasModelFile:
    """The layers of a saved Keras model and the Keras version that wrote it."""

    path: Path
    keras_version: str
    layers: list[KerasLayer]
    mask_ops: list[str] = field(default_factory=list)  # Keras 3 op layers computing the mask (``Kind:name``)
    graph_masked: bool = False  # a functional graph, checked to mask every LSTM for rows of MASK_VALUE

    @property
    def major(self) -> int:
        try:
            return int(self.keras_version.split(".")[0])
        except ValueError:
            return 2


# ---------------------------------------------------------------------------------------- reading


ARCHITECTURE = ("Input -> Masking(-1) -> LSTM(return_sequences=True) -> LSTM -> "
                "3 x [BatchNormalization, Dropout, Dense], ending in Dense(1, sigmoid)")
# Keras 3 records a functional model's masking as these op layers (Masking.compute_mask is
# ``any(not_equal(x, mask_value), axis=-1)``); they hold no weights and compute the mask the LSTMs apply.
MASK_OPS = ("NotEqual", "Any", "Squeeze")


@dataclass
class _LayerPlan:
    """What a model configuration holds: the layers to read (config order), the mask op layers imported
    (``Kind:name``) and whether the graph feeds every LSTM the mask of rows equal to ``MASK_VALUE``."""

    layers: list[dict[str, Any]]
    mask_ops: list[str] = field(default_factory=list)
    graph_masked: bool = False


def _layer_list(model_config: dict[str, Any], path: Path) -> _LayerPlan:
    if not isinstance(model_config, dict) or "class_name" not in model_config:
        raise KerasModelError(f"{path}: the model configuration is not a Keras model description")
    kind = model_config["class_name"]
    cfg = model_config.get("config")
    if kind not in ("Sequential", "Functional", "Model"):
        raise KerasModelError(f"{path}: a {kind} model is not supported; save a Sequential or functional model")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")
    if not isinstance(layers, list):
        raise KerasModelError(f"{path}: the model configuration lists no layers")
    if kind != "Sequential":
        return _functional_plan(cfg, layers, path)
    for layer in layers:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1 or (nodes and isinstance(nodes[0], list) and len(nodes[0]) > 1):
            raise KerasModelError(f"{path}: layer {layer.get('config', {}).get('name')!r} has several inputs; "
                                  "only a single chain of layers (the paper's architecture) is supported")
    return _LayerPlan(layers)


# ---------------------------------------------------------------------------- functional graphs


def _entry_name(entry: dict[str, Any]) -> str:
    return str((entry.get("config") or {}).get("name") or entry.get("name"))


def _tensor_refs(v: Any) -> list[str]:
    """The layers whose outputs a serialised call argument (possibly nested) refers to, in order."""
    if isinstance(v, dict):
        if v.get("class_name") == "__keras_tensor__":
            history = (v.get("config") or {}).get("keras_history") or [None]
            return [str(history[0])]
        return [n for x in v.values() for n in _tensor_refs(x)]
    if isinstance(v, list | tuple):
        return [n for x in v for n in _tensor_refs(x)]
    return []


@dataclass
class _Call:
    """One layer of a functional graph and what it is called with."""

    kind: str
    name: str
    config: dict[str, Any]
    inputs: list[str]  # layers whose outputs are positional arguments
    constants: list[Any]  # positional arguments that are not tensors
    mask: str | None  # the layer whose output is passed as ``mask=``
    other: list[str]  # layers whose outputs are passed as other keyword arguments


def _parse_call(entry: dict[str, Any], path: Path) -> _Call:
    """A functional layer entry in Keras 3 (``{"args", "kwargs"}``) or Keras 2 (``[[name, 0, 0, {}]]``) form."""
    kind, name = str(entry.get("class_name")), _entry_name(entry)
    nodes = entry.get("inbound_nodes") or []
    if len(nodes) > 1:
        raise KerasModelError(f"{path}: layer {name!r} ({kind}) is called {len(nodes)} times (a shared layer); "
                              f"the importer reads one chain {ARCHITECTURE}: rebuild it so and save again")
    call = _Call(kind, name, entry.get("config") or {}, [], [], None, [])
    if not nodes:
        return call
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3
        for arg in node.get("args") or []:
            refs = _tensor_refs(arg)
            if refs:
                call.inputs.extend(refs)
            else:
                call.constants.append(arg)
        for key, value in (node.get("kwargs") or {}).items():
            refs = _tensor_refs(value)
            if key == "mask" and len(refs) == 1:
                call.mask = refs[0]
            else:
                call.other.extend(refs)
    elif isinstance(node, list):  # Keras 2: [[inbound layer, node index, tensor index, kwargs], ...]
        call.inputs = [str(item[0]) for item in node if isinstance(item, list) and item]
    return call


def _axis_is_last(axis: Any) -> bool:
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    return axis in (-1, 2)


def _mask_symbol(call: _Call, symbols: dict[str, tuple], model_input: str, path: Path) -> tuple:
    """What a mask op computes, symbolically: ``("ne", v)`` = ``x != v`` per feature, ``("mask", v)`` =
    any over the features ``[B, T]``, ``("mask_kept", v)`` = the same ``[B, T, 1]``."""
    def refuse(why: str) -> KerasModelError:
        return KerasModelError(
            f"{path}: layer {call.name!r} ({call.kind}) {why}; only the padding mask Masking(-1) computes, "
            "any(not_equal(input, -1), axis=-1), can be imported: mask with keras.layers.Masking(mask_value=-1) "
            "and save again")

    if call.kind == "NotEqual":
        numbers = [c for c in call.constants if isinstance(c, int | float) and not isinstance(c, bool)]
        if call.inputs != [model_input] or len(numbers) != 1 or len(call.constants) != 1:
            raise refuse(f"compares {call.inputs or 'no tensor'} with {call.constants}, not the model input "
                         "with one number")
        return ("ne", float(numbers[0]))
    src = symbols.get(call.inputs[0]) if len(call.inputs) == 1 else None
    if call.kind == "Any":
        if src is None or src[0] != "ne" or not _axis_is_last(call.config.get("axis")):
            raise refuse("is not any(not_equal(input, value), axis=-1)")
        return ("mask_kept" if call.config.get("keepdims") else "mask", src[1])
    if src is None or src[0] != "mask_kept" or not _axis_is_last(call.config.get("axis")):  # Squeeze
        raise refuse("is not squeeze(any(..., axis=-1, keepdims=True), axis=-1)")
    return ("mask", src[1])


def _functional_plan(cfg: dict[str, Any], entries: list[dict[str, Any]], path: Path) -> _LayerPlan:
    """Check a functional model's graph: one input, the paper's layers as one chain to the one output,
    and every LSTM masked for rows equal to ``MASK_VALUE`` (by a ``Masking`` layer or by Keras 3's
    ``NotEqual``/``Any``/``Squeeze`` op layers). Refuses anything else naming the layer."""
    fix = f"the importer reads one chain {ARCHITECTURE}: rebuild the model so (functional or Sequential) " \
          "and save again"
    calls = [_parse_call(e, path) for e in entries]
    by_name = {c.name: c for c in calls}
    inputs = [c.name for c in calls if c.kind == "InputLayer"]
    if len(inputs) != 1:
        raise KerasModelError(f"{path}: the model has {len(inputs)} inputs {inputs}; {fix}")
    symbols: dict[str, tuple] = {}
    chain_calls: list[_Call] = []
    for c in calls:
        for ref in [*c.inputs, *c.other, *([c.mask] if c.mask else [])]:
            if ref not in by_name:
                raise KerasModelError(f"{path}: layer {c.name!r} ({c.kind}) takes the output of {ref!r}, "
                                      "which the model does not list; save the whole model again")
        if c.kind == "InputLayer":
            continue
        if c.kind in MASK_OPS:
            symbols[c.name] = _mask_symbol(c, symbols, inputs[0], path)
            continue
        if len(c.inputs) != 1 or c.other:
            refs = [*c.inputs, *c.other]
            raise KerasModelError(f"{path}: layer {c.name!r} ({c.kind}) takes {len(refs)} inputs {refs}; {fix}")
        if c.inputs[0] in symbols:
            raise KerasModelError(f"{path}: layer {c.name!r} ({c.kind}) is applied to the mask "
                                  f"{c.inputs[0]!r}; {fix}")
        if c.mask is not None and (c.kind != "LSTM" or c.mask not in symbols):
            raise KerasModelError(f"{path}: layer {c.name!r} ({c.kind}) is given the output of {c.mask!r} "
                                  f"as its mask; {fix}")
        chain_calls.append(c)

    chain: list[_Call] = []
    current = inputs[0]
    while True:
        consumers = [c for c in chain_calls if c.inputs[0] == current]
        if len(consumers) > 1:
            raise KerasModelError(f"{path}: the output of {current!r} feeds {len(consumers)} layers "
                                  f"{[c.name for c in consumers]} (a branch); {fix}")
        if not consumers:
            break
        chain.append(consumers[0])
        current = consumers[0].name
    if len(chain) != len(chain_calls):
        stray = next(c for c in chain_calls if c not in chain)
        raise KerasModelError(f"{path}: layer {stray.name!r} ({stray.kind}) is not on the chain from the input; "
                              f"{fix}")
    outputs = cfg.get("output_layers") or []
    outputs = [outputs] if outputs and not isinstance(outputs[0], list) else outputs
    if [str(o[0]) for o in outputs] != [current]:
        raise KerasModelError(f"{path}: the model outputs {[o[0] for o in outputs]}, not the end of its chain "
                              f"{current!r}; {fix}")

    want = ("mask", float(MASK_VALUE))
    carried: tuple | None = None  # the mask Keras propagates along the chain
    for c in chain:
        if c.kind == "Masking":
            carried = ("mask", float(c.config.get("mask_value", 0.0)))
        elif c.kind == "LSTM":
            mask = symbols[c.mask] if c.mask is not None else carried
            if mask != want:
                why = ("gets no mask" if mask is None else f"masks the rows equal to {mask[1]:g}"
                       if mask[0] == "mask" else f"is given a mask of the wrong shape ({c.mask!r})")
                raise KerasModelError(
                    f"{path}: layer {c.name!r} (LSTM) {why}; the features are pre-padded with rows of "
                    f"{MASK_VALUE:g}: put keras.layers.Masking(mask_value={MASK_VALUE:g}) before the first LSTM")
            carried = mask if c.config.get("return_sequences") else None
    keep = {c.name for c in chain} | set(inputs)
    layers = [e for e in entries if _entry_name(e) in keep]
    if [_entry_name(e) for e in layers if e.get("class_name") != "InputLayer"] != [c.name for c in chain]:
        raise KerasModelError(f"{path}: the layers are not listed in the order they are called; {fix}")
    mask_ops = [f"{c.kind}:{c.name}" for c in calls if c.kind in MASK_OPS]
    return _LayerPlan(layers, mask_ops, graph_masked=True)


def _decode(v: Any) -> Any:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _read_h5_model(path: Path) -> KerasModelFile:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise KerasModelError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        if "model_config" not in f.attrs:
            raise KerasModelError(
                f"{path} holds weights only (no model_config); save the whole model with "
                "`model.save('model.h5')` (Keras 2) or `model.save('model.keras')` (Keras 3)"
            )
        model_config = json.loads(_decode(f.attrs["model_config"]))
        version = str(_decode(f.attrs.get("keras_version", "2")))
        group = f["model_weights"] if "model_weights" in f else f
        layers = []
        plan = _layer_list(model_config, path)
        for entry in plan.layers:
            name = entry.get("config", {}).get("name") or entry.get("name")
            weights: list[np.ndarray] = []
            if name in group:
                g = group[name]
                for wname in [_decode(n) for n in g.attrs.get("weight_names", [])]:
                    if wname not in g:
                        raise KerasModelError(f"{path}: weight {wname!r} of layer {name!r} is missing")
                    weights.append(np.asarray(g[wname][()], dtype=np.float32))
            layers.append(KerasLayer(entry["class_name"], name, entry.get("config", {}), weights))
    return KerasModelFile(path, version, layers, plan.mask_ops, plan.graph_masked)


def _read_keras_v3(path: Path) -> KerasModelFile:
    import h5py

    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise KerasModelError(f"{path}: not a Keras 3 .keras archive ({e})") from e
    with zf:
        names = set(zf.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise KerasModelError(f"{path}: a .keras archive needs config.json and model.weights.h5; "
                                  f"found {sorted(names)}")
        model_config = json.loads(zf.read("config.json"))
        meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
        weights_h5 = zf.read("model.weights.h5")
    layers = []
    used: dict[str, int] = {}
    with h5py.File(io.BytesIO(weights_h5), "r") as w:
        root = w["layers"] if "layers" in w else None
        plan = _layer_list(model_config, path)
        for entry in plan.layers:
            name = entry.get("config", {}).get("name")
            key = _unique_name(_snake_case(entry["class_name"]), used)  # how Keras 3 addresses the weights
            weights: list[np.ndarray] = []
            if root is not None and key in root:
                g = root[key]
                vars_group = g["cell"]["vars"] if "cell" in g and "vars" in g["cell"] else g.get("vars")
                if vars_group is not None:
                    weights = [np.asarray(vars_group[k][()], dtype=np.float32)
                               for k in sorted(vars_group, key=int)]
            layers.append(KerasLayer(entry["class_name"], name, entry.get("config", {}), weights))
    return KerasModelFile(path, str(meta.get("keras_version", "3")), layers, plan.mask_ops, plan.graph_masked)


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case`` (``BatchNormalization`` -> ``batch_normalization``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_name(name: str, used: dict[str, int]) -> str:
    """Keras 3 saves a model's layers under their class name, numbered in order (``lstm``, ``lstm_1``)."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def read_keras_model(path: str | os.PathLike) -> KerasModelFile:
    """The layers (config + weights) of a Keras ``.h5``/``.hdf5`` or ``.keras`` file.

    Raises:
        KerasModelError: missing file, unknown extension, unreadable file, weights-only file.
    """
    p = Path(path)
    if not p.is_file():
        raise KerasModelError(f"Keras model file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return _read_h5_model(p)
    if suffix == ".keras":
        return _read_keras_v3(p)
    raise KerasModelError(f"{p}: unsupported file type {p.suffix!r}; give a Keras .h5 or .keras model file")


# ------------------------------------------------------------------------------------ validation


def _refuse(layer: KerasLayer | None, index: int, expected: str, path: Path) -> KerasModelError:
    if layer is None:
        return KerasModelError(f"{path}: the model ends after {index} layers; expected {expected} next "
                               "(the paper's classifier: Masking, LSTM, LSTM, 3 x [BatchNormalization, "
                               "Dropout, Dense])")
    return KerasModelError(
        f"{path}: layer {index} {layer.name!r} is a {layer.kind}; expected {expected} "
        "(the paper's classifier: Masking(-1), LSTM, LSTM, 3 x [BatchNormalization, Dropout, Dense])"
    )


def _activation(v: Any) -> str:
    if isinstance(v, dict):  # serialised activation object
        v = v.get("config", {}).get("name") or v.get("class_name")
    return str(v)


def _l2(reg: Any, default: float = 1e-4) -> float:
    """The L2 factor of a serialised regulariser (``default`` when absent or not a pure L2)."""
    if not isinstance(reg, dict):
        return 0.0 if reg is None else default
    cfg = reg.get("config", {})
    if float(cfg.get("l1", 0.0) or 0.0) != 0.0 or "l2" not in cfg:
        return default
    return float(cfg["l2"])


def _check(cond: bool, layer: KerasLayer, what: str, path: Path) -> None:
    if not cond:
        raise KerasModelError(f"{path}: layer {layer.name!r} ({layer.kind}): {what}; "
                              "only the paper's classifier architecture can be imported")


def _expect_weights(layer: KerasLayer, shapes: list[tuple[int, ...]], path: Path) -> None:
    got = [tuple(w.shape) for w in layer.weights]
    if got != shapes:
        raise KerasModelError(f"{path}: layer {layer.name!r} ({layer.kind}) has weights {got}, expected {shapes}")


def _lstm_activation(layer: KerasLayer, major: int, path: Path) -> str:
    c = layer.config
    _check(_activation(c.get("activation", "tanh")) == "tanh", layer, "activation must be tanh", path)
    for flag in ("go_backwards", "stateful", "return_state"):
        _check(not c.get(flag, False), layer, f"{flag}=True is not supported", path)
    _check(c.get("use_bias", True), layer, "use_bias=False is not supported", path)
    rec = _activation(c.get("recurrent_activation", "hard_sigmoid" if major < 3 else "sigmoid"))
    if rec == "sigmoid":
        return "sigmoid"
    if rec == "hard_sigmoid":
        return "hard_sigmoid_keras2" if major < 3 else "hard_sigmoid_keras3"
    raise KerasModelError(f"{path}: layer {layer.name!r} (LSTM): recurrent_activation {rec!r} is not supported "
                          "(sigmoid or hard_sigmoid)")


@dataclass
class KerasClassifier:
    """A Keras model converted: the PyTorch classifier plus what was read."""

    model: SeizureClassifier
    keras_version: str
    source_sha256: str
    layers: list[str]

    def provenance(self, path: str | os.PathLike) -> dict[str, Any]:
        return {"format": "keras", "file": str(path), "sha256": self.source_sha256,
                "keras_version": self.keras_version, "layers": self.layers,
                "config": self.model.config()}


def convert_keras_model(km: KerasModelFile) -> SeizureClassifier:
    """Check the architecture and copy the weights into a :class:`SeizureClassifier` (eval mode)."""
    path = km.path
    layers = [layer for layer in km.layers if layer.kind != "InputLayer"]
    it = iter(enumerate(layers))

    def take(expected_kind: str, expected: str) -> KerasLayer:
        i, layer = next(it, (len(layers), None))
        if layer is None or layer.kind != expected_kind:
            raise _refuse(layer, i, expected, path)
        return layer

    if not (km.graph_masked and layers and layers[0].kind == "LSTM"):  # a graph may mask by ops alone
        mask = take("Masking", "Masking(mask_value=-1)")
        mv = float(mask.config.get("mask_value", 0.0))
        _check(mv == MASK_VALUE, mask, f"mask_value is {mv:g}; the features are pre-padded with {MASK_VALUE:g}",
               path)

    lstm1 = take("LSTM", "LSTM(units, return_sequences=True)")
    _check(bool(lstm1.config.get("return_sequences")), lstm1, "the first LSTM must return sequences", path)
    lstm2 = take("LSTM", "LSTM(units) (the second LSTM)")
    _check(not lstm2.config.get("return_sequences"), lstm2, "the second LSTM must return its last output only",
           path)
    acts = {_lstm_activation(lstm1, km.major, path), _lstm_activation(lstm2, km.major, path)}
    _check(len(acts) == 1, lstm2, "both LSTMs must use the same recurrent_activation", path)
    u1, u2 = int(lstm1.config["units"]), int(lstm2.config["units"])
    if len(lstm1.weights) != 3:
        raise KerasModelError(f"{path}: layer {lstm1.name!r} (LSTM) holds {len(lstm1.weights)} weight arrays, "
                              "expected kernel, recurrent_kernel and bias")
    d_in = int(lstm1.weights[0].shape[0])
    _expect_weights(lstm1, [(d_in, 4 * u1), (u1, 4 * u1), (4 * u1,)], path)
    _expect_weights(lstm2, [(u1, 4 * u2), (u2, 4 * u2), (4 * u2,)], path)

    head: list[KerasLayer] = []
    expect_text = {"BatchNormalization": "BatchNormalization", "Dropout": "Dropout", "Dense": "Dense"}
    for k, kind in enumerate(HEAD):
        last = k == len(HEAD) - 1
        head.append(take(kind, "Dense(1, sigmoid)" if last else expect_text[kind]))
    extra = next(it, None)
    if extra is not None:
        i, layer = extra
        raise KerasModelError(f"{path}: layer {i} {layer.name!r} ({layer.kind}) follows the final Dense(1, "
                              "sigmoid); the paper's classifier ends there: remove the layers after it and save again")
    bns, drops, denses = head[0::3], head[1::3], head[2::3]
    widths = [u2]
    for j, dense in enumerate(denses):
        act = _activation(dense.config.get("activation"))
        want = "sigmoid" if j == 2 else "relu"
        _check(act == want, dense, f"activation is {act!r}, expected {want!r}", path)
        _check(dense.config.get("use_bias", True), dense, "use_bias=False is not supported", path)
        units = int(dense.config["units"])
        _check(j < 2 or units == 1, dense, f"the output layer has {units} units; expected 1 (p(TLE))", path)
        _expect_weights(dense, [(widths[-1], units), (units,)], path)
        widths.append(units)
    for bn, width in zip(bns, widths[:3], strict=True):
        c = bn.config
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        _check(axis in (-1, 1), bn, f"axis={axis} is not the feature axis", path)
        eps = float(c.get("epsilon", BN_EPS))
        _check(abs(eps - BN_EPS) <= 1e-12, bn, f"epsilon={eps:g}; only Keras' default 1e-3 is supported", path)
        n = 2 + int(c.get("scale", True)) + int(c.get("center", True))
        _expect_weights(bn, [(width,)] * n, path)

    rates = [float(d.config.get("rate", 0.0)) for d in drops]
    if len(set(rates)) > 1:
        log.warning("%s: dropout rates %s differ; the classifier records %g (no effect on inference)",
                    path, rates, rates[0])
    model = SeizureClassifier(
        input_dim=d_in, lstm_units=(u1, u2), dense_units=(widths[1], widths[2]), dropout=rates[0],
        recurrent_dropout=float(lstm1.config.get("recurrent_dropout", 0.0)),
        l2_kernel=_l2(lstm1.config.get("kernel_regularizer")),
        l2_recurrent=_l2(lstm1.config.get("recurrent_regularizer")),
        l2_activity=_l2(lstm1.config.get("activity_regularizer")),
        l2_bias=_l2(denses[0].config.get("bias_regularizer")),
        recurrent_activation=acts.pop(),
    )
    _copy_weights(model, lstm1, lstm2, bns, denses)
    return model.eval()


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


@torch.no_grad()
def _copy_weights(model: SeizureClassifier, lstm1: KerasLayer, lstm2: KerasLayer, bns: list[KerasLayer],
                  denses: list[KerasLayer]) -> None:
    for ours, theirs in ((model.lstm1, lstm1), (model.lstm2, lstm2)):
        kernel, recurrent, bias = theirs.weights
        ours.cell.weight_ih.copy_(_t(kernel.T))
        ours.cell.weight_hh.copy_(_t(recurrent.T))
        ours.cell.bias_ih.copy_(_t(bias))
        ours.cell.bias_hh.zero_()
    for ours, theirs in zip((model.bn1, model.bn2, model.bn3), bns, strict=True):
        c, w = theirs.config, list(theirs.weights)
        ours.weight.copy_(_t(w.pop(0)) if c.get("scale", True) else torch.ones_like(ours.weight))
        ours.bias.copy_(_t(w.pop(0)) if c.get("center", True) else torch.zeros_like(ours.bias))
        ours.running_mean.copy_(_t(w[0]))
        ours.running_var.copy_(_t(w[1]))
    for ours, theirs in zip((model.fc1, model.fc2, model.fc3), denses, strict=True):
        ours.weight.copy_(_t(theirs.weights[0].T))
        ours.bias.copy_(_t(theirs.weights[1]))


def import_keras_classifier(path: str | os.PathLike) -> KerasClassifier:
    """Read, check and convert a Keras model file; see the module docstring."""
    km = read_keras_model(path)
    model = convert_keras_model(km)
    digest = sha256_of(path)
    layers = [f"{layer.kind}:{layer.name}" for layer in km.layers] + km.mask_ops
    return KerasClassifier(model, km.keras_version, digest, layers)


def load_keras_classifier(path: str | os.PathLike) -> SeizureClassifier:
    """The paper's classifier from a Keras ``.h5`` (Keras 2) or ``.keras`` (Keras 3) model file.

    Returns:
        :class:`~semiostream.models.classifier.SeizureClassifier` in eval mode, mapping ``[B, 7, D]``
        float32 features pre-padded with rows of -1 to p(TLE) ``[B]``, equal to the Keras model's output.

    Raises:
        KerasModelError: the file is missing, unreadable, weights-only, or not the paper's architecture
            (the message names the offending layer).
    """
    return import_keras_classifier(path).model
