"""Resumable fine-tuning checkpoints (:mod:`.finetune`): one file per run, replaced atomically.

``<run>/finetune/checkpoint.pt`` holds everything a run needs to continue exactly where it stopped:

* ``settings``: what determines the result (manifest and I3D digests, spec, recipe, seed ...); a resume
  with other settings is refused, naming what differs;
* ``epoch`` (epochs completed) and ``step`` (optimizer steps completed in the epoch after it), with the
  running loss sum of that epoch;
* the trainable I3D tensors (the frozen rest is the base I3D, checked by its digest), the classifier, the
  optimizer and the gradient scaler;
* ``history`` (per epoch: train loss, validation loss and macro F1, and ``state_sha256``, the digest of the
  trained weights after the epoch: the run's trajectory) and the early-stopping state.

``<run>/finetune/best.pt`` holds the weights of the best epoch so far. Both are written with
:func:`semiostream.core.files.atomic_write` (a kill leaves the previous file or the new one) and read with
``torch.load(weights_only=True)`` (tensors and plain containers only: nothing in them can run code).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from semiostream.core.files import atomic_write

FORMAT = "semiostream-finetune-checkpoint"
VERSION = 1
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of another format, or was made with other settings."""


def save(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors and plain containers) to ``path`` atomically, tagged with the format."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load(path: str | os.PathLike) -> dict[str, Any]:
    """The state written by :func:`save`; :class:`CheckpointError` (one line) if it cannot be used."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"no fine-tuning checkpoint at {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(p.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, foreign or pickled objects that are not plain data
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{p} is not a readable fine-tuning checkpoint ({first}); start a new run "
                              "with another --out") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a semiostream fine-tuning checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{p} is a fine-tuning checkpoint of version {state.get('version')}; this "
                              f"semiostream resumes version {VERSION}: start a new run with another --out")
    return state


def settings_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``["name: saved -> now", ...]`` for every setting that differs (values shortened)."""
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if a != b:
            out.append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(v: Any, limit: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."
