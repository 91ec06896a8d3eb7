"""``semiostream serve CONFIG``: the scorer service for live beds."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the live scorer: camera frames in, p(TLE) per window and per event out",
        description=(
            "Receives 16-bit frames from bed cameras (`semiostream publish` or a camera gateway), scores "
            "a 2-second window per bed every hop, batching beds together on the GPU/CPU, and publishes "
            "results for `semiostream watch` and the unit's systems. Events (seizures) are opened and "
            "closed from the EEG system or a nurse button over the control endpoint. CONFIG is a YAML "
            "file (see the README's scorer configuration section)."
        ),
    )
    p.add_argument("config", type=Path, help="scorer configuration (YAML)")
    p.add_argument("--insecure", action="store_true",
                   help="allow plaintext on endpoints reachable from other machines (not recommended)")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import signal

    from semiostream.bus.config import load_service_config
    from semiostream.bus.endpoints import EndpointError
    from semiostream.bus.security import SecurityError
    from semiostream.bus.store import StoreError

    cfg = load_service_config(args.config)
    if args.insecure:
        cfg = cfg.model_copy(update={"security": cfg.security.model_copy(update={"insecure": True})})
    if not (cfg.bundle / "bundle.json").is_file():
        raise UserError(f"bundle {cfg.bundle} has no bundle.json; point `bundle:` at a folder written by "
                        "`semiostream train` (or the demo)")
    logging.getLogger("semiostream").setLevel(logging.INFO)
    from semiostream.bus.runtime import ScorerRuntime

    try:
        runtime = ScorerRuntime(cfg)  # checks keys, ports and the database before loading the model
    except (SecurityError, EndpointError, StoreError) as e:
        raise UserError(str(e)) from e
    except _model_errors() as e:  # evaluated only when the first clause did not match
        raise UserError(str(e)) from e
    ep = cfg.endpoints
    print(f"scoring with {runtime.scorer!r}\nframes {ep.frames}  results {ep.results}  control {ep.control}"
          + (f"  metrics http://127.0.0.1:{cfg.metrics_port}/metrics" if cfg.metrics_port else "")
          + (f"\nresults database {cfg.store.path}" if cfg.store.path else ""), flush=True)
    if hasattr(signal, "SIGHUP"):  # re-read the key allow-lists
        signal.signal(signal.SIGHUP, lambda *_: runtime.service.reload_requested.set())
    signal.signal(signal.SIGTERM, lambda *_: runtime.service.stop(timeout=0))
    try:
        runtime.run()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()
    return 0


def _model_errors() -> tuple[type[Exception], ...]:
    """Bundle and engine errors (imported only once an error is raised: they import torch)."""
    from semiostream.engines.base import EngineError
    from semiostream.models.bundle import BundleError

    return BundleError, EngineError, ValueError
