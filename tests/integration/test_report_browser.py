"""`nhiguard report`'s page in a real headless Chromium (Debian's `chromium`), driven over the DevTools
protocol: after its script has run, the timeline holds a lane per identity with its REVOKE marks; the page
makes no network request (only the file:// document itself is requested: Network.requestWillBeSent), throws
nothing and logs no error (a Content-Security-Policy refusal would be one); markup in an identity stays text.

Chromium also runs behind a proxy on a dead local port with every host name unresolvable, so nothing could
leave the machine even if the page asked. A control page that does load an image shows the recorder sees a
request when there is one. Marked integration (it starts a browser): `make test` runs it; without chromium
it is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nhiguard.streams.cli import main
from nhiguard.streams.replayfile import write_replay
from tools.scenarios import default_params, generate, write_inventory

pytestmark = pytest.mark.integration

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
TIMEOUT_S = 120  # a loaded machine: generous, never a speed assertion

# What the page shows once its script has run, read in the page.
PROBE = """JSON.stringify({
  title: document.title,
  drawn: document.getElementById("lanes").getAttribute("data-drawn"),
  lanes: Array.from(document.querySelectorAll("#lanes .lane")).map(function (l) {
    return {identity: l.getAttribute("data-identity"), label: l.querySelector(".who").textContent,
            revokeCommands: l.querySelectorAll(".mark.revoke-cmd").length,
            revokes: l.querySelectorAll(".mark.revoke").length,
            denies: l.querySelectorAll(".mark.deny").length};
  }),
  scripts: document.scripts.length, images: document.images.length,
  alerts: document.querySelectorAll("#alerts tbody tr").length
})"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium not found: the report's browser test must run in CI (.ci/run installs it)")
        pytest.skip(
            "chromium not found (Debian package chromium; .ci/run installs it): the report's page untested"
        )
    return found


class Page:
    """One Chromium, one tab, and what the tab requested, threw and logged."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.loaded = asyncio.Event()


async def _visit(chromium: str, url: str, profile: Path, probe: str = PROBE) -> tuple[Page, dict[str, Any]]:
    args = [
        chromium,
        "--headless",
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers' small /dev/shm
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        # Nothing leaves the machine whatever is asked: a proxy on a dead port, no name resolves.
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        *(["--no-sandbox"] if os.geteuid() == 0 else []),  # root (CI containers): no setuid sandbox
        "about:blank",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        ws_url = await asyncio.wait_for(_devtools_url(proc), TIMEOUT_S)
        async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
            return await asyncio.wait_for(_drive(ws, url, probe), TIMEOUT_S)
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _devtools_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    seen = []
    while line := (await proc.stderr.readline()).decode(errors="replace"):
        seen.append(line)
        if m := re.search(r"DevTools listening on (ws://\S+)", line):
            return m.group(1)
    raise AssertionError(f"chromium exited before its DevTools endpoint: {''.join(seen[-20:])}")


async def _drive(ws: aiohttp.ClientWebSocketResponse, url: str, probe: str) -> tuple[Page, dict[str, Any]]:
    page = Page()
    pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
    ids = iter(range(1, 1_000_000))

    async def call(method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict:
        n = next(ids)
        pending[n] = asyncio.get_running_loop().create_future()
        msg: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await ws.send_str(json.dumps(msg))
        return await pending[n]

    async def receive() -> None:
        async for m in ws:
            msg = json.loads(m.data)
            if "id" in msg and msg["id"] in pending:
                fut = pending.pop(msg["id"])
                if "error" in msg:
                    fut.set_exception(AssertionError(f"DevTools: {msg['error']}"))
                else:
                    fut.set_result(msg.get("result", {}))
            else:
                _event(page, msg.get("method", ""), msg.get("params", {}))

    reader = asyncio.create_task(receive())
    try:
        target = (await call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            await call(f"{domain}.enable", session=session)
        await call("Page.navigate", {"url": url}, session)
        await page.loaded.wait()
        done = await call("Runtime.evaluate", {"expression": probe, "returnByValue": True}, session)
        return page, json.loads(done["result"]["value"])
    finally:
        reader.cancel()


def _event(page: Page, method: str, params: dict[str, Any]) -> None:
    if method == "Network.requestWillBeSent":
        page.requests.append(params["request"]["url"])
    elif method == "Page.loadEventFired":
        page.loaded.set()
    elif method == "Runtime.exceptionThrown":
        page.errors.append(json.dumps(params["exceptionDetails"])[:500])
    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
        page.errors.append(params["entry"].get("text", "")[:500])
    elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
        page.errors.append(json.dumps(params.get("args"))[:500])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    """The demo stream's report, with the identity of a revoked bot renamed to markup in its decisions."""
    tmp = tmp_path_factory.mktemp("report-browser")
    stream, ids, out = tmp / "stream.ndjson", tmp / "identities.yaml", tmp / "decisions.jsonl"
    write_replay(list(generate(default_params(), ordinary=200)), stream)
    write_inventory(default_params(), ids)
    assert main(["backtest", str(stream), "--identities", str(ids), "--decisions-out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    victim = next(x["identity"] for x in lines if any(c["kind"] == "REVOKE" for c in x["commands"]))
    for x in lines:
        if x["identity"] == victim:
            x["identity"] = HOSTILE
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    page = tmp / "report.html"
    assert main(["report", str(out), "-o", str(page)]) == 0
    return page, lines


def test_the_rendered_timeline_has_every_identity_and_its_revokes_and_the_page_requests_nothing(
    report, tmp_path
):
    chromium = _chromium()
    path, lines = report
    page, shown = asyncio.run(_visit(chromium, path.as_uri(), tmp_path / "profile"))
    assert page.requests == [path.as_uri()], f"the page made requests: {page.requests}"
    assert page.errors == []
    decided = [x for x in lines if x["verdict"] != "deadletter"]
    identities = {x["identity"] for x in decided}
    assert shown["drawn"] == str(len(identities))
    lanes = {lane["identity"]: lane for lane in shown["lanes"]}
    assert lanes.keys() == identities and all(lane["label"] == who for who, lane in lanes.items())
    revoke_commands = Counter(x["identity"] for x in decided for c in x["commands"] if c["kind"] == "REVOKE")
    assert {
        who: lane["revokeCommands"] for who, lane in lanes.items() if lane["revokeCommands"]
    } == revoke_commands
    assert len(revoke_commands) >= 2 and HOSTILE in revoke_commands
    revokes = Counter(x["identity"] for x in decided if x["verdict"] == "REVOKE")
    assert {who: lane["revokes"] for who, lane in lanes.items() if lane["revokes"]} == revokes
    # The markup in the identity is text: it ran nothing and added no element.
    assert shown["title"].startswith("nhiguard report") and shown["images"] == 0 and shown["scripts"] == 2
    assert shown["alerts"] > 0


def test_the_recorder_sees_a_request_when_a_page_makes_one(tmp_path):
    chromium = _chromium()
    control = tmp_path / "control.html"
    control.write_text('<!doctype html><html><body><img src="http://192.0.2.1/pixel.png"></body></html>')
    page, _ = asyncio.run(_visit(chromium, control.as_uri(), tmp_path / "profile", "JSON.stringify({})"))
    assert page.requests[0] == control.as_uri() and "http://192.0.2.1/pixel.png" in page.requests
