"""A whole training run: manifest -> features -> folds -> CV (or random search) -> final model -> bundle.

:func:`extract` makes sure every seizure of a manifest has cached I3D features (``semiostream extract``);
:func:`train_run` does everything (``semiostream train``):

1. load and validate the manifest;
2. extract features (cached; failures reported and skipped) with the configured I3D and preprocessing spec;
3. split seizures into patient-grouped, label-stratified folds; print and save their composition;
4. model selection: cross-validate the base configuration, or run a random search of ``search_trials``
   configurations, on all folds;
5. the reported estimate: with ``protocol="nested"`` (default) a nested cross-validation
   (:mod:`.nested`: selection on inner folds, the outer folds only measure); with ``protocol="paper"``
   the selection CV of step 4 itself (optimistic; labelled so in every report);
6. retrain the selected configuration on all windows for the median of its folds' kept epochs (there is
   no validation set left to choose an epoch);
7. write the model bundle (the I3D that produced the features, the classifier, the spec, and the CV report
   with its protocol in its provenance), ``report.json``, ``predictions.csv``, plots and ``summary.md``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semiostream.core.files import sha256_of

from .cv import CVResult, cross_validate
from .dataset import FeatureSet
from .features import (
    ExtractionReport,
    ExtractionSettings,
    FeatureCache,
    extract_features,
    load_featureset,
    sha256_of_path,
    state_digest,
)
from .folds import FoldError, check_disjoint, fold_composition, format_composition, make_folds, save_composition
from .manifest import Manifest, load_manifest
from .nested import PROTOCOLS, describe_protocol, final_epochs, nested_cross_validate
from .report import PREDICTIONS_CSV, REPORT_JSON, clean_json, render, write_json, write_predictions
from .search import SearchResult, SearchSpace, plan_trials, random_search
from .train import TrainConfig, train_model
from .ui import progress

log = logging.getLogger(__name__)

DETECTORS = ("full", "yolox", "maskrcnn")


class TrainerError(RuntimeError):
    """A problem the user can fix (missing weights, no usable data); the message says how."""


@dataclass
class ExtractConfig:
    """What determines the features and where they are cached.

    Attributes:
        manifest: the manifest file.
        i3d: I3D weight file (any format :func:`~semiostream.models.weights.load_i3d_checkpoint` reads);
            None = the file `semiostream weights fetch` writes.
        spec: the preprocessing spec (window, intensity window, crop expansion, ...); None = defaults.
        cache: feature cache directory; None = ``<semiostream cache>/features``.
        backend: engine backend for the I3D (None = the fp32 PyTorch reference on this device).
        detector: ROI detector for rows without an ROI: ``full`` (no crop), ``yolox`` (needs
            ``detector_weights``, an .onnx file) or ``maskrcnn``.
        crop_rule: how detections become the crop: ``"paper"`` (union of the best person and bed
            boxes; the raw full frame if either is missing) or ``"single-box"`` (the one box found).
        workers: decoding threads.
    """

    manifest: Path
    i3d: Path | None = None
    spec: Any = None
    cache: Path | None = None
    backend: str | None = None
    detector: str = "full"
    detector_weights: Path | None = None
    crop_rule: str = "paper"
    workers: int = 2
    show_progress: bool = True

    def __post_init__(self) -> None:
        from semiostream.core.preprocess_spec import PreprocessSpec

        self.manifest = Path(self.manifest)
        self.spec = self.spec or PreprocessSpec()
        if self.detector not in DETECTORS:
            raise TrainerError(f"unknown ROI detector {self.detector!r}; use one of {', '.join(DETECTORS)}")
        if self.detector == "yolox" and self.detector_weights is None:
            raise TrainerError("the yolox ROI detector needs its .onnx weights: pass --detector-weights PATH")
        from semiostream.detectors.base import CROP_RULES

        if self.crop_rule not in CROP_RULES:
            raise TrainerError(f"unknown crop rule {self.crop_rule!r}; use one of {', '.join(CROP_RULES)}")


@dataclass
class RunConfig:
    """A training run: features (:class:`ExtractConfig`), CV, training and search settings."""

    extract: ExtractConfig
    out: Path
    folds: int = 5
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    search_trials: int = 0
    space: SearchSpace = field(default_factory=SearchSpace)
    bundle: Path | None = None  # default: <out>/bundle
    protocol: str = "nested"  # "nested" (selection on inner folds) or "paper" (selection on the reported folds)
    inner_folds: int = 4

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise TrainerError(f"unknown protocol {self.protocol!r}; use one of {', '.join(PROTOCOLS)}")
        if self.inner_folds < 2:
            raise TrainerError(f"inner_folds={self.inner_folds}; nested cross-validation needs at least 2")


@dataclass
class Prepared:
    manifest: Manifest
    i3d: Any
    i3d_path: Path
    i3d_digest: str
    data: FeatureSet
    extraction: ExtractionReport
    settings: ExtractionSettings
    cache: FeatureCache


def resolve_i3d(path: Path | None) -> Path:
    from semiostream.models.fetch import default_weights_path

    p = Path(path) if path is not None else default_weights_path()
    if not p.is_file():
        if path is None:
            raise TrainerError(
                f"no I3D weights at {p}; run `semiostream weights fetch` (or `semiostream weights import "
                "FILE`), or pass --i3d PATH"
            )
        raise TrainerError(f"I3D weight file {p} does not exist; check --i3d")
    return p


def i3d_provenance(path: Path, i3d: Any) -> dict[str, Any]:
    """What the bundle records about its I3D: file, state digest and pretraining variant."""
    from semiostream.models.weights import I3D_VARIANTS, identify_variant

    variant = identify_variant(path)
    return {"source": str(path), "state_sha256": state_digest(i3d), "variant": variant,
            "variant_description": I3D_VARIANTS[variant]}


def default_cache() -> Path:
    from semiostream.models.fetch import cache_dir

    return cache_dir() / "features"


def _detector(cfg: ExtractConfig) -> tuple[Any | None, str]:
    if cfg.detector == "full":
        return None, "full"
    from semiostream.detectors.registry import make_detector

    w = cfg.detector_weights
    if w is not None and not Path(w).is_file():
        raise TrainerError(f"detector weights {w} do not exist; check --detector-weights")
    det = make_detector(cfg.detector, spec=cfg.spec, weights=w, crop_rule=cfg.crop_rule)
    ident = f"{cfg.detector}:{sha256_of_path(w)[:16] if w else 'default'}:{det.min_score:g}:{cfg.crop_rule}"
    return det, ident


class _ScorerFactory:
    """Builds a feature-only :class:`~semiostream.engines.scorer.Scorer` on first use: a temporary bundle of
    the I3D + a fresh classifier (features do not depend on the classifier)."""

    def __init__(self, i3d: Any, spec: Any, backend: str | None) -> None:
        self.i3d, self.spec, self.backend = i3d, spec, backend
        self.tmp: tempfile.TemporaryDirectory | None = None
        self.scorer = None

    def __call__(self):
        import torch

        from semiostream.engines.registry import REFERENCE
        from semiostream.engines.scorer import Scorer
        from semiostream.models.bundle import save_bundle
        from semiostream.models.classifier import SeizureClassifier

        self.tmp = tempfile.TemporaryDirectory(prefix="semiostream-featurizer-")
        path = save_bundle(Path(self.tmp.name) / "bundle", self.i3d, SeizureClassifier(), self.spec,
                           provenance={"purpose": "feature extraction only (classifier untrained)"})
        backend = self.backend or REFERENCE["cuda" if torch.cuda.is_available() else "cpu"]
        self.scorer = Scorer(path, backend)
        log.info("feature extraction with %r", self.scorer)
        return self.scorer

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
        if self.tmp is not None:
            self.tmp.cleanup()


def prepare(cfg: ExtractConfig) -> Prepared:
    """Load the manifest and the I3D, extract (or reuse) every seizure's features."""
    from semiostream.models.weights import WeightsError, load_i3d_checkpoint

    manifest = load_manifest(cfg.manifest)
    for note in manifest.notes:
        log.warning("%s", note)
    i3d_path = resolve_i3d(cfg.i3d)
    try:
        i3d = load_i3d_checkpoint(i3d_path, in_channels=1)
    except WeightsError as e:
        raise TrainerError(str(e)) from e
    digest = state_digest(i3d)
    detector, det_id = _detector(cfg)
    settings = ExtractionSettings(cfg.spec, digest, det_id, backend=cfg.backend or "reference")
    cache = FeatureCache(cfg.cache or default_cache())
    factory = _ScorerFactory(i3d, cfg.spec, cfg.backend)
    try:
        rep = extract_features(manifest, factory, cache, settings, detector, workers=cfg.workers,
                               show_progress=cfg.show_progress)
    finally:
        factory.close()
    if factory.scorer is not None:
        rep.notes.append(f"features computed with backend {factory.scorer.backend}, "
                         f"preprocessing {factory.scorer.preprocessing}")
    data = load_featureset(manifest, cache, rep)
    return Prepared(manifest, i3d, i3d_path, digest, data, rep, settings, cache)


