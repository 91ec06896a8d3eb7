"""Configuration schema of the scorer service (one YAML file), validated with pydantic.

Example::

    bundle: ~/bundles/fle-tle-v3          # model bundle directory
    backend: null                          # null = fastest verified backend on this machine
    endpoints:
      frames: tcp://0.0.0.0:5555           # cameras connect here (PUB -> this SUB)
      results: tcp://0.0.0.0:5556          # `semiostream watch` and the EMU system subscribe here
      control: tcp://127.0.0.1:5557        # event start/stop, status (request/reply)
    metrics_port: 9108                     # Prometheus /metrics; null = off
    beds:                                  # omit to accept any bed (up to limits.beds)
      - id: bed-01
        roi: [40, 20, 600, 560]            # static crop; omit to detect at stream start
        camera: cam-bed-01                 # the camera key (keys/cameras/cam-bed-01.key) that owns it
        size: [640, 576]                   # the camera's frame size; other sizes are refused
      - id: bed-02
    detector: {kind: full}                 # yolox | maskrcnn | static | full, weights: path
    windows: {hop: 30}                     # frames between scores (30 = every 1 s at 30 fps)
    batching: {max_batch: null, max_wait_ms: 50}  # null: 8 windows per batch on a GPU, 1 on a CPU
    security:
      secret_key: keys/scorer.key_secret   # CURVE on; required off-loopback
      cameras: keys/cameras/               # camera NAME.key files: may publish frames (of their beds)
      viewers: keys/viewers/               # may subscribe to results
      operators: keys/operators/           # may use control (events, status)
      insecure: false
    limits: {beds: 256}                    # global bounds; unset ones are derived from this machine
    store: {path: results.sqlite, retention_days: 30}   # every result and event, kept across crashes
    reports: reports/                      # an event review report (HTML + PNG) per closed event
    threshold: 0.5                         # label TLE when (mean) p(TLE) >= this (windows and events)

Every error names the field and how to fix it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from semiostream.core.decision import DECISION_THRESHOLD
from semiostream.core.errors import UserError

BED_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
KEY_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_SIDE = 8192


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Endpoints(_Strict):
    frames: str = "tcp://127.0.0.1:5555"
    results: str = "tcp://127.0.0.1:5556"
    control: str = "tcp://127.0.0.1:5557"

    @field_validator("frames", "results", "control")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not v.startswith(("tcp://", "ipc://", "inproc://")):
            hint = f"tcp://{v}" if ":" in v and "://" not in v else "tcp://127.0.0.1:5555"
            raise ValueError(f"{v!r} is not a ZeroMQ endpoint; write e.g. {hint}")
        return v


class BedConfig(_Strict):
    id: str = Field(pattern=BED_PATTERN)
    roi: tuple[int, int, int, int] | None = None
    camera: str | None = Field(None, pattern=KEY_NAME_PATTERN,
                               description="name of the camera key (cameras/NAME.key) that owns this bed")
    size: tuple[int, int] | None = Field(None, description="[width, height] of the camera's frames")

    @field_validator("size")
    @classmethod
    def _size(cls, v):
        if v is not None and not (1 <= v[0] <= MAX_SIDE and 1 <= v[1] <= MAX_SIDE):
            raise ValueError(f"size {list(v)} must be [width, height], each 1..{MAX_SIDE} pixels")
        return v

    @field_validator("roi")
    @classmethod
    def _roi(cls, v):
        if v is not None and not (0 <= v[0] < v[2] and 0 <= v[1] < v[3]):
            raise ValueError(f"roi {list(v)} must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1, in pixels")
        return v


class DetectorConfig(_Strict):
    kind: Literal["yolox", "maskrcnn", "full"] = "full"
    weights: Path | None = None
    redetect_every: int = Field(0, ge=0, description="frames between re-detections; 0 = only at stream start")
    crop_rule: Literal["paper", "single-box"] = Field(
        "paper", description="paper: person+bed box, else the full frame; single-box: also one box alone")

    @model_validator(mode="after")
    def _weights(self):
        if self.kind == "yolox" and self.weights is None:
            raise ValueError("detector.kind 'yolox' needs detector.weights: the path of a YOLOX .onnx file")
        return self


class WindowConfig(_Strict):
    hop: int = Field(30, ge=1, description="frames between consecutive scores of one bed")
    stale_after_s: float = Field(5.0, gt=0, description="a bed silent this long is reported stale")
    forget_after_s: float = Field(60.0, gt=0, description="a stale bed's state is dropped after this")
    max_inflight: int = Field(2, ge=1, description="windows of one bed waiting for the model; more are dropped")
    restart_quiet_s: float = Field(
        1.0, gt=0, description="without CURVE, a bed's sequence may restart only after it was silent this long")


class BatchingConfig(_Strict):
    """``max_batch`` None (the default) picks by device (:func:`semiostream.core.batching.live_max_batch`):
    8 on a GPU, where batching raises throughput, 1 on a CPU, where it does not and would only hold finished
    windows back for their batch-mates."""

    max_batch: int | None = Field(None, ge=1, le=256)
    max_wait_ms: float = Field(50.0, ge=0, le=10_000)


class SecurityConfig(_Strict):
    """CURVE keys. ``cameras``/``viewers``/``operators`` are allow-list folders of public ``NAME.key``
    files, one per role; a key may publish frames, read results or use control only if it is in that
    role's folder. The folders are re-read while the scorer runs (SIGHUP, or within a few seconds)."""

    secret_key: Path | None = None
    cameras: Path | None = None
    viewers: Path | None = None
    operators: Path | None = None
    insecure: bool = False
    allowed_clients: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _split_roles(self):
        if self.allowed_clients is not None:
            raise ValueError("allowed_clients was split by role: use cameras: (frames), viewers: (results) "
                             "and operators: (control), each a folder of NAME.key files")
        return self


