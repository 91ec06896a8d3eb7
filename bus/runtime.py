"""Assemble a running scorer from a config: Scorer -> dynamic batcher -> Service.

This is the only place the bus touches the engines; batching and inference stay theirs.
"""

from __future__ import annotations

import functools
import logging

from semiostream.config import ServiceConfig

from .metrics import BusMetrics
from .service import Service

log = logging.getLogger(__name__)


class ScorerRuntime:
    """A :class:`~.service.Service` wired to a real :class:`~semiostream.engines.scorer.Scorer`.

    ``start()`` serves in a background thread; ``run()`` serves in the calling thread; ``close()``
    stops the service, drains the batcher and releases the engines, in that order.
    """

    def __init__(self, cfg: ServiceConfig, scorer=None, warmup: bool = True) -> None:
        from semiostream.engines.scorer import Scorer

        self.cfg = cfg
        self.scorer = scorer or Scorer(cfg.bundle, cfg.backend, max_batch=cfg.batching.max_batch or 8)
        self.metrics = BusMetrics()
        if warmup:  # compile / pick kernels now rather than on the first live window
            log.info("warming up %r ...", self.scorer)
            log.info("warm-up took %.1f s", self.scorer.warmup())
        max_batch = cfg.batching.max_batch or (8 if self.scorer.device.type == "cuda" else 1)
        self.batcher = self.scorer.batcher(max_batch, cfg.batching.max_wait_ms,
                                           on_batch=self.metrics.batch_size.observe)
        detector_factory = None
        if cfg.detector.kind != "full":
            from semiostream.dali_pipes.roi import make_detector

            detector_factory = functools.partial(make_detector, cfg.detector.kind, spec=self.scorer.spec,
                                                 weights=cfg.detector.weights)
        self.service = Service(
            cfg, self._submit, self.scorer.spec, self.scorer.bundle.labels, self.scorer.bundle.bundle_id,
            detector_factory=detector_factory, metrics=self.metrics,
        )
        log.info("scorer ready: %r", self.scorer)

    def _submit(self, frames, roi):
        return self.batcher.submit((frames, roi))

    def start(self) -> ScorerRuntime:
        self.service.start()
        return self

    def run(self) -> None:
        self.service.run()

    def close(self) -> None:
        self.service.stop()
        self.batcher.close(timeout=30)
        self.scorer.close()

    def __enter__(self) -> ScorerRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