def extract(cfg: ExtractConfig) -> Prepared:
    """``semiostream extract``: :func:`prepare` (kept as a separate name for the command)."""
    return prepare(cfg)


def one_class_folds(comp: list[dict[str, Any]]) -> list[str]:
    """Warnings for folds whose validation part lacks a class (too few patients per class)."""
    notes = []
    for c in comp:
        missing = [lab for lab in ("FLE", "TLE") if c["val"][lab]["seizures"] == 0]
        if missing:
            notes.append(
                f"fold {c['fold']}: the validation part holds no {' or '.join(missing)} seizures (too few "
                "patients of that class for this many folds); its macro F1 is at most 0.5 and its ROC AUC "
                "undefined (left out of the mean). Use fewer --folds or add patients"
            )
    return notes


def _predictions(data: FeatureSet, cv: CVResult) -> list[dict[str, Any]]:
    rows = []
    counter: dict[int, int] = {}
    for i in range(len(data)):
        s = int(data.seizure_index[i])
        k = counter.get(s, 0)
        counter[s] = k + 1
        info = data.seizures[s]
        rows.append({"fold": int(cv.fold_of_window[i]), "patient_id": info.patient_id,
                     "seizure_id": info.seizure_id, "label": info.label, "y": info.y, "window": k,
                     "p": float(cv.p_oof[i])})
    return rows


