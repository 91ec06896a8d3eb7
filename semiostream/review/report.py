"""The event review report: one self-contained folder per event (``index.html`` + PNG files + ``report.json``).

It opens from disk in any browser, with no server and no external URL: bed, start/stop, duration, the
decision with its uncertainty over windows, p(TLE) per window over time (threshold, dropped and failed
windows marked), the first frame with the crop and the detector's person/bed boxes and scores, a montage
of what the model received (the project's reference preprocessing,
:func:`semiostream.dali_pipes.reference.preprocess`, with the bundle's ``PreprocessSpec``), where the
decision came from (:mod:`.saliency`), the bundle's identity and model card, and the statement that this
is a research second opinion, not a diagnosis. The bundle's training-data provenance
(:func:`semiostream.models.bundle.training_data`: synthetic, not synthetic, or unknown) stands at the top;
an archived input's report names the input in its heading and shows its kind, frame rate and whether a
person was found (:attr:`~.evidence.EventEvidence.input_facts`). No 95% interval is given from fewer than
:data:`MIN_WINDOWS_FOR_INTERVAL` windows.

Safe to call from a background thread of the scorer: no global state besides the saliency models' cache,
no pyplot (matplotlib ``Figure`` + Agg), bounded time (saliency stops after ``time_budget_s``), and atomic:
the folder is built under a temporary name beside ``out_dir`` and renamed into place, so a crash leaves
either the previous report or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.decision import DECISION_THRESHOLD, positive
from semiostream.core.evidence import EventEvidence

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
INDEX_HTML = "index.html"
DISCLAIMER = ("This is a research second opinion computed by software, not a diagnosis. It classifies seizure "
              "movement as frontal-lobe (FLE) or temporal-lobe (TLE) from video alone; a clinician decides.")
MONTAGE_MOMENTS = 4
#: fewest scored windows from which the report gives a 95% interval of the mean (fewer: too few to resample)
MIN_WINDOWS_FOR_INTERVAL = 5
#: |recomputed - published| p(TLE) above which the report warns that its pictures are not the scorer's input
MISMATCH = 0.01


def report_dir_for(root: str | os.PathLike, bed: str, event_id: str) -> Path:
    """Where the report of ``event_id`` on ``bed`` goes under a reports folder: ``root/bed/event_id``
    (its ``index.html`` is the report; the path is known before the report is written)."""
    EventEvidence(bed=bed, event_id=event_id, start_t_ns=0, stop_t_ns=0, windows=[], p_tle=None, label=None,
                  bundle_id="")  # validates both names (they become folder names)
    return Path(root) / bed / event_id


def _when(t_ns: int) -> str:
    if t_ns > 10**18:  # an epoch time (after 2001-09): live beds
        return dt.datetime.fromtimestamp(t_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return f"{t_ns / 1e9:.2f} s into the recording"


def uncertainty(p: np.ndarray, threshold: float = DECISION_THRESHOLD, seed: int = 0) -> dict[str, Any]:
    """How firm the event's mean p(TLE) is over its ``[N]`` window scores: mean, sd, range, a bootstrap 95%
    interval of the mean (2000 resamples of the windows; ``ci95`` None below
    :data:`MIN_WINDOWS_FOR_INTERVAL` windows, where resampling a handful of values gives a meaningless
    interval), and how many windows fall on each side."""
    n = int(p.size)
    if n == 0:
        return {"n": 0}
    ci95 = None
    if n >= MIN_WINDOWS_FOR_INTERVAL:
        rng = np.random.default_rng(seed)
        means = p[rng.integers(0, n, size=(2000, n))].mean(axis=1)
        ci95 = [float(v) for v in np.quantile(means, [0.025, 0.975])]
    return {"n": n, "mean": float(p.mean()), "sd": float(p.std(ddof=1)) if n > 1 else 0.0,
            "min": float(p.min()), "max": float(p.max()), "ci95": ci95,
            "above": int(positive(p, threshold).sum()), "below": int((p < threshold).sum())}


def write_event_report(evidence: EventEvidence, bundle_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                       saliency: bool = True, device: str = "cpu", threshold: float = DECISION_THRESHOLD,
                       time_budget_s: float = 120.0) -> Path:
    """Write the review report of one event into the folder ``out_dir`` (replaced atomically if it exists).

    Args:
        evidence: everything the report shows (:class:`~.evidence.EventEvidence`).
        bundle_dir: the bundle that scored the event; verified, and its id must equal ``evidence.bundle_id``.
        out_dir: the report's folder (e.g. :func:`report_dir_for`); its parent is created if needed.
        saliency: compute the movement maps of the decisive windows (:mod:`.saliency`).
        device: torch device for the saliency models (``"cpu"``, ``"cuda:0"``).
        threshold: the decision threshold the event was labelled with.
        time_budget_s: saliency is skipped for the remaining windows once this much time has passed (the
            report says so).

    Returns:
        The path of the report's ``index.html``.

    Raises:
        BundleError: the bundle fails verification. ValueError: the bundle is not the one that scored the event.
        OSError: the folder cannot be written (nothing is left behind).
    """
    from semiostream.models.bundle import check_bundle

    t0 = time.monotonic()
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    meta, spec = check_bundle(bundle_dir)
    if meta["bundle_id"] != evidence.bundle_id:
        raise ValueError(f"event {evidence.event_id} was scored by bundle {evidence.bundle_id}, but {bundle_dir} is "
                         f"bundle {meta['bundle_id']}; pass the bundle that scored it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        doc = _build(evidence, bundle_dir, meta, spec, tmp, saliency, device, threshold, t0 + time_budget_s)
        (tmp / REPORT_JSON).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        (tmp / INDEX_HTML).write_text(_html(evidence, doc), encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("event %s: review report %s (%.1f s)", evidence.event_id, out_dir / INDEX_HTML, time.monotonic() - t0)
    return out_dir / INDEX_HTML


def _replace_dir(new: Path, dest: Path) -> None:
    """Move the finished folder ``new`` to ``dest``; an existing ``dest`` is swapped out first, then removed."""
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(ev: EventEvidence, bundle_dir: Path, meta: dict, spec, out: Path, want_saliency: bool, device: str,
           threshold: float, deadline: float) -> dict[str, Any]:
    from semiostream.dali_pipes.intensity import intensity_window
    from semiostream.dali_pipes.reference import preprocess

    from . import figures

    labels = tuple(meta["labels"])
    p = ev.scored_p()
    doc: dict[str, Any] = {
        "version": 1, "bed": ev.bed, "event_id": ev.event_id, "start_t_ns": ev.start_t_ns, "stop_t_ns": ev.stop_t_ns,
        "start": _when(ev.start_t_ns), "stop": _when(ev.stop_t_ns), "duration_s": round(ev.duration_s, 3),
        "p_tle": ev.p_tle, "label": ev.label, "threshold": threshold, "labels": list(labels),
        "bundle_id": ev.bundle_id, "source": ev.source, "title": ev.title, "input": dict(ev.input_facts),
        "uncertainty": uncertainty(p, threshold),
        "windows": {"scored": int(p.size), "dropped": sum(w.status == "dropped" for w in ev.windows),
                    "failed": sum(w.status == "failed" for w in ev.windows)},
        "roi": list(ev.roi) if ev.roi else None, "roi_source": ev.roi_source,
        "detections": [{"label": d.label, "score": round(float(d.score), 4),
                        "box": [round(float(v), 1) for v in d.box]} for d in ev.detections],
        "notes": list(ev.notes), "images": {}, "decisive": [],
        "preprocess": spec.to_dict(), "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    figures.timeline(out / "timeline.png", ev.windows, ev.start_t_ns, threshold, labels, ev.p_tle)
    doc["images"]["timeline"] = "timeline.png"
    if ev.first_frame is not None:
        display = intensity_window(ev.first_frame[None], ev.roi, spec) if spec.intensity_mode == "percentile" \
            else (spec.intensity_lo, spec.intensity_hi)
        rule = ev.roi_source or ("full frame" if ev.roi is None else "crop")
        figures.first_frame(out / "first_frame.png", ev.first_frame, display, ev.roi, rule, ev.detections)
        doc["images"]["first_frame"] = "first_frame.png"

    models, saliency_error = None, None
    if want_saliency and ev.decisive:
        try:
            from .saliency import SaliencyModels

            models = SaliencyModels.get(bundle_dir, device)
        except Exception as e:  # the report is still useful without the maps; say why they are missing
            saliency_error = f"saliency unavailable: {type(e).__name__}: {e}"
            log.warning("event %s: %s", ev.event_id, saliency_error)
    for k, w in enumerate(ev.decisive):
        x = preprocess(w.frames, w.roi, spec, window=w.intensity)  # [1, T, S, S] in [-1, 1]
        t = x.shape[1]
        moments = sorted({int(round(i)) for i in np.linspace(0, t - 1, MONTAGE_MOMENTS)})
        rec = next((r for r in ev.windows if r.first_seq == w.first_seq), None)
        dt_s = (rec.last_t_ns - rec.first_t_ns) / 1e9 / max(t - 1, 1) if rec is not None else 1 / 30.0
        times = [(w.first_t_ns - ev.start_t_ns) / 1e9 + i * dt_s for i in moments]
        entry: dict[str, Any] = {"first_seq": w.first_seq, "p_tle": w.p_tle, "frames": t, "roi": w.roi,
                                 "intensity": list(w.intensity) if w.intensity else None}
        smap = None
        if models is not None and time.monotonic() < deadline:
            try:
                smap = models.motion_occlusion(x)
                entry["saliency"] = {"method": "motion occlusion", "layer": smap.layer, "target": smap.target,
                                     "p_tle_recomputed": smap.p_tle, "seconds": round(smap.seconds, 2),
                                     "top_region_drop": float(np.nanmax(smap.drops))}
            except Exception as e:
                entry["saliency"] = {"error": f"{type(e).__name__}: {e}"}
                log.warning("event %s: saliency of window %d failed: %s", ev.event_id, w.first_seq, e)
        elif models is not None:
            entry["saliency"] = {"error": "skipped: the report's time budget was spent"}
        elif saliency_error:
            entry["saliency"] = {"error": saliency_error}
        name = f"montage_{k}.png"
        title = (f"window from seq {w.first_seq} (+{(w.first_t_ns - ev.start_t_ns) / 1e9:.1f} s): "
                 f"p(TLE) {w.p_tle:.3f}, {t} frames, {spec.size}x{spec.size} model input")
        figures.montage(out / name, x[0].float().numpy(), moments, times, title,
                        None if smap is None else smap.cam)
        entry["image"] = name
        doc["decisive"].append(entry)
    doc["model"] = _model_card(meta, bundle_dir)
    return doc


def _model_card(meta: dict, bundle_dir: Path) -> dict[str, Any]:
    from semiostream.models.bundle import training_data

    prov = meta.get("provenance") or {}
    trained = training_data(meta)
    card: dict[str, Any] = {"bundle_id": meta["bundle_id"], "bundle_name": bundle_dir.name,
                            "labels": meta["labels"], "i3d": {k: v for k, v in meta["i3d"].items() if k != "file"},
                            "training_data": {"kind": trained.kind, "text": trained.text}}
    data = prov.get("data") or {}
    card["trained_on"] = data.get("description") or "not recorded in the bundle"
    card["i3d_weights"] = (prov.get("i3d") or {}).get("variant_description") or "not recorded"
    card["created"] = (prov.get("trainer") or {}).get("created")
    card["crop_rule"] = (prov.get("crop") or {}).get("rule")
    summary = ((prov.get("cv") or {}).get("summary")) or {}
    card["cv"] = {lvl: {k: {"mean": v.get("mean"), "std": v.get("std")} for k, v in vals.items()
                        if isinstance(v, dict) and "mean" in v}
                  for lvl, vals in summary.items() if isinstance(vals, dict)}
    card["folds"] = (prov.get("folds") or {}).get("n")
    card["other"] = {k: v for k, v in prov.items() if k not in ("data", "i3d", "trainer", "crop", "cv", "folds",
                                                                "search", "final") and isinstance(v, str | int | float)}
    return card


# ------------------------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f6f8;color:#1b1f24}
main{max-width:1000px;margin:auto;padding:16px 20px 40px}
h1{font-size:1.5em;margin:.3em 0}
h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ccd;padding-bottom:3px}
.banner{background:#fff4d6;border:1px solid #e0b84a;padding:10px 14px;border-radius:6px;font-weight:600}
.decision{font-size:1.6em;font-weight:700;padding:10px 14px;border-radius:6px;display:inline-block;margin:8px 0}
.TLE{background:#ffe1d6;color:#8a2b00}.FLE{background:#dcebff;color:#0b3d8a}.none{background:#e4e4e4}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #d5d9de;padding:3px 9px;text-align:left;font-size:.92em}
th{background:#eef1f4}img{max-width:100%;border:1px solid #ccd;background:#fff;border-radius:4px}
.note{color:#5a6470;font-size:.9em}.err{color:#a00000}code{font-size:.9em}
.provenance{background:#ffe3e3;border:1px solid #c44;padding:8px 14px;border-radius:6px;font-weight:600;margin-top:6px}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in pairs)


def _html(ev: EventEvidence, doc: dict[str, Any]) -> str:
    u = doc["uncertainty"]
    label = doc["label"] or "no decision"
    klass = doc["label"] if doc["label"] in doc["labels"] else "none"
    if u.get("n"):
        side = u["above"] if doc["label"] == doc["labels"][1] else u["below"]
        interval = (f"95% interval of the mean {_f(u['ci95'][0])}–{_f(u['ci95'][1])}, bootstrap over windows"
                    if u.get("ci95") else f"no 95% interval: fewer than {MIN_WINDOWS_FOR_INTERVAL} windows")
        unc = (f"mean of {u['n']} window{'s' if u['n'] != 1 else ''} {_f(u['mean'])} ({interval}); "
               f"sd {_f(u['sd'])}, range {_f(u['min'])}–{_f(u['max'])}; {side} of {u['n']} windows on the side "
               "of the decision")
    else:
        unc = "no window was scored"
    w = doc["windows"]
    m = doc["model"]
    trained = m["training_data"]
    if doc.get("title"):
        heading = f"Review of <span id=input-name>{_e(doc['title'])}</span>"
        page = f"semiostream review: {_e(doc['title'])}"
    else:
        heading = f"Seizure event on bed <span id=bed>{_e(ev.bed)}</span>"
        page = f"semiostream event {_e(ev.event_id)} ({_e(ev.bed)})"
    facts = _rows([(k, _e(v)) for k, v in doc.get("input", {}).items()])
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>{page}</title>"
             f"<style>{_CSS}</style></head><body><main>",
             f"<p class=banner id=disclaimer>{_e(DISCLAIMER)}</p>",
             f"<p class={'provenance' if trained['kind'] != 'not synthetic' else 'note'} id=provenance>"
             f"Model {_e(m['bundle_id'])}: {_e(trained['text'])}.</p>",
             f"<h1>{heading}</h1>",
             f"<div class='decision {klass}' id=decision>{_e(label)} — p(TLE) {_f(doc['p_tle'])}</div>",
             f"<p id=uncertainty>{_e(unc)}</p><table>",
             _rows([("event", _e(ev.event_id)), ("start", _e(doc["start"])), ("stop", _e(doc["stop"])),
                    ("duration", f"{doc['duration_s']:.1f} s"),
                    ("windows", f"{w['scored']} scored, {w['dropped']} dropped, {w['failed']} failed"),
                    ("decision rule", f"mean p(TLE) ≥ {doc['threshold']:g} → {_e(doc['labels'][1])}, "
                                      f"else {_e(doc['labels'][0])}")]
                   + ([("source", _e(doc["source"]))] if doc["source"] else [])),
             "</table>"]
    if facts:
        parts.append(f"<h2>The input</h2><table id=input-facts>{facts}</table>")
    for note in doc["notes"]:
        parts.append(f"<p class=note>{_e(note)}</p>")
    parts.append("<h2>p(TLE) per window over time</h2><img id=timeline src='timeline.png' "
                 "alt='p(TLE) per window over time, with the decision threshold and dropped or failed windows'>")
    parts.append("<h2>First frame, crop and detections</h2>")
    if "first_frame" in doc["images"]:
        dets = ", ".join(f"{_e(d['label'])} {d['score']:.2f}" for d in doc["detections"]) or "none"
        parts.append(f"<img id=first-frame src='first_frame.png' alt='first frame with crop and detector boxes'>"
                     f"<p class=note>Crop {_e(tuple(doc['roi']) if doc['roi'] else 'full frame')} "
                     f"({_e(doc['roi_source'] or 'source not recorded')}); detections: {dets}.</p>")
    else:
        parts.append("<p class=note>The first frame was not kept for this event.</p>")
    parts.append("<h2>What the model received, and where the decision came from</h2>"
                 "<p class=note>The most decisive windows (largest |p(TLE) − 0.5|), preprocessed exactly as the model "
                 "received them: cropped, intensity-windowed, resized to the model input and centre-padded. The "
                 "second row marks the regions whose <b>movement</b> drove the window's decision: each region's "
                 "movement is removed inside the network (I3D block Mixed_4f activations replaced by their mean "
                 "over time) and the drop of the decision score is shown (motion occlusion, an occlusion-"
                 "sensitivity map; brighter = more important). It shows where the model looked, not why the "
                 "movement is clinically FLE- or TLE-like.</p>")
    if not doc["decisive"]:
        parts.append("<p class=note>No window frames were kept for this event.</p>")
    for k, d in enumerate(doc["decisive"]):
        s = d.get("saliency") or {}
        if "error" in s:
            line = f"<span class=err>Saliency: {_e(s['error'])}</span>"
        elif s:
            line = (f"Saliency: {_e(s['method'])} at {_e(s['layer'])}, evidence for {_e(s['target'])} "
                    f"(p(TLE) recomputed {_f(s['p_tle_recomputed'])}), {s['seconds']:.1f} s.")
            if abs(s["p_tle_recomputed"] - d["p_tle"]) > MISMATCH:
                line += (f" <span class=err>The recomputed p(TLE) differs from the scorer's {_f(d['p_tle'])}: "
                         "this picture is not exactly what the scorer's model received (different intensity window "
                         "or preprocessing); read it with care.</span>")
        else:
            line = "Saliency not requested."
        parts.append(f"<img class=montage id=montage-{k} src='{_e(d['image'])}' alt='model input of a decisive "
                     f"window'><p class=note>{line}</p>")
    spec_rows = [(k, _e(v)) for k, v in doc["preprocess"].items()]
    parts.append("<h2>Model card</h2><table>" + _rows([
        ("bundle id", f"<code id=bundle-id>{_e(m['bundle_id'])}</code> ({_e(m['bundle_name'])})"),
        ("labels", _e(" / ".join(m["labels"]))),
        ("training data", f"<span id=card-training-data>{_e(trained['text'])}</span>"),
        ("trained on", _e(m["trained_on"])),
        ("I3D weights", _e(m["i3d_weights"])), ("created", _e(m["created"] or "not recorded")),
        ("training crop rule", _e(m["crop_rule"] or "not recorded")),
        ("cross-validation folds", _e(m["folds"] or "not recorded"))]
        + [(k, _e(v)) for k, v in m["other"].items()]) + "</table>")
    if m["cv"]:
        names = sorted({k for vals in m["cv"].values() for k in vals})
        head = "".join(f"<th>{_e(n)}</th>" for n in names)
        body = "".join(f"<tr><th>{_e(lvl)}</th>" + "".join(
            f"<td>{_f(vals[n]['mean'])} ± {_f(vals[n]['std'])}</td>" if n in vals else "<td></td>" for n in names)
            + "</tr>" for lvl, vals in m["cv"].items())
        parts.append(f"<p>Cross-validation (grouped by patient), mean ± sd over folds:</p><table id=cv><tr><th>level"
                     f"</th>{head}</tr>{body}</table>")
    else:
        parts.append("<p class=note>No cross-validation metrics are recorded in this bundle.</p>")
    parts.append("<p>Preprocessing spec (from the bundle):</p><table>" + _rows(spec_rows) + "</table>")
    parts.append(f"<p class=note>Written {_e(doc['written'])} by semiostream. {_e(DISCLAIMER)}</p>"
                 "</main></body></html>\n")
    return "\n".join(parts)
