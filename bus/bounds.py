"""Global bounds of the scorer: what all beds together may hold, with defaults from this machine.

Per-bed limits (one window of frames, ``windows.max_inflight`` windows waiting) do not bound a scorer
that any number of beds can reach; these do:

* ``frame_bytes``: bytes of frames held over all beds, i.e. every bed's window buffer (reserved for a
  full window of its frame size when the bed is admitted) plus every window waiting for the model.
  Default: a quarter of this machine's memory (cgroup limit included), between 256 MiB and 16 GiB.
* ``queued_windows``: windows waiting for the model over all beds. Default: 4 batches, at least 16.
* ``beds``: beds held at once when the config lists none (beds that went quiet are evicted first).
* ``frame_pixels``: largest frame of a bed without a configured ``size``.
* ``open_events``: events open at once.

Result subscriptions cost nothing to hold: the results socket grants every valid subscription as one
shared "everything" subscription and subscribers filter on their side (:mod:`.endpoints`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from semiostream.bus.config import LimitsConfig

MIB = 1 << 20
GIB = 1 << 30


def machine_memory_bytes() -> int:
    """Physical memory, or the cgroup (v2 or v1) limit of this process when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


@dataclass(frozen=True)
class Bounds:
    """Resolved global bounds (see the module docstring for each field's meaning and default)."""

    frame_bytes: int
    queued_windows: int
    beds: int
    frame_pixels: int
    open_events: int

    @classmethod
    def derive(cls, limits: LimitsConfig, max_batch: int, memory_bytes: int | None = None) -> Bounds:
        memory = machine_memory_bytes() if memory_bytes is None else memory_bytes
        frame_bytes = limits.frame_bytes or min(16 * GIB, max(256 * MIB, memory // 4))
        return cls(
            frame_bytes=frame_bytes,
            queued_windows=limits.queued_windows or max(16, 4 * max_batch),
            beds=limits.beds, frame_pixels=limits.frame_pixels, open_events=limits.open_events,
        )

    def describe(self) -> str:
        return (f"frames {self.frame_bytes / MIB:.0f} MiB over all beds, {self.queued_windows} queued windows, "
                f"{self.beds} beds, frames up to {self.frame_pixels} pixels, {self.open_events} open events")
