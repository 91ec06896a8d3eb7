"""Which backend to use: an explicit ``--backend`` wins; otherwise the fastest backend that passed
verification for this bundle on this machine.

Verdicts (written by :func:`semiostream.trt_build.verify.verify_bundle`) live next to the bundle in
``verified_backends.json``::

    {"format": "semiostream-verdicts", "version": 1,
     "entries": [{"bundle_id": "...", "machine": "<fingerprint>", "machine_info": {...},
                  "backend": "torch-cpu-bf16", "passed": true, "ms_per_window": 251.0,
                  "frames": 60, "checked_at": "2026-...Z", "details": {...}}, ...]}

The machine fingerprint hashes what decides numerical results and speed (CPU model and core count, GPU
names, torch / onnxruntime / TensorRT / OpenVINO versions), not the host name, so a rebuilt container with the same
stack keeps its verdicts and a driver or library upgrade asks for verification again. Without any verdict
the reference backend (plain PyTorch fp32, CUDA when present) is used.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

from semiostream.core.files import atomic_write

from . import artifacts as art
from .base import EngineError
from .registry import REFERENCE, get_backend

log = logging.getLogger(__name__)

VERDICT_FORMAT = "semiostream-verdicts"
VERDICT_VERSION = 1
_lock = threading.Lock()


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Facts that decide numerical results and speed on this machine."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    ort = package_version("onnxruntime") or package_version("onnxruntime-gpu")
    trt = None
    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12"):
        trt = trt or package_version(dist)
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "torch": torch.__version__,
        "onnxruntime": ort,
        "tensorrt": trt,
        "openvino": package_version("openvino"),
        "python": platform.python_version(),
    }


def machine_fingerprint(info: dict[str, Any] | None = None) -> str:
    info = info or machine_info()
    keys = ("cpu", "cpu_count", "torch_threads", "gpus", "torch", "onnxruntime", "tensorrt")
    facts = {k: info.get(k) for k in keys}
    if info.get("openvino"):  # only where installed: machines without it keep their fingerprints
        facts["openvino"] = info["openvino"]
    blob = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def verdict_path(bundle) -> Path:
    return art.bundle_dir(bundle) / art.VERDICT_FILE


def read_verdicts(bundle) -> list[dict[str, Any]]:
    """All entries of the bundle's verdict file ([] when absent; unreadable files are ignored with a
    warning, since verification can always be run again)."""
    path = verdict_path(bundle)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        if data.get("format") != VERDICT_FORMAT or data.get("version") != VERDICT_VERSION:
            raise ValueError(f"format {data.get('format')!r} version {data.get('version')!r}")
        return list(data["entries"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("ignoring unreadable %s (%s); run `semiostream verify` to rewrite it", path, e)
        return []


def record_verdicts(bundle, bundle_id: str, results: list[dict[str, Any]],
                    info: dict[str, Any] | None = None) -> Path:
    """Store verification results for ``bundle_id`` on this machine next to the bundle.

    Args:
        results: one dict per backend with at least ``backend``, ``passed`` and ``ms_per_window``
            (plus optional ``frames`` and ``details``). Earlier entries for the same bundle, machine and
            backend are replaced; entries of other machines or bundle versions are kept.
    """
    info = info or machine_info()
    fp = machine_fingerprint(info)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with _lock:
        entries = read_verdicts(bundle)
        names = {r["backend"] for r in results}
        entries = [e for e in entries
                   if not (e.get("bundle_id") == bundle_id and e.get("machine") == fp and e.get("backend") in names)]
        for r in results:
            entries.append({"bundle_id": bundle_id, "machine": fp, "machine_info": info, "checked_at": now,
                            **{k: r[k] for k in ("backend", "passed", "ms_per_window") },
                            "frames": r.get("frames"), "details": r.get("details", {})})
        path = verdict_path(bundle)
        atomic_write(path, json.dumps(
            {"format": VERDICT_FORMAT, "version": VERDICT_VERSION, "entries": entries}, indent=2) + "\n")
    return path


def verified_backends(bundle, bundle_id: str | None = None) -> list[tuple[str, float]]:
    """``[(backend, ms_per_window)]`` that passed for this bundle on this machine and can run now,
    fastest first."""
    bid = bundle_id or bundle.bundle_id
    fp = machine_fingerprint()
    out = []
    for e in read_verdicts(bundle):
        if e.get("bundle_id") != bid or e.get("machine") != fp or not e.get("passed"):
            continue
        name = e.get("backend")
        try:
            ok = get_backend(name).available()[0]
        except EngineError:
            ok = False
        ms = e.get("ms_per_window")
        if ok and isinstance(ms, int | float):
            out.append((name, float(ms)))
    return sorted(out, key=lambda t: t[1])


def select_backend(bundle, requested: str | None = None) -> str:
    """The backend name to use for ``bundle`` (a loaded :class:`Bundle`).

    ``requested`` (``--backend``) wins if it exists and can run here (else :class:`EngineError` saying
    why). Otherwise: the fastest verified backend (see module docstring), else the reference backend.
    """
    import torch

    if requested:
        ok, why = get_backend(requested).available()
        if not ok:
            raise EngineError(f"backend {requested} cannot run here: {why}")
        return requested
    ranked = verified_backends(bundle)
    if ranked:
        log.info("backend %s: fastest verified for bundle %s (%.0f ms/window)", ranked[0][0],
                 bundle.bundle_id, ranked[0][1])
        return ranked[0][0]
    ref = REFERENCE["cuda" if torch.cuda.is_available() else "cpu"]
    log.warning("no backend is verified for bundle %s on this machine; using the reference %s. "
                "Run `semiostream verify %s` to enable faster backends.", bundle.bundle_id, ref,
                art.bundle_dir(bundle))
    return ref


def explain_cpu_choice(bundle=None) -> str:
    """One line: which CPU backend a Scorer picks here (for ``bundle``, or in general) and why."""
    from .registry import BACKENDS

    usable = [n for n, i in BACKENDS.items() if i.device == "cpu" and i.available()[0]]
    if bundle is not None:
        ranked = [(n, ms) for n, ms in verified_backends(bundle) if n in usable]
        if ranked:
            others = ", ".join(f"{n} {ms:.0f} ms" for n, ms in ranked[1:]) or "no other verified"
            return (f"{ranked[0][0]}: the fastest verified for bundle {bundle.bundle_id} on this machine "
                    f"({ranked[0][1]:.0f} ms/window; {others})")
        return (f"{REFERENCE['cpu']} (reference): no CPU backend verified for bundle {bundle.bundle_id} here; "
                f"`semiostream verify {art.bundle_dir(bundle)}` times {', '.join(usable)} and enables the fastest")
    ov = [n for n in usable if n.startswith("openvino")]
    if ov:
        return (f"fastest verified per bundle among {', '.join(usable)} (`semiostream verify BUNDLE`); "
                f"OpenVINO installed ({', '.join(ov)})")
    return (f"fastest verified per bundle among {', '.join(usable)} (`semiostream verify BUNDLE`); OpenVINO, "
            "often fastest on CPUs, is not installed: pip install 'semiostream[openvino]'")
