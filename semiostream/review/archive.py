"""Review reports of ``semiostream score ... --report DIR``: one report per scored input plus ``DIR/index.html``.

Runs after the scoring run, from its two result tables (the windows table ``--out`` and the inputs table
beside it) and the videos themselves: each scored input is one "event" (a whole video, or a manifest's
onset..offset segment); its windows come from the windows table, its first frame and its two most decisive
windows (largest ``|p - 0.5|``) are read again from the video. Frame indices stand in for sequence numbers
and times are seconds into the recording. A class (label, p(TLE)) is shown only for a seizure segment (a
manifest's row, ``in_segment`` true): the model learnt seizures, so for a plain file or folder scored whole
the index says "no seizure segment: no class decision" and its report carries no label.

The intensity step shown is the bundle's: with ``intensity_scope="video"`` one raw window held for the whole
segment, from its first frames inside the crop (:func:`semiostream.dali_pipes.event_intensity.segment_window`).

Resumable like the run: an input whose report folder already holds a ``report.json`` of the same bundle,
input and p(TLE) is kept as it is.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semiostream.core.decision import DECISION_THRESHOLD
from semiostream.core.evidence import (
    DECISIVE_KEPT,
    DecisiveWindow,
    EventEvidence,
    WindowRecord,
    margin,
    pick_decisive,
)
from semiostream.core.files import atomic_write
from semiostream.core.segment import Segment

from .report import DISCLAIMER, INDEX_HTML, REPORT_JSON, write_event_report

log = logging.getLogger(__name__)


@dataclass
class ArchiveReport:
    """One input's line of the index: its report folder (None when it failed) and what it says."""

    input_id: str
    folder: str | None
    label: str | None
    p_tle: float | None
    windows: int
    true_label: str | None = None
    error: str | None = None
    kind: str | None = None
    person: str = ""
    in_segment: bool = True  # a seizure segment: label and p_tle are a class decision (else none is shown)


NO_SEGMENT = "no seizure segment: no class decision"


def row_in_segment(row: dict) -> bool:
    """Whether an inputs-table row is a seizure segment (``in_segment``; tables written before that column:
    a manifest row, told by its ``seizure_id``). Only then are its label and p_tle a class decision."""
    from semiostream.archive.rows import in_segment

    flag = row.get("in_segment")
    return bool(flag) if flag is not None else in_segment(row.get("seizure_id"))


def folder_name(input_id: str) -> str:
    """A folder name for an input: its file name (safe characters only) + 8 hex digits of its id's sha256."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(input_id.split("#")[0].split("@")[0]).name).strip("._") or "input"
    return f"{base[:80]}-{hashlib.sha256(input_id.encode()).hexdigest()[:8]}"


def input_title(row: dict) -> str:
    """The heading of an input's report: its file (or folder) name, then its stream and segment."""
    path, iid = str(row["path"]), str(row["input_id"])
    return Path(path).name + (iid[len(path):] if iid.startswith(path) else "")


def person_text(row: dict) -> str:
    """Whether the run's detector found a person (inputs-table ``person_found``/``person_score``)."""
    found = row.get("person_found")
    if found is None:
        return "not looked for (no detector ran: --detector full or a manifest roi)"
    if found:
        score = row.get("person_score")
        return "found by the detector" + ("" if score is None else f" (score {score:.2f})")
    return "NOT FOUND by the detector on the first frame: the result may not concern a person"


def rate_text(row: dict) -> str:
    """The input's frame rate: its own, where it came from, and the rate its windows were made at."""
    fps = row.get("fps")
    if fps is None:
        return "unknown"
    source = {"file": "stored in the file", "given": "given (--fps or the manifest)",
              "assumed": "ASSUMED: the file stores none and none was given"}.get(row.get("fps_from") or "file",
                                                                                   str(row.get("fps_from")))
    text = f"{fps:g} fps ({source})"
    used = row.get("fps_used")
    if used is not None and abs(used - fps) > 1e-6 * max(fps, 1.0):
        text += f"; resampled to the bundle's {used:g} fps for scoring"
    return text


def input_facts(row: dict) -> dict[str, str]:
    """The report's "input" table from an inputs-table row: kind, frame rate, person."""
    kind = row.get("kind")
    kind_text = "not inspected" if kind is None else (
        kind + (f" ({row['kind_detail']})" if row.get("kind_detail") else "")
        + ("" if kind == "16-bit gray" else ": not the 16-bit IR video the model is made for"))
    return {"kind": kind_text, "frame rate": rate_text(row), "person": person_text(row)}


def _roi(text: str | None) -> tuple[int, int, int, int] | None:
    if not text:
        return None
    x0, y0, x1, y1 = (int(v) for v in str(text).split())
    return (x0, y0, x1, y1)


