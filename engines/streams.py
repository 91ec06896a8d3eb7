"""Running a block of CUDA work on a given stream, ordered with the caller's.

:func:`on_stream` is how the engines honour an explicit ``stream`` (the Scorer's): the block is enqueued
on ``stream`` after everything already enqueued on the caller's current stream, and the caller's stream
waits for the block, so a tensor handed over in either direction is never read early. Both waits are
device-side (``cudaStreamWaitEvent``); the host never blocks. Inside a Scorer the two streams are the same
and the waits are skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def on_stream(stream: Any, device: Any = None) -> Iterator[Any]:
    """Make ``stream`` (a ``torch.cuda.Stream``) current for the block; yields it.

    Args:
        stream: the stream to run on; None = no change (the CPU, or torch's current stream).
        device: the :class:`~semiostream.core.device.Device` (or torch device) the stream belongs to.
    """
    if stream is None:
        yield None
        return
    import torch

    dev = getattr(device, "torch", device)
    caller = torch.cuda.current_stream(dev)
    same = caller == stream
    if not same:
        stream.wait_stream(caller)
    with torch.cuda.stream(stream):
        yield stream
    if not same:
        caller.wait_stream(stream)
