"""I3D fine-tuning: the top I3D endpoints and the classifier trained end to end on windows (``train --finetune``).

The 2020 recipe (:mod:`.run`, the default) trains the classifier on frozen Kinetics I3D features.
Fine-tuning, the paper's stated future work, trains the I3D from ``train_from`` up (default ``Mixed_5b``
and ``Mixed_5c``) together with the classifier, on preprocessed windows instead of cached features:

1. the manifest's seizures are cut into the spec's windows exactly as ``extract`` does (segment, rate,
   crop, held intensity window: :func:`.features._plan_row`);
2. fold 0 of the patient-grouped, label-stratified folds (:func:`.folds.make_folds`, ``folds``) is held
   out: its patients are the validation part that chooses the epoch (best window macro F1, ties broken by
   the lower validation loss, as :func:`.train.train_model`) and stops the run early (``patience``);
3. each epoch takes its training windows (all, or ``windows_per_seizure`` of each seizure), shuffles and
   augments them (:mod:`.augment`: crop jitter inside the person ROI, temporal jitter, horizontal flip,
   intensity gain/offset and noise; IR has no colour to jitter) and preprocesses them with the bundle's
   own reference preprocessing, so an unaugmented window is exactly what the Scorer computes;
4. loss: the recipe's class-weighted MSE (or BCE) plus the classifier's L2 terms; Adam with ``lr`` for
   the classifier and ``i3d_lr`` for the I3D (:mod:`.finetune_model`: frozen BatchNorm statistics,
   gradient checkpointing of the trained endpoints unless ``grad_checkpointing`` is off);
5. on a CUDA device the I3D runs under ``torch.autocast`` (bf16 where the GPU has it, else fp16 with a
   ``GradScaler``); the classifier and the loss stay fp32; the CPU trains in fp32;
6. a checkpoint (:mod:`.checkpoint`) is replaced atomically after every epoch (and every
   ``checkpoint_every`` steps); ``resume`` continues from it. Every random draw (windows and their order,
   augmentation, dropout) is seeded by (seed, epoch, position), so a run killed at any moment and resumed
   follows the trajectory of one never interrupted (bit for bit on the CPU);
7. the best epoch's weights become a model bundle (:mod:`.finetune_report`): its ``i3d.safetensors`` is the
   fine-tuned I3D, same architecture and files as every bundle, so every backend, ONNX export and TensorRT
   build runs it.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semiostream.core.decision import positive
from semiostream.core.files import sha256_of

from . import checkpoint as ckpt
from .augment import Augment, Draw, shift_range, window_input
from .finetune_model import DEFAULT_TRAIN_FROM, TRAIN_FROM, FinetuneModel
from .folds import FoldError, check_disjoint, fold_composition, format_composition, make_folds
from .run import ExtractConfig, TrainerError, _detector, i3d_provenance, resolve_i3d
from .train import TrainConfig, class_weights, deterministic, fast_macro_f1, weighted_loss
from .ui import progress

log = logging.getLogger(__name__)

AMP = ("auto", "on", "off")
#: the recipe's defaults when fine-tuning (the frozen recipe's 2000 epochs x 500 windows do not apply)
DEFAULT_EPOCHS, DEFAULT_BATCH = 20, 8
FINETUNE_DIR = "finetune"


class FinetuneError(TrainerError):
    """A fine-tuning run cannot start or continue (bad option, no GPU for --amp on, checkpoint mismatch)."""


@dataclass
class FinetuneConfig:
    """A fine-tuning run. ``train`` carries the classifier recipe, ``epochs``, ``batch_size`` (windows per
    step), ``lr`` (classifier), ``patience`` and ``seed``; the rest is specific to fine-tuning (see the
    module docstring and ``semiostream train --help``)."""

    extract: ExtractConfig
    out: Path
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=DEFAULT_EPOCHS, batch_size=DEFAULT_BATCH))
    bundle: Path | None = None
    folds: int = 5
    train_from: str = DEFAULT_TRAIN_FROM
    i3d_lr: float = 1e-4
    amp: str = "auto"
    device: str | None = None
    grad_checkpointing: bool = True
    augment: Augment = field(default_factory=Augment)
    windows_per_seizure: int | None = None
    checkpoint_every: int = 0
    resume: bool = False

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.train_from not in TRAIN_FROM:
            raise FinetuneError(f"--finetune-from {self.train_from}: use one of {', '.join(TRAIN_FROM)}")
        if self.amp not in AMP:
            raise FinetuneError(f"--amp {self.amp}: use one of {', '.join(AMP)}")
        if not self.i3d_lr > 0:
            raise FinetuneError(f"--i3d-lr {self.i3d_lr} must be > 0")
        if self.folds < 2:
            raise FinetuneError(f"--folds {self.folds}: the validation patients are one of at least 2 folds")
        if self.windows_per_seizure is not None and self.windows_per_seizure < 1:
            raise FinetuneError(f"--windows-per-seizure {self.windows_per_seizure} must be >= 1")
        if self.checkpoint_every < 0:
            raise FinetuneError(f"--checkpoint-every {self.checkpoint_every} must be >= 0 (0: after each epoch)")


@dataclass
class FinetuneResult:
    out: Path
    bundle: Path
    report: dict[str, Any]


# --------------------------------------------------------------------------------------------- set-up


def resolve_device(device: str | None, amp: str) -> tuple[Any, str]:
    """``(Device, precision)``: the training device (default: the first CUDA GPU, else the CPU) and the I3D's
    precision there: ``"fp32"`` on the CPU or with ``amp="off"``, else ``"bf16"`` on GPUs that have it and
    ``"fp16"`` (with loss scaling) on older ones. :class:`FinetuneError` for ``amp="on"`` off a GPU."""
    from semiostream.core.device import Device, DeviceError

    try:
        dev = Device.parse(device or ("cuda" if torch.cuda.is_available() else "cpu")).check_available()
    except DeviceError as e:
        raise FinetuneError(str(e)) from e
    if amp == "off":
        return dev, "fp32"
    if not dev.is_cuda:
        if amp == "on":
            why = "torch sees no CUDA GPU" if not torch.cuda.is_available() else f"training runs on {dev}"
            raise FinetuneError(f"--amp on needs a CUDA GPU ({why}); the CPU trains in fp32: use --amp auto or off")
        return dev, "fp32"
    return dev, "bf16" if torch.cuda.get_device_capability(dev.torch)[0] >= 8 else "fp16"


def preflight(cfg: FinetuneConfig) -> tuple[Any, str]:
    """The checks that need no data (device, precision, checkpoint against ``resume``), before slow work."""
    dev, precision = resolve_device(cfg.device, cfg.amp)
    path = cfg.out / FINETUNE_DIR / ckpt.CHECKPOINT
    if cfg.resume and not path.is_file():
        raise FinetuneError(f"--resume: {cfg.out} holds no fine-tuning checkpoint ({path}); give the --out of the "
                            "run to continue, or drop --resume to start one")
    if not cfg.resume and path.is_file():
        raise FinetuneError(f"{cfg.out} already holds a fine-tuning checkpoint; pass --resume to continue that "
                            "run, or choose another --out")
    return dev, precision


@dataclass
class Seizure:
    """One planned seizure: its :class:`.features._Plan` (row, window ranges, crop, held intensity window)
    and the frame range ``[lo, hi)`` its windows may move in."""

    plan: Any
    lo: int
    hi: int

    @property
    def row(self):
        return self.plan.row


def plan_seizures(cfg: ExtractConfig, manifest: Any, i3d_digest: str, say) -> tuple[list[Seizure], list, str]:
    """Every seizure's windows, crop and intensity window, as ``extract`` plans them; failures are reported
    (``say``) and skipped. Returns ``(seizures, failures, detector id)``."""
    from .features import ExtractionSettings, _failure, _plan_row

    detector, det_id = _detector(cfg)
    settings = ExtractionSettings(cfg.spec, i3d_digest, det_id)
    seizures, failed = [], []
    with cf.ThreadPoolExecutor(max(1, cfg.workers), thread_name_prefix="plan") as pool, \
            progress("planning windows", len(manifest.rows), cfg.show_progress) as adv:
        futs = [(r, pool.submit(_plan_row, r, "", settings, detector)) for r in manifest.rows]
        for r, fut in futs:
            adv(1)
            try:
                pl = fut.result()
            except Exception as e:
                failed.append(_failure(r, e))
                continue
            seizures.append(Seizure(pl, pl.ranges[0][0], pl.ranges[-1][1]))
    for f in failed:
        say(f"skipped row {f['row']} ({f['key']}): {f['error']}")
    return seizures, failed, det_id


def split_validation(seizures: list[Seizure], folds: int, seed: int) -> tuple[list[int], list[int], list]:
    """``(training, validation, composition)``: seizure indices of fold 0 of the patient-grouped,
    label-stratified folds, and that fold's composition (patients, seizures, windows per class and side)."""
    from .dataset import FeatureSet

    parts = [(s.row, np.zeros((len(s.plan.ranges), 1, 1), np.float32)) for s in seizures]
    data = FeatureSet.from_parts(parts, feature_shape=(1, 1))
    try:
        all_folds = make_folds(data, folds, seed)
    except FoldError as e:
        raise FinetuneError(str(e)) from e
    check_disjoint(data, all_folds)
    f0 = all_folds[0]
    return [int(i) for i in f0.train], [int(i) for i in f0.val], fold_composition(data, [f0])


