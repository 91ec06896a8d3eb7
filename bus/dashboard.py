"""``semiostream dashboard``: one web page of all beds of a scorer, updated live (server-sent events).

Data: a :class:`~semiostream.bus.watch.ResultsSubscriber` on the scorer's results endpoint (``score/<bed>``
per window, ``event/<bed>`` per closed event; a **viewer** key with CURVE) and the control ``status``
polled every ``status_every_s`` (:class:`~semiostream.bus.watch.ControlClient`; an **operator** key with
CURVE) feed one :class:`BoardState` from a background thread. The page shows per bed: windows scored, last
update and staleness, sequence gaps and drops, the open event with its elapsed time, and the closed events
with links to their review reports. A class (label, p(TLE) now and a sparkline of the event's windows) is shown
only while an event is open, from the windows scored for it: the classifier learnt seizures only, so the p(TLE)
of a window outside an event means nothing and the snapshot carries none (``p_tle``/``label`` null, ``spark``
empty).

Serving (aiohttp): ``/`` the page (no external URL), ``/events`` server-sent events (one JSON snapshot per
change, at most ``max_rate_hz`` per second), ``/state.json`` the same snapshot, ``/reports/...`` the reports
folder read-only (aiohttp's static route: paths that leave the folder, symbolic links included, are
refused), ``/login`` a token form when a token is set.

Access: loopback binds need nothing. Any other bind needs TLS (certificate + key files) **and** a token (from
a file or an environment variable, never the command line); a request without the token (``Authorization:
Bearer``, or the HttpOnly cookie the login form sets) gets 401. Tokens are compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

SPARK_WINDOWS = 90  # windows kept per bed for the sparkline
CLOSED_EVENTS = 20  # closed events listed per bed
COOKIE = "semiostream_dashboard"
MIN_TOKEN_CHARS = 16


class DashboardError(ValueError):
    """The dashboard's settings are unsafe or incomplete; the message says how to fix them."""


# --------------------------------------------------------------------------------------------- state
@dataclass
class _Bed:
    history: deque = field(default_factory=lambda: deque(maxlen=SPARK_WINDOWS))  # (last_t_ns, p) of p_event
    p_tle: float | None = None  # latest window scored inside event p_event (None outside events)
    label: str | None = None
    latency_ms: float | None = None
    updated: float | None = None  # wall time of the last window result (s since the epoch)
    windows: int = 0
    last_seq: int | None = None
    event: str | None = None
    event_since: float | None = None  # wall time the open event was first seen here
    p_event: str | None = None  # the event whose windows p_tle, label and history are
    closed: deque = field(default_factory=lambda: deque(maxlen=CLOSED_EVENTS))


