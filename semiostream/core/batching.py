"""Batch-size defaults: one named value per meaning, imported wherever that meaning is used.

Four different things are called "max batch" in this project; each has its own default here:

* :data:`EXPORT_MAX_BATCH`: the largest batch an exported ONNX model declares (its dynamic ``batch`` axis
  ``1..64``); the ONNX Runtime, OpenVINO and torch engines accept any batch in that range.
* :data:`ENGINE_MAX_BATCH`: the largest batch of a TensorRT engine's optimisation profile
  (``semiostream build --max-batch``); an engine refuses larger batches, the scorer splits them.
* :data:`SCORER_MAX_BATCH`: windows per inference call of a :class:`~semiostream.engines.scorer.Scorer`
  (and per DALI preprocessing batch) when scoring files (``semiostream score --max-batch``, Ray, benches).
* :data:`LIVE_MAX_BATCH_GPU` / :data:`LIVE_MAX_BATCH_CPU`: windows of many beds batched together by the live
  scorer when the service config says ``batching: {max_batch: null}`` (:func:`live_max_batch`).

Imports nothing of this project.
"""

from __future__ import annotations

EXPORT_MAX_BATCH = 64
"""Upper bound of the ONNX export's dynamic batch axis (windows)."""

ENGINE_MAX_BATCH = 16
"""Largest batch of a TensorRT engine's optimisation profile (windows), unless ``--max-batch`` says otherwise."""

SCORER_MAX_BATCH = 4
"""Windows per scorer call when scoring files (``score --max-batch``)."""

LIVE_MAX_BATCH_GPU = 8
"""Live scorer, GPU: windows per batch (batching raises throughput there)."""

LIVE_MAX_BATCH_CPU = 1
"""Live scorer, CPU: one window per batch (batching does not raise throughput, and would only hold
finished windows back for their batch-mates)."""


def live_max_batch(configured: int | None, on_gpu: bool) -> int:
    """The live scorer's batch (windows): ``configured`` (the config's ``batching.max_batch``) when set,
    else :data:`LIVE_MAX_BATCH_GPU` or :data:`LIVE_MAX_BATCH_CPU`."""
    if configured is not None:
        return int(configured)
    return LIVE_MAX_BATCH_GPU if on_gpu else LIVE_MAX_BATCH_CPU