# -------------------------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class WindowRef:
    """One window: its seizure (index into the planned seizures) and frame range ``[start, stop)``."""

    seizure: int
    start: int
    stop: int


def seed_of(*parts: int) -> int:
    """A 63-bit seed from integers (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] & (2**63 - 1))


def epoch_windows(by_seizure: list[list[WindowRef]], epoch: int, seed: int, per_seizure: int | None) -> list[WindowRef]:
    """The training windows of ``epoch`` in their order: ``per_seizure`` (or all) of each seizure, shuffled;
    a function of (seed, epoch) only."""
    rng = np.random.default_rng([seed, epoch, 0])
    chosen: list[WindowRef] = []
    for refs in by_seizure:
        if per_seizure is not None and len(refs) > per_seizure:
            chosen += [refs[int(i)] for i in np.sort(rng.choice(len(refs), per_seizure, replace=False))]
        else:
            chosen += refs
    return [chosen[int(i)] for i in rng.permutation(len(chosen))]


def draw_of(aug: Augment, seed: int, epoch: int, position: int) -> Draw | None:
    """The augmentation of the ``position``-th training window of ``epoch`` (None when augmentation is off)."""
    return aug.draw(np.random.default_rng([seed, epoch, 1, position])) if aug.enabled else None


def minibatches(n: int, batch: int) -> list[tuple[int, int]]:
    """Minibatch bounds over ``n`` windows; a last batch of one joins the one before (BatchNorm needs 2)."""
    bounds = [(a, min(a + batch, n)) for a in range(0, n, batch)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


class WindowLoader:
    """Reads and preprocesses windows (``[1, T, S, S]`` float32, CPU) in a thread pool, ahead of the step."""

    def __init__(self, seizures: list[Seizure], spec: Any, workers: int) -> None:
        from .features import _SourcePool

        self.seizures, self.spec = seizures, spec
        self.sources = _SourcePool(spec.fps)
        self.pool = cf.ThreadPoolExecutor(max(1, workers), thread_name_prefix="finetune-read")

    def _one(self, ref: WindowRef, draw: Draw | None) -> torch.Tensor:
        s = self.seizures[ref.seizure]
        a, b = (ref.start, ref.stop) if draw is None else shift_range(ref.start, ref.stop, s.lo, s.hi, draw.shift)
        frames = self.sources.get(s.row).read(a, b)
        return window_input(frames, s.plan.roi, self.spec, s.plan.intensity, draw)

    def submit(self, refs: list[WindowRef], draws: list[Draw | None] | None = None) -> list[cf.Future]:
        draws = draws if draws is not None else [None] * len(refs)
        return [self.pool.submit(self._one, r, d) for r, d in zip(refs, draws, strict=True)]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.sources.close()


# ------------------------------------------------------------------------------------------- training


def run_settings(cfg: FinetuneConfig, manifest_sha: str, base_digest: str, det_id: str, precision: str) -> dict:
    """What determines a run's result; a resume must match it (``epochs`` and ``patience`` may change)."""
    recipe = {k: v for k, v in cfg.train.to_dict().items() if k not in ("epochs", "patience")}
    s = {"manifest_sha256": manifest_sha, "spec": cfg.extract.spec.to_dict(), "i3d_base_sha256": base_digest,
         "detector": det_id, "crop_rule": cfg.extract.crop_rule, "folds": cfg.folds, "recipe": recipe,
         "i3d_lr": cfg.i3d_lr, "train_from": cfg.train_from, "augment": cfg.augment.to_dict(),
         "windows_per_seizure": cfg.windows_per_seizure, "precision": precision}
    return json.loads(json.dumps(s))


