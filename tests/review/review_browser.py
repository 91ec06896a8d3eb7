"""A real headless Chromium driven over the DevTools protocol (websocket via aiohttp), every wait bounded.

``async with Chromium() as br: page = await br.new_page(); await page.goto(url); await page.eval(js)``.
Skips the test (with the reason) when no ``chromium`` binary is installed (``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ARTIFACTS = Path(__file__).resolve().parents[2] / "tests-artifacts" / "review"


def chromium_binary() -> str:
    """Path of the browser, or skip the test saying how to install it."""
    env = os.environ.get("SEMIOSTREAM_CHROMIUM")
    for name in ((env,) if env else ()) + CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless Chromium: install Debian's `chromium` (apt-get install -y chromium; .ci/run does) "
                "or set SEMIOSTREAM_CHROMIUM")


def artifacts_dir(name: str) -> Path:
    """``tests-artifacts/review/<name>/`` (ignored by git), emptied; printed so the test output names it."""
    d = ARTIFACTS / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    print(f"\nscreenshots and DOM dumps: {d}")
    return d


class Page:
    def __init__(self, br: Chromium, session: str) -> None:
        self.br, self.session = br, session

    async def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        return await self.br.send(method, params, self.session, timeout)

    async def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait (at most ``timeout``) until the document has loaded."""
        await self.send("Page.navigate", {"url": url}, timeout)
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout)

    async def eval(self, expression: str, timeout: float = 30.0):
        r = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            raise AssertionError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0, every: float = 0.1):
        """Evaluate until truthy; fail after ``timeout`` seconds saying which condition."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression, timeout)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"page condition not met within {timeout} s: {expression}")
            await asyncio.sleep(every)

    async def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = await self.eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": min(size[1], 8000), "scale": 1}
        r = await self.send("Page.captureScreenshot", params)
        path.write_bytes(base64.b64decode(r["data"]))
        return path

    async def dom(self, path: Path) -> str:
        html = await self.eval("document.documentElement.outerHTML")
        path.write_text(html, encoding="utf-8")
        return html


class Chromium:
    """Headless Chromium with a DevTools websocket; ``new_page()`` opens a tab."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.binary = chromium_binary()
        self.size = (width, height)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}

    async def __aenter__(self) -> Chromium:
        self.profile = tempfile.mkdtemp(prefix="semiostream-chromium-")
        args = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
                "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}): {self.proc.stderr.read()[-2000:]!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port within 60 s")
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=64 << 20,
                                             timeout=aiohttp.ClientWSTimeout(ws_close=30))
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            fut = self._pending.pop(data.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(data)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError("chromium closed the DevTools connection"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None,
                   timeout: float = 30.0) -> dict:
        i = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[i] = fut
        msg: dict = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        data = await asyncio.wait_for(fut, timeout)
        if "error" in data:
            raise AssertionError(f"DevTools {method} failed: {data['error']}")
        return data["result"]

    async def new_page(self) -> Page:
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        page = Page(self, session)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                               "deviceScaleFactor": 1, "mobile": False})
        return page

    async def __aexit__(self, *exc) -> None:
        try:
            await self.ws.close()
            await self.http.close()
            self._reader.cancel()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


def run(coro, timeout: float = 240.0):
    """Run an async test body with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
