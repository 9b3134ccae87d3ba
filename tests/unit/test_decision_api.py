"""The decision API (POST /v1/decisions) without Kafka: its refusals (401 before the body, 413, 415, 422 with
one message), the record it produces (the input topic of the format's domain, keyed by identity, its format in
a header), its answers checked against docs/openapi.yaml, and the domain's failure mode when no decision
comes. The broker is a recorder, and the worker is the decision core deciding what was recorded (encoded and
decoded as Avro, as the API reads it from authz.decisions); tests/integration/test_decision_api.py runs it for
real.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from nhiguard.avro import AvroCodec, deadletter_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore, dead_letter
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import SettingsError, load_settings
from nhiguard.streams.decision_api import DecisionApi
from nhiguard.streams.server import build_app
from tests.unit.test_serve import Recorder
from tools import REPO_ROOT

TOKEN = "api-token-0123456789abcdef"
OPENAPI = yaml.safe_load((REPO_ROOT / "docs" / "openapi.yaml").read_text())
SETTINGS = load_settings(env={"NHIGUARD_API_TOKEN": TOKEN, "NHIGUARD_API_DEADLINE_S": "5"})
CODEC = AvroCodec(SETTINGS.schemas_dir)
BUNDLE = load_bundle(SETTINGS.policies_dir)
INSTALL = {
    "level": 25,
    "time": 1796034554030,
    "pid": 7,
    "hostname": "vm",
    "sub": "in",
    "request": {"method": "GET", "url": "/exp-http/-/exp-http-1.1.0.tgz"},
    "user": "ci-bot",
    "remoteIP": "10.0.3.7",
    "status": 200,
    "bytes": {"in": 0, "out": 2400},
    "msg": "200, user: ci-bot(10.0.3.7), req: 'GET /exp-http/-/exp-http-1.1.0.tgz'",
}
GATE = OPENAPI["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]["examples"]


REQUEST = "/paths/~1v1~1decisions/post/requestBody/content/application~1json/schema"
FALCO = json.loads((REPO_ROOT / "tests/fixtures/sources/falco.alert/shell-in-container.json").read_text())[
    "body"
]


def schema(name: str) -> Draft202012Validator:
    """A validator for a schema of docs/openapi.yaml (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    resource = Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
    pointer = name if name.startswith("/") else f"/components/schemas/{name}"
    registry = Registry().with_resource("urn:openapi", resource)
    return Draft202012Validator({"$ref": f"urn:openapi#{pointer}"}, registry=registry)


class CoreWaiter:
    """The worker, in process: decides the record the recorder holds at the offset asked for, with the
    shipped policies and no inventory, and hands back its decision as authz.decisions carries it."""

    def __init__(self, sender: Recorder, answer: bool = True, dead_letter: bool = False) -> None:
        self.sender, self.answer, self.dead_letter = sender, answer, dead_letter
        self.core = DecisionCore(SETTINGS, BUNDLE, Inventory(), body_time=True)

    async def wait(self, ref: tuple[str, int, int], timeout_s: float) -> Any:
        topic, partition, offset = ref
        if not self.answer:
            await asyncio.sleep(timeout_s)
            return None
        _, key, value, headers = self.sender.records[offset]
        rec = RawRecord(topic, partition, offset, value, key, tuple(headers), 1796034554030)
        if self.dead_letter:  # as the worker's route stage dead-letters what it cannot read
            x = dead_letter(rec, "missing_identity", "the worker found no identity", 1024)
            return "deadletter", CODEC.decode(CODEC.encode("DeadLetter", deadletter_record(x)))
        result = self.core.process([rec])
        for x in result.deadletters:  # a record the adapter read that the core still refused
            return "deadletter", CODEC.decode(CODEC.encode("DeadLetter", deadletter_record(x)))
        [d] = result.decisions
        return "decision", CODEC.decode(CODEC.encode("Decision", decision_record(d, 1796034554030)))


def call(body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None):
    """POST body (JSON, or `raw` bytes) to the API: (status, answer, the records produced)."""
    sender = Recorder()

    async def main() -> tuple[int, Any]:
        api = DecisionApi(SETTINGS, sender, CoreWaiter(sender), BUNDLE)  # type: ignore[arg-type]
        async with TestClient(TestServer(build_app(SETTINGS, sender, api=api))) as client:
            h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"} | (headers or {})
            data = raw if raw is not None else json.dumps(body).encode()
            async with client.post("/v1/decisions", data=data, headers=h) as resp:
                return resp.status, await resp.json()

    status, answer = asyncio.run(main())
    return status, answer, sender.records


def test_a_record_in_its_format_is_produced_to_its_domain_and_answered_with_its_decision():
    status, answer, produced = call({"format": "verdaccio.log", "record": INSTALL})
    assert status == 200, answer
    schema("Decision").validate(answer)
    assert (answer["decided"], answer["event"]["source"], answer["identity"]["id"]) == (
        True,
        "verdaccio.log",
        "verdaccio:ci-bot",
    )
    assert answer["input"] == {"topic": "audit.registry", "partition": 0, "offset": 0}
    [(topic, key, value, headers)] = produced
    assert (topic, key, json.loads(value)) == ("audit.registry", b"verdaccio:ci-bot", INSTALL)
    assert headers == [("X-Nhiguard-Format", b"verdaccio.log")]


def test_a_gate_request_is_decided_with_its_findings_and_evidence():
    request = json.loads(json.dumps(GATE["publish-gate"]["value"]))
    request["pack"]["files"].append({"path": "cli.js.map", "size": 90000})
    status, answer, produced = call(request)
    assert status == 200, answer
    schema("Decision").validate(answer)
    assert answer["verdict"] == "DENY" and answer["event"]["action"] == "ci.release.publish_request"
    [finding] = [f for f in answer["findings"] if f["rule"].endswith("prohibited_source_map")]
    assert finding["evidence"]["files"] == ["cli.js.map"] and finding["reason"]
    assert produced[0][0] == "audit.ci"


@pytest.mark.parametrize("name", sorted(GATE))
def test_the_openapi_examples_are_requests_the_api_decides(name):
    example = GATE[name]["value"]
    schema(REQUEST).validate(example)
    status, answer, _ = call(example)
    assert status == 200, answer
    schema("Decision").validate(answer)


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"Authorization": ""}, "send Authorization: Bearer"),
        ({"Authorization": "Bearer not-the-token-0123456789"}, "wrong"),
        ({"Authorization": TOKEN}, "send Authorization: Bearer"),
    ],
)
def test_401_without_the_token_and_nothing_produced(headers, says):
    status, answer, produced = call({"format": "verdaccio.log", "record": INSTALL}, headers)
    assert (status, produced) == (401, [])
    assert says in answer["error"] and answer["status"] == 401
    schema("Error").validate(answer)


