"""Importing the paper's Keras classifier: real Keras 3 models (torch backend), saved as .keras and .h5."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: no TensorFlow needed
keras = pytest.importorskip("keras", reason="keras>=3 is in the dev extra")

from semiostream.models.classifier import MASK_VALUE, NUM_STEPS  # noqa: E402
from semiostream.models.keras_classifier import KerasModelError  # noqa: E402
from semiostream.models.weights import load_keras_classifier  # noqa: E402

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


def _keras2_h5(model, path, names: list[str], rec_act: str) -> None:
    """Write ``model`` in the layout of a Keras 2.2.4 ``model.save('x.h5')`` (what the paper's code wrote):
    Keras 2 layer configs, ``model_weights/<layer>/<layer>/<weight>:0`` datasets listed in ``weight_names``."""
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
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                              "config": {"name": "sequential_1", "layers": layers}}).encode()
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
    path = tmp_path / "paper_keras2.h5"
    _keras2_h5(model, path, names, "hard_sigmoid")
    ours = load_keras_classifier(path)
    assert ours.config()["recurrent_activation"] == "hard_sigmoid_keras2"
    assert ours.config()["l2_kernel"] == pytest.approx(2e-4)
    for length in range(1, NUM_STEPS + 1):
        x = _inputs(4, length, seed=20 + length)
        with torch.no_grad():
            np.testing.assert_allclose(ours(torch.from_numpy(x)).numpy(), _keras_p(model, x), rtol=0, atol=1e-5,
                                       err_msg=f"length {length}")
