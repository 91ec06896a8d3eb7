"""Helpers of the review tests: one synthetic event's evidence built from a rendered clip (not patient data)."""

from __future__ import annotations

import json

import numpy as np

WINDOW = 16
T0 = 1_764_000_000_000_000_000  # an epoch time in ns (2025-11-24)
DT = 33_333_333  # 30 fps


def bundle_id(bundle_dir) -> str:
    return json.loads((bundle_dir / "bundle.json").read_text())["bundle_id"]


def make_evidence(clip, bundle_dir, probs, statuses=None, decisive=True, **over):
    """EventEvidence of a clip cut into 16-frame windows with the given p(TLE) per window."""
    from semiostream.core.detection import Detection
    from semiostream.core.evidence import DecisiveWindow, EventEvidence, WindowRecord, pick_decisive

    frames = clip.frames
    statuses = statuses or ["scored"] * len(probs)
    windows = [WindowRecord(k * WINDOW, k * WINDOW + WINDOW - 1, T0 + k * WINDOW * DT, T0 + (k * WINDOW + WINDOW - 1) * DT,
                            p if s == "scored" else None, s) for k, (p, s) in enumerate(zip(probs, statuses, strict=True))]
    roi = clip.roi.as_tuple()
    cands = [DecisiveWindow(frames[w.first_seq:w.last_seq + 1], roi, w.p_tle, w.first_seq, w.first_t_ns)
             for w in windows if w.status == "scored" and w.last_seq < len(frames)]
    scored = [p for p, s in zip(probs, statuses, strict=True) if s == "scored"]
    mean = float(np.mean(scored)) if scored else None
    x0, y0, x1, y1 = roi
    kw = dict(bed="bed-01", event_id="bed-01-5f3a9c21", start_t_ns=T0, stop_t_ns=T0 + len(frames) * DT,
              windows=windows, p_tle=mean, label=None if mean is None else ("TLE" if mean >= 0.5 else "FLE"),
              bundle_id=bundle_id(bundle_dir), first_frame=frames[0], roi=roi, roi_source="detected",
              detections=[Detection((x0 + 10.0, y0 + 8.0, x1 - 20.0, y1 - 10.0), 0.83, "person"),
                          Detection((x0 + 4.0, y0 + 4.0, x1 - 4.0, y1 - 4.0), 0.61, "bed")],
              decisive=pick_decisive(cands) if decisive else [])
    kw.update(over)
    return EventEvidence(**kw)