def test_413_before_anything_else_and_415_for_what_is_not_json():
    big = SETTINGS.max_record_bytes + 1
    status, answer, produced = call(None, {"Authorization": "Bearer wrong-token-0123456789"}, raw=b"x" * big)
    assert (status, produced) == (413, []) and "over the limit" in answer["error"]
    status, answer, _ = call(None, raw=b"{not json")
    assert status == 415 and "not JSON" in answer["error"]
    status, answer, _ = call(None, {"Content-Type": "text/plain"}, raw=b"{}")
    assert status == 415


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "send a JSON object"),
        ({"format": "nope", "record": {}}, "not one nhiguard reads"),
        ({"format": "verdaccio.log", "record": "x"}, "record: the source's JSON object"),
        ({"format": "verdaccio.log", "record": INSTALL, "extra": 1}, "unknown field(s) ['extra']"),
        ({"format": "verdaccio.log", "record": {"level": 30, "msg": "m", "request": {}}}, "missing_identity"),
        ({"format": "verdaccio.log", "record": INSTALL, "headers": {"Cookie": "x"}}, "headers ['Cookie']"),
        ({"format": "verdaccio.log", "record": INSTALL, "headers": {"X-GitHub-Event": 1}}, "string values"),
        ({"format": "verdaccio.log", "record": INSTALL, "deadline_s": 0}, "deadline_s"),
        ({"format": "verdaccio.log", "record": INSTALL, "deadline_s": "soon"}, "deadline_s"),
        ({"gate": "pip-publish"}, "npm-publish"),
    ],
)
def test_422_with_one_clear_message_and_nothing_produced(body, says):
    status, answer, produced = call(body)
    assert (status, produced) == (422, [])
    assert says in answer["error"], answer
    schema("Error").validate(answer)


def test_a_record_the_worker_dead_letters_is_422_with_its_reason():
    make = lambda sender: CoreWaiter(sender, dead_letter=True)  # noqa: E731
    status, answer, produced = _with(make, {"format": "verdaccio.log", "record": INSTALL})
    assert status == 422 and "missing_identity: the worker found no identity" in answer["error"]
    assert len(produced) == 1  # it was produced: the worker's dead letter says what became of it