class BoardState:
    """Everything the page shows, fed by the scorer feed thread and read by the web server (thread-safe).

    ``version`` grows with every change; :meth:`snapshot` is the JSON-able dict sent to the page.
    """

    def __init__(self, reports_dir: Path | None = None) -> None:
        self.reports_dir = reports_dir.resolve() if reports_dir is not None else None
        self._beds: dict[str, _Bed] = {}
        self._status: dict[str, Any] = {}
        self._status_error: str | None = None
        self._results_error: str | None = None
        self._lock = threading.Lock()
        self._report_urls: dict[tuple[str, str], str] = {}
        self.version = 0
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    # feed side ------------------------------------------------------------------------------------
    def add_results(self, results: list) -> None:
        from semiostream.bus.protocol import EventResult

        if not results:
            return
        now = time.time()
        with self._lock:
            for r in results:
                bed = self._beds.setdefault(r.bed, _Bed())
                if isinstance(r, EventResult):
                    bed.closed.appendleft({"event_id": r.event_id, "start_t_ns": r.start_t_ns,
                                           "stop_t_ns": r.stop_t_ns, "windows": r.windows, "p_tle": r.p_tle,
                                           "label": r.label, "report": getattr(r, "report", None)})
                    if bed.event == r.event_id:
                        bed.event, bed.event_since = None, None
                    if bed.p_event == r.event_id:
                        self._quiet(bed)
                    continue
                if r.event_id is None:  # scored outside an event: no decision to show
                    self._quiet(bed)
                else:
                    if bed.p_event != r.event_id:
                        bed.history.clear()
                    bed.history.append((r.last_t_ns, r.p_tle))
                    bed.p_tle, bed.label, bed.p_event = r.p_tle, r.label, r.event_id
                bed.latency_ms, bed.updated, bed.last_seq = r.latency_ms, now, r.last_seq
                bed.windows += 1
                self._set_event(bed, r.event_id, now)
            self._changed()

    def set_status(self, reply: dict) -> None:
        now = time.time()
        with self._lock:
            if reply.get("ok"):
                self._status, self._status_error = reply.get("status") or {}, None
                for name, st in (self._status.get("beds") or {}).items():
                    self._set_event(self._beds.setdefault(name, _Bed()), st.get("event"), now)
            else:
                self._status_error = str(reply.get("error") or "status refused")
            self._changed()

    def set_results_problem(self, problem: str | None) -> None:
        with self._lock:
            if problem != self._results_error:
                self._results_error = problem
                self._changed()

    @staticmethod
    def _quiet(bed: _Bed) -> None:
        bed.p_tle = bed.label = bed.p_event = None
        bed.history.clear()

    @staticmethod
    def _set_event(bed: _Bed, event: str | None, now: float) -> None:
        if event != bed.event:
            bed.event, bed.event_since = event, (now if event else None)

    def _changed(self) -> None:
        self.version += 1
        for loop, ev in list(self._listeners):
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop is closed
                pass

    # server side ----------------------------------------------------------------------------------
    def listen(self, loop: asyncio.AbstractEventLoop, ev: asyncio.Event) -> None:
        with self._lock:
            self._listeners.append((loop, ev))

    def unlisten(self, ev: asyncio.Event) -> None:
        with self._lock:
            self._listeners = [(lp, e) for lp, e in self._listeners if e is not ev]

    def report_url(self, path: str | None, event_id: str, bed: str) -> str | None:
        """``/reports/<relative path>`` of an event's report when it exists inside the reports folder (a found
        link is remembered; a missing one is looked for again at the next snapshot)."""
        if self.reports_dir is None:
            return None
        key = (bed, event_id)
        if key in self._report_urls:
            return self._report_urls[key]
        url = self._find_report(path, event_id, bed)
        if url is not None:
            if len(self._report_urls) >= 4 * CLOSED_EVENTS * max(len(self._beds), 1):
                self._report_urls.clear()  # bounded: rebuilt from the files on the next snapshots
            self._report_urls[key] = url
        return url

    def _find_report(self, path: str | None, event_id: str, bed: str) -> str | None:
        candidates = [Path(path)] if path else []  # the event message's path, else the two usual layouts
        candidates += [self.reports_dir / event_id / "index.html", self.reports_dir / bed / event_id / "index.html"]
        for c in candidates:
            try:
                real = (c if c.is_absolute() else self.reports_dir / c).resolve()
                rel = real.relative_to(self.reports_dir)
            except (ValueError, OSError):
                continue
            if real.is_file():
                return "/reports/" + "/".join(rel.parts)
        return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            status = self._status
            beds_status = status.get("beds") or {}
            beds = {}
            for name in sorted(set(self._beds) | set(beds_status)):
                b = self._beds.get(name) or _Bed()
                st = beds_status.get(name) or {}
                decided = b.event is not None and b.p_event == b.event  # a class only inside the open event
                beds[name] = {
                    "p_tle": b.p_tle if decided else None, "label": b.label if decided else None,
                    "latency_ms": b.latency_ms, "updated": b.updated, "windows": b.windows, "last_seq": b.last_seq,
                    "spark": [p for _, p in b.history] if decided else [],
                    "age_s": st.get("age_s"), "stale": st.get("stale"), "gaps": st.get("gaps"),
                    "frames": st.get("frames"), "inflight": st.get("inflight"), "roi_source": st.get("roi_source"),
                    "event": b.event, "event_since": b.event_since,
                    "closed": [dict(e) for e in b.closed],
                }
            out = {"version": self.version, "now": time.time(), "bundle_id": status.get("bundle_id"),
                   "dropped": status.get("dropped") or {}, "status_error": self._status_error,
                   "results_error": self._results_error, "beds": beds}
        for name, b in out["beds"].items():  # file checks outside the lock
            for e in b["closed"]:
                e["report_url"] = self.report_url(e.pop("report"), e["event_id"], name)
        return out


