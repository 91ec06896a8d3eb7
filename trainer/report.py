"""Run reports: ``report.json`` + ``predictions.csv`` in, PNG plots and ``summary.md`` out.

A training run directory holds::

    report.json        everything measured (folds, per-fold metrics and curves, summary, search table)
    predictions.csv    out-of-fold p(TLE) of every window (fold, patient, seizure, label, window, p)
    folds.json         fold composition (patients, seizures, windows per class and side)
    search.md          the search results table (with --search)
    confusion_window.png, confusion_seizure.png, roc_window.png, roc_seizure.png, training_curves.png
    summary.md         short human summary
    bundle/            the model bundle trained on all data

:func:`render` (re)draws the plots and the summary from the two input files, so ``semiostream report RUN``
works on any finished run.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.files import atomic_write
from semiostream.core.segment import LABELS

from .metrics import aggregate_by_seizure, fmt

REPORT_JSON = "report.json"
PREDICTIONS_CSV = "predictions.csv"
SUMMARY_MD = "summary.md"
PLOTS = ("confusion_window.png", "confusion_seizure.png", "roc_window.png", "roc_seizure.png",
         "training_curves.png")
PAPER = {"f1_macro": "0.844 ± 0.042", "precision_macro": "0.857 ± 0.042", "recall_macro": "0.838 ± 0.041",
         "roc_auc": "0.90 ± 0.04"}


class ReportError(ValueError):
    """A run directory lacks what a report needs."""


def clean_json(o: Any) -> Any:
    """A JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None (standard JSON)."""
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.ndarray):
        return clean_json(o.tolist())
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, dict):
        return {str(k): clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean_json(v) for v in o]
    return o


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, json.dumps(clean_json(obj), indent=1, allow_nan=False) + "\n")


def write_predictions(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Rows with keys fold, patient_id, seizure_id, label, y, window, p."""
    p = Path(path)
    cols = ["fold", "patient_id", "seizure_id", "label", "y", "window", "p"]
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6f}" if k == "p" else r[k]) for k in cols})
    return p


def read_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ReportError(f"{path} holds no predictions")
    keys = [f"{r['patient_id']}/{r['seizure_id']}" for r in rows]
    uniq = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return {
        "fold": np.array([int(r["fold"]) for r in rows]),
        "y": np.array([int(r["y"]) for r in rows]),
        "p": np.array([float(r["p"]) for r in rows]),
        "seizure": np.array([uniq[k] for k in keys]),
    }