def _with(make: Any, body: Any) -> tuple[int, Any, list]:
    sender = Recorder()

    async def main() -> tuple[int, Any]:
        api = DecisionApi(SETTINGS, sender, make(sender), BUNDLE)
        async with TestClient(TestServer(build_app(SETTINGS, sender, api=api))) as client:
            h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            async with client.post("/v1/decisions", json=body, headers=h) as resp:
                return resp.status, await resp.json()

    status, answer = asyncio.run(main())
    return status, answer, sender.records


@pytest.mark.parametrize(
    ("fmt", "record", "verdict", "mode"),
    [
        ("verdaccio.log", INSTALL, "DENY", "closed"),  # the registry domain fails closed
        ("falco.alert", FALCO, "ALLOW", "open"),  # the runtime domain fails open
    ],
)
def test_no_decision_within_the_deadline_is_the_domains_failure_mode(fmt, record, verdict, mode):
    body = {"format": fmt, "record": record, "deadline_s": 0.2}
    status, answer, produced = _with(lambda s: CoreWaiter(s, answer=False), body)
    assert status == 200, answer
    schema("Undecided").validate(answer)
    assert (answer["decided"], answer["verdict"], answer["failure_mode"]) == (False, verdict, mode)
    assert answer["input"]["offset"] == 0 and len(produced) == 1


def test_the_route_is_served_only_with_a_token():
    settings = load_settings(env={"NHIGUARD_GITHUB_WEBHOOK_SECRET": "gh-webhook-secret-0123456789"})
    assert not settings.api.enabled
    sender = Recorder()

    async def main() -> tuple[int, Any]:
        async with TestClient(TestServer(build_app(settings, sender))) as client:
            async with client.post("/v1/decisions", json={}) as resp:
                health = await (await client.get("/healthz")).json()
                return resp.status, health

    status, health = asyncio.run(main())
    assert status == 404 and health["decision_api"] is False


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"NHIGUARD_API_TOKEN": "short"}, "16 characters or more"),
        ({"NHIGUARD_API_TOKEN_FILE": "/nonexistent/token"}, "cannot read /nonexistent/token"),
        ({"NHIGUARD_API_DEADLINE_S": "0"}, "between 0 and 600"),
        ({"NHIGUARD_API_DEADLINE_S": "soon"}, "not a number"),
    ],
)
def test_api_settings_nhiguard_cannot_use_are_refused(env, says):
    with pytest.raises(ValueError, match=says):
        load_settings(env=env)


def test_the_token_comes_from_a_mounted_file(tmp_path: Path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    s = load_settings(env={"NHIGUARD_API_TOKEN_FILE": str(tmp_path / "token"), "NHIGUARD_API_TOKEN": "x"})
    assert s.api.token == TOKEN and TOKEN not in repr(s)


def test_a_format_its_topic_is_not_configured_for_is_422_and_nothing_produced(monkeypatch):
    env = {"NHIGUARD_API_TOKEN": TOKEN, "NHIGUARD_TOPIC_FORMATS": "audit.registry=npm.hook"}
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", load_settings(env=env))
    status, answer, produced = call({"format": "verdaccio.log", "record": INSTALL})
    assert (status, produced) == (422, [])
    assert answer["error"] == "format verdaccio.log: audit.registry is configured for npm.hook only"


def test_a_server_that_takes_some_formats_only_refuses_the_others_403_and_produces_nothing(monkeypatch):
    """NHIGUARD_API_FORMATS: a token that CI jobs hold can be kept to the gates' formats, so it cannot put
    another source's records (a forged CloudTrail call naming another role) onto the input topics."""
    env = {"NHIGUARD_API_TOKEN": TOKEN, "NHIGUARD_API_FORMATS": "npm.publish_gate, npm.hook"}
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", load_settings(env=env))
    status, answer, produced = call({"format": "verdaccio.log", "record": INSTALL})
    assert (status, produced) == (403, [])
    assert answer["error"] == "format verdaccio.log: this server takes npm.publish_gate, npm.hook only" + (
        " (NHIGUARD_API_FORMATS)"
    )
    schema("Error").validate(answer)
    status, answer, produced = call(GATE["publish-gate"]["value"])
    assert status == 200 and len(produced) == 1, answer
    with pytest.raises(SettingsError, match=r"NHIGUARD_API_FORMATS: unknown format\(s\) \['npm\.nope'\]"):
        load_settings(env=env | {"NHIGUARD_API_FORMATS": "npm.nope"})
