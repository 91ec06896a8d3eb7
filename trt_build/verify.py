"""Cross-backend verification: every available backend against the PyTorch fp32 reference.

The reference is the bundle's own modules, run eagerly in float32 on the CPU
(``bundle.i3d.extract_features`` and ``bundle.classifier``). Every backend runs the same inputs:

* random I3D inputs ``[batch, C, T, 224, 224]`` uniform in [-1, 1] for each ``T`` in ``frames``;
* real windows (uint16 ``[T, H, W]`` plus ROI), preprocessed with the torch reference preprocessing;
* for the classifier alone, the reference features of all those inputs (pre-padded to 7 steps) plus
  random non-negative feature sequences with 0..6 masked leading steps (the "test set").

Reported per backend: feature max abs error, max relative error (max abs error / max abs reference
value), minimum per-window cosine similarity; classifier max abs / relative error on the reference
features; decision agreement (p >= 0.5) on the classifier test set and end to end (backend features ->
backend classifier vs reference). Tolerances (the issue's):

* fp32 backends: feature and probability relative error <= 1e-4, identical decisions;
* bf16 / fp16 backends: feature cosine >= 0.999 for every window, identical decisions, and the classifier
  (fp32 on every backend) within the fp32 tolerance on the reference features.

Each backend's feature-engine time per window (at the largest ``T``, after one warm-up call) is recorded
with the verdict next to the bundle (:func:`semiostream.engines.select.record_verdicts`), which is how
automatic backend selection knows what is fastest here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from semiostream.engines import registry
from semiostream.engines.base import Engine
from semiostream.engines.select import machine_info, record_verdicts
from semiostream.models.bundle import Bundle, load_bundle
from semiostream.models.classifier import MASK_VALUE, NUM_STEPS, pad_features

log = logging.getLogger(__name__)

FP32_REL_TOL = 1e-4
LOWP_MIN_COSINE = 0.999
THRESHOLD = 0.5


@dataclass
class BackendResult:
    backend: str
    available: bool
    passed: bool = False
    reason: str = ""
    precision: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ms_per_window: float | None = None
    frames: int | None = None

    @property
    def status(self) -> str:
        if not self.available:
            return "skipped"
        return "PASS" if self.passed else "FAIL"


@dataclass
class VerifyReport:
    bundle_id: str
    inputs: str
    tolerances: str
    results: list[BackendResult]
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every available backend passed (and at least one ran)."""
        ran = [r for r in self.results if r.available]
        return bool(ran) and all(r.passed for r in ran)

    def result(self, backend: str) -> BackendResult:
        return next(r for r in self.results if r.backend == backend)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        for r, rd in zip(self.results, d["results"], strict=True):
            rd["status"] = r.status
        return d

    def table(self) -> str:
        """Plain-text table (one row per backend)."""
        head = (f"{'backend':<22} {'status':<7} {'feat max abs':>12} {'feat rel':>9} {'min cos':>9} "
                f"{'p max abs':>9} {'decisions':>10} {'ms/window':>10}")
        lines = [f"bundle {self.bundle_id}; inputs: {self.inputs}", f"tolerances: {self.tolerances}", head,
                 "-" * len(head)]
        for r in self.results:
            if not r.available:
                lines.append(f"{r.backend:<22} {'skipped':<7} {r.reason}")
                continue
            m = r.metrics
            if not m:
                lines.append(f"{r.backend:<22} {r.status:<7} {'; '.join(r.failures)}")
                continue
            dec = f"{int(m['decisions_agree'])}/{int(m['decisions_total'])}"
            ms = f"{r.ms_per_window:.0f} (T={r.frames})" if r.ms_per_window is not None else "-"
            lines.append(f"{r.backend:<22} {r.status:<7} {m['feature_max_abs']:>12.2e} {m['feature_max_rel']:>9.1e} "
                         f"{m['feature_min_cosine']:>9.6f} {m['prob_max_abs']:>9.1e} {dec:>10} {ms:>10}")
            for f in r.failures:
                lines.append(f"{'':<22}   ! {f}")
        lines.append(f"overall: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _random_feature_set(n: int, rng: np.random.Generator) -> torch.Tensor:
    """``[n, 7, 1024]`` non-negative features (like I3D's, post-ReLU averages) with 0..6 masked leading rows."""
    feats = np.abs(rng.normal(0.0, 0.5, size=(n, NUM_STEPS, 1024))).astype(np.float32)
    for i in range(n):
        feats[i, : int(rng.integers(0, NUM_STEPS))] = MASK_VALUE
    return torch.from_numpy(feats)


def _build_inputs(bundle: Bundle, frames: Sequence[int], batch: int, windows, rois,
                  rng: np.random.Generator) -> list[torch.Tensor]:
    """I3D input batches ``[B, C, T, S, S]`` float32: random ones, then the real windows grouped by T."""
    c, s = bundle.in_channels, bundle.spec.size
    groups = [torch.from_numpy(rng.uniform(-1, 1, size=(batch, c, t, s, s)).astype(np.float32)) for t in frames]
    if windows:
        from semiostream.dali_pipes.reference import preprocess

        rois = list(rois) if rois is not None else [None] * len(windows)
        by_len: dict[int, list[torch.Tensor]] = {}
        for w, r in zip(windows, rois, strict=True):
            x = preprocess(w, r, bundle.spec)  # [1, T, S, S]
            by_len.setdefault(int(x.shape[1]), []).append(x)
        for xs in by_len.values():
            for k in range(0, len(xs), batch):
                groups.append(torch.stack(xs[k:k + batch]))
    return groups


def _chunked(engine: Engine, x: torch.Tensor) -> torch.Tensor:
    """Classifier engine over any number of rows, in batches the engine accepts."""
    step = engine.io.dims["batch"][1]
    return torch.cat([engine.infer(x[k:k + step].contiguous()).float().cpu() for k in range(0, x.shape[0], step)])


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1)