def write_archive_reports(out: str | os.PathLike, bundle_dir: str | os.PathLike, report_dir: str | os.PathLike, *,
                          threshold: float = DECISION_THRESHOLD, saliency: bool = True, detector: Any | None = None,
                          fps: float | None = None, hop: int | None = None,
                          progress: Callable[[str], None] | None = None) -> Path:
    """Write a report per scored input of a finished ``semiostream score`` run and the index page.

    Args:
        out: the run's windows table (``--out``); the inputs table is found beside it.
        bundle_dir: the bundle the run scored with.
        report_dir: the reports folder (created); ``report_dir/index.html`` lists every input.
        threshold: the run's ``--threshold``.
        saliency: compute the movement maps of the decisive windows.
        detector: the run's ROI detector (a :class:`~semiostream.detectors.base.RoiDetector`), run again on
            each first frame to show its boxes and scores; None when the run used none.
        fps: the run's ``--fps`` for formats without a frame rate (for tables without ``fps_from``; a row
            whose rate was given carries it).
        hop: the run's ``--hop`` (None: the bundle's window).
        progress: called with one line per input.

    Returns:
        The path of ``report_dir/index.html``.
    """
    from semiostream.archive.output import inputs_path, read_table
    from semiostream.models.bundle import check_bundle, training_data

    meta, spec = check_bundle(bundle_dir)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    windows_by_input: dict[str, list[dict]] = {}
    for row in read_table(out):
        windows_by_input.setdefault(row["input_id"], []).append(row)
    lines: list[ArchiveReport] = []
    for row in read_table(inputs_path(out)):
        iid = row["input_id"]
        if row["error"] is not None or row["p_tle"] is None:
            lines.append(ArchiveReport(iid, None, None, None, 0, row.get("true_label"), row["error"] or "not scored",
                                       row.get("kind"), _person_cell(row)))
            continue
        rows = sorted(windows_by_input.get(iid, []), key=lambda r: r["window"])
        folder = report_dir / folder_name(iid)
        seg = row_in_segment(row)
        line = ArchiveReport(iid, folder.name, row["label"] if seg else None, row["p_tle"] if seg else None,
                             len(rows), row.get("true_label"), kind=row.get("kind"), person=_person_cell(row),
                             in_segment=seg)
        try:
            if _up_to_date(folder, meta["bundle_id"], iid, row["p_tle"], input_facts(row), line.label):
                lines.append(line)
                continue
            plan = _replan(row, rows, spec, fps, hop)
            with plan.open() as src:
                ev = _evidence(src, plan, row, rows, meta["bundle_id"], detector, threshold)
            write_event_report(ev, bundle_dir, folder, saliency=saliency, threshold=threshold)
        except Exception as e:  # one unreadable video must not stop the others' reports
            log.warning("report of %s failed: %s", iid, e)
            line.folder, line.error = None, f"report failed: {type(e).__name__}: {e}"
        lines.append(line)
        if progress is not None:
            progress(f"report {len(lines)}: {iid} -> {folder / INDEX_HTML if line.folder else line.error}")
    index = report_dir / INDEX_HTML
    atomic_write(index, _index_html(lines, meta["bundle_id"], threshold, training_data(meta).text))
    return index


def _person_cell(row: dict) -> str:
    found = row.get("person_found")
    return "" if found is None else ("found" if found else "NOT FOUND")


def _up_to_date(folder: Path, bundle_id: str, input_id: str, p: float, facts: dict[str, str],
                label: str | None) -> bool:
    try:
        doc = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (doc.get("bundle_id") == bundle_id and doc.get("source") == input_id and doc.get("input") == facts
            and doc.get("label") == label
            and doc.get("p_tle") is not None and abs(doc["p_tle"] - p) < 1e-9 and (folder / INDEX_HTML).is_file())


def _replan(row: dict, rows: list[dict], spec, fps: float | None, hop: int | None):
    """The input's :class:`~semiostream.archive.plan.JobPlan` made again as the run made it (same rate,
    segment, crop and windows), so the report shows the frames exactly as they were scored (a resampled
    input's windows are not its own frame ranges). Raises ValueError when its windows are not the table's."""
    import numpy as np

    from semiostream.archive.plan import plan_job

    given = row.get("fps") if row.get("fps_from") == "given" else (fps if "fps_from" not in row else None)
    job = Segment(Path(row["path"]), row["stream"], row.get("onset_s"), row.get("offset_s"), _roi(row["roi"]), given)
    plan = plan_job(job, row["input_id"], row.get("sha256") or "", spec, hop)
    idx = np.array([r["window"] for r in rows], np.int64)
    if len(rows) and (idx.max() >= plan.num_windows
                      or not np.array_equal(plan.first_frames[idx], [r["first_frame"] for r in rows])
                      or not np.array_equal(plan.last_frames[idx], [r["last_frame"] for r in rows])):
        raise ValueError("its windows are not those of the scoring run (the file, --hop or --fps changed)")
    return plan


