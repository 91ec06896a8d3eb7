"""Shared pieces of the benchmarks: machine facts, process CPU/RSS, percentiles, JSON, tables, plots.

Every benchmark writes ``<out>/<name>_<machine>.json`` (``machine`` = ``cpu``, or a slug of the GPU name)
with the machine facts below, the load average before and after (these machines are shared: compare
numbers taken side by side in one run, as ratios), the exact command, and its results.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OUT = Path("bench/results")
_LIBS = ("torch", "numpy", "nvidia-dali-cuda130", "pyzmq", "onnxruntime", "onnxruntime-gpu", "tensorrt",
         "tensorrt-cu13", "matplotlib")


def gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def machine_facts() -> dict[str, Any]:
    """CPU model, cores, memory, GPUs, library versions, load average (1/5/15 min), date."""
    import torch

    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    from semiostream.engines.select import cpu_model, package_version  # imports torch: not at CLI start-up

    libs = {d: v for d in _LIBS if (v := package_version(d)) is not None}
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "gpus": gpus(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": libs,
        "loadavg": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def machine_tag() -> str:
    """``cpu`` on machines without a GPU, else a slug of the first GPU's name (``nvidia-h100-80gb-hbm3``)."""
    g = gpus()
    if not g:
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", g[0].lower()).strip("-")


class ProcessSampler:
    """CPU time and resident memory of this process from ``/proc`` (Linux; psutil is not needed).

    ``sample()`` returns ``{"cpu_percent": since the previous sample (100 = one core), "rss_mib": now}``.
    """

    def __init__(self, pid: int | str = "self") -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")
        self._last = (time.monotonic(), self.cpu_seconds())
        self.peak_rss_mib = self.rss_mib()

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def sample(self) -> dict[str, float]:
        now, cpu = time.monotonic(), self.cpu_seconds()
        t0, c0 = self._last
        self._last = (now, cpu)
        rss = self.rss_mib()
        self.peak_rss_mib = max(self.peak_rss_mib, rss)
        return {"cpu_percent": 100.0 * (cpu - c0) / max(now - t0, 1e-9), "rss_mib": rss}


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ..., "p99": ..., "max": ..., "n": ...}`` (None when there are no values)."""
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, float | None] = {f"p{q:g}": (float(np.percentile(v, q)) if v.size else None) for q in qs}
    out["max"] = float(v.max()) if v.size else None
    out["n"] = int(v.size)
    return out


def command_line(argv: Sequence[str] | None = None) -> str:
    if argv is None:
        return " ".join(["semiostream" if sys.argv[0].endswith("semiostream") else Path(sys.argv[0]).name,
                         *sys.argv[1:]])
    return " ".join(argv)


def write_result(name: str, result: dict[str, Any], out_dir: Path | str = DEFAULT_OUT) -> Path:
    """Write ``result`` (with ``benchmark``, ``machine`` and ``command`` filled in) as JSON; returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}_{machine_tag()}.json"
    path.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print a table (rich when on a terminal, plain text otherwise); returns it as markdown."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[_fmt(v) for v in r])
    Console(width=160).print(t)
    md = [f"| {' | '.join(columns)} |", "|" + "---|" + "---:|" * (len(columns) - 1)]
    md += [f"| {' | '.join(_fmt(v) for v in r)} |" for r in rows]
    return "\n".join(md)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "-"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 1:
            return f"{v:.2f}"
        if a >= 1e-3:
            return f"{v:.3f}"
        return f"{v:.1e}"
    return str(v)


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_path(out_dir: Path | str, name: str, what: str) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{name}_{machine_tag()}_{what}.png"


def default_checkpoint() -> Path:
    """The Kinetics-400 I3D weights: ``../shared/assets/i3d-kinetics-400.ckpt`` beside the checkout when it
    exists (development machines), else the file ``semiostream weights fetch`` writes."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "i3d-kinetics-400.ckpt"
    if shared.is_file():
        return shared
    from semiostream.models.fetch import default_weights_path

    return default_weights_path()


def bench_bundle(path: str | Path | None = None, ckpt: str | Path | None = None, workdir: str | Path | None = None):
    """A model bundle to benchmark: ``path`` if given, else one made from the real Kinetics-400 I3D and a
    randomly initialised classifier (speed does not depend on the classifier's weights) under ``workdir``
    (default: a new temporary folder). Raises ``UserError`` when no I3D weights are found."""
    import tempfile

    import torch

    from semiostream.core.errors import UserError
    from semiostream.models.bundle import BundleError, load_bundle, save_bundle
    from semiostream.models.classifier import SeizureClassifier
    from semiostream.models.weights import load_i3d_checkpoint

    if path:
        try:
            return load_bundle(path)
        except BundleError as e:
            raise UserError(str(e)) from e
    ckpt = Path(ckpt) if ckpt else default_checkpoint()
    if not ckpt.is_file():
        raise UserError(f"no I3D weights at {ckpt}: run `semiostream weights fetch`, or pass --bundle or --ckpt")
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="semiostream-bench-"))
    torch.manual_seed(0)
    return load_bundle(save_bundle(work / "bundle", load_i3d_checkpoint(ckpt, in_channels=1),
                                   SeizureClassifier().eval()))