def _check_backend(name: str, bundle: Bundle, groups: list[torch.Tensor], ref_feats: list[torch.Tensor],
                   cls_set: torch.Tensor, ref_cls_probs: torch.Tensor, ref_e2e_probs: torch.Tensor,
                   engine_options: dict[str, Any]) -> BackendResult:
    info = registry.get_backend(name)
    res = BackendResult(name, True, precision=info.precision)
    engines: list[Engine] = []
    try:
        opts = dict(engine_options.get(name, {}))
        fe = registry.create_engine(name, bundle, "features", **opts)
        engines.append(fe)
        cls_opts = {k: v for k, v in opts.items() if k not in ("compile", "fold_bn", "channels_last")}
        ce = registry.create_engine(name, bundle, "classifier", **cls_opts)
        engines.append(ce)
        feats = [fe.infer(g).float().cpu() for g in groups]  # first call per shape: warm-up / compile
        big = max(range(len(groups)), key=lambda i: (groups[i].shape[2], groups[i].shape[0]))
        t0 = time.perf_counter()
        fe.infer(groups[big])
        if fe.device.is_cuda:
            torch.cuda.synchronize(fe.device.torch)
        res.ms_per_window = (time.perf_counter() - t0) * 1000 / groups[big].shape[0]
        res.frames = int(groups[big].shape[2])
        p_cls = _chunked(ce, cls_set)
        padded = torch.cat([pad_features(f) for f in feats])
        p_e2e = _chunked(ce, padded)
    except Exception as e:
        res.failures.append(f"{type(e).__name__}: {e}")
        return res
    finally:
        for e in engines:
            e.close()

    max_abs = max(float((f - r).abs().max()) for f, r in zip(feats, ref_feats, strict=True))
    scale = max(float(r.abs().max()) for r in ref_feats)
    min_cos = min(float(_cosines(f, r).min()) for f, r in zip(feats, ref_feats, strict=True))
    p_abs = float((p_cls - ref_cls_probs).abs().max())
    p_rel = p_abs / max(float(ref_cls_probs.abs().max()), 1e-12)
    dec_cls = ((p_cls >= THRESHOLD) == (ref_cls_probs >= THRESHOLD))
    dec_e2e = ((p_e2e >= THRESHOLD) == (ref_e2e_probs >= THRESHOLD))
    agree = int(dec_cls.sum()) + int(dec_e2e.sum())
    total = dec_cls.numel() + dec_e2e.numel()
    res.metrics = {
        "feature_max_abs": max_abs, "feature_max_rel": max_abs / max(scale, 1e-12), "feature_min_cosine": min_cos,
        "prob_max_abs": p_abs, "prob_max_rel": p_rel,
        "e2e_prob_max_abs": float((p_e2e - ref_e2e_probs).abs().max()),
        "decisions_agree": agree, "decisions_total": total,
    }
    m = res.metrics
    if info.precision == "fp32":
        if m["feature_max_rel"] > FP32_REL_TOL:
            res.failures.append(f"feature relative error {m['feature_max_rel']:.2e} > {FP32_REL_TOL:g}")
    elif m["feature_min_cosine"] < LOWP_MIN_COSINE:
        res.failures.append(f"feature cosine {m['feature_min_cosine']:.6f} < {LOWP_MIN_COSINE}")
    if p_rel > FP32_REL_TOL:
        res.failures.append(f"classifier relative error {p_rel:.2e} > {FP32_REL_TOL:g} on reference features")
    if agree != total:
        res.failures.append(f"{total - agree} of {total} decisions differ from the reference")
    res.passed = not res.failures
    return res


