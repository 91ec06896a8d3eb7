"""The I3D and the classifier as one trainable network, for I3D fine-tuning (:mod:`.finetune`).

``FinetuneModel.logits(windows)`` maps preprocessed windows ``[1, T, S, S]`` (any mix of lengths T >= 9) to
the classifier's logits ``[B]``: the I3D's feature extraction (``extract_features``' math, endpoint by
endpoint), the features pre-padded to 7 steps with -1 rows as the Scorer does
(:func:`semiostream.models.classifier.pad_features`), then the classifier. Endpoints before ``train_from``
run without gradients; the trained ones are recomputed in the backward pass when ``grad_checkpointing``
(``torch.utils.checkpoint``, non-reentrant). The I3D stays in eval mode whatever :meth:`FinetuneModel.train`
is asked: its BatchNorm statistics stay the pretrained ones (small batches would ruin them), so the trained
I3D is the same architecture with other weights, and every backend runs it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

#: I3D endpoints fine-tuning can start from (everything from there up to Mixed_5c is trained)
TRAIN_FROM = ("Mixed_3b", "Mixed_3c", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b",
              "Mixed_5c")
DEFAULT_TRAIN_FROM = "Mixed_5b"
#: autocast dtype of the I3D per training precision
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class FinetuneModel(nn.Module):
    """An :class:`~semiostream.models.i3d.InceptionI3d` (``in_channels`` 1) and a
    :class:`~semiostream.models.classifier.SeizureClassifier`, trained together from ``train_from`` up."""

    def __init__(self, i3d: nn.Module, classifier: nn.Module, train_from: str = DEFAULT_TRAIN_FROM,
                 grad_checkpointing: bool = True) -> None:
        super().__init__()
        if train_from not in TRAIN_FROM:
            raise ValueError(f"train_from={train_from!r}; use one of {', '.join(TRAIN_FROM)}")
        self.i3d, self.classifier = i3d, classifier
        k = i3d.ENDPOINTS.index(train_from)
        self.frozen, self.trainable = tuple(i3d.ENDPOINTS[:k]), tuple(i3d.ENDPOINTS[k:])
        self.grad_checkpointing = grad_checkpointing
        for p in i3d.parameters():
            p.requires_grad_(False)
        for name in self.trainable:
            for p in getattr(i3d, name).parameters():
                p.requires_grad_(True)
        self.train(False)

    def train(self, mode: bool = True) -> FinetuneModel:
        super().train(mode)
        self.i3d.eval()  # frozen BatchNorm statistics, always
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, S, S]`` float in [-1, 1] (T >= 9) -> ``[B, T', 1024]`` float32."""
        from torch.utils.checkpoint import checkpoint

        with torch.no_grad():
            for name in self.frozen:
                x = getattr(self.i3d, name)(x)
        for name in self.trainable:
            block = getattr(self.i3d, name)
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.i3d.avg_pool(x).flatten(2).transpose(1, 2).float()

    def logits(self, windows: list[torch.Tensor], device: torch.device, precision: str = "fp32") -> torch.Tensor:
        """Logits ``[B]`` float32 of preprocessed windows ``[1, T, S, S]``; windows of one length share an I3D
        call. ``precision`` ``"bf16"``/``"fp16"`` runs the I3D under ``torch.autocast``; the classifier always
        runs in float32."""
        from semiostream.models.classifier import pad_features

        groups: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            groups.setdefault(int(w.shape[1]), []).append(i)
        order, feats = [], []
        for idx in groups.values():
            x = torch.stack([windows[i] for i in idx]).to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=AUTOCAST.get(precision, torch.bfloat16),
                                enabled=precision in AUTOCAST):
                f = self.features(x)
            feats.append(pad_features(f.float()))
            order += idx
        f = torch.cat(feats)
        if order != sorted(order):
            f = f[torch.argsort(torch.tensor(order, device=f.device))]
        return self.classifier.logits(f)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The I3D tensors of the trained endpoints (weights and BatchNorm buffers), copied to the CPU."""
        prefixes = tuple(f"{n}." for n in self.trainable)
        return {k: v.detach().cpu().clone() for k, v in self.i3d.state_dict().items() if k.startswith(prefixes)}

    def load_trainable(self, state: dict[str, torch.Tensor], where: Path | str) -> None:
        """Load :meth:`trainable_state` output; ``ValueError`` naming ``where`` if it holds other endpoints."""
        if set(state) != set(self.trainable_state()):
            raise ValueError(f"{where} holds the I3D tensors of other endpoints than {self.trainable[0]}.."
                             f"{self.trainable[-1]}; resume with the run's own --finetune-from")
        self.i3d.load_state_dict(state, strict=False)