# ---------------------------------------------------------------------------------------------- feed
class ScorerFeed:
    """Background thread: results subscriber + status polling -> :class:`BoardState`."""

    def __init__(self, state: BoardState, results: str, control: str | None, viewer_security=None,
                 operator_security=None, status_every_s: float = 1.0) -> None:
        from semiostream.bus.watch import ControlClient, ResultsSubscriber

        self.state = state
        self.sub = ResultsSubscriber(results, viewer_security)
        self.ctl = ControlClient(control, operator_security, timeout_s=2.0) if control else None
        self.status_every_s = float(status_every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-feed", daemon=True)

    def start(self) -> ScorerFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        last_status = 0.0
        while not self._stop.is_set():
            try:
                self.state.add_results(self.sub.poll(100))
                self.state.set_results_problem(self.sub.connection.problem())
                if self.ctl is not None and time.monotonic() - last_status >= self.status_every_s:
                    last_status = time.monotonic()
                    self.state.set_status(self.ctl.status())
            except Exception:  # the page says the feed is stuck; never kill the thread silently
                log.exception("dashboard feed error")
                self.state.set_results_problem("dashboard feed error; see the dashboard's log")
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.sub.close()
        if self.ctl is not None:
            self.ctl.close()


# ------------------------------------------------------------------------------------------ security
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None, env: str = "SEMIOSTREAM_DASHBOARD_TOKEN") -> str | None:
    """The access token from ``token_file`` (first line) or the environment variable ``env``; None if neither."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise DashboardError(f"cannot read the token file {token_file} ({e}); write one line of at least "
                                 f"{MIN_TOKEN_CHARS} random characters to it") from None
    else:
        token = os.environ.get(env, "").strip()
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS:
        raise DashboardError(f"the dashboard token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
                             "random ones (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


def check_access(host: str, cert: Path | None, key: Path | None, token: str | None) -> ssl.SSLContext | None:
    """The TLS context to serve with (None = plain HTTP), after refusing unsafe settings.

    Raises:
        DashboardError: a non-loopback ``host`` without TLS or without a token, or half a TLS setting.
    """
    if (cert is None) != (key is None):
        raise DashboardError("TLS needs both --tls-cert and --tls-key (PEM files)")
    if not is_loopback(host):
        if cert is None:
            raise DashboardError(f"--bind {host} is reachable from other machines: give --tls-cert and --tls-key "
                                 "(PEM files), and a token (--token-file or SEMIOSTREAM_DASHBOARD_TOKEN)")
        if token is None:
            raise DashboardError(f"--bind {host} is reachable from other machines: give a token with --token-file "
                                 "PATH or the SEMIOSTREAM_DASHBOARD_TOKEN environment variable")
    if cert is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise DashboardError(f"cannot load the TLS certificate {cert} / key {key} ({e}); give PEM files") from None
    return ctx


# -------------------------------------------------------------------------------------------- server
def _authorized(request: web.Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.cookies.get(COOKIE, "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


def build_app(state: BoardState, token: str | None = None, secure_cookie: bool = False,
              max_rate_hz: float = 4.0) -> web.Application:
    """The aiohttp application (see the module docstring for the routes)."""
    from .dashboard_page import LOGIN_HTML, PAGE_HTML

    @web.middleware
    async def guard(request: web.Request, handler):
        if request.path != "/login" and not _authorized(request, token):
            if request.path == "/" and request.method == "GET":
                raise web.HTTPFound("/login")
            raise web.HTTPUnauthorized(text="token required: open /login, or send Authorization: Bearer TOKEN\n")
        resp = await handler(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=PAGE_HTML, content_type="text/html",
                            headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                     "script-src 'unsafe-inline'; img-src 'self' data:"})

    async def login_form(request: web.Request) -> web.Response:
        return web.Response(text=LOGIN_HTML, content_type="text/html")

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        given = str(form.get("token", ""))
        if token is None or not hmac.compare_digest(given.encode(), token.encode()):
            await asyncio.sleep(0.5)  # slows guessing
            raise web.HTTPUnauthorized(text="wrong token\n")
        resp = web.HTTPFound("/")
        resp.set_cookie(COOKIE, token, httponly=True, secure=secure_cookie, samesite="Strict")
        raise resp

    async def state_json(request: web.Request) -> web.Response:
        return web.json_response(state.snapshot())

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        changed = asyncio.Event()
        state.listen(asyncio.get_running_loop(), changed)
        try:
            sent = -1
            while True:
                if state.version != sent:
                    sent = state.version
                    snap = await asyncio.to_thread(state.snapshot)
                    await resp.write(f"data: {json.dumps(snap)}\n\n".encode())
                    await asyncio.sleep(1.0 / max_rate_hz)
                changed.clear()
                if state.version == sent:
                    try:
                        await asyncio.wait_for(changed.wait(), 15.0)
                    except TimeoutError:
                        await resp.write(b": keep-alive\n\n")
        except ConnectionResetError:  # the page went away (a cancellation propagates)
            pass
        finally:
            state.unlisten(changed)
        return resp

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/state.json", state_json)
    app.router.add_get("/events", events)
    if state.reports_dir is not None:
        app.router.add_static("/reports", state.reports_dir, follow_symlinks=False, show_index=False)
    return app


class DashboardServer:
    """The dashboard's web server in a background thread with its own event loop (``start``/``close``).

    Args:
        state: what the page shows.
        host, port: where to listen (port 0 = any free port; :attr:`url` says which).
        ssl_context: from :func:`check_access` (None = plain HTTP, loopback only).
        token: access token or None.
    """

    def __init__(self, state: BoardState, host: str = "127.0.0.1", port: int = 8765,
                 ssl_context: ssl.SSLContext | None = None, token: str | None = None) -> None:
        self.state, self.host, self.port = state, host, int(port)
        self.ssl_context, self.token = ssl_context, token
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}/"

    async def _start(self) -> None:
        app = build_app(self.state, self.token, secure_cookie=self.ssl_context is not None)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> DashboardServer:
        """Listen in a background thread; raises ``DashboardError`` when the address cannot be served."""
        self._thread = threading.Thread(target=self._run, name="dashboard-http", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            e = self._error
            raise DashboardError(f"cannot serve the dashboard on {self.host}:{self.port} ({e}); "
                                 "choose another --bind address or port") from None
        return self

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