def load_run(run: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    root = Path(run)
    if not (root / REPORT_JSON).is_file():
        raise ReportError(
            f"{root} is not a training run: {REPORT_JSON} is missing; pass the directory that "
            "`semiostream train` wrote (its --out)"
        )
    try:
        report = json.loads((root / REPORT_JSON).read_text())
    except json.JSONDecodeError as e:
        raise ReportError(f"{root / REPORT_JSON} is not valid JSON ({e})") from e
    pred_path = root / PREDICTIONS_CSV
    if not pred_path.is_file():
        raise ReportError(f"{pred_path} is missing; the run did not finish. Run `semiostream train` again")
    return report, read_predictions(pred_path)


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusions(path: Path, folds: list[dict[str, Any]], level: str, total: list[list[int]],
                    protocol: str = "paper") -> None:
    plt = _plt()
    mats = [(f"fold {f['fold']}", np.array(f["metrics"][level]["confusion"])) for f in folds]
    mats.append(("all folds", np.array(total)))
    n = len(mats)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    for ax, (title, m) in zip(axes[0], mats, strict=True):
        norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{m[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center",
                        color="white" if norm[i, j] > 0.6 else "black", fontsize=8)
        ax.set_xticks([0, 1], LABELS)
        ax.set_yticks([0, 1], LABELS)
        ax.set_xlabel("predicted")
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("true")
    fig.suptitle(f"Confusion matrices ({level} level; rows normalised; {protocol} CV protocol)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rocs(path: Path, pred: dict[str, np.ndarray], level: str, summary: dict[str, Any],
              protocol: str = "paper") -> None:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for k in np.unique(pred["fold"]):
        sel = pred["fold"] == k
        y, p = pred["y"][sel], pred["p"][sel]
        if level == "seizure":
            _, p, y = aggregate_by_seizure(p, pred["seizure"][sel], y)
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        from sklearn.metrics import auc

        ax.plot(fpr, tpr, lw=1.3, label=f"fold {k} (AUC {auc(fpr, tpr):.2f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate (FLE called TLE)")
    ax.set_ylabel("true positive rate (TLE)")
    ax.set_title(f"ROC, {level} level: AUC {fmt(summary[level]['roc_auc'], 2)} ({protocol} CV)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(path: Path, folds: list[dict[str, Any]]) -> None:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for f in folds:
        h = f["history"]
        ep = np.arange(1, len(h["train_loss"]) + 1)
        line = a1.plot(ep, h["train_loss"], lw=1, label=f"fold {f['fold']} train")[0]
        if "val_loss" in h:
            a1.plot(ep, h["val_loss"], lw=1, ls="--", color=line.get_color(), label=f"fold {f['fold']} val")
        if "val_f1" in h:
            a2.plot(ep, h["val_f1"], lw=1, color=line.get_color(), label=f"fold {f['fold']}")
            b = f["best_epoch"]
            if 1 <= b <= len(h["val_f1"]):
                a2.plot([b], [h["val_f1"][b - 1]], "o", color=line.get_color(), ms=5)
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.set_yscale("log")
    a1.set_title("Loss: training incl. L2 (solid), validation (dashed)", fontsize=10)
    a2.set_xlabel("epoch")
    a2.set_ylabel("validation macro F1 (window)")
    a2.set_ylim(0, 1)
    a2.set_title("Validation macro F1; dot = kept epoch", fontsize=10)
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_markdown(report: dict[str, Any]) -> str:
    cv = report["cv"]
    s = cv["summary"]
    data = report.get("data", {})
    lines = [f"# Training run {report.get('run_id', '')}".rstrip(), ""]
    if data:
        from semiostream.models.bundle import training_data

        lines.append(f"Data: {data.get('description', '')}")
        lines.append(f"Provenance: {training_data({'provenance': {'data': data}}).text}")
        lines.append("")
    c = cv["config"]
    lines += [
        f"Configuration: LSTM {c['lstm_units'][0]}/{c['lstm_units'][1]}, FC {c['dense_units'][0]}/"
        f"{c['dense_units'][1]}, loss {c['loss'].upper()}, dropout {c['dropout']}, recurrent dropout "
        f"{c['recurrent_dropout']}, {c['epochs']} epochs, batch {c['batch_size']}, seed {c['seed']}.",
        "",
        f"{len(cv['folds'])}-fold cross-validation grouped by patient (mean ± std over folds), "
        f"{protocol_line(report)}:",
        "",
        "| metric | window level | seizure level (mean window p) | paper (window) |",
        "|---|---|---|---|",
    ]
    names = {"f1_macro": "macro F1", "precision_macro": "macro precision", "recall_macro": "macro recall",
             "roc_auc": "ROC AUC", "accuracy": "accuracy"}
    nf = len(cv["folds"])
    for k, name in names.items():
        lines.append(f"| {name} | {_fmt_json(s['window'][k], nf)} | {_fmt_json(s['seizure'][k], nf)} | "
                     f"{PAPER.get(k, '')} |")
    proto = (report.get("protocol") or {}).get("name", "paper")
    if proto == "nested":
        lines += ["", "Epochs per outer fold (chosen on its inner folds): "
                  + ", ".join(str(f["best_epoch"]) for f in cv["folds"]) + "."]
        sel = report.get("selection")
        if sel:
            lines += [f"Model selection on all folds (chooses the final model; optimistic, not the estimate): "
                      f"window macro F1 {_fmt_json(sel['summary']['window']['f1_macro'])}."]
    else:
        lines += ["", "Kept epoch per fold (best validation F1 on the reported fold): "
                  + ", ".join(str(f["best_epoch"]) for f in cv["folds"]) + "."]
    crops = ((report.get("extraction") or {}).get("crop_rules")) or {}
    if crops:
        lines += ["", "Crops: " + ", ".join(f"{rule}: {n} seizure(s)" for rule, n in crops.items())
                  + " (per seizure in report.json, extraction.crops)."]
    if report.get("search"):
        n = len(report["search"]["table"])
        lines += ["", f"Random search: {n} trials; best = trial {report['search']['best']} (see search.md)."]
    fin = report.get("final")
    if fin:
        lines += ["", f"Final model: retrained on all {fin.get('windows', '?')} windows for {fin['epochs']} "
                  f"epochs (median kept epoch); bundle `{fin['bundle']}` (id {fin.get('bundle_id', '?')})."]
    ext = report.get("extraction") or {}
    if ext.get("failed"):
        lines += ["", f"Skipped {len(ext['failed'])} video(s) that failed feature extraction:"]
        lines += [f"- {e['key']}: {e['error']}" for e in ext["failed"][:20]]
    for note in report.get("notes", []):
        lines.append(f"\nNote: {note}")
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in PLOTS), ""]
    return "\n".join(lines)


def protocol_line(report: dict[str, Any]) -> str:
    """``protocol NAME: what its numbers mean`` (runs written before protocols existed used the paper's)."""
    p = report.get("protocol") or {}
    name = p.get("name", "paper")
    desc = p.get("description")
    if not desc:
        from .nested import describe_protocol

        desc = describe_protocol(name, p.get("inner_folds"))
    return f"protocol {name}: {desc}"


def _fmt_json(ms: dict[str, Any], n_folds: int | None = None) -> str:
    m = ms.get("mean")
    if m is None or (isinstance(m, float) and not math.isfinite(m)):
        return "n/a"
    text = fmt({"mean": m, "std": ms.get("std") or 0.0})
    n = ms.get("n")
    if n_folds is not None and n is not None and n < n_folds:
        text += f" ({n} of {n_folds} folds)"
    return text


def render(run: str | os.PathLike) -> list[Path]:
    """(Re)draw every plot and ``summary.md`` of a run directory; returns the written paths."""
    root = Path(run)
    report, pred = load_run(root)
    cv = report["cv"]
    proto = (report.get("protocol") or {}).get("name", "paper")
    out = []
    for level in ("window", "seizure"):
        p = root / f"confusion_{level}.png"
        plot_confusions(p, cv["folds"], level, cv["summary"][level]["confusion_total"], proto)
        out.append(p)
        p = root / f"roc_{level}.png"
        plot_rocs(p, pred, level, _floatify(cv["summary"]), proto)
        out.append(p)
    p = root / "training_curves.png"
    plot_training(p, cv["folds"])
    out.append(p)
    p = root / SUMMARY_MD
    p.write_text(summary_markdown(report))
    out.append(p)
    return out


def _floatify(summary: dict[str, Any]) -> dict[str, Any]:
    """JSON None (was NaN) back to NaN for formatting."""
    out: dict[str, Any] = {}
    for level, d in summary.items():
        out[level] = {}
        for k, v in d.items():
            if isinstance(v, dict) and "mean" in v:
                out[level][k] = {**v, "mean": math.nan if v["mean"] is None else v["mean"],
                                 "std": math.nan if v["std"] is None else v["std"]}
            else:
                out[level][k] = v
    return out
