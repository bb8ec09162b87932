"""Debian's headless Chromium driven over the DevTools protocol (a websocket, through aiohttp's client), for tests
that look at a page as a person would: open it, read what it shows, take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium")
# As root in a container, with no outside network: no sandbox, GPU, QUIC, first-run, sync or background traffic.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--hide-scrollbars")


class Chromium:
    """One headless Chromium with a fresh profile in `profile`, and one page to drive; always killed on exit."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1500) -> None:
        self.profile, self.width, self.height = profile, width, height
        self._loop = asyncio.new_event_loop()
        self._ids = itertools.count(1)
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None

    def __enter__(self) -> Chromium:
        assert CHROMIUM is not None, "Debian's chromium is not installed"
        self.profile.mkdir(parents=True, exist_ok=True)
        log = (self.profile / "chromium.log").open("wb")
        self._process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
                                          f"--window-size={self.width},{self.height}", "about:blank"],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._loop.run_until_complete(self._connect(self._devtools_port()))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self._loop.run_until_complete(self._disconnect())
        finally:
            self._loop.close()
            if self._process is not None:
                if self._process.poll() is None:
                    self._process.kill()
                self._process.wait()

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        """The expression's first truthy value, polled every 0.2 s."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for the page to show {what}; it shows:"
                                     f"\n{self.evaluate('document.body.innerText')[:3000]}")
            time.sleep(0.2)
        return value

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the whole page, written to `path` and returned."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                  mobile=False)
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(png)
        return png

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._loop.run_until_complete(asyncio.wait_for(self._call(method, params), 30))

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._socket is not None
        ident = next(self._ids)
        await self._socket.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        while True:  # events in between are not ours to read
            message = json.loads((await self._socket.receive()).data)
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def _devtools_port(self) -> int:
        """The port Chromium writes to DevToolsActivePort once it listens."""
        written = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (written.exists() and written.read_text().strip()):
            assert self._process is not None
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("chromium did not start:\n" + (self.profile / "chromium.log").read_text()[-3000:])
            time.sleep(0.1)
        return int(written.read_text().split()[0])

    async def _connect(self, port: int) -> None:
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            pages = [t for t in await answer.json() if t["type"] == "page"]
        self._socket = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self._call("Page.enable", {})

    async def _disconnect(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()