class Training:
    """The training state of one run (model, optimizer, scaler, history, counters) and its loop."""

    def __init__(self, cfg: FinetuneConfig, model: FinetuneModel, device: Any, precision: str,
                 settings: dict, class_w: np.ndarray) -> None:
        tc = cfg.train
        self.cfg, self.tc, self.model, self.dev, self.precision, self.settings = cfg, tc, model, device, precision, \
            settings
        self.cw = torch.tensor(class_w, dtype=torch.float32)
        self.opt = torch.optim.Adam(
            [{"params": list(model.classifier.parameters()), "lr": tc.lr},
             {"params": [p for p in model.i3d.parameters() if p.requires_grad], "lr": cfg.i3d_lr}],
            betas=tuple(tc.betas))
        self.scaler = torch.amp.GradScaler(device.torch.type, enabled=precision == "fp16")
        self.history: dict[str, list] = {"train_loss": [], "train_data_loss": [], "val_loss": [], "val_f1": [],
                                         "state_sha256": [], "step_loss": []}
        self.st: dict[str, Any] = {"epoch": 0, "step": 0, "partial": [0.0, 0, 0.0], "best_epoch": 0,
                                   "best_f1": -1.0, "best_loss": float("inf"), "since": 0, "stopped": False,
                                   "train_seconds": 0.0, "train_windows": 0}
        run_dir = cfg.out / FINETUNE_DIR
        self.ck_path, self.best_path = run_dir / ckpt.CHECKPOINT, run_dir / ckpt.BEST

    # -- checkpoints
    def _classifier_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self.model.classifier.state_dict().items()}

    def save(self) -> None:
        ckpt.save(self.ck_path, {"settings": self.settings, "i3d": self.model.trainable_state(),
                                 "classifier": self._classifier_state(), "optimizer": self.opt.state_dict(),
                                 "scaler": self.scaler.state_dict(), "history": self.history, "state": dict(self.st)})

    def restore(self) -> None:
        """Continue from the run's checkpoint; :class:`FinetuneError` when it cannot (one line)."""
        try:
            saved = ckpt.load(self.ck_path)
            diff = ckpt.settings_differences(saved["settings"], self.settings)
            if diff:
                raise FinetuneError(f"--resume: {self.ck_path} was made with other settings ({'; '.join(diff[:4])}); "
                                    "resume with the run's own options, or start a new run with another --out")
            self.model.load_trainable(saved["i3d"], self.ck_path)
            self.model.classifier.load_state_dict(saved["classifier"])
            self.opt.load_state_dict(saved["optimizer"])
            self.scaler.load_state_dict(saved["scaler"])
        except (ckpt.CheckpointError, KeyError, ValueError, RuntimeError) as e:
            if isinstance(e, FinetuneError):
                raise
            raise FinetuneError(f"--resume: {self.ck_path} cannot be continued ({str(e).splitlines()[0][:160]}); "
                                "start a new run with another --out") from e
        self.history, self.st = saved["history"], dict(self.st, **saved["state"])

    def load_best(self) -> np.ndarray:
        """Put the best epoch's weights in the model; returns that epoch's validation p ``[N]`` float64."""
        best = ckpt.load(self.best_path)
        self.model.load_trainable(best["i3d"], self.best_path)
        self.model.classifier.load_state_dict(best["classifier"])
        self.model.eval()
        return best["p_val"].double().numpy()

    # -- the loop
    def step(self, epoch: int, k: int, windows: list[torch.Tensor], y: torch.Tensor) -> None:
        """Optimizer step ``k`` (0-based) of ``epoch`` on ``windows`` ``[1, T, S, S]`` with labels ``y`` ``[B]``."""
        self.model.train()
        torch.manual_seed(seed_of(self.tc.seed, epoch, 2, k))  # dropout masks of this step
        self.opt.zero_grad(set_to_none=True)
        logits = self.model.logits(windows, self.dev.torch, self.precision)
        yd = y.to(self.dev.torch)
        data_loss = weighted_loss(logits, yd.float(), self.cw.to(self.dev.torch)[yd], self.tc.loss)
        loss = data_loss + self.model.classifier.regularization_loss()
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        n, lv, dv = len(windows), float(loss.detach()), float(data_loss.detach())
        p = self.st["partial"]
        self.st["partial"] = [p[0] + lv * n, p[1] + n, p[2] + dv * n]
        self.history["step_loss"].append(lv)
        self.st["step"] = k + 1
        self.st["train_windows"] += n

    @torch.no_grad()
    def validate(self, loader: WindowLoader, refs: list[WindowRef]) -> torch.Tensor:
        """Logits ``[N]`` float64 (CPU) of the unaugmented validation windows."""
        self.model.eval()
        out = [self.model.logits([f.result() for f in loader.submit(refs[a:b])], self.dev.torch,
                                 self.precision).double().cpu()
               for a, b in minibatches(len(refs), self.tc.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def end_epoch(self, epoch: int, logits_val: torch.Tensor, y_val: np.ndarray) -> str:
        from .features import state_digest

        p_val = torch.sigmoid(logits_val).numpy()
        yv = torch.from_numpy(y_val)
        val_loss = float(weighted_loss(logits_val.float(), yv.float(), self.cw[yv], self.tc.loss))
        val_f1 = fast_macro_f1(y_val, positive(p_val, self.tc.threshold))
        h, st = self.history, self.st
        h["train_loss"].append(st["partial"][0] / st["partial"][1])
        h["train_data_loss"].append(st["partial"][2] / st["partial"][1])
        h["val_loss"].append(val_loss)
        h["val_f1"].append(val_f1)
        h["state_sha256"].append(state_digest(self.model)[:16])
        st.update(epoch=epoch, step=0, partial=[0.0, 0, 0.0])
        better = val_f1 > st["best_f1"] or (val_f1 == st["best_f1"] and val_loss < st["best_loss"])
        if better:
            st.update(best_epoch=epoch, best_f1=val_f1, best_loss=val_loss, since=0)
            ckpt.save(self.best_path, {"settings": self.settings, "epoch": epoch, "i3d": self.model.trainable_state(),
                                       "classifier": self._classifier_state(), "p_val": torch.from_numpy(p_val)})
        else:
            st["since"] += 1
        if self.tc.patience is not None and st["since"] >= self.tc.patience:
            st["stopped"] = True
        self.save()
        return (f"epoch {epoch}/{self.tc.epochs}: train loss {h['train_loss'][-1]:.4f} "
                f"(without L2 {h['train_data_loss'][-1]:.4f}), validation loss {val_loss:.4f}, "
                f"macro F1 {val_f1:.3f}{' (best)' if better else ''}"
                f"{'; early stop' if st['stopped'] else ''}")

    def run(self, loader: WindowLoader, by_seizure: list[list[WindowRef]], val_refs: list[WindowRef],
            y_of: list[int], say) -> None:
        """Epochs until ``epochs`` or an early stop, from wherever the state stands."""
        tc, st, cfg = self.tc, self.st, self.cfg
        y_val = np.array([y_of[r.seizure] for r in val_refs], np.int64)
        per_epoch = len(minibatches(len(epoch_windows(by_seizure, 1, tc.seed, cfg.windows_per_seizure)),
                                    tc.batch_size))
        total = tc.epochs * per_epoch
        with deterministic(tc.seed), progress(f"fine-tuning ({tc.epochs} epochs x {per_epoch} steps)", total,
                                              cfg.extract.show_progress) as adv:
            adv(min(st["epoch"] * per_epoch + st["step"], total))
            while not st["stopped"] and st["epoch"] < tc.epochs:
                epoch = st["epoch"] + 1
                refs = epoch_windows(by_seizure, epoch, tc.seed, cfg.windows_per_seizure)
                bounds = minibatches(len(refs), tc.batch_size)
                draws = [draw_of(cfg.augment, tc.seed, epoch, i) for i in range(len(refs))]

                def batch(k: int, refs=refs, bounds=bounds, draws=draws) -> list[cf.Future]:
                    return loader.submit(refs[slice(*bounds[k])], draws[slice(*bounds[k])])

                pending = batch(st["step"]) if st["step"] < len(bounds) else []
                for k in range(st["step"], len(bounds)):
                    t0 = time.perf_counter()  # windows/s trained: waiting for the input included
                    windows = [f.result() for f in pending]
                    if k + 1 < len(bounds):
                        pending = batch(k + 1)  # read the next batch while this one trains
                    self.step(epoch, k, windows, torch.tensor([y_of[r.seizure] for r in refs[slice(*bounds[k])]]))
                    st["train_seconds"] += time.perf_counter() - t0
                    p = st["partial"]
                    adv(1, description=f"epoch {epoch}/{tc.epochs} loss {p[0] / p[1]:.4f}")
                    if cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0 and st["step"] < len(bounds):
                        self.save()
                say(self.end_epoch(epoch, self.validate(loader, val_refs), y_val))


def finetune_run(cfg: FinetuneConfig) -> FinetuneResult:
    """Fine-tune (see the module docstring). Raises :class:`FinetuneError` or ``ManifestError`` (one line)
    for what the user can fix; the checks that need no data come before any slow work."""
    from semiostream.models.classifier import SeizureClassifier
    from semiostream.models.weights import WeightsError, load_i3d_checkpoint

    from .finetune_report import write_outputs
    from .manifest import load_manifest

    t_start = time.perf_counter()
    dev, precision = preflight(cfg)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if cfg.extract.show_progress else (lambda m: None)
    manifest = load_manifest(cfg.extract.manifest)
    for note in manifest.notes:
        log.warning("%s", note)
    i3d_path = resolve_i3d(cfg.extract.i3d)
    try:
        i3d = load_i3d_checkpoint(i3d_path, in_channels=1)
    except WeightsError as e:
        raise FinetuneError(str(e)) from e
    base_prov = i3d_provenance(i3d_path, i3d)
    seizures, failed, det_id = plan_seizures(cfg.extract, manifest, base_prov["state_sha256"], say)
    if not seizures:
        raise FinetuneError("no seizure could be cut into windows; fix the rows listed above")
    tr_idx, va_idx, comp = split_validation(seizures, cfg.folds, cfg.train.seed)
    say("validation part (fold 0 of the patient-grouped folds):\n" + format_composition(comp))
    by_seizure = [[WindowRef(i, a, b) for a, b in seizures[i].plan.ranges] for i in tr_idx]
    val_refs = [WindowRef(i, a, b) for i in va_idx for a, b in seizures[i].plan.ranges]
    y_of = [int(s.row.y) for s in seizures]
    y_train = np.array([y_of[r.seizure] for refs in by_seizure for r in refs], np.int64)
    n_epoch = len(epoch_windows(by_seizure, 1, cfg.train.seed, cfg.windows_per_seizure))
    if n_epoch < 2:
        raise FinetuneError(f"{n_epoch} training window per epoch; fine-tuning needs at least 2 (add seizures, or "
                            "raise --windows-per-seizure)")
    settings = run_settings(cfg, sha256_of(manifest.source), base_prov["state_sha256"], det_id, precision)
    with deterministic(cfg.train.seed):
        classifier = SeizureClassifier(**cfg.train.classifier_kwargs())
    model = FinetuneModel(i3d, classifier, cfg.train_from, cfg.grad_checkpointing).to(dev.torch)
    training = Training(cfg, model, dev, precision, settings,
                        class_weights(y_train) if cfg.train.class_weighted else np.ones(2))
    if cfg.resume:
        training.restore()
        say(f"resuming {cfg.out}: {training.st['epoch']} epoch(s) and {training.st['step']} step(s) done")
    say(f"fine-tuning I3D {model.trainable[0]}..{model.trainable[-1]} + classifier on {dev} ({precision}"
        f"{', gradient checkpointing' if cfg.grad_checkpointing else ''}): {len(tr_idx)} training seizures "
        f"({n_epoch} windows per epoch), {len(va_idx)} validation seizures ({len(val_refs)} windows)")
    loader = WindowLoader(seizures, cfg.extract.spec, cfg.extract.workers)
    try:
        training.run(loader, by_seizure, val_refs, y_of, say)
    finally:
        loader.close()
    p_val = training.load_best()
    report = write_outputs(cfg, training, seizures, tr_idx, va_idx, val_refs, p_val, comp, failed, manifest,
                           base_prov, i3d_path, time.perf_counter() - t_start)
    return FinetuneResult(cfg.out, Path(report["bundle"]), report)


__all__ = ["AMP", "DEFAULT_BATCH", "DEFAULT_EPOCHS", "FinetuneConfig", "FinetuneError", "FinetuneResult",
           "finetune_run", "preflight", "resolve_device"]
