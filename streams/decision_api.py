"""`POST /v1/decisions` on `nhiguard serve`: ask for a decision and wait for it (docs/openapi.yaml).

A request is a record in one of the formats nhiguard reads and its format (`{"format": "verdaccio.log",
"record": {...}}`), or a gate request as `nhiguard gate` builds it (`{"gate": "npm-publish", ...}`: the
`npm.publish_gate` format). It is read here first, by the source's own adapter, so a record nhiguard cannot
read is refused at once (422, the reason a dead letter would give). It is then produced to the input topic of
its domain, like any record (the `X-Nhiguard-Format` header names its format, keyed by its identity), and the
answer is the decision the worker that owns the identity makes, with its state and inventory: the decision is
on `authz.decisions` like any other, so the SOC sees gated attempts. Request and decision are correlated by
the input record's coordinates, which the broker's acknowledgement gives (the decision's `input`). If no
decision comes within the deadline (NHIGUARD_API_DEADLINE_S, or the request's shorter `deadline_s`), the
answer is the domain's failure mode (policies/manifest.yaml): DENY where it fails closed, ALLOW where it fails
open, with `decided: false`. A gate request's body is the record itself: its deadline is the query's
`?deadline_s=`.

Errors are `{"error": "<one message>", "status": N}`: 401 (no or wrong bearer token, checked before the body
is read), 413 (over NHIGUARD_MAX_RECORD_BYTES), 415 (not JSON), 422 (JSON that is not a request nhiguard can
decide, or a record the worker dead-lettered), 503 (Kafka did not take it: ask again).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from nhiguard.avro import AvroCodec
from nhiguard.decision.adapters import adapt
from nhiguard.decision.adapters.registry import FORMAT_HEADER, REGISTRY
from nhiguard.decision.headers import ALLOWED
from nhiguard.decision.records import AdapterError, RawRecord
from nhiguard.policy.bundle import BundleError, PolicyBundle, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams.acks import DeliveryFailed
from nhiguard.streams.receiver import Refused, Sender, _body, _json, error
from nhiguard.streams.waiter import DecisionWaiter, WaiterError

log = logging.getLogger("nhiguard.serve")
PATH = "/v1/decisions"
GATE_FORMAT = "npm.publish_gate"
_REQUEST_KEYS = {"format", "record", "headers", "deadline_s"}


def _iso(ms_or_dt: Any) -> str | None:
    if isinstance(ms_or_dt, datetime):
        return ms_or_dt.isoformat().replace("+00:00", "Z")
    return None if ms_or_dt is None else str(ms_or_dt)


def answer(decision: dict[str, Any]) -> dict[str, Any]:
    """The API's answer for a decision record (as decoded from authz.decisions)."""
    ev = decision["event"]
    return {
        "decided": True,
        "decision_id": decision["decision_id"],
        "verdict": decision["verdict"],
        "shadow_verdict": decision["shadow_verdict"],
        "bundle_revision": decision["bundle_revision"],
        "findings": [
            {k: f[k] for k in ("rule", "policy", "effect", "reason", "severity", "mode", "title", "evidence")}
            for f in decision["findings"]
        ],
        "command_ids": list(decision["command_ids"]),
        "held_command_ids": list(decision["held_command_ids"]),
        "identity": {
            "id": ev["actor"]["id"],
            "known": decision["identity_known"],
            "kind": decision["identity_kind"],
        },
        "event": {
            "event_id": ev["event_id"],
            "source": ev["source"],
            "domain": ev["domain"],
            "action": ev["action"],
            "resource_type": ev["resource_type"],
            "resource_id": ev["resource_id"],
            "occurred_at": _iso(ev["occurred_at"]),
        },
        "flags": list(decision["flags"]),
        "input": dict(decision["input"]),
    }


