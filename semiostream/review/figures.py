"""The report's pictures, drawn with matplotlib's object API (``Figure`` + Agg canvas: no pyplot state, so
reports can be drawn from any thread) and saved as PNG.

Every function takes plain arrays and writes one PNG file; none reads a bundle or a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from semiostream.core.detection import Detection
from semiostream.core.evidence import WindowRecord

DPI = 110
_COLORS = {"person": "#ff4fa3", "bed": "#3fd0ff", "crop": "#ffd400"}


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def timeline(path: Path, windows: Sequence[WindowRecord], start_t_ns: int, threshold: float,
             labels: tuple[str, str], event_p: float | None) -> Path:
    """p(TLE) of every scored window against time since the event start, the decision threshold, the event
    mean, and dropped (grey band, cross) and failed (red band, cross) windows."""
    fig = Figure(figsize=(8.0, 3.2))
    ax = fig.add_subplot()
    mid = [((w.first_t_ns + w.last_t_ns) / 2 - start_t_ns) / 1e9 for w in windows]
    scored = [(m, w.p_tle) for m, w in zip(mid, windows, strict=True) if w.status == "scored"]
    for m, w in zip(mid, windows, strict=True):
        if w.status != "scored":
            a, b = ((w.first_t_ns - start_t_ns) / 1e9, (w.last_t_ns - start_t_ns) / 1e9)
            color = "#999999" if w.status == "dropped" else "#d62728"
            ax.axvspan(a, max(b, a + 1e-3), color=color, alpha=0.25, lw=0)
            ax.plot([m], [0.02], marker="x", color=color, ms=8, mew=2, ls="none")
    if scored:
        xs, ps = zip(*scored, strict=True)
        ax.plot(xs, ps, "-o", color="#1f4e9e", ms=4, lw=1.5, label="p(TLE) per window")
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    if event_p is not None:
        ax.axhline(event_p, color="#1f4e9e", ls=":", lw=1.2, label=f"event mean {event_p:.2f}")
    n_drop = sum(w.status == "dropped" for w in windows)
    n_fail = sum(w.status == "failed" for w in windows)
    if n_drop:
        ax.plot([], [], "x", color="#999999", mew=2, label=f"dropped ({n_drop})")
    if n_fail:
        ax.plot([], [], "x", color="#d62728", mew=2, label=f"failed ({n_fail})")
    ax.set_ylim(0, 1)
    ax.set_xlabel("seconds since event start")
    ax.set_ylabel("p(TLE)")
    ax.text(1.005, 0.97, labels[1], transform=ax.transAxes, va="top", fontsize=8)
    ax.text(1.005, 0.03, labels[0], transform=ax.transAxes, va="bottom", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7, ncol=3, framealpha=0.8)
    fig.tight_layout()
    return _save(fig, path)


def first_frame(path: Path, frame: np.ndarray, display: tuple[float, float], roi: tuple[int, int, int, int] | None,
                roi_label: str, detections: Sequence[Detection]) -> Path:
    """The event's first frame (``[H, W]`` uint16, shown through the raw ``display`` window) with the crop box
    and every person/bed detection with its score."""
    h, w = frame.shape
    fig = Figure(figsize=(6.4, 6.4 * h / w + 0.4))
    ax = fig.add_subplot()
    lo, hi = display
    ax.imshow(frame.astype(np.float32), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    for d in detections:
        x0, y0, x1, y1 = d.box
        color = _COLORS.get(d.label, "#aaaaaa")
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.5, ls="--"))
        ax.text(x0 + 2, y0 + 2, f"{d.label} {d.score:.2f}", color="black", fontsize=8, va="top",
                bbox={"facecolor": color, "alpha": 0.85, "pad": 1, "lw": 0})
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, w, h)
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=_COLORS["crop"], lw=2.5))
    ax.text(x0 + 2, y1 - 3, f"crop: {roi_label}", color="black", fontsize=8, va="bottom",
            bbox={"facecolor": _COLORS["crop"], "alpha": 0.9, "pad": 1, "lw": 0})
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    return _save(fig, path)


def montage(path: Path, inputs: np.ndarray, moments: Sequence[int], fps_times: Sequence[float], title: str,
            saliency: np.ndarray | None = None) -> Path:
    """What the model received: frames of one preprocessed window (``inputs``: ``[T, S, S]`` float32 in
    [-1, 1]) at ``moments`` (frame indices; ``fps_times`` their seconds since the event start); with a
    ``saliency`` map (``[S, S]`` in [0, 1]) a second row shows it over the same frames."""
    rows = 2 if saliency is not None else 1
    n = len(moments)
    fig = Figure(figsize=(2.1 * n, 2.25 * rows + 0.45))
    fig.suptitle(title, fontsize=9)
    for k, (i, t) in enumerate(zip(moments, fps_times, strict=True)):
        ax = fig.add_subplot(rows, n, k + 1)
        ax.imshow(inputs[i], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"frame {i} (+{t:.1f} s)", fontsize=7)
        ax.set_axis_off()
        if saliency is not None:
            ax = fig.add_subplot(rows, n, n + k + 1)
            ax.imshow(inputs[i], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.imshow(np.ma.masked_less(saliency, 0.05), cmap="inferno", vmin=0, vmax=1, alpha=0.55,
                      interpolation="nearest")
            ax.set_title("movement that drove it", fontsize=7)
            ax.set_axis_off()
    fig.tight_layout(pad=0.4)
    return _save(fig, path)