class LimitsConfig(_Strict):
    """Global bounds over all beds; ``None`` derives a default from this machine (see bus/bounds.py)."""

    frame_bytes: int | None = Field(None, ge=1 << 20, description="bytes of frames held over all beds")
    queued_windows: int | None = Field(None, ge=1, description="windows waiting for the model over all beds")
    beds: int = Field(256, ge=1, le=100_000, description="beds held at once when `beds:` is omitted")
    frame_pixels: int = Field(2048 * 2048, ge=1, le=MAX_SIDE * MAX_SIDE,
                              description="largest frame (width x height) of a bed without a configured size")
    open_events: int = Field(256, ge=1, le=100_000, description="events open at once")


class StoreConfig(_Strict):
    path: Path | None = Field(Path("results.sqlite"), description="SQLite results database; null = off")
    retention_days: float | None = Field(30.0, gt=0, allow_inf_nan=False,
                                         description="windows and closed events kept this long; null = forever")
    prune_every_s: float = Field(3600.0, ge=1, le=86_400, allow_inf_nan=False,
                                 description="seconds between retention passes (each also reclaims free space)")


class ServiceConfig(_Strict):
    bundle: Path
    backend: str | None = None
    endpoints: Endpoints = Endpoints()
    metrics_port: int | None = Field(None, ge=1, le=65535)
    beds: list[BedConfig] | None = None
    detector: DetectorConfig = DetectorConfig()
    windows: WindowConfig = WindowConfig()
    batching: BatchingConfig = BatchingConfig()
    security: SecurityConfig = SecurityConfig()
    limits: LimitsConfig = LimitsConfig()
    store: StoreConfig = StoreConfig()
    reports: Path | None = Field(None, description="folder of event review reports (one per closed event); null = off")
    queue_seconds: float = Field(2.0, gt=0, le=60, description="seconds of frames queued per camera")
    fps: float = Field(30.0, gt=0, le=1000)
    threshold: float = Field(DECISION_THRESHOLD, ge=0, le=1, allow_inf_nan=False,
                             description="label a window or event TLE when (mean) p(TLE) >= this")

    @field_validator("beds")
    @classmethod
    def _unique_beds(cls, v):
        if v is not None:
            dup = sorted(i for i, n in Counter(b.id for b in v).items() if n > 1)
            if dup:
                raise ValueError(f"bed ids must be unique; repeated: {dup}")
        return v


def _format_errors(e: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid scorer configuration:"]
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check its spelling against the documented fields"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(None, None, "mapping keys must be plain values",
                                                    key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping; keep one", key_node.start_mark)
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_service_config(path: str | Path) -> ServiceConfig:
    """Read and validate a YAML service config; relative paths are resolved against its folder.

    Raises:
        UserError: unreadable or non-UTF-8 file, bad YAML (duplicate keys included), or invalid fields
            (each named with the fix).
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as e:
        raise UserError(f"cannot read config {p}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"{p} must hold a YAML mapping (field: value lines)")
    try:
        cfg = ServiceConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(_format_errors(e, str(p))) from None
    return resolve_paths(cfg, p.parent)


def resolve_paths(cfg: ServiceConfig, base: Path) -> ServiceConfig:
    def fix(v: Path | None) -> Path | None:
        if v is None:
            return None
        v = v.expanduser()
        return v if v.is_absolute() else (base / v)

    sec = cfg.security
    return cfg.model_copy(update={
        "bundle": fix(cfg.bundle),
        "detector": cfg.detector.model_copy(update={"weights": fix(cfg.detector.weights)}),
        "security": sec.model_copy(update={
            "secret_key": fix(sec.secret_key), "cameras": fix(sec.cameras), "viewers": fix(sec.viewers),
            "operators": fix(sec.operators),
        }),
        "store": cfg.store.model_copy(update={"path": fix(cfg.store.path)}),
        "reports": fix(cfg.reports),
    })
