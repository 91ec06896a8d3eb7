"""Importing the paper's Keras classifier: real Keras 3 models (torch backend), saved as .keras and .h5."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: no TensorFlow needed
keras = pytest.importorskip("keras", reason="keras>=3 is in the dev extra")

from semiostream.models.classifier import MASK_VALUE, NUM_STEPS  # noqa: E402
from semiostream.models.keras_classifier import KerasModelError, load_keras_classifier  # noqa: E402

D = 1024


def _paper_model(u1: int, u2: int, d1: int, d2: int, recurrent_activation: str = "sigmoid", seed: int = 0):
    from keras import layers, regularizers

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((NUM_STEPS, D)),
        layers.Masking(mask_value=MASK_VALUE),
        layers.LSTM(u1, return_sequences=True, recurrent_dropout=0.3, recurrent_activation=recurrent_activation,
                    kernel_regularizer=regularizers.l2(1e-4), recurrent_regularizer=regularizers.l2(1e-4),
                    activity_regularizer=regularizers.l2(1e-4)),
        layers.LSTM(u2, recurrent_dropout=0.3, recurrent_activation=recurrent_activation),
        layers.BatchNormalization(), layers.Dropout(0.5),
        layers.Dense(d1, activation="relu", kernel_initializer="he_uniform",
                     bias_regularizer=regularizers.l2(1e-4)),
        layers.BatchNormalization(), layers.Dropout(0.5),
        layers.Dense(d2, activation="relu", kernel_initializer="he_uniform"),
        layers.BatchNormalization(), layers.Dropout(0.5),
        layers.Dense(1, activation="sigmoid"),
    ])
    return _randomize(model, seed)


def _randomize(model, seed: int):
    from keras import layers

    rng = np.random.default_rng(seed)
    for layer in model.layers:  # random biases and BatchNorm statistics, so every weight matters
        ws = layer.get_weights()
        if not ws:
            continue
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = ws
            ws = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                  rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, var.shape)]
        else:
            ws = [w if w.ndim > 1 else rng.normal(0, 0.1, w.shape) for w in ws]
        layer.set_weights([np.asarray(w, np.float32) for w in ws])
    return model


def _inputs(batch: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.full((batch, NUM_STEPS, D), MASK_VALUE, np.float32)
    x[:, NUM_STEPS - length:] = rng.uniform(0, 2, (batch, length, D))  # I3D features are >= 0
    return x


def _keras_p(model, x: np.ndarray) -> np.ndarray:
    out = model(x, training=False)
    return np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out).reshape(-1)


@pytest.mark.parametrize(("units", "rec_act"), [((96, 40, 72, 20), "sigmoid"),
                                                 ((33, 250, 127, 17), "hard_sigmoid")])
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_keras_model_imports_with_equal_outputs_for_every_length(tmp_path, units, rec_act, fmt):
    model = _paper_model(*units, recurrent_activation=rec_act)
    path = tmp_path / f"paper.{fmt}"
    model.save(path)
    ours = load_keras_classifier(path)
    cfg = ours.config()
    assert cfg["lstm_units"] == list(units[:2]) and cfg["dense_units"] == list(units[2:])
    assert cfg.get("recurrent_activation", "sigmoid") == ("sigmoid" if rec_act == "sigmoid" else "hard_sigmoid_keras3")
    assert cfg["recurrent_dropout"] == pytest.approx(0.3) and cfg["dropout"] == pytest.approx(0.5)
    assert not ours.training
    for length in range(1, NUM_STEPS + 1):
        x = _inputs(5, length, seed=length)
        expected = _keras_p(model, x)
        with torch.no_grad():
            got = ours(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=f"length {length}")
        assert np.ptp(expected) > 1e-4  # the outputs depend on the input (not a saturated constant)


def test_other_architectures_are_refused_naming_the_layer(tmp_path):
    from keras import layers

    def save(model, name):
        p = tmp_path / name
        model.save(p)
        return p

    gru = keras.Sequential([keras.Input((NUM_STEPS, D)), layers.Masking(MASK_VALUE),
                            layers.GRU(32, return_sequences=True, name="my_gru"), layers.LSTM(16)])
    with pytest.raises(KerasModelError, match=r"'my_gru' is a GRU; expected LSTM"):
        load_keras_classifier(save(gru, "gru.keras"))

    no_mask = keras.Sequential([keras.Input((NUM_STEPS, D)), layers.LSTM(32, name="first_lstm")])
    with pytest.raises(KerasModelError, match=r"'first_lstm' is a LSTM; expected Masking"):
        load_keras_classifier(save(no_mask, "nomask.h5"))

    paper = _paper_model(32, 32, 16, 16)
    extra = keras.Sequential([*paper.layers, layers.Dense(1, name="one_more")])
    with pytest.raises(KerasModelError, match=r"'one_more'"):
        load_keras_classifier(save(extra, "extra.keras"))

    two_classes = keras.Sequential([keras.Input((NUM_STEPS, D)), *paper.layers[:-1],
                                    layers.Dense(2, activation="sigmoid", name="two_out")])
    with pytest.raises(KerasModelError, match=r"'two_out'.*2 units"):
        load_keras_classifier(save(two_classes, "two.keras"))

    weights_only = tmp_path / "paper.weights.h5"
    paper.save_weights(weights_only)
    with pytest.raises(KerasModelError, match="weights only|not a Keras|model_config"):
        load_keras_classifier(weights_only)
    with pytest.raises(KerasModelError, match="does not exist"):
        load_keras_classifier(tmp_path / "missing.keras")


def test_import_classifier_command_writes_a_bundle(tmp_path, capsys):
    from semiostream.cli import main
    from semiostream.models.bundle import load_bundle

    model = _paper_model(64, 48, 40, 24, seed=3)
    path = tmp_path / "paper.keras"
    model.save(path)
    assert main(["weights", "import-classifier", str(path)]) == 0  # check only
    assert "LSTM 64/48" in capsys.readouterr().out
    i3d = tmp_path / "i3d.safetensors"
    from safetensors.torch import save_file

    from semiostream.models.i3d import InceptionI3d

    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in InceptionI3d(in_channels=3).state_dict().items()}, str(i3d))
    out = tmp_path / "bundle"
    assert main(["weights", "import-classifier", str(path), "--bundle", str(out), "--i3d", str(i3d)]) == 0
    b = load_bundle(out)
    assert b.meta["provenance"]["classifier"]["format"] == "keras"
    assert b.meta["provenance"]["i3d"]["variant"] == "unknown"  # a file neither known nor named
    x = _inputs(3, 4, seed=9)
    with torch.no_grad():
        np.testing.assert_allclose(b.classifier(torch.from_numpy(x)).numpy(), _keras_p(model, x), atol=1e-5)
    assert main(["weights", "import-classifier", str(tmp_path / "nope.h5")]) != 0
    assert "does not exist" in capsys.readouterr().err


def _keras2_h5(model, path, names: list[str], rec_act: str, functional: bool = False) -> None:
    """Write ``model`` in the layout of a Keras 2.2.4 ``model.save('x.h5')`` (what the paper's code wrote):
    Keras 2 layer configs, ``model_weights/<layer>/<layer>/<weight>:0`` datasets listed in ``weight_names``;
    ``functional``: as a Keras 2 functional ``Model`` (``inbound_nodes`` ``[[[layer, 0, 0, {}]]]``)."""
    import json

    import h5py

    kinds = [type(layer).__name__ for layer in model.layers]
    leaves = {"LSTM": ["kernel", "recurrent_kernel", "bias"], "Dense": ["kernel", "bias"],
              "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"]}
    layers = []
    for layer, kind, name in zip(model.layers, kinds, names, strict=True):
        c = layer.get_config()
        cfg = {"name": name, "trainable": True}
        if kind == "Masking":
            cfg.update(batch_input_shape=[None, NUM_STEPS, D], dtype="float32", mask_value=c["mask_value"])
        elif kind == "LSTM":
            cfg.update(units=c["units"], activation="tanh", recurrent_activation=rec_act, use_bias=True,
                       return_sequences=c["return_sequences"], return_state=False, go_backwards=False,
                       stateful=False, unroll=False, dropout=0.0, recurrent_dropout=c["recurrent_dropout"],
                       implementation=1, kernel_regularizer={"class_name": "L1L2", "config": {"l1": 0.0, "l2": 2e-4}})
        elif kind == "BatchNormalization":
            cfg.update(axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True)
        elif kind == "Dropout":
            cfg.update(rate=c["rate"])
        elif kind == "Dense":
            cfg.update(units=c["units"], activation=c["activation"], use_bias=True)
        layers.append({"class_name": kind, "config": cfg})
    config = {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": layers}}
    if functional:
        inp = {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
               "config": {"batch_input_shape": [None, NUM_STEPS, D], "dtype": "float32", "name": "input_1"}}
        for layer, prev in zip(layers, ["input_1", *names], strict=False):
            layer.update(name=layer["config"]["name"], inbound_nodes=[[[prev, 0, 0, {}]]])
        config = {"class_name": "Model", "config": {"name": "model_1", "layers": [inp, *layers],
                                                     "input_layers": [["input_1", 0, 0]],
                                                     "output_layers": [[names[-1], 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n in names]
        for layer, kind, name in zip(model.layers, kinds, names, strict=True):
            lg = g.create_group(name)
            wnames = [f"{name}/{leaf}:0" for leaf in leaves.get(kind, [])]
            lg.attrs["weight_names"] = [w.encode() for w in wnames]
            for wname, w in zip(wnames, layer.get_weights(), strict=True):
                lg.create_dataset(wname, data=w)


def test_keras2_h5_with_keras2_hard_sigmoid_imports_with_equal_outputs(tmp_path):
    """A model in Keras 2's file layout whose LSTMs use Keras 2's hard_sigmoid (clip(0.2 x + 0.5)): the
    reference outputs come from real Keras LSTMs given that gate function."""
    from keras import ops

    def hard_sigmoid_keras2(x):
        return ops.clip(0.2 * x + 0.5, 0.0, 1.0)

    model = _paper_model(48, 36, 30, 12, recurrent_activation=hard_sigmoid_keras2, seed=5)
    names = ["masking_1", "lstm_1", "lstm_2", "batch_normalization_1", "dropout_1", "dense_1",
             "batch_normalization_2", "dropout_2", "dense_2", "batch_normalization_3", "dropout_3", "dense_3"]
    imported = []
    for functional in (False, True):  # Sequential and functional Model layouts
        path = tmp_path / f"paper_keras2_{'functional' if functional else 'sequential'}.h5"
        _keras2_h5(model, path, names, "hard_sigmoid", functional=functional)
        ours = load_keras_classifier(path)
        assert ours.config()["recurrent_activation"] == "hard_sigmoid_keras2"
        assert ours.config()["l2_kernel"] == pytest.approx(2e-4)
        imported.append(ours)
    for length in range(1, NUM_STEPS + 1):
        x = _inputs(4, length, seed=20 + length)
        expected = _keras_p(model, x)
        for ours in imported:
            with torch.no_grad():
                np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(), expected, rtol=0, atol=1e-5,
                                           err_msg=f"length {length}")


def _paper_functional(u1: int, u2: int, d1: int, d2: int, mask: str, seed: int = 0, extra: str = ""):
    """The paper's classifier built with Keras 3's functional API. ``mask``: ``"masking"`` (a Masking layer;
    Keras 3 records its mask as NotEqual/Any op layers), ``"ops"`` (no Masking: the LSTMs are given
    ``any(not_equal(x, -1), axis=-1)``) or ``"ops_keepdims"`` (the same through ``keepdims`` + ``squeeze``).
    ``extra``: ``"dense"`` (one Dense after the output) or ``"branch"`` (two output heads), to be refused."""
    from keras import layers, ops

    keras.utils.set_random_seed(seed)
    inp = keras.Input((NUM_STEPS, D), name="features")
    given = None
    if mask == "ops":
        given = ops.any(ops.not_equal(inp, MASK_VALUE), axis=-1)
    elif mask == "ops_keepdims":
        given = ops.squeeze(ops.any(ops.not_equal(inp, MASK_VALUE), axis=-1, keepdims=True), axis=-1)
    elif mask == "ops_zero":
        given = ops.any(ops.not_equal(inp, 0.0), axis=-1)
    x = layers.Masking(mask_value=MASK_VALUE, name="pad_mask")(inp) if mask == "masking" else inp
    x = layers.LSTM(u1, return_sequences=True, recurrent_dropout=0.3, name="seq_lstm")(x, mask=given)
    x = layers.LSTM(u2, recurrent_dropout=0.3, name="last_lstm")(x)
    for units in (d1, d2):
        x = layers.Dropout(0.5)(layers.BatchNormalization()(x))
        x = layers.Dense(units, activation="relu", kernel_initializer="he_uniform")(x)
    x = layers.Dropout(0.5)(layers.BatchNormalization()(x))
    if extra == "branch":
        out = [layers.Dense(1, activation="sigmoid", name=f"head_{k}")(x) for k in (1, 2)]
    else:
        out = layers.Dense(1, activation="sigmoid", name="p_tle")(x)
    if extra == "dense":
        out = layers.Dense(1, name="one_more")(out)
    return _randomize(keras.Model(inp, out), seed)


def _every_length(per_length: int, seed: int) -> np.ndarray:
    """``[7 * per_length, 7, D]`` features pre-padded with rows of -1: every length 1..7 in one batch."""
    return np.concatenate([_inputs(per_length, length, seed + length) for length in range(1, NUM_STEPS + 1)])


@pytest.mark.parametrize("mask", ["masking", "ops", "ops_keepdims"])
def test_functional_keras3_model_imports_with_equal_outputs(tmp_path, mask):
    from semiostream.models.keras_classifier import import_keras_classifier

    model = _paper_functional(40, 24, 32, 12, mask, seed=7)
    x = _every_length(3, seed=11)
    expected = model.predict(x, verbose=0).reshape(-1)
    assert np.ptp(expected) > 1e-4  # the outputs depend on the input (not a saturated constant)
    for fmt in ("keras", "h5"):
        path = tmp_path / f"functional_{mask}.{fmt}"
        model.save(path)
        imported = import_keras_classifier(path)
        ours = imported.model
        assert ours.config()["lstm_units"] == [40, 24] and ours.config()["dense_units"] == [32, 12]
        ops_layers = {entry.split(":")[0] for entry in imported.layers} & {"NotEqual", "Any", "Squeeze"}
        if mask != "masking":  # Keras 3 records the mask given to the LSTMs as op layers
            assert ops_layers >= ({"NotEqual", "Any", "Squeeze"} if mask == "ops_keepdims" else {"NotEqual", "Any"})
        with torch.no_grad():
            got = ours(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=fmt)


@pytest.mark.parametrize(("mask", "extra", "fmt", "says"), [
    ("masking", "branch", "keras", r"'dropout(_\d+)?' feeds 2 layers \['head_1', 'head_2'\] \(a branch\)"),
    ("masking", "dense", "h5", r"'one_more' \(Dense\) follows the final Dense"),
    ("none", "", "keras", r"'seq_lstm' \(LSTM\) gets no mask.*Masking\(mask_value=-1\)"),
    ("ops_zero", "", "h5", r"'seq_lstm' \(LSTM\) masks the rows equal to 0"),
])
def test_unsupported_functional_graphs_are_refused_in_one_line(tmp_path, capsys, mask, extra, fmt, says):
    from semiostream.cli import main

    path = tmp_path / f"bad.{fmt}"
    _paper_functional(16, 8, 8, 4, mask, extra=extra).save(path)
    capsys.readouterr()  # Keras' own warnings while saving
    assert main(["weights", "import-classifier", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert re.search(says, err), err