def verify_bundle(bundle: Bundle | str, backends: Sequence[str] | None = None, *,
                  frames: Sequence[int] | None = None, batch: int = 2,
                  windows: Sequence[np.ndarray] | None = None, rois: Sequence[Any] | None = None,
                  n_random_features: int = 64, seed: int = 0, record: bool = True, export: bool = True,
                  engine_options: dict[str, dict[str, Any]] | None = None) -> VerifyReport:
    """Run every (requested) backend on the same inputs and judge it against the PyTorch fp32 reference.

    Args:
        bundle: bundle directory or loaded :class:`Bundle`.
        backends: names to check (default: every registered backend; unavailable ones are reported as
            skipped with the reason).
        frames: frame counts of the random I3D inputs (default: the bundle's window, 60).
        batch: windows per random input batch (and per batch of real windows).
        windows, rois: real uint16 ``[T, H, W]`` windows (and their ROIs) to include.
        n_random_features: random classifier inputs added to the classifier test set.
        record: store the verdicts next to the bundle (used by automatic backend selection).
        export: export the ONNX files first when missing or stale (needed by ONNX Runtime backends).
        engine_options: per-backend engine options, ``{"torch-cpu-bf16": {"compile": False}}``.
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    names = list(backends) if backends else list(registry.BACKENDS)
    for n in names:
        registry.get_backend(n)  # unknown names fail before any work
    frames = tuple(frames) if frames else (b.spec.window,)
    rng = np.random.default_rng(seed)
    groups = _build_inputs(b, frames, batch, windows, rois, rng)
    with torch.inference_mode():
        ref_feats = [b.i3d.extract_features(g).float() for g in groups]
        ref_padded = torch.cat([pad_features(f) for f in ref_feats])
        cls_set = torch.cat([ref_padded, _random_feature_set(n_random_features, rng)])
        ref_cls = b.classifier(cls_set).float()
        ref_e2e = b.classifier(ref_padded).float()

    results = []
    for name in names:
        ok, why = registry.get_backend(name).available()
        if not ok:
            results.append(BackendResult(name, False, reason=why, precision=registry.get_backend(name).precision))
            continue
        if export and name.startswith(("onnxruntime", "openvino")):
            from .export import onnx_from_bundle

            onnx_from_bundle(b)
        log.info("verifying %s", name)
        results.append(_check_backend(name, b, groups, ref_feats, cls_set, ref_cls, ref_e2e, engine_options or {}))

    n_real = sum(1 for _ in windows) if windows else 0
    inputs = (f"{len(frames)} random batch(es) of {batch} x T={list(frames)}, {n_real} real window(s), "
              f"{cls_set.shape[0]} classifier sequences")
    tol = (f"fp32: rel <= {FP32_REL_TOL:g}; bf16/fp16: feature cosine >= {LOWP_MIN_COSINE}; "
           "all: classifier rel <= 1e-4 and identical decisions")
    report = VerifyReport(b.bundle_id, inputs, tol, results, machine_info())
    if record:
        ran = [r for r in results if r.available]
        if ran:
            record_verdicts(b, b.bundle_id, [
                {"backend": r.backend, "passed": r.passed, "ms_per_window": r.ms_per_window, "frames": r.frames,
                 "details": {**r.metrics, "failures": r.failures}} for r in ran], report.machine)
    return report