def _synthetic_counts(manifest: Manifest, data: Any) -> dict[str, Any]:
    """``{"synthetic": any training seizure synthetic, "synthetic_seizures": k, "seizures": n}`` over the
    seizures trained on (the manifest's ``synthetic`` column), read by
    :func:`~semiostream.models.bundle.training_data`."""
    marked = {r.key for r in manifest.rows if r.synthetic}
    k = sum(1 for s in data.seizures if s.key in marked)
    return {"synthetic": k > 0, "synthetic_seizures": k, "seizures": len(data.seizures)}


def _manifest_digest(path: Path) -> str:
    return sha256_of(path)


@dataclass
class RunResult:
    out: Path
    bundle: Path
    cv: CVResult
    search: SearchResult | None
    report: dict[str, Any]


def train_run(cfg: RunConfig) -> RunResult:
    """Run everything; see the module docstring. Returns where things were written and the CV result."""
    from semiostream import __version__
    from semiostream.models.bundle import save_bundle

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    prep = prepare(cfg.extract)
    data = prep.data
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if cfg.extract.show_progress else (lambda m: None)
    say(prep.extraction.summary())
    if len(data) == 0:
        raise TrainerError("no seizure has features; fix the failures listed above and run again")
    try:
        folds = make_folds(data, cfg.folds, cfg.seed)
    except FoldError as e:
        raise TrainerError(str(e)) from e
    check_disjoint(data, folds)
    comp = fold_composition(data, folds)
    save_composition(out / "folds.json", comp)
    say("fold composition (patients/seizures/windows per class):\n" + format_composition(comp))
    fold_notes = one_class_folds(comp)
    for note in fold_notes:
        log.warning("%s", note)
        say(f"warning: {note}")

    # CV or search
    configs = plan_trials(max(1, cfg.search_trials), cfg.train, cfg.space, cfg.seed) if cfg.search_trials \
        else [cfg.train]
    total = sum(c.epochs for c in configs) * len(folds)
    search: SearchResult | None = None
    with progress(f"training {len(configs)} configuration(s) x {len(folds)} folds (epochs)", total,
                  cfg.extract.show_progress) as adv:
        if cfg.search_trials:
            search = random_search(
                data, folds, cfg.search_trials, cfg.train, cfg.space, cfg.seed,
                on_epoch=lambda t, f, e, s: adv(1, description=f"trial {t} fold {f}"),
                on_trial=lambda t, r: say(f"trial {t}: {r.line()}"),
            )
            cv = search.best_cv
        else:
            cv = cross_validate(data, folds, cfg.train, on_epoch=lambda f, e, s: adv(1, description=f"fold {f}"))
    say(f"model selection CV ({cv.config.loss}, LSTM {cv.config.lstm_units}, FC {cv.config.dense_units}): "
        f"{cv.line()}")
    selection = cv
    protocol_text = describe_protocol(cfg.protocol, cfg.inner_folds, cfg.search_trials)
    if cfg.protocol == "nested":
        total = len(folds) * (sum(c.epochs for c in configs) * cfg.inner_folds + cfg.train.epochs)
        with progress(f"nested CV: {len(folds)} outer x {cfg.inner_folds} inner folds (epochs, approx.)", total,
                      cfg.extract.show_progress) as adv:
            try:
                cv = nested_cross_validate(data, folds, cfg.train, cfg.inner_folds, cfg.search_trials, cfg.space,
                                           cfg.seed, on_epoch=lambda f, t, e, s: adv(1, description=f"outer {f}"))
            except FoldError as e:
                raise TrainerError(str(e)) from e
    say(f"cross-validation estimate ({cfg.protocol} protocol: {protocol_text}): {cv.line()}")

    # final model on all data
    n_final = final_epochs(selection)
    final_cfg = selection.config.replace(epochs=n_final)
    with progress(f"final model on all {len(data)} windows", n_final, cfg.extract.show_progress) as adv:
        final = train_model(data.x, data.y, final_cfg, on_epoch=lambda e, s: adv(1))

    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{prep.i3d_digest[:6]}"
    cv_report = cv.to_dict()
    cv_brief = {"config": cv_report["config"], "summary": cv_report["summary"], "folds": [
        {k: v for k, v in f.items() if k != "history"} for f in cv_report["folds"]]}
    protocol = {"name": cfg.protocol, "description": protocol_text,
                "inner_folds": cfg.inner_folds if cfg.protocol == "nested" else None}
    selection_brief = None if selection is cv else {
        "note": "model selection only (the paper's protocol on all folds; optimistic, not the estimate)",
        "config": selection.config.to_dict(), "summary": selection.summary,
        "best_epochs": [f["best_epoch"] for f in selection.folds]}
    per_seizure = data.n_windows
    counts = {lab: {"patients": len({s.patient_id for s in data.seizures if s.label == lab}),
                    "seizures": sum(1 for s in data.seizures if s.label == lab),
                    "windows": int(sum(n for s, n in zip(data.seizures, per_seizure, strict=True) if s.label == lab))}
              for lab in ("FLE", "TLE")}
    desc = (f"{len(data.seizures)} seizures of {len(set(data.seizure_groups.tolist()))} patients, "
            f"{len(data)} windows (" + "; ".join(
                f"{lab}: {c['patients']} patients, {c['seizures']} seizures, {c['windows']} windows"
                for lab, c in counts.items()) + ")")
    provenance = {
        "trainer": {"semiostream": __version__, "run_id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
        "data": {"manifest": str(prep.manifest.source), "manifest_sha256": _manifest_digest(prep.manifest.source),
                 "description": desc, "counts": counts, **_synthetic_counts(prep.manifest, data)},
        "i3d": i3d_provenance(prep.i3d_path, prep.i3d),
        "roi_detector": prep.settings.detector,
        "crop": {"rule": cfg.extract.crop_rule, "applied": prep.extraction.crop_counts(),
                 "per_seizure": prep.extraction.crops},
        "folds": {"n": len(folds), "seed": cfg.seed, "grouped_by": "patient", "stratified_by": "label",
                  "composition": comp},
        "protocol": protocol,
        "cv": cv_brief,
        "selection": selection_brief,
        "search": None if search is None else {"trials": len(search.trials), "best": search.best,
                                               "space": search.space.to_dict(), "seed": search.seed},
        "final": {"config": final_cfg.to_dict(), "epochs": n_final, "windows": len(data),
                  "rule": "median of the folds' best-validation-F1 epochs"},
    }
    bundle_dir = Path(cfg.bundle) if cfg.bundle else out / "bundle"
    save_bundle(bundle_dir, prep.i3d, final.model, cfg.extract.spec, provenance=clean_json(provenance))
    from semiostream.models.bundle import read_bundle_json

    bundle_id = read_bundle_json(bundle_dir)["bundle_id"]

    write_predictions(out / PREDICTIONS_CSV, _predictions(data, cv))
    report = {
        "version": 1, "run_id": run_id,
        "data": provenance["data"], "i3d": provenance["i3d"], "roi_detector": prep.settings.detector,
        "spec": cfg.extract.spec.to_dict(),
        "folds": comp, "protocol": protocol, "cv": cv_report, "selection": selection_brief,
        "search": None if search is None else {"best": search.best, "space": search.space.to_dict(),
                                               "seed": search.seed, "table": search.table()},
        "final": {"config": final_cfg.to_dict(), "epochs": n_final, "windows": len(data),
                  "bundle": str(bundle_dir), "bundle_id": bundle_id, "train_loss": final.history["train_loss"]},
        "extraction": prep.extraction.to_dict(),
        "notes": list(prep.manifest.notes) + fold_notes + list(prep.extraction.notes),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_json(out / REPORT_JSON, report)
    if search is not None:
        (out / "search.md").write_text(search.markdown() + "\n")
        write_json(out / "search.json", search.table())
    render(out)
    log.info("run written to %s", out)
    return RunResult(out, bundle_dir, cv, search, report)


__all__ = ["ExtractConfig", "RunConfig", "RunResult", "TrainerError", "extract", "final_epochs", "prepare",
           "resolve_i3d", "train_run"]
