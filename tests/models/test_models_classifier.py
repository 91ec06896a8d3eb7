"""SeizureClassifier: Keras masking equivalence, LSTM correctness, ONNX export without loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semiostream.models.classifier import MASK_VALUE, NUM_STEPS, MaskedLSTM, SeizureClassifier, pad_features


def _features(batch, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, 1024, generator=g) * 2  # I3D features are >= 0


@pytest.mark.parametrize("length", range(1, NUM_STEPS + 1))
def test_prepadding_equals_unpadded_eval(length):
    torch.manual_seed(0)
    model = SeizureClassifier().eval()
    x = _features(4, length)
    padded = pad_features(x)
    assert padded.shape == (4, NUM_STEPS, 1024)
    assert bool((padded[:, : NUM_STEPS - length] == MASK_VALUE).all())
    with torch.no_grad():
        torch.testing.assert_close(model(padded), model(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("length", [1, 3, 6])
def test_prepadding_equals_unpadded_train_mode_without_dropout(length):
    torch.manual_seed(0)
    model = SeizureClassifier(dropout=0.0, recurrent_dropout=0.0).train()
    x = _features(8, length, seed=length)
    torch.testing.assert_close(model(pad_features(x)), model(x), rtol=0, atol=1e-6)


def test_masked_steps_freeze_the_state_even_mid_sequence():
    torch.manual_seed(0)
    model = SeizureClassifier().eval()
    x = _features(2, 4)
    holes = torch.cat([x[:, :2], torch.full((2, 3, 1024), MASK_VALUE), x[:, 2:]], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(holes), model(x), rtol=0, atol=1e-6)
        assert not torch.allclose(model(x[:, 1:]), model(x))  # and unmasked steps do count


def test_masked_lstm_equals_torch_lstm():
    torch.manual_seed(0)
    layer = MaskedLSTM(16, 8).eval()
    ref = torch.nn.LSTM(16, 8, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(layer.cell.weight_ih)
        ref.weight_hh_l0.copy_(layer.cell.weight_hh)
        ref.bias_ih_l0.copy_(layer.cell.bias_ih)
        ref.bias_hh_l0.copy_(layer.cell.bias_hh)
        x = torch.randn(3, 5, 16)
        ours = layer(x, torch.ones(3, 5, 1, dtype=torch.bool))
        theirs, _ = ref(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_output_is_probability_per_sample():
    model = SeizureClassifier().eval()
    with torch.no_grad():
        p = model(pad_features(_features(5, 3)))
    assert p.shape == (5,)
    assert bool(((p > 0) & (p < 1)).all())
    with pytest.raises(ValueError, match=r"\[B, T, 1024\]"):
        model(torch.zeros(2, 7, 512))


def test_regularization_loss_covers_all_terms():
    torch.manual_seed(0)
    model = SeizureClassifier(l2_kernel=0, l2_recurrent=0, l2_activity=0, l2_bias=0)
    model.train()(_features(4, 7))
    assert float(model.regularization_loss().detach()) == 0.0
    for name in ("l2_kernel", "l2_recurrent", "l2_bias", "l2_activity"):
        torch.manual_seed(0)
        m = SeizureClassifier(**{"l2_kernel": 0, "l2_recurrent": 0, "l2_activity": 0, "l2_bias": 0, name: 1e-3})
        with torch.no_grad():
            for fc in (m.fc1, m.fc2, m.fc3):
                fc.bias.fill_(0.1)  # Keras initialises biases to zero; make the bias term visible
        m.train()(_features(4, 7))
        loss = m.regularization_loss()
        assert float(loss) > 0, name
        loss.backward()
        assert m.lstm1.cell.weight_ih.grad is not None or name == "l2_bias"


def test_pad_features_keeps_most_recent_rows():
    f = torch.arange(9 * 2, dtype=torch.float32).reshape(9, 2).expand(9, 2).clone()
    f = torch.nn.functional.pad(f, (0, 1022))
    out = pad_features(f)
    assert out.shape == (7, 1024)
    assert torch.equal(out, f[2:])


def test_onnx_export_has_no_loop_and_matches_onnxruntime(tmp_path):
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    model = SeizureClassifier().eval()
    x = pad_features(_features(3, 4))
    path = tmp_path / "classifier.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["features"], output_names=["p_tle"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=256)}}, opset_version=18,
                      dynamo=True, verbose=False)
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert not ops & {"Loop", "Scan", "If", "LSTM"}, ops
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, length in [(3, 4), (1, 7), (6, 1)]:
        xb = pad_features(_features(batch, length, seed=batch)).numpy()
        (ort_p,) = sess.run(None, {"features": xb})
        with torch.no_grad():
            np.testing.assert_allclose(ort_p, model(torch.from_numpy(xb)).numpy(), rtol=0, atol=1e-5)


def test_recurrent_dropout_uses_one_mask_per_gate_like_keras():
    """Keras' LSTMCell (implementation 1, which Keras uses whenever recurrent_dropout > 0) multiplies
    h by four independent masks, one per gate i, f, c, o, drawn once per sequence."""
    torch.manual_seed(0)
    layer = MaskedLSTM(6, 5, recurrent_dropout=0.4).train()
    x = torch.randn(64, 4, 6)
    keep = torch.ones(64, 4, 1, dtype=torch.bool)
    torch.manual_seed(123)
    out = layer(x, keep)
    torch.manual_seed(123)
    masks = layer.recurrent_masks(64, x)  # the masks that forward drew
    assert masks.shape == (4, 64, 5)
    values = torch.unique(masks).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.6)
    agree = (masks[0] == masks[1]) & (masks[1] == masks[2]) & (masks[2] == masks[3])
    assert 0.05 < agree.float().mean() < 0.35  # independent: 0.6^4 + 0.4^4 = 0.155; shared would be 1

    w_ih, w_hh, b = layer.cell.weight_ih, layer.cell.weight_hh, layer.cell.bias_ih + layer.cell.bias_hh
    h = c = torch.zeros(64, 5)
    ref = []
    with torch.no_grad():
        for t in range(4):  # Keras LSTMCell.call, implementation 1
            zs = [x[:, t] @ w_ih[k * 5:(k + 1) * 5].T + b[k * 5:(k + 1) * 5]
                  + (h * masks[k]) @ w_hh[k * 5:(k + 1) * 5].T for k in range(4)]
            i, f, g, o = torch.sigmoid(zs[0]), torch.sigmoid(zs[1]), torch.tanh(zs[2]), torch.sigmoid(zs[3])
            c = f * c + i * g
            h = o * torch.tanh(c)
            ref.append(h)
    torch.testing.assert_close(out.detach(), torch.stack(ref, 1), rtol=1e-5, atol=1e-6)
    layer.eval()
    assert layer.recurrent_masks(64, x) is None  # inference is deterministic


@pytest.mark.parametrize(("name", "z", "expected"), [
    ("hard_sigmoid_keras2", [-3.0, -1.0, 0.0, 2.0, 3.0], [0.0, 0.3, 0.5, 0.9, 1.0]),
    ("hard_sigmoid_keras3", [-4.0, -1.5, 0.0, 3.0, 4.0], [0.0, 0.25, 0.5, 1.0, 1.0]),
])
def test_hard_sigmoid_gates_follow_each_keras_version(name, z, expected):
    from semiostream.models.classifier import recurrent_activation_fn

    got = recurrent_activation_fn(name)(torch.tensor(z))
    torch.testing.assert_close(got, torch.tensor(expected))
    with pytest.raises(ValueError, match="unknown recurrent activation"):
        recurrent_activation_fn("relu")
