"""Wire protocol of the semiostream bus (version 1). See docs/protocol.md for the prose version.

Frame message, camera -> scorer, three parts::

    [b"ir/<bed>", header, payload]

    header  UTF-8 JSON object, at most MAX_HEADER_BYTES:
            {"v": 1, "bed": str, "seq": int >= 0, "t_ns": int (capture time, ns since the epoch),
             "h": int, "w": int, "dtype": "<u2", "roi": [x0, y0, x1, y1] (optional)}
    payload exactly h * w * 2 bytes: the frame, uint16 little-endian, row-major, sent zero-copy.

Result message, scorer -> subscribers: ``[b"score/<bed>", JSON]``; event summary when an event
closes: ``[b"event/<bed>", JSON]`` (fields in :class:`ScoreResult` and :class:`EventResult`).

Decoding never trusts the sender: every field is checked, and any problem raises
:class:`ProtocolError` with a short machine-readable ``reason`` used to count drops per cause.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from semiostream.core.decision import EventDecision
from semiostream.core.frames import Frame

VERSION = 1
FRAME_PREFIX = b"ir/"
SCORE_PREFIX = b"score/"
EVENT_PREFIX = b"event/"
DTYPE = "<u2"
MAX_HEADER_BYTES = 1024
MAX_SIDE = 8192
BED_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEADER_KEYS = {"v", "bed", "seq", "t_ns", "h", "w", "dtype", "roi"}


class ProtocolError(ValueError):
    """A message that breaks the protocol. ``reason`` names the rule (used as a metrics label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def check_bed(bed: Any) -> str:
    if not isinstance(bed, str) or not BED_RE.fullmatch(bed):
        raise ProtocolError("bed", f"bed id {bed!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return bed


def frame_topic(bed: str) -> bytes:
    return FRAME_PREFIX + check_bed(bed).encode()


def encode_frame(bed: str, seq: int, t_ns: int, image: np.ndarray,
                 roi: tuple[int, int, int, int] | None = None) -> list:
    """Build the three message parts for ``image`` (``[H, W]`` uint16). The payload is the array
    itself (little-endian, C-contiguous), to be sent with ``copy=False``; do not modify it afterwards.
    """
    if image.ndim != 2 or image.dtype.kind != "u" or image.dtype.itemsize != 2:
        raise ValueError(f"a frame must be a [H, W] uint16 array; got {image.dtype} {image.shape}")
    payload = np.ascontiguousarray(image, dtype=DTYPE)
    header: dict[str, Any] = {"v": VERSION, "bed": bed, "seq": int(seq), "t_ns": int(t_ns),
                              "h": int(image.shape[0]), "w": int(image.shape[1]), "dtype": DTYPE}
    if roi is not None:
        header["roi"] = [int(v) for v in roi]
    return [frame_topic(bed), json.dumps(header, separators=(",", ":")).encode(), payload]


def _int(header: dict, key: str, lo: int, hi: int) -> int:
    v = header.get(key)
    if type(v) is not int or not lo <= v <= hi:  # bool is not an int here
        raise ProtocolError(key, f"{key}={v!r} must be an integer in [{lo}, {hi}]")
    return v


def decode_frame(parts: list) -> Frame:
    """Validate and decode a received frame message (parts as bytes or ``zmq.Frame``).

    Raises:
        ProtocolError: with ``reason`` in {parts, topic, header_size, header_json, fields, version,
            bed, seq, t_ns, h, w, dtype, payload_size, roi}.
    """
    if len(parts) != 3:
        raise ProtocolError("parts", f"expected 3 message parts, got {len(parts)}")
    topic, header_raw, payload = (p.buffer if hasattr(p, "buffer") else p for p in parts)
    topic = bytes(topic)
    if len(header_raw) > MAX_HEADER_BYTES:
        raise ProtocolError("header_size", f"header has {len(header_raw)} bytes (max {MAX_HEADER_BYTES})")
    try:
        header = json.loads(bytes(header_raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError("header_json", f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header_json", "header must be a JSON object")
    unknown = set(header) - _HEADER_KEYS
    if unknown:
        raise ProtocolError("fields", f"unknown header fields {sorted(unknown)}")
    if type(header.get("v")) is not int or header["v"] != VERSION:  # true == 1 in Python; not here
        raise ProtocolError("version", f"protocol version {header.get('v')!r}; this scorer speaks {VERSION}")
    bed = check_bed(header.get("bed"))
    if topic != FRAME_PREFIX + bed.encode():
        raise ProtocolError("topic", f"topic {topic[:80]!r} does not match bed {bed!r}")
    seq = _int(header, "seq", 0, 2**63 - 1)
    t_ns = _int(header, "t_ns", 0, 2**63 - 1)
    h = _int(header, "h", 1, MAX_SIDE)
    w = _int(header, "w", 1, MAX_SIDE)
    if header.get("dtype") != DTYPE:
        raise ProtocolError("dtype", f"dtype {header.get('dtype')!r}; frames must be {DTYPE!r} (uint16 LE)")
    if len(payload) != h * w * 2:
        raise ProtocolError("payload_size", f"payload has {len(payload)} bytes, {h}x{w} uint16 needs {h * w * 2}")
    roi = header.get("roi")
    if roi is not None:
        if (not isinstance(roi, list) or len(roi) != 4 or any(type(v) is not int for v in roi)
                or not (0 <= roi[0] < roi[2] <= w and 0 <= roi[1] < roi[3] <= h)):
            raise ProtocolError("roi", f"roi {roi!r} must be [x0, y0, x1, y1] inside the {w}x{h} frame")
        roi = tuple(roi)
    image = np.frombuffer(payload, dtype=DTYPE).reshape(h, w)
    return Frame(bed=bed, seq=seq, t_ns=t_ns, image=image, roi=roi)


@dataclass(frozen=True)
class ScoreResult:
    """p(TLE) of one window of one bed. Times are capture times in ns since the epoch."""

    bed: str
    first_seq: int
    last_seq: int
    first_t_ns: int
    last_t_ns: int
    p_tle: float
    label: str
    bundle_id: str
    latency_ms: float
    event_id: str | None = None
    v: int = VERSION


@dataclass(frozen=True)
class EventResult:
    """The ``event/<bed>`` message: the decision on an event (seizure) that was open on one bed.

    The decision itself is one :class:`~semiostream.core.decision.EventDecision` (the archive's and the
    trainer's too); this is its wire form, made from it by :meth:`of`. It stays a protocol type because its
    fields are the bus protocol (version ``v``, docs/protocol.md), decoded from other processes by
    :func:`decode_result` and stored as they are in the results database: flat JSON with the event's bed,
    id, times, bundle and report around the decided value, ``p_tle`` and ``label`` None when no window was
    scored. The decision's extra fields (threshold, p_min, p_max) are not on the wire.
    """

    bed: str
    event_id: str
    start_t_ns: int
    stop_t_ns: int
    windows: int
    p_tle: float | None
    label: str | None
    bundle_id: str
    report: str | None = None  # path of the event review report (written shortly after), if configured
    v: int = VERSION

    @classmethod
    def of(cls, decision: EventDecision | None, *, bed: str, event_id: str, start_t_ns: int, stop_t_ns: int,
           bundle_id: str, report: str | None = None) -> EventResult:
        """The message of an event decided as ``decision`` (None: no window was scored)."""
        return cls(bed=bed, event_id=event_id, start_t_ns=start_t_ns, stop_t_ns=stop_t_ns,
                   windows=decision.windows if decision is not None else 0,
                   p_tle=decision.p_tle if decision is not None else None,
                   label=decision.label if decision is not None else None, bundle_id=bundle_id, report=report)


def encode_result(result: ScoreResult | EventResult) -> list[bytes]:
    prefix = SCORE_PREFIX if isinstance(result, ScoreResult) else EVENT_PREFIX
    return [prefix + result.bed.encode(), json.dumps(asdict(result)).encode()]


def decode_result(parts: list) -> ScoreResult | EventResult:
    """Decode a result message (for subscribers such as ``semiostream watch``)."""
    if len(parts) != 2:
        raise ProtocolError("parts", f"expected 2 result parts, got {len(parts)}")
    topic, body = (bytes(p.buffer if hasattr(p, "buffer") else p) for p in parts)
    try:
        d = json.loads(body)
        cls = ScoreResult if topic.startswith(SCORE_PREFIX) else EventResult
        if not topic.startswith((SCORE_PREFIX, EVENT_PREFIX)):
            raise ProtocolError("topic", f"unknown result topic {topic[:40]!r}")
        return cls(**d)
    except (json.JSONDecodeError, TypeError) as e:
        raise ProtocolError("result", f"bad result body ({e})") from None
