"""A small Chrome DevTools Protocol client for the browser tests: one headless Chromium per test session, one page
(tab) per test, driven over the browser's DevTools websocket (`websockets`, already in the lock).

Every wait has a deadline and says what it waited for; closing the browser never hangs (terminate, then kill).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

_DEVTOOLS_URL = re.compile(r"DevTools listening on (ws://\S+)")
WINDOW = (1280, 900)  # the screenshots' size: fixed, so that they can be compared and committed


class BrowserError(Exception):
    """Chromium did not start, a command failed, or a wait ran out of time (the message says which)."""


class Browser:
    """A headless Chromium process and the websocket to its DevTools endpoint."""

    def __init__(self, executable: str, *, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="metering-chromium-"))
        self.downloads = self.profile / "downloads"
        self.downloads.mkdir()
        args = [
            executable,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--force-device-scale-factor=1",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--mute-audio",
            "--font-render-hinting=none",
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.stderr: list[str] = []
        found = threading.Event()
        url: list[str] = []

        def read_stderr() -> None:  # drained to the end, so that Chromium never blocks on a full pipe
            for raw in self.process.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.stderr.append(line)
                if not url and (match := _DEVTOOLS_URL.search(line)):
                    url.append(match.group(1))
                    found.set()
            found.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not found.wait(timeout) or not url:
            self.close()
            raise BrowserError(
                f"{executable} gave no DevTools URL within {timeout:.0f} s; its stderr:\n" + self._tail()
            )
        self._connection = contextlib.ExitStack()
        self.ws: ClientConnection = self._connection.enter_context(connect(url[0], max_size=None, open_timeout=timeout))
        self._ids = itertools.count(1)
        self._events: list[dict] = []
        self._answers: dict[int, dict] = {}

    def _tail(self) -> str:
        return "\n".join(self.stderr[-20:])

    def _read(self, deadline: float, what: str) -> None:
        """One message from Chromium, kept: an event for `wait_event`, an answer for `send`."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(what)
        try:
            message = json.loads(self.ws.recv(timeout=remaining))
        except TimeoutError:
            return
        if "id" in message:
            self._answers[message["id"]] = message
        elif "method" in message:
            self._events.append(message)

    def send(self, method: str, params: dict | None = None, *, session: str | None = None) -> dict:
        """One DevTools command; its result, or `BrowserError` with Chromium's error message."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while message_id not in self._answers:
            self._read(deadline, f"{method}: no answer within {self.timeout:.0f} s")
        answer = self._answers.pop(message_id)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}")
        return answer.get("result", {})

    def wait_event(self, predicate: Callable[[dict], bool], what: str, timeout: float | None = None) -> dict:
        """The first event (seen already or to come) that `predicate` accepts, which is then consumed."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for event in self._events:
                if predicate(event):
                    self._events.remove(event)
                    return event
            self._read(deadline, f"waited {timeout or self.timeout:.0f} s for {what}")

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, target, session)

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self.send("Browser.close")
                except Exception:  # noqa: BLE001 - the process is ended below whatever the socket says
                    pass
                self._connection.close()
        finally:
            if self.process.poll() is None:
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.process.terminate()
                    try:
                        self.process.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.process.kill()
                        self.process.wait(timeout=5)
            shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab: navigate, wait for what a person would wait for, read the page, take screenshots and downloads."""

    def __init__(self, browser: Browser, target: str, session: str):
        self.browser, self.target, self.session = browser, target, session
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
        )
        self.send(
            "Browser.setDownloadBehavior",
            {"behavior": "allowAndName", "downloadPath": str(browser.downloads), "eventsEnabled": True},
            browser_level=True,
        )

    def send(self, method: str, params: dict | None = None, *, browser_level: bool = False) -> dict:
        return self.browser.send(method, params, session=None if browser_level else self.session)

    def _event(self, method: str, predicate: Callable[[dict], bool] = lambda params: True, timeout=None) -> dict:
        def matches(event: dict) -> bool:
            return (
                event.get("method") == method
                and event.get("sessionId") in (self.session, None)
                and predicate(event.get("params", {}))
            )

        return self.browser.wait_event(matches, method, timeout)["params"]

    def set_headers(self, headers: dict[str, str]) -> None:
        """Sent with every request of this page from now on (an `Authorization: Bearer` token, for instance)."""
        self.send("Network.setExtraHTTPHeaders", {"headers": headers})

    def set_cookie(self, url: str, name: str, value: str) -> None:
        self.send("Network.setCookie", {"url": url, "name": name, "value": value, "httpOnly": True})

    def clear_cookies(self) -> None:
        self.send("Network.clearBrowserCookies")

    def goto(self, url: str) -> int:
        """Load `url` and wait until its `load` event; the HTTP status of the document."""
        self.browser._events.clear()
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")
        return self._wait_document(answer.get("loaderId"))

    def _wait_document(self, loader: str | None, timeout: float | None = None) -> int:
        response = self._event(
            "Network.responseReceived",
            lambda p: p.get("type") == "Document" and (loader is None or p.get("loaderId") == loader),
            timeout,
        )
        self._event("Page.loadEventFired", timeout=timeout)
        return response["response"]["status"]

    def next_document(self, action: Callable[[], Any], timeout: float | None = None) -> int:
        """Do `action` (a click, a form sent, a file published that makes the page reload itself) and wait for the
        document it loads; its HTTP status (after any redirect)."""
        self.browser._events.clear()
        action()
        return self._wait_document(None, timeout)

    def submit(self, form_selector: str, values: dict[str, str]) -> int:
        """Fill a form's named fields as a person would type them, submit it and wait for the next page;
        its HTTP status (after any redirect)."""
        return self.next_document(
            lambda: self.evaluate(
                """([selector, values]) => {
                    const form = document.querySelector(selector);
                    if (!form) throw new Error('no form ' + selector);
                    for (const [name, value] of Object.entries(values)) form.elements[name].value = value;
                    form.requestSubmit();
                }""",
                [form_selector, values],
            )
        )

    def click(self, selector: str) -> None:
        """Click the one element matching `selector` (to follow a link: `next_document(lambda: page.click(...))`)."""
        self.evaluate(
            "(s) => { const e = document.querySelector(s); if (!e) throw new Error('nothing matches ' + s); e.click(); }",
            selector,
        )

    def evaluate(self, function: str, argument: Any = None) -> Any:
        """Call a JavaScript function (source text) with one JSON argument in the page; its JSON result.
        Promises are awaited; an exception in the page is a `BrowserError` with its message."""
        answer = self.send(
            "Runtime.evaluate",
            {
                "expression": f"({function})({json.dumps(argument)})",
                "returnByValue": True,
                "awaitPromise": True,
            },
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(f"in the page: {details.get('exception', {}).get('description') or details['text']}")
        return answer["result"].get("value")

    def wait_for(self, selector: str, timeout: float | None = None) -> None:
        """Until an element matches `selector` (a chart drawn by script appears after the load event)."""
        deadline = time.monotonic() + (timeout or self.browser.timeout)
        while not self.evaluate("(s) => document.querySelector(s) !== null", selector):
            if time.monotonic() > deadline:
                raise BrowserError(f"no {selector} on {self.url()} after {timeout or self.browser.timeout:.0f} s")
            time.sleep(0.05)

    def url(self) -> str:
        return self.evaluate("() => location.href")

    def count(self, selector: str) -> int:
        return self.evaluate("(s) => document.querySelectorAll(s).length", selector)

    def text(self, selector: str) -> str:
        """The visible text of the one element matching `selector` (an error when none or several match)."""
        texts = self.texts(selector)
        if len(texts) != 1:
            raise BrowserError(f"{len(texts)} elements match {selector} on {self.url()}, expected one")
        return texts[0]

    def texts(self, selector: str) -> list[str]:
        return self.evaluate("(s) => [...document.querySelectorAll(s)].map((e) => e.innerText.trim())", selector)

    def attributes(self, selector: str, name: str) -> list[str | None]:
        return self.evaluate(
            "([s, n]) => [...document.querySelectorAll(s)].map((e) => e.getAttribute(n))", [selector, name]
        )

    def screenshot(self, path: Path, selector: str | None = None) -> bytes:
        """A PNG of the whole page at the fixed window width, or of the one element matching `selector`."""
        box = self.evaluate(
            """(selector) => {
                if (!selector) return {x: 0, y: 0, width: innerWidth,
                                       height: Math.ceil(document.documentElement.scrollHeight)};
                const element = document.querySelector(selector);
                if (!element) throw new Error('nothing matches ' + selector);
                const r = element.getBoundingClientRect();
                return {x: r.left + scrollX, y: r.top + scrollY, width: Math.ceil(r.width), height: Math.ceil(r.height)};
            }""",
            selector,
        )
        params = {"format": "png", "captureBeyondViewport": True, "clip": box | {"scale": 1}}
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def pdf(self) -> bytes:
        """The page as Chromium prints it (A4)."""
        return base64.b64decode(
            self.send("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69, "printBackground": True})["data"]
        )

    def download(self, selector: str, timeout: float | None = None) -> Path:
        """Click the link `selector` and wait for the file it downloads; its path."""
        self.browser._events.clear()
        self.click(selector)
        begun = self._event("Browser.downloadWillBegin", timeout=timeout)
        done = self._event(
            "Browser.downloadProgress",
            lambda p: p.get("guid") == begun["guid"] and p.get("state") in ("completed", "canceled"),
            timeout=timeout,
        )
        path = self.browser.downloads / begun["guid"]  # saved under its guid: two downloads never collide
        if done["state"] != "completed" or not path.exists():
            # Chromium cancels a download answered with an HTTP error (a 401: the headers set by set_headers are
            # not sent with downloads, the cookie is)
            raise BrowserError(f"the download of {begun['url']} was {done['state']}")
        return path

    def close(self) -> None:
        self.send("Target.closeTarget", {"targetId": self.target}, browser_level=True)
