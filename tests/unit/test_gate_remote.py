"""The gates' `--url` client against a local HTTP server answering as the decision API does: a decision is
the gate's verdict with its findings; what is not decided in time denies (fail closed) unless --fail-open; a
refusal or a server that cannot be reached is one error line. (The API itself: test_decision_api.py.)"""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from nhiguard.streams.gate_context import GateError
from nhiguard.streams.gate_remote import Remote

TOKEN = "api-token-0123456789abcdef"
DECIDED = {
    "decided": True,
    "verdict": "DENY",
    "bundle_revision": "b1",
    "findings": [
        {"rule": "ci.release_artifacts.prohibited_source_map", "policy": "ci.release_artifacts",
         "effect": "deny", "reason": "a source map in a public release", "severity": "high",
         "mode": "enforce", "title": "t", "evidence": {"files": ["cli.js.map"]}},
    ],
}  # fmt: skip
UNDECIDED = {
    "decided": False,
    "verdict": "DENY",
    "reason": "no decision within 1 s: the ci domain fails closed",
}


@contextmanager
def api(status: int, answer: dict[str, Any], delay_s: float = 0.0) -> Iterator[tuple[str, list]]:
    """A local server answering every POST with `status` and `answer`: its URL, and what it was asked."""
    asked: list[tuple[dict[str, Any], dict[str, list[str]], str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked.append((body, parse_qs(urlparse(self.path).query), self.headers.get("Authorization")))
            time.sleep(delay_s)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_decision_is_the_gates_verdict_with_its_findings():
    with api(200, DECIDED) as (url, asked):
        remote = Remote(url, TOKEN, 60.0, fail_open=False)
        answer = remote.ask({"gate": "npm-publish"})
    result = remote.judged("acme-cli@1.4.2", answer, [])
    assert result.denied and result.verdict == "DENY" and not result.not_checked
    [f] = result.findings
    assert (f.rule, f.evidence) == ("ci.release_artifacts.prohibited_source_map", {"files": ["cli.js.map"]})
    [(body, query, authorization)] = asked
    assert body == {"gate": "npm-publish"} and authorization == f"Bearer {TOKEN}"
    assert 0 < float(query["deadline_s"][0]) < 60  # the server gives up a little before the gate does


@pytest.mark.parametrize("fail_open", [False, True])
def test_what_the_server_did_not_decide_denies_unless_fail_open(fail_open):
    with api(200, UNDECIDED) as (url, _):
        remote = Remote(url, TOKEN, 60.0, fail_open)
        result = remote.judged("x@1.0.0", remote.ask({"gate": "npm-publish"}), [])
    assert result.verdict == ("ALLOW" if fail_open else "DENY")
    assert "the ci domain fails closed" in result.not_checked[0]


def test_no_answer_before_the_deadline_is_not_decided():
    with api(200, DECIDED, delay_s=5.0) as (url, _):
        remote = Remote(url, TOKEN, 0.5, fail_open=False)
        answer = remote.ask({"gate": "npm-publish"})
        assert answer is None
        result = remote.judged("x@1.0.0", answer, [])
    assert result.verdict == "DENY" and "within 0.5 s): denied" in result.not_checked[0]


def test_refusals_and_unreachable_servers_are_one_error_line():
    with api(422, {"error": "format 'x': not one nhiguard reads", "status": 422}) as (url, _):
        with pytest.raises(GateError, match="HTTP 422: format 'x': not one nhiguard reads"):
            Remote(url, TOKEN, 60.0, False).ask({"format": "x", "record": {}})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(GateError, match="refused"):
        Remote(closed, TOKEN, 60.0, False).ask({"gate": "npm-publish"})
    with pytest.raises(GateError, match="NHIGUARD_API_TOKEN"):
        Remote("http://127.0.0.1:1", "", 60.0, False)
    with pytest.raises(GateError, match="http"):
        Remote("ftp://x", TOKEN, 60.0, False)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ([1, 2], "answered a JSON list, not a decision"),
        ({"decided": True}, "not a decision (KeyError"),
        ({"decided": True, "verdict": "DENY", "findings": [{"rule": "x"}]}, "not a decision (KeyError"),
        ({"decided": True, "verdict": "DENY", "findings": [3]}, "not a decision (TypeError"),
    ],
)
def test_a_200_that_is_not_a_decision_is_one_error_line(answer, says):
    """--url pointing at another service, or a proxy's page: exit 2 with a line, never a traceback."""
    with api(200, answer) as (url, _):  # type: ignore[arg-type]
        remote = Remote(url, TOKEN, 60.0, False)
        with pytest.raises(GateError, match=re.escape(says)):
            remote.judged("pkg", remote.ask({"gate": "npm-publish"}), [])
