"""The paper's LSTM-FC seizure classifier over I3D feature sequences.

Masking(-1) -> LSTM(128, return sequences) -> LSTM(64) -> [BN -> Dropout] -> Dense(64, ReLU)
-> [BN -> Dropout] -> Dense(32, ReLU) -> [BN -> Dropout] -> Dense(1, sigmoid)

Keras masking semantics, reproduced exactly: a time step whose features all equal the mask value
(-1) leaves the LSTM state ``(h, c)`` and the emitted output unchanged. With pre-padding this equals
running the LSTMs from a zero state over the unpadded suffix. The recurrence is unrolled over the
(fixed, 7) steps with an element-wise select, so ONNX/TensorRT export has no Loop op and no packed
sequences.
"""

from __future__ import annotations

import torch
from torch import nn

MASK_VALUE = -1.0
NUM_STEPS = 7
FEATURE_DIM = 1024


RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid_keras2", "hard_sigmoid_keras3")


def recurrent_activation_fn(name: str):
    """The gate nonlinearity of an LSTM by name.

    * ``"sigmoid"``: the logistic function (Keras 3 and tf.keras 2 default; ``torch.nn.LSTM``'s);
    * ``"hard_sigmoid_keras2"``: ``clip(0.2 x + 0.5, 0, 1)`` (Keras 2's ``hard_sigmoid``, the default
      recurrent activation of standalone Keras 2.x LSTMs);
    * ``"hard_sigmoid_keras3"``: ``clip(x / 6 + 0.5, 0, 1)`` (Keras 3 redefined ``hard_sigmoid``).
    """
    if name == "sigmoid":
        return torch.sigmoid
    if name == "hard_sigmoid_keras2":
        return lambda z: torch.clamp(z * 0.2 + 0.5, 0.0, 1.0)
    if name == "hard_sigmoid_keras3":
        return lambda z: torch.clamp(z * (1.0 / 6.0) + 0.5, 0.0, 1.0)
    raise ValueError(f"unknown recurrent activation {name!r}; use one of {', '.join(RECURRENT_ACTIVATIONS)}")