class DecisionApi:
    def __init__(
        self, settings: Settings, sender: Sender, waiter: DecisionWaiter, bundle: PolicyBundle
    ) -> None:
        self.settings, self.sender, self.waiter, self.bundle = settings, sender, waiter, bundle

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self._handle)]

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            return await self.decide(request)
        except Refused as exc:
            log.info("decision request from %s refused (%d): %s", request.remote, exc.status, exc)
            return error(exc.status, str(exc))

    def _authorize(self, request: web.Request) -> None:
        given = request.headers.getall("Authorization", [])
        if len(given) != 1 or not given[0].startswith("Bearer "):
            raise Refused(401, "send Authorization: Bearer <token>")
        if not hmac.compare_digest(given[0][7:].encode(), self.settings.api.token.encode()):
            raise Refused(401, "the bearer token is wrong")

    async def decide(self, request: web.Request) -> web.Response:
        limit = self.settings.max_record_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Refused(413, f"body of {request.content_length} bytes is over the limit of {limit} bytes")
        self._authorize(request)
        body = _json(request, await _body(request, limit))
        fmt, record, headers, deadline = self._request(body, request.query.get("deadline_s"))
        topic, key, value, action, domain = self._read(fmt, record, headers)
        try:
            partition, offset = await self.sender.send(topic, key, value, headers)
        except DeliveryFailed as exc:
            raise Refused(503, f"not accepted, ask again: Kafka did not take it ({exc})") from None
        outcome = await self.waiter.wait((topic, partition, offset), deadline)
        ref = {"topic": topic, "partition": partition, "offset": offset}
        if outcome is None:
            return web.json_response(self._undecided(domain, action, deadline, ref))
        kind, rec = outcome
        if kind == "deadletter":
            raise Refused(422, f"the worker could not read it: {rec['reason']}: {rec['detail']}")
        return web.json_response(answer(rec))

    def _request(
        self, body: Any, query_deadline: str | None
    ) -> tuple[str, dict[str, Any], list[tuple[str, bytes]], float]:
        """(format, record, headers, deadline) of a request: a record and its format, or a gate request; the
        deadline from the body's deadline_s, else the query's (a gate request's body is the record itself)."""
        deadline: Any = None
        if query_deadline is not None:
            try:
                deadline = float(query_deadline)
            except ValueError:
                raise Refused(422, f"deadline_s {query_deadline[:20]!r}: a number of seconds") from None
        if not isinstance(body, dict):
            raise Refused(422, "send a JSON object: {format, record} or a gate request")
        if "gate" in body:
            if body.get("gate") != "npm-publish":
                raise Refused(422, f"gate {str(body.get('gate'))[:40]!r}: the gate requests are npm-publish")
            fmt, record, raw_headers = GATE_FORMAT, body, {}
        else:
            if unknown := sorted(set(body) - _REQUEST_KEYS):
                raise Refused(
                    422, f"unknown field(s) {unknown[:5]}: a request has format, record, headers, deadline_s"
                )
            fmt, record = body.get("format"), body.get("record")
            raw_headers, deadline = body.get("headers") or {}, body.get("deadline_s", deadline)
            if not isinstance(fmt, str) or REGISTRY.get(fmt) is None:
                raise Refused(422, f"format {str(fmt)[:60]!r}: not one nhiguard reads (docs/sources.md)")
            if not isinstance(record, dict):
                raise Refused(422, "record: the source's JSON object")
        if (allowed := self.settings.api.formats) and fmt not in allowed:
            takes = ", ".join(allowed)
            raise Refused(403, f"format {fmt}: this server takes {takes} only (NHIGUARD_API_FORMATS)")
        return fmt, record, _headers(raw_headers, fmt), self._deadline(deadline)

    def _deadline(self, given: Any) -> float:
        most = self.settings.api.deadline_s
        if given is None:
            return most
        if isinstance(given, bool) or not isinstance(given, int | float) or not given > 0:
            raise Refused(422, "deadline_s: a number of seconds above 0")
        return min(float(given), most)  # a request may ask for less than the server's deadline, not more

    def _read(
        self, fmt: str, record: dict[str, Any], headers: list[tuple[str, bytes]]
    ) -> tuple[str, bytes | None, bytes, str, str]:
        """(topic, key, value, action, domain): read by the source's adapter as the worker will read it."""
        source = REGISTRY.get(fmt)
        assert source is not None
        domain = source.domains[0]
        topic = getattr(self.settings.topics, domain)
        if (formats := self.settings.formats.of(domain)) and fmt not in formats:
            raise Refused(422, f"format {fmt}: {topic} is configured for {', '.join(formats)} only")
        value = json.dumps(record, separators=(",", ":")).encode()
        if len(value) > self.settings.max_record_bytes:
            raise Refused(
                413, f"record of {len(value)} bytes is over the limit of {self.settings.max_record_bytes}"
            )
        rec = RawRecord(topic, 0, 0, value, None, tuple(headers), int(time.time() * 1000))
        try:
            ev = adapt(rec, domain, self.settings.formats.of(domain))
        except AdapterError as exc:
            raise Refused(422, f"{fmt} record unreadable: {exc.reason}: {exc.detail}") from None
        return topic, ev.actor.id.encode(), value, ev.action, domain

    def _undecided(self, domain: str, action: str, deadline: float, ref: dict[str, Any]) -> dict[str, Any]:
        closed = self.bundle.fails_closed(domain, action)
        mode = "closed" if closed else "open"
        return {
            "decided": False,
            "decision_id": None,
            "verdict": "DENY" if closed else "ALLOW",
            "failure_mode": mode,
            "reason": f"no decision within {deadline:g} s: the {domain} domain fails {mode}",
            "bundle_revision": self.bundle.revision,
            "findings": [],
            "input": ref,
        }


def _headers(raw: Any, fmt: str) -> list[tuple[str, bytes]]:
    """The record's headers: those its format reads (the allow-list), and the format header, last."""
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise Refused(422, "headers: an object of header names to string values")
    if bad := sorted(k for k in raw if k.lower() not in ALLOWED or k.lower() == FORMAT_HEADER.lower()):
        raise Refused(422, f"headers {bad[:5]}: only the headers a source reads (decision/headers.py)")
    return [*((k, v.encode()) for k, v in raw.items()), (FORMAT_HEADER, fmt.encode())]


class ApiStartError(Exception):
    """The decision API cannot start (one line for the CLI)."""


def start_api(settings: Settings, sender: Sender) -> DecisionApi:
    """The decision API with its outcome reader started (at the outcome topics' ends as of now) and the
    policy bundle's failure modes (what an answer without a decision says)."""
    try:
        bundle = load_bundle(settings.policies_dir)
    except (OSError, ValueError, BundleError) as exc:
        raise ApiStartError(f"the policy bundle {settings.policies_dir}: {exc}") from None
    waiter = DecisionWaiter(settings, AvroCodec(settings.schemas_dir))
    try:
        missing = waiter.start()
    except WaiterError as exc:
        waiter.close()
        raise ApiStartError(str(exc)) from None
    if missing:
        log.warning("%s do not exist yet: decisions are read from them once they do", missing)
    return DecisionApi(settings, sender, waiter, bundle)