def _evidence(src, plan, row: dict, rows: list[dict], bundle_id: str, detector, threshold: float) -> EventEvidence:
    """The report's evidence; ``src`` is ``plan.open()``: frames as scored (at the bundle's rate)."""
    def ns(t: float) -> int:
        return int(round(float(t) * 1e9))

    roi = plan.roi
    first = src.read(int(plan.starts[0]), int(plan.starts[0]) + 1)[0]
    windows = [WindowRecord(r["first_frame"], r["last_frame"], ns(r["t_first"]), ns(r["t_last"]), r["p_tle"])
               for r in rows]
    by_p = sorted(range(len(rows)), key=lambda i: -margin(rows[i]["p_tle"]))[:DECISIVE_KEPT]
    cands = [DecisiveWindow(src.read(int(plan.starts[w]), int(plan.stops[w])), roi, windows[i].p_tle,
                            windows[i].first_seq, windows[i].first_t_ns, plan.intensity)
             for i in by_p for w in [rows[i]["window"]]]
    detections, source_of_roi, notes = [], ("manifest" if roi is not None else "full frame"), []
    if detector is not None:
        choice = detector.locate(first)
        detections = [d for d in (choice.person, choice.bed) if d is not None]
        if roi is not None and choice.roi.as_tuple() == roi:
            source_of_roi = f"detected ({choice.rule})"
        elif roi is None and choice.fallback:
            source_of_roi = "full frame (detection fallback)"
            notes.append(choice.message)
    seg = row_in_segment(row)
    if not seg:
        notes.append(f"{NO_SEGMENT[0].upper()}{NO_SEGMENT[1:]}: a plain file or folder scored whole; the model "
                     "learnt seizures only, so the windows' p(TLE) here is no class decision.")
    if row.get("true_label"):
        notes.append(f"Label in the manifest: {row['true_label']} (for comparison; the model did not see it).")
    t_end = ns(rows[-1]["t_last"]) if rows else ns(0)
    return EventEvidence(
        bed=folder_name(row["input_id"])[:128], event_id=folder_name(row["input_id"]),
        start_t_ns=windows[0].first_t_ns if windows else 0, stop_t_ns=t_end, windows=windows,
        p_tle=row["p_tle"], label=row["label"] if seg else None, bundle_id=bundle_id, first_frame=first, roi=roi,
        roi_source=source_of_roi, detections=detections, decisive=pick_decisive(cands), source=row["input_id"],
        notes=notes, title=input_title(row), input_facts=input_facts(row))


def _index_html(lines: list[ArchiveReport], bundle_id: str, threshold: float, trained_on: str) -> str:
    e = html.escape
    rows = []
    for ln in lines:
        link = (f"<a href='{e(ln.folder)}/{INDEX_HTML}'>report</a>" if ln.folder else
                f"<span class=err>{e(ln.error or '')}</span>")
        decision = (f"<td>{e(ln.label or '')}</td><td>{'' if ln.p_tle is None else f'{ln.p_tle:.3f}'}</td>"
                    if ln.in_segment else f"<td colspan=2 class=noseg>{NO_SEGMENT}</td>")
        rows.append(f"<tr><td>{e(ln.input_id)}</td>{decision}<td>{ln.windows}</td>"
                    f"<td>{e(ln.kind or '')}</td><td>{e(ln.person)}</td>"
                    f"<td>{e(ln.true_label or '')}</td><td>{link}</td></tr>")
    n_ok = sum(ln.folder is not None for ln in lines)
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>semiostream: archive reports</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:20px;background:#f4f6f8}table{border-collapse:"
            "collapse}td,th{border:1px solid #ccd;padding:3px 9px;text-align:left}.err{color:#a00}"
            ".banner{background:#fff4d6;border:1px solid #e0b84a;padding:8px 12px;border-radius:6px}</style>"
            f"</head><body><p class=banner>{e(DISCLAIMER)}</p><h1>Archive re-scoring: {len(lines)} inputs</h1>"
            f"<p class=banner id=provenance>Model {e(bundle_id)}: {e(trained_on)}.</p>"
            f"<p>{n_ok} reports; bundle <code>{e(bundle_id)}</code>; label TLE when mean p(TLE) &ge; {threshold:g}, "
            "for seizure segments only (a manifest's onset..offset): the model learnt seizures, so a plain file or "
            "folder scored whole gets no class.</p>"
            "<table id=inputs><tr><th>input</th><th>label</th><th>p(TLE)</th><th>windows</th><th>kind</th>"
            f"<th>person</th><th>manifest label</th><th>report</th></tr>{''.join(rows)}</table></body></html>\n")
