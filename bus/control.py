"""Control requests: the ROUTER envelope, request parsing and validation.

Control is served by a ROUTER socket, so no peer can wedge it (a REP socket stops serving everyone
when one peer sends a message it cannot reply to). Both REQ clients (``[id, b"", body]``) and DEALER
clients (``[id, body]``) are answered; anything else is refused and counted. Requests (plain text or
JSON, at most :data:`MAX_REQUEST_BYTES`):

* ``ping`` | ``status`` | ``event start <bed>`` | ``event stop <bed>``
* ``{"cmd": "ping"|"status"}`` | ``{"cmd": "event", "action": "start"|"stop", "bed": "<bed>"}``

Bed ids follow the protocol (1-64 characters of ``A-Z a-z 0-9 _ . -``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .protocol import BED_RE

MAX_REQUEST_BYTES = 4096
USAGE = "use 'event start BED', 'event stop BED', 'status' or 'ping'"


class ControlRefused(ValueError):
    """A request that cannot be served; ``reason`` is the refusal counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Request:
    cmd: str  # ping | status | event
    action: str | None = None  # start | stop
    bed: str | None = None


def split_envelope(parts: list[bytes]) -> tuple[list[bytes], bytes]:
    """``(envelope, body)`` of a message received on ROUTER (envelope = routing id [+ empty delimiter]).

    Raises:
        ControlRefused: reason ``parts`` for any other shape.
    """
    if len(parts) == 3 and parts[1] == b"":
        return parts[:2], parts[2]
    if len(parts) == 2:
        return parts[:1], parts[1]
    raise ControlRefused("parts", f"a control request is one message part; got {max(0, len(parts) - 1)}")


def parse_request(body: bytes) -> Request:
    """Validate one request body.

    Raises:
        ControlRefused: reasons ``size``, ``encoding``, ``json``, ``request``, ``bed``.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise ControlRefused("size", f"request of {len(body)} bytes (max {MAX_REQUEST_BYTES})")
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ControlRefused("encoding", "request is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            req = json.loads(text)
        except json.JSONDecodeError:
            raise ControlRefused("json", "request is not valid JSON") from None
        if not isinstance(req, dict) or set(req) - {"cmd", "action", "bed"} or not all(
                isinstance(v, str) for v in req.values()):
            raise ControlRefused("request", 'a JSON request has string fields "cmd", "action", "bed" only')
        words = [req.get("cmd", ""), req.get("action", ""), req.get("bed", "")]
        words = [w for w in words if w]
    else:
        words = text.split(" ")
    if words in (["ping"], ["status"]):
        return Request(words[0])
    if len(words) == 3 and words[0] == "event" and words[1] in ("start", "stop"):
        if not BED_RE.fullmatch(words[2]):
            raise ControlRefused("bed", f"bed id {words[2][:80]!r} must be 1-64 characters of A-Z a-z 0-9 _ . -")
        return Request("event", words[1], words[2])
    raise ControlRefused("request", f"unknown request {text[:80]!r}; {USAGE}")
