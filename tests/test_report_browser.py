"""The report opened in a real headless chromium: no console error, every plot rendered.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages
separated by NUL bytes on file descriptors 3 and 4), with a small stdlib client: it records
console errors, uncaught exceptions, browser log errors and every network request, then asks the
page whether each ``<img>`` decoded (``naturalWidth > 0``) and each ``<svg>`` has a non-empty box.
A second page with a broken image and a console error checks that the checker itself sees them.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import report_helpers as H

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-pipe",
]

CHECK_JS = """
(async () => {
  const imgs = [...document.images];
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const svgs = [...document.querySelectorAll('svg')];
  return {
    images: imgs.length,
    broken: imgs.filter((i, k) => !(decoded[k] && i.complete && i.naturalWidth > 0))
                .map(i => i.alt || i.src.slice(0, 40)),
    svgs: svgs.length,
    empty_svgs: svgs.filter(s => { const b = s.getBBox(); return !(b.width > 0 && b.height > 0); })
                    .length,
    sections: document.querySelectorAll('section').length,
    skipped: document.querySelectorAll('section.skipped').length,
    title: document.title,
  };
})()
"""


def find_chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed; the report test needs it: run `make sysdeps` "
            "(apt-get install chromium)",
            pytrace=False,
        )
    return path


class Browser:
    """A headless chromium driven over the DevTools pipe."""

    def __init__(
        self,
        chromium: str,
        profile: Path,
        timeout_s: float = 60.0,
        startup_timeout_s: float = 120.0,
    ) -> None:
        # generous limits: on two loaded cores (the whole suite running) chromium has taken over
        # 15 s to answer its first command; a limit only costs time when something is wrong
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._started = False
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        self._stderr_path = profile / "stderr.log"
        self._stderr = self._stderr_path.open("wb")
        # chromium reads commands on fd 3 and writes replies on fd 4 (bash: dash's redirections
        # take single-digit descriptors only)
        shell = f'exec "$0" "$@" 3<&{cmd_r} 4>&{resp_w} {cmd_r}<&- {resp_w}>&-'
        self.proc = subprocess.Popen(
            [
                shutil.which("bash") or "/bin/bash",
                "-c",
                shell,
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
            ],
            pass_fds=(cmd_r, resp_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        os.close(cmd_r)
        os.close(resp_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    "chromium did not answer in time; its stderr ends with: "
                    + self._stderr_path.read_text(errors="replace")[-2000:]
                )
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if ready:
                chunk = os.read(self._resp_r, 1 << 16)
                if not chunk:
                    raise RuntimeError(
                        f"chromium exited (rc {self.proc.wait()}): "
                        + self._stderr_path.read_text(errors="replace")[-2000:]
                    )
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> Any:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        limit = self.timeout_s if self._started else self.startup_timeout_s
        deadline = time.monotonic() + limit
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                self._started = True
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def open_page(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, False
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def check(self, url: str) -> dict[str, Any]:
        """Load ``url``; the page's plot check plus the errors and requests seen meanwhile."""
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")
        result = self.send(
            "Runtime.evaluate",
            {"expression": CHECK_JS, "awaitPromise": True, "returnByValue": True},
        )
        self.send("Runtime.evaluate", {"expression": "0"})  # flush pending console events
        value: dict[str, Any] = result["result"]["value"]
        errors, requests = [], []
        for ev in self.events:
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value")) for a in p["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append("log: " + p["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                requests.append(p["request"]["url"])
        value["errors"] = errors
        value["external_requests"] = [
            u for u in requests if not u.startswith(("data:", "file:", "about:"))
        ]
        return value

    def close(self) -> None:
        try:
            self.session = None
            self.send("Browser.close", session=False)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._resp_r)
        self._stderr.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    return H.full_report(tmp_path_factory)


def test_report_renders_in_chromium(report: tuple[Path, list[Any]], tmp_path: Path) -> None:
    chromium = find_chromium()
    path, sections = report
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><title>b</title></head><body>"
        '<img alt="bad" src="data:image/png;base64,AAAA"><svg></svg>'
        "<script>console.error('boom')</script></body></html>",
        encoding="utf-8",
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = Browser(chromium, profile)
    try:
        browser.open_page()
        good = browser.check(path.as_uri())
        bad = browser.check(broken.as_uri())
    finally:
        browser.close()
    assert good["errors"] == [], good
    assert good["external_requests"] == []
    assert good["images"] == sum(s.plots for s in sections) == 5
    assert good["broken"] == [] and good["empty_svgs"] == 0
    assert good["sections"] == 5 and good["skipped"] == 0
    assert good["title"] == "latbench report"
    # the checker sees a broken image, an empty svg and a console error
    assert bad["broken"] == ["bad"] and bad["empty_svgs"] == 1
    assert any("boom" in e for e in bad["errors"]), bad