class MaskedLSTM(nn.Module):
    """One Keras-style LSTM layer over ``[B, T, D]`` with a step mask and Keras recurrent dropout.

    Gate order i, f, g, o (same as Keras i, f, c, o); forget-gate bias initialised to 1 and
    orthogonal recurrent kernels, as Keras does by default. Parameters live in ``self.cell`` (an
    ``nn.LSTMCell``: ``weight_ih`` ``[4H, D]``, ``weight_hh`` ``[4H, H]``, ``bias_ih``/``bias_hh`` ``[4H]``)
    so state dicts stay compatible; the step is computed here so the gate activation is selectable
    and recurrent dropout can use one mask per gate.

    Recurrent dropout (training only) follows Keras' ``LSTMCell`` with ``implementation=1``: four
    independent masks, one for the recurrent input of each gate (i, f, c, o), drawn once per sequence
    and reused at every step (variational dropout, Gal & Ghahramani 2016).
    """

    def __init__(self, input_size: int, hidden_size: int, recurrent_dropout: float = 0.0,
                 recurrent_activation: str = "sigmoid") -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.recurrent_dropout = recurrent_dropout
        self.recurrent_activation = recurrent_activation
        self._gate = recurrent_activation_fn(recurrent_activation)
        self.cell = nn.LSTMCell(input_size, hidden_size)
        nn.init.xavier_uniform_(self.cell.weight_ih)
        for k in range(4):
            nn.init.orthogonal_(self.cell.weight_hh.data[k * hidden_size:(k + 1) * hidden_size])
        nn.init.zeros_(self.cell.bias_ih)
        nn.init.zeros_(self.cell.bias_hh)
        self.cell.bias_ih.data[hidden_size:2 * hidden_size] = 1.0

    def recurrent_masks(self, batch: int, like: torch.Tensor) -> torch.Tensor | None:
        """``[4, B, H]`` inverted-dropout masks (0 or ``1 / (1 - rate)``), or None outside training."""
        if not (self.training and self.recurrent_dropout > 0):
            return None
        keep = 1.0 - self.recurrent_dropout
        return like.new_empty(4, batch, self.hidden_size).bernoulli_(keep) / keep

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, D]`` float32, ``keep`` ``[B, T, 1]`` bool (True = real step, False = masked)
        -> outputs ``[B, T, H]`` float32.

        At a masked step ``(h, c)`` are left unchanged and the output repeats the previous output
        (zeros before the first real step).
        """
        b, t = x.shape[0], x.shape[1]
        hsz = self.hidden_size
        w_hh = self.cell.weight_hh
        x_proj = torch.matmul(x, self.cell.weight_ih.t()) + (self.cell.bias_ih + self.cell.bias_hh)  # [B,T,4H]
        h = x.new_zeros(b, hsz)
        c = x.new_zeros(b, hsz)
        rmask = self.recurrent_masks(b, x)
        w_gates = w_hh.view(4, hsz, hsz).transpose(1, 2) if rmask is not None else None  # [4, H, H]
        outputs = []
        for step in range(t):
            if rmask is None:
                rec = torch.matmul(h, w_hh.t())  # [B, 4H]
            else:  # gate k sees h * mask_k
                rec = torch.bmm(h.unsqueeze(0) * rmask, w_gates).permute(1, 0, 2).reshape(b, 4 * hsz)
            z = x_proj[:, step] + rec
            zi, zf, zg, zo = z.chunk(4, dim=1)
            c_new = self._gate(zf) * c + self._gate(zi) * torch.tanh(zg)
            h_new = self._gate(zo) * torch.tanh(c_new)
            k = keep[:, step]
            h = torch.where(k, h_new, h)
            c = torch.where(k, c_new, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class SeizureClassifier(nn.Module):
    """p(TLE) from a pre-padded I3D feature sequence.

    Args:
        input_dim: feature width (1024 for I3D).
        lstm_units: widths of the two LSTM layers (paper: 128, 64).
        dense_units: widths of the hidden dense layers (paper: 64, 32).
        dropout: dropout after each BatchNorm (paper: 0.5).
        recurrent_dropout: dropout on the recurrent state (paper: 0.3), one mask per gate as Keras.
        recurrent_activation: LSTM gate nonlinearity (:data:`RECURRENT_ACTIVATIONS`; ``"sigmoid"``
            by default; Keras 2 models trained with ``hard_sigmoid`` import as ``"hard_sigmoid_keras2"``).
        l2_kernel, l2_recurrent, l2_activity, l2_bias: L2 factors for LSTM and dense kernels, LSTM
            recurrent kernels, LSTM outputs, and dense biases. The paper applies these
            regularisers but does not give their factors; 1e-4 is our default.

    Input ``[B, T, input_dim]`` float32 (T = 7), pre-padded with rows of -1 (a row is masked iff all
    of its values equal -1). Output ``[B]`` float32 p(TLE) in (0, 1). A sample with every row masked
    is scored from the zero state (undefined clinically; callers drop windows under min_frames).
    """

    def __init__(
        self,
        input_dim: int = FEATURE_DIM,
        lstm_units: tuple[int, int] | list[int] = (128, 64),
        dense_units: tuple[int, int] | list[int] = (64, 32),
        dropout: float = 0.5,
        recurrent_dropout: float = 0.3,
        l2_kernel: float = 1e-4,
        l2_recurrent: float = 1e-4,
        l2_activity: float = 1e-4,
        l2_bias: float = 1e-4,
        recurrent_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        self._config = {
            "input_dim": input_dim, "lstm_units": list(lstm_units), "dense_units": list(dense_units),
            "dropout": dropout, "recurrent_dropout": recurrent_dropout, "l2_kernel": l2_kernel,
            "l2_recurrent": l2_recurrent, "l2_activity": l2_activity, "l2_bias": l2_bias,
        }
        if recurrent_activation != "sigmoid":  # recorded only when set: older readers stay compatible
            self._config["recurrent_activation"] = recurrent_activation
        u1, u2 = lstm_units
        d1, d2 = dense_units
        self.lstm1 = MaskedLSTM(input_dim, u1, recurrent_dropout, recurrent_activation)
        self.lstm2 = MaskedLSTM(u1, u2, recurrent_dropout, recurrent_activation)
        self.bn1, self.fc1 = nn.BatchNorm1d(u2, eps=1e-3, momentum=0.01), nn.Linear(u2, d1)
        self.bn2, self.fc2 = nn.BatchNorm1d(d1, eps=1e-3, momentum=0.01), nn.Linear(d1, d2)
        self.bn3, self.fc3 = nn.BatchNorm1d(d2, eps=1e-3, momentum=0.01), nn.Linear(d2, 1)
        self.drop = nn.Dropout(dropout)
        for fc in (self.fc1, self.fc2, self.fc3):  # He-uniform kernels, zero biases (Keras)
            nn.init.kaiming_uniform_(fc.weight, nonlinearity="relu")
            nn.init.zeros_(fc.bias)
        self._activity: torch.Tensor | None = None

    def config(self) -> dict:
        """Constructor arguments (recorded in the model bundle)."""
        return dict(self._config)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]`` float32 -> pre-sigmoid scores ``[B]``."""
        if x.dim() != 3 or x.shape[-1] != self._config["input_dim"]:
            raise ValueError(
                f"classifier expects [B, T, {self._config['input_dim']}] features; got {tuple(x.shape)}"
            )
        keep = (x != MASK_VALUE).any(dim=-1, keepdim=True)  # [B, T, 1]
        seq = self.lstm1(x, keep)
        last = self.lstm2(seq, keep)[:, -1]  # state after the last real step
        if self.training:  # Keras activity regulariser: L2 of layer outputs, averaged over the batch
            self._activity = (seq.pow(2).sum() + last.pow(2).sum()) / x.shape[0]
        z = torch.relu(self.fc1(self.drop(self.bn1(last))))
        z = torch.relu(self.fc2(self.drop(self.bn2(z))))
        return self.fc3(self.drop(self.bn3(z))).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 7, 1024]`` float32 pre-padded with -1 -> p(TLE) ``[B]`` float32."""
        return torch.sigmoid(self.logits(x))

    def regularization_loss(self) -> torch.Tensor:
        """The L2 terms to add to the training loss (activity term from the last training forward)."""
        cfg = self._config
        total = self.fc1.weight.new_zeros(())
        for lstm in (self.lstm1, self.lstm2):
            total = total + cfg["l2_kernel"] * lstm.cell.weight_ih.pow(2).sum()
            total = total + cfg["l2_recurrent"] * lstm.cell.weight_hh.pow(2).sum()
        for fc in (self.fc1, self.fc2, self.fc3):
            total = total + cfg["l2_kernel"] * fc.weight.pow(2).sum() + cfg["l2_bias"] * fc.bias.pow(2).sum()
        if self.training and self._activity is not None:
            total = total + cfg["l2_activity"] * self._activity
        return total


def pad_features(feats: torch.Tensor, steps: int = NUM_STEPS) -> torch.Tensor:
    """Pre-pad ``[T', 1024]`` (or ``[B, T', 1024]``) with rows of -1 to ``steps`` rows.

    More than ``steps`` rows keeps the last ``steps`` (the most recent motion).
    """
    squeeze = feats.dim() == 2
    f = feats[None] if squeeze else feats
    t = f.shape[1]
    if t >= steps:
        out = f[:, t - steps:]
    else:
        pad = f.new_full((f.shape[0], steps - t, f.shape[2]), MASK_VALUE)
        out = torch.cat([pad, f], dim=1)
    return out[0] if squeeze else out
