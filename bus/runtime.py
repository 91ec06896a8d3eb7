"""Assemble a running scorer from a config: Scorer -> dynamic batcher -> Service.

This is the only place the bus touches the engines; batching and inference stay theirs.

Start-up order puts every check a user can fail before the slow model load: security settings and
keys, then binding the three endpoints and the metrics port, then opening the results database;
only then the bundle is loaded and the model warmed up.
"""

from __future__ import annotations

import functools
import logging

from semiostream.bus.config import ServiceConfig
from semiostream.core.batching import live_max_batch

from .bounds import Bounds
from .endpoints import EndpointError, bind_sockets
from .metrics import BusMetrics
from .refusals import Refusals
from .service import Service

log = logging.getLogger(__name__)


class ScorerRuntime:
    """A :class:`~.service.Service` wired to a real :class:`~semiostream.engines.scorer.Scorer`.

    ``start()`` serves in a background thread; ``run()`` serves in the calling thread; ``close()``
    stops the service, drains the batcher and releases the engines, in that order.

    Raises (before the model is loaded): :class:`~.security.SecurityError`,
    :class:`~.endpoints.EndpointError`, :class:`~.store.StoreError`.
    """

    def __init__(self, cfg: ServiceConfig, scorer=None, warmup: bool = True) -> None:
        self.cfg = cfg
        self.metrics = BusMetrics()
        self.refusals = Refusals(self.metrics.dropped)
        # the device is not known before the model loads: bound for the larger (GPU) batch
        self.bounds = Bounds.derive(cfg.limits, live_max_batch(cfg.batching.max_batch, on_gpu=True))
        beds = [b.id for b in cfg.beds] if cfg.beds is not None else None
        self.sockets = bind_sockets(cfg, self.bounds, self.refusals, beds)
        self.store = None
        self.reports = None
        self.scorer = scorer
        self.batcher = None
        try:
            if cfg.metrics_port:
                try:
                    self.metrics.serve(cfg.metrics_port)
                except OSError as e:
                    raise EndpointError(f"metrics_port {cfg.metrics_port} cannot be served ({e.strerror}); "
                                        "choose another port or set metrics_port: null") from None
            if cfg.store.path is not None:
                from .store import ResultStore

                self.store = ResultStore(cfg.store.path, cfg.store.retention_days)
            self._load_model(warmup)
        except BaseException:
            self._release()
            raise
        log.info("scorer ready: %r (%s)", self.scorer, self.bounds.describe())

    def _load_model(self, warmup: bool) -> None:
        from semiostream.engines.scorer import Scorer

        cfg = self.cfg
        self.scorer = self.scorer or Scorer(cfg.bundle, cfg.backend,
                                            max_batch=live_max_batch(cfg.batching.max_batch, on_gpu=True))
        if warmup:  # compile / pick kernels now rather than on the first live window
            log.info("warming up %r ...", self.scorer)
            log.info("warm-up took %.1f s", self.scorer.warmup())
        max_batch = live_max_batch(cfg.batching.max_batch, on_gpu=self.scorer.device.type == "cuda")
        self.batcher = self.scorer.batcher(max_batch, cfg.batching.max_wait_ms,
                                           on_batch=self.metrics.batch_size.observe)
        if cfg.reports is not None:
            from .reports import ReportWriter

            self.reports = ReportWriter(cfg.reports, cfg.bundle, device=self.scorer.device.type,
                                        threshold=cfg.threshold)
        detector_factory = None
        if cfg.detector.kind != "full":
            from semiostream.detectors.registry import make_detector

            # one detector shared by every bed (it is used from the service thread only)
            detector_factory = functools.cache(functools.partial(
                make_detector, cfg.detector.kind, spec=self.scorer.spec, weights=cfg.detector.weights,
                crop_rule=cfg.detector.crop_rule))
        self.service = Service(
            cfg, self._submit, self.scorer.spec, self.scorer.bundle.labels, self.scorer.bundle.bundle_id,
            detector_factory=detector_factory, metrics=self.metrics, bounds=self.bounds, sockets=self.sockets,
            store=self.store, refusals=self.refusals, reports=self.reports,
        )

    def _submit(self, frames, roi, intensity=None):
        return self.batcher.submit((frames, roi, intensity))

    def start(self) -> ScorerRuntime:
        self.service.start()
        return self

    def run(self) -> None:
        self.service.run()

    def _release(self) -> None:
        if self.reports is not None:
            self.reports.close()
        if self.batcher is not None:
            self.batcher.close(timeout=30)
        if self.scorer is not None:
            self.scorer.close()
        if self.store is not None:
            self.store.close()
        if self.sockets is not None and getattr(self, "service", None) is None:
            self.sockets.close()
        self.metrics.close()

    def close(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.stop()
            if service.sockets is not None and service._thread is None:
                service._close()  # never started: close its sockets here
        self.sockets = None
        self._release()

    def __enter__(self) -> ScorerRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
