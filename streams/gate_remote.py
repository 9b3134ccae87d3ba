"""`nhiguard gate … --url URL`: asking a running nhiguard instead of deciding offline. The request goes to the
decision API of `nhiguard serve` (POST /v1/decisions, docs/openapi.yaml) with a bearer token from the
environment (NHIGUARD_API_TOKEN, or `--api-token-env VAR`), and the answer is the decision the worker makes
with its state and inventory (the previous release's size and repository, the identity's record, who published
the package's earlier releases), which the SOC sees on authz.decisions like any other.

No decision within the deadline (the server's answer says so, or none came at all) is a DENY: the gate fails
closed, unless `--fail-open`, with which it is an ALLOW that says it was not decided. A refusal (401, 413,
422) or a server that cannot be reached is an error (exit 2, one line).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from nhiguard.decision.records import Finding
from nhiguard.streams.gate import Judged
from nhiguard.streams.gate_context import GateError

API_PATH = "/v1/decisions"
TOKEN_VARIABLE = "NHIGUARD_API_TOKEN"


class Remote:
    """The decision API of one nhiguard serve, asked with one token, each answer within one deadline."""

    def __init__(self, url: str, token: str, deadline_s: float, fail_open: bool) -> None:
        if not url.startswith(("http://", "https://")):
            raise GateError(f"--url {url[:80]!r}: the http(s) URL of nhiguard serve")
        if not token:
            raise GateError(
                f"no token for {url}: set {TOKEN_VARIABLE} (or the variable --api-token-env names)"
            )
        self.url = url.rstrip("/") + API_PATH
        self.token, self.deadline_s, self.fail_open = token, deadline_s, fail_open
        self.until = time.monotonic() + deadline_s

    def ask(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The API's answer, or None when no answer came before the deadline."""
        left = self.until - time.monotonic()
        if left <= 0:
            return None
        # The server waits a little less than we do, so that its own answer (its failure mode) comes back.
        url = f"{self.url}?deadline_s={max(left - 1.0, left / 2):.3f}"
        data = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        req = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=left) as resp:
                answer = json.load(resp)
            if not isinstance(answer, dict):
                raise ValueError(
                    f"answered a JSON {type(answer).__name__}, not a decision (is it nhiguard serve?)"
                )
            return answer
        except urllib.error.HTTPError as exc:
            raise GateError(f"{self.url}: HTTP {exc.code}: {_message(exc)}") from None
        except TimeoutError:
            return None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                return None
            raise GateError(f"{self.url}: {exc.reason}") from None
        except (OSError, ValueError) as exc:
            raise GateError(f"{self.url}: {exc}") from None

    def judged(self, subject: str, answer: dict[str, Any] | None, not_checked: list[str]) -> Judged:
        """What the gate prints and exits by: the server's decision, or its failure mode and ours."""
        if answer is not None and answer.get("decided") is True:
            try:
                findings = [_finding(f) for f in answer.get("findings") or []]
                verdict = str(answer["verdict"])
            except (KeyError, TypeError, AttributeError) as exc:  # not the API's Decision (docs/openapi.yaml)
                raise GateError(
                    f"{self.url}: an answer that is not a decision ({type(exc).__name__}: {exc})"
                ) from None
            return Judged(subject, verdict, findings, list(not_checked))
        why = (
            str(answer.get("reason")) if answer else f"no answer from {self.url} within {self.deadline_s:g} s"
        )
        if self.fail_open:
            return Judged(subject, "ALLOW", [], [*not_checked, f"not decided ({why}): allowed, --fail-open"])
        return Judged(
            subject, "DENY", [], [*not_checked, f"not decided ({why}): denied, the gate fails closed"]
        )


def _finding(f: dict[str, Any]) -> Finding:
    return Finding(
        rule=str(f["rule"]),
        effect=str(f["effect"]),
        reason=str(f["reason"]),
        policy=str(f["policy"]),
        severity=str(f["severity"]),
        mode=str(f["mode"]),
        title=str(f.get("title", "")),
        evidence={str(k): [str(x) for x in v] for k, v in (f.get("evidence") or {}).items()},
    )


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])[:300]
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)


def remote(args: Any, env: dict[str, str]) -> Remote:
    """The Remote of a gate's arguments: --url, its token's variable, --deadline, --fail-open."""
    var = args.api_token_env or TOKEN_VARIABLE
    return Remote(args.url, env.get(var, "").strip(), float(args.deadline), bool(args.fail_open))
