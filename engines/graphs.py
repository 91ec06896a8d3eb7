"""Replaying a module for fixed input shapes: CUDA graphs on a GPU, the same protocol eagerly on the CPU.

A CUDA graph records every kernel of one forward pass once and replays them with a single launch, which
removes the per-layer launch cost (I3D has ~60 convolutions plus pools and concatenations per call).
A graph is bound to its input and output memory, so :class:`ShapeGraph` keeps one static input buffer:
a call copies the input into it (on torch's current stream), replays, and returns a copy of the static
output (the next replay overwrites it).

:class:`BatchGraphs` holds one graph per batch *bucket* (powers of two up to ``max_batch``): a batch of
``B`` windows runs in the smallest bucket ``>= B``, padded with zero windows whose outputs are dropped
(batch elements are independent in inference, so the padding changes no result). Buckets are captured
on first use, so the memory of a bucket (its private pool holds one forward pass's activations) is
spent only for batch sizes that occur.

On the CPU there is nothing to capture: the same static-buffer, bucket and padding code runs the module
eagerly, which is how this module is tested without a GPU. The code path is chosen by the device type.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch


def bucket(batch: int, max_batch: int) -> int:
    """The smallest power of two ``>= batch``, capped at ``max_batch`` (``batch <= max_batch``)."""
    if not 1 <= batch <= max_batch:
        raise ValueError(f"batch {batch} outside 1..{max_batch}")
    b = 1
    while b < batch:
        b *= 2
    return min(b, max_batch)


class ShapeGraph:
    """``fn`` replayed for inputs of exactly ``example``'s shape, dtype and device.

    Args:
        fn: the computation (a module in eval mode); called under ``torch.inference_mode``.
        example: a tensor of the input's shape on the target device (its values are not used after warm-up).
        warmup: eager calls on a side stream before capture (cuDNN picks its kernels there).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, warmup: int = 2) -> None:
        self.fn = fn
        self.device = example.device
        self.static_in = example.detach().clone()
        self.graph = None
        self.static_out: torch.Tensor | None = None
        if self.device.type == "cuda":
            cur = torch.cuda.current_stream(self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(cur)
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(warmup):
                    fn(self.static_in)
            cur.wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: another thread's CUDA calls (a live scorer's pinned allocations) do not void the capture
            with torch.inference_mode(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.static_out = fn(self.static_in)

    @property
    def captured(self) -> bool:
        """True when a CUDA graph replays (False: the CPU's eager equivalent)."""
        return self.graph is not None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape != self.static_in.shape:
            raise ValueError(f"this graph takes {tuple(self.static_in.shape)}, got {tuple(x.shape)}")
        with torch.inference_mode():
            self.static_in.copy_(x, non_blocking=True)
            if self.graph is not None:
                self.graph.replay()  # on torch's current stream, after the copy
            else:
                self.static_out = self.fn(self.static_in)
            return self.static_out.clone()


class BatchGraphs:
    """One :class:`ShapeGraph` per batch bucket for inputs ``[B, *item_shape]`` (see the module docstring).

    Args:
        fn: the computation.
        item_shape: the shape of one batch element, e.g. ``(1, 60, 224, 224)``.
        max_batch: the largest batch.
        dtype, device: the input's.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], item_shape: tuple[int, ...], max_batch: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        self.fn = fn
        self.item_shape = tuple(int(s) for s in item_shape)
        self.max_batch = int(max_batch)
        self.dtype = dtype
        self.device = torch.device(device)
        self.graphs: dict[int, ShapeGraph] = {}
        self._lock = threading.Lock()

    def accepts(self, x: torch.Tensor) -> bool:
        return tuple(x.shape[1:]) == self.item_shape and 1 <= x.shape[0] <= self.max_batch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = int(x.shape[0])
        b = bucket(n, self.max_batch)
        with self._lock:  # capture once per bucket; replays share the static buffers
            g = self.graphs.get(b)
            if g is None:
                g = self.graphs[b] = ShapeGraph(self.fn, torch.zeros((b, *self.item_shape), dtype=self.dtype,
                                                                     device=self.device))
            if b > n:
                x = torch.cat([x.to(self.dtype), x.new_zeros((b - n, *self.item_shape), dtype=self.dtype)])
            return g(x)[:n]
