"""What a fine-tuning run (:mod:`.finetune`) leaves behind: the model bundle, ``finetune.json`` and ``summary.md``.

The bundle is an ordinary bundle (:func:`semiostream.models.bundle.save_bundle`): ``i3d.safetensors`` holds
the fine-tuned I3D (whole; the endpoints below the trained ones are the base weights), ``classifier.pt`` the
classifier trained with it, and ``bundle.json`` their sha256, so its ``bundle_id`` differs from any bundle of
the base I3D. Its provenance says what was trained:

* ``provenance.i3d``: the base weights' source and variant, ``state_sha256`` of the fine-tuned I3D,
  ``variant_description`` ending in "fine-tuned on this run's windows" (what model cards show), and
  ``finetune``: trained endpoints, base state digest, epochs, best epoch, precision, learning rate,
  augmentation, validation patients and rule;
* ``provenance.trainer.recipe`` ``"finetune"``; ``provenance.validation`` the held-out patients' metrics
  (window and seizure level) of the kept epoch; ``data``, ``crop``, ``folds`` as the frozen recipe writes them.

``finetune.json`` (in the run directory): settings, per-epoch history (train loss with and without the L2
terms, validation loss and macro F1, the weights' digest after each epoch), per-step losses, validation
metrics, windows/s trained (optimizer steps and the wait for their input; validation and checkpoints
excluded), device and precision.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.files import atomic_write

REPORT = "finetune.json"
SUMMARY = "summary.md"


def write_outputs(cfg: Any, training: Any, seizures: list, tr_idx: list[int], va_idx: list[int], val_refs: list,
                  p_val: np.ndarray, comp: list, failed: list, manifest: Any, base_prov: dict, i3d_path: Path,
                  seconds: float) -> dict[str, Any]:
    """Save the bundle of ``training``'s model (the best epoch's weights, loaded) and write the report and
    summary into ``cfg.out``. Returns the report (``report["bundle"]`` is the bundle directory)."""
    from semiostream import __version__
    from semiostream.models.bundle import save_bundle

    from .features import state_digest
    from .metrics import evaluate
    from .report import clean_json

    model, st, tc = training.model, training.st, cfg.train
    y_val = np.array([int(seizures[r.seizure].row.y) for r in val_refs], np.int64)
    seizure_of = np.array([va_idx.index(r.seizure) for r in val_refs], np.int64)
    val_metrics = evaluate(y_val, p_val, seizure_of, tc.threshold)
    tuned = state_digest(model.i3d)
    wps = st["train_windows"] / st["train_seconds"] if st["train_seconds"] > 0 else float("nan")
    val_patients = sorted({seizures[i].row.patient_id for i in va_idx})
    span = f"{model.trainable[0]}..{model.trainable[-1]}"
    finetune = {
        "recipe": "I3D fine-tuning: top endpoints and classifier trained end to end on windows",
        "trained_endpoints": list(model.trainable), "frozen_batchnorm_statistics": True,
        "base_state_sha256": base_prov["state_sha256"], "epochs_run": st["epoch"], "best_epoch": st["best_epoch"],
        "precision": training.precision, "i3d_lr": cfg.i3d_lr, "augment": cfg.augment.to_dict(),
        "windows_per_seizure": cfg.windows_per_seizure,
        "validation": {"patients": val_patients,
                       "rule": "best window macro F1 on the held-out patients (ties: lower validation loss)"},
    }
    used = [seizures[i] for i in tr_idx + va_idx]
    marked = {r.key for r in manifest.rows if r.synthetic}
    k_syn = sum(1 for s in used if s.row.key in marked)
    provenance = {
        "trainer": {"semiostream": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "recipe": "finetune"},
        "data": {"manifest": str(manifest.source), "manifest_sha256": training.settings["manifest_sha256"],
                 "description": f"{len(used)} seizures of {len({s.row.patient_id for s in used})} patients "
                                f"({len(tr_idx)} for training, {len(va_idx)} for validation)",
                 "synthetic": k_syn > 0, "synthetic_seizures": k_syn, "seizures": len(used)},
        "i3d": dict(base_prov, state_sha256=tuned, finetune=finetune,
                    variant_description=f"{base_prov['variant_description']}; {span} fine-tuned on this run's windows"),
        "roi_detector": training.settings["detector"],
        "crop": {"rule": cfg.extract.crop_rule},
        "folds": {"n": cfg.folds, "seed": tc.seed, "grouped_by": "patient", "stratified_by": "label",
                  "composition": comp, "use": "fold 0's validation patients choose the epoch"},
        "protocol": {"name": "finetune", "description": "metrics of the held-out patients that chose the epoch "
                                                        "(optimistic; not a cross-validation estimate)"},
        "validation": {"summary": val_metrics},
        "final": {"config": tc.to_dict(), "epochs": st["best_epoch"], "windows": int(sum(
            len(seizures[i].plan.ranges) for i in tr_idx)), "rule": "the epoch with the best validation macro F1"},
    }
    bundle_dir = Path(cfg.bundle) if cfg.bundle else cfg.out / "bundle"
    model.cpu()
    save_bundle(bundle_dir, model.i3d, model.classifier, cfg.extract.spec, provenance=clean_json(provenance))
    report = clean_json({
        "version": 1, "recipe": "finetune", "settings": training.settings, "history": training.history,
        "state": st, "trained_endpoints": list(model.trainable), "device": str(training.dev),
        "precision": training.precision, "grad_checkpointing": cfg.grad_checkpointing,
        "windows_per_second_trained": wps,
        "validation": {"patients": val_patients, "windows": len(val_refs), "metrics": val_metrics},
        "folds": comp, "failed": failed, "bundle": str(bundle_dir), "i3d_state_sha256": tuned,
        "seconds": round(seconds, 1),
    })
    atomic_write(cfg.out / REPORT, json.dumps(report, indent=1) + "\n")
    atomic_write(cfg.out / SUMMARY, summary(report, provenance))
    return report


def summary(report: dict[str, Any], provenance: dict[str, Any]) -> str:
    """``summary.md`` of a fine-tuning run: what was trained, loss per epoch, the kept epoch, the bundle."""
    from semiostream.models.bundle import training_data

    h, m = report["history"], report["validation"]["metrics"]
    eps = report["trained_endpoints"]
    lines = [
        "# I3D fine-tuning run", "",
        f"Provenance: {training_data({'provenance': provenance}).text}", "",
        f"Trained end to end: I3D {eps[0]}..{eps[-1]} (BatchNorm statistics frozen) and the classifier, on "
        f"{report['device']} in {report['precision']}; {report['windows_per_second_trained']:.2f} windows/s trained.",
        "",
        "| epoch | train loss | train loss without L2 | validation loss | validation macro F1 |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {i + 1} | {a:.4f} | {b:.4f} | {c:.4f} | {d:.3f} |" for i, (a, b, c, d) in enumerate(
            zip(h["train_loss"], h["train_data_loss"], h["val_loss"], h["val_f1"], strict=True))],
        "",
        f"Kept: epoch {report['state']['best_epoch']} (best validation macro F1). Validation patients "
        f"{', '.join(report['validation']['patients'])} ({report['validation']['windows']} windows): window macro "
        f"F1 {m['window']['f1_macro']:.3f}, seizure macro F1 {m['seizure']['f1_macro']:.3f}. These patients chose "
        "the epoch, so the figures are optimistic: not a cross-validation estimate.",
        "",
        f"Bundle: {report['bundle']}",
    ]
    return "\n".join(lines) + "\n"
