"""The SSF/CAEP transmitter without a broker: each REVOKE's Security Event Token (contents, subject per kind
of credential), its signature checked against the served JWKS, the settings' refusals, and push delivery
(RFC 8935) against a local aiohttp receiver: 202 acknowledges, 400 refuses for good, the rest is retried.
tests/integration/test_ssf.py runs the transmitter in `nhiguard serve` on the real broker."""

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nhiguard.avro import AvroCodec
from nhiguard.secevent import (
    CREDENTIAL_CHANGE,
    SESSION_REVOKED,
    NotTransmitted,
    SetSigner,
    set_claims,
    set_id,
    verify,
)
from nhiguard.settings import SettingsError, load_settings
from nhiguard.signing import Jwks, load_signer, new_key_pem
from nhiguard.ssf_config import SsfReceiver
from nhiguard.streams.server import build_app
from nhiguard.streams.ssf import Transmitter, start_ssf
from nhiguard.streams.ssf_push import ACKNOWLEDGED, REFUSED, Delivered, Pusher

ISSUER = "https://nhiguard.acme.example"
AUTH = "Bearer receiver-given-token-0123456789"


def command(target, identity="verdaccio:ci-bot", kind="REVOKE", command_id="cmd-1", **over):
    now = int(time.time() * 1000)
    return {
        "command_id": command_id,
        "kind": kind,
        "identity": identity,
        "target_type": "credential" if kind == "REVOKE" else "request",
        "target": target,
        "reasons": ["installed a version denied for harm"],
        "policy_ids": ["registry.publisher_integrity"],
        "rule_ids": ["registry.publisher_integrity.installed_harmful_version"],
        "bundle_revision": "test",
        "event_id": "verdaccio:test",
        "issued_at": now - 1000,
        "expires_at": now + 3_600_000,
        "status": "ISSUED",
        "held_reason": "",
        "released_at": None,
        "released_by": "",
        "evidence": {},
        **over,
    }


@pytest.fixture
def signer(tmp_path):
    (tmp_path / "key.pem").write_bytes(new_key_pem())
    return SetSigner(ISSUER, load_signer(tmp_path / "key.pem", "k1"))


# --- the SET ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, credential_type",
    [
        ("github-pat:mirror-bot", "api-token"),
        ("contentful-cma-token:k8x2qv7m3np1/6kQ2vT9xRb1LmZ4pYc8WnA", "api-token"),
        ("verdaccio-token:ci-bot", "registry-publish-token"),
        ("verdaccio:ci-bot", "registry-publish-token"),
        ("github-app:acme-release", "oauth-client"),
        ("npm-trusted-publisher:@acme/cli", "ci-oidc-trust"),
        ("github-oidc:acme/cli", "ci-oidc-trust"),
        ("something-else:x", "nhi-credential"),
    ],
)
def test_a_credential_revoke_is_a_credential_change_about_the_identity_and_its_credential(
    target, credential_type
):
    claims = set_claims(command(target), ISSUER, "https://idp.example", 1_800_000_000)
    assert (
        claims["iss"] == ISSUER and claims["aud"] == "https://idp.example" and claims["iat"] == 1_800_000_000
    )
    assert claims["jti"] == set_id("cmd-1") and claims["txn"] == "cmd-1"
    assert claims["sub_id"] == {
        "format": "complex",
        "application": {"format": "iss_sub", "iss": ISSUER, "sub": "verdaccio:ci-bot"},
        "credential": {"format": "opaque", "id": target},
    }
    (event_type, event), *more = claims["events"].items()
    assert not more and event_type == CREDENTIAL_CHANGE
    assert event["change_type"] == "revoke" and event["credential_type"] == credential_type
    assert event["friendly_name"] == target and event["initiating_entity"] == "policy"
    assert event["reason_admin"] == {"en": "installed a version denied for harm"}
    assert abs(event["event_timestamp"] - time.time()) < 60  # seconds, the command's issued_at


def test_a_revoke_of_a_whole_identity_is_a_session_revoked_of_every_session_of_it():
    claims = set_claims(
        command("identity:github:acme/cli/workflow:release", "github:acme/cli/workflow:release"),
        ISSUER,
        "a",
        1,
    )
    assert claims["sub_id"] == {
        "format": "complex",
        "application": {"format": "iss_sub", "iss": ISSUER, "sub": "github:acme/cli/workflow:release"},
    }
    assert list(claims["events"]) == [SESSION_REVOKED]
    assert "change_type" not in claims["events"][SESSION_REVOKED]


def test_a_deny_is_no_set():
    with pytest.raises(NotTransmitted, match="DENY of request"):
        set_claims(command("req-1", kind="DENY"), ISSUER, "a", 1)


def test_the_same_command_is_the_same_jti_and_another_command_another():
    assert set_id("cmd-1") == set_id("cmd-1") != set_id("cmd-2")


# --- signature ----------------------------------------------------------------------------------------------


def test_a_set_verifies_with_the_served_jwks_and_not_with_another_key(signer, tmp_path):
    token = signer.token(command("verdaccio-token:ci-bot"), "https://idp.example")
    header = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"typ": "secevent+jwt", "alg": "Ed25519", "kid": "k1"}
    claims = verify(token, json.loads(json.dumps(signer.jwks())), ISSUER)
    assert claims["events"][CREDENTIAL_CHANGE]["friendly_name"] == "verdaccio-token:ci-bot"
    (tmp_path / "other.pem").write_bytes(new_key_pem())
    other = SetSigner(ISSUER, load_signer(tmp_path / "other.pem", "k1"))
    with pytest.raises(ValueError, match="not a SET signed by a key of the JWKS"):
        verify(token, other.jwks(), ISSUER)
    head, _payload, sig = token.split(".")
    forged = other.token(command("verdaccio-token:someone-else"), "https://idp.example").split(".")[1]
    with pytest.raises(ValueError, match="not a SET signed"):
        verify(f"{head}.{forged}.{sig}", signer.jwks(), ISSUER)
    with pytest.raises(ValueError, match="iss"):
        verify(token, signer.jwks(), "https://another.example")


def test_metadata_and_jwks_are_served_and_a_set_verifies_against_what_was_fetched(signer, tmp_path):
    transmitter = _transmitter(tmp_path, signer, [])

    async def scenario():
        app = build_app(load_settings(env={}), sender=None, ssf=transmitter)
        async with TestClient(TestServer(app)) as client:
            meta = await (await client.get("/.well-known/ssf-configuration")).json()
            jwks_resp = await client.get("/ssf/jwks.json")
            health = await (await client.get("/healthz")).json()
            return meta, jwks_resp.content_type, await jwks_resp.json(), health

    meta, content_type, jwks, health = asyncio.run(scenario())
    assert meta == {
        "spec_version": "1_0",
        "issuer": ISSUER,
        "jwks_uri": ISSUER + "/ssf/jwks.json",
        "delivery_methods_supported": ["urn:ietf:rfc:8935"],
    }
    assert content_type == "application/jwk-set+json" and health["ssf"] is True
    assert [k["kid"] for k in jwks["keys"]] == ["k1"] and "d" not in jwks["keys"][0]
    verify(signer.token(command("github-app:acme-release"), "a"), jwks, ISSUER)


# --- settings -----------------------------------------------------------------------------------------------

RECEIVER_ENV = {
    "NHIGUARD_SSF_ISSUER": ISSUER,
    "NHIGUARD_SSF_PUSH_URL": "https://idp.example/ssf/push",
    "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
}


def test_settings_from_the_environment_and_a_file(tmp_path):
    (tmp_path / "auth").write_text("Bearer from-a-mounted-secret\n")
    (tmp_path / "receivers.yaml").write_text(
        "receivers:\n"
        "  - name: broker\n    endpoint: https://broker.example/events\n    authorization: Bearer b-0123\n"
        "    audience: urn:broker\n"
        "  - name: local\n    endpoint: http://127.0.0.1:9/push\n"
        f"    authorization_file: {tmp_path / 'auth'}\n"
    )
    env = RECEIVER_ENV | {
        "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
        "NHIGUARD_SSF_RECEIVERS_FILE": str(tmp_path / "receivers.yaml"),
        "NHIGUARD_SSF_RETRY_MAX_S": "30",
    }
    ssf = load_settings(env=env).ssf
    assert ssf.enabled and ssf.issuer == ISSUER and ssf.retry_max_s == 30 and ssf.timeout_s == 10
    assert ssf.receivers == (
        SsfReceiver("broker", "https://broker.example/events", "Bearer b-0123", "urn:broker"),
        SsfReceiver("local", "http://127.0.0.1:9/push", "Bearer from-a-mounted-secret", "http://127.0.0.1:9"),
        SsfReceiver("default", "https://idp.example/ssf/push", AUTH, "https://idp.example"),
    )
    assert AUTH not in repr(ssf)
    assert not load_settings(env={}).ssf.enabled


@pytest.mark.parametrize(
    "env, file, message",
    [
        (
            {"NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH, "NHIGUARD_SSF_ISSUER": ""},
            None,
            "NHIGUARD_SSF_ISSUER is not",
        ),
        ({"NHIGUARD_SSF_ISSUER": "https://x.example/nhiguard"}, None, "no path"),
        ({"NHIGUARD_SSF_ISSUER": "nhiguard.acme.example"}, None, "not an absolute http"),
        ({"NHIGUARD_SSF_PUSH_URL": "http://idp.example/push"}, None, "https is required"),
        ({"NHIGUARD_SSF_PUSH_AUTHORIZATION": ""}, None, "authorization: the receiver's Authorization header"),
        ({"NHIGUARD_SSF_PUSH_AUTHORIZATION": "Bearer a\nX-Injected: 1"}, None, "one line"),
        (
            {"NHIGUARD_SSF_PUSH_AUTHORIZATION_FILE": "/nonexistent/auth"},
            None,
            "cannot read /nonexistent/auth",
        ),
        ({"NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH, "NHIGUARD_SSF_TIMEOUT_S": "soon"}, None, "not a number"),
        (
            {"NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH, "NHIGUARD_SSF_RETRY_MAX_S": "0"},
            None,
            "must be positive",
        ),
        ({"NHIGUARD_SSF_PUSH_URL": ""}, "receivers: [a", "not YAML"),
        ({"NHIGUARD_SSF_PUSH_URL": ""}, "- endpoint: https://a.example", "one key, receivers"),
        (
            {"NHIGUARD_SSF_PUSH_URL": ""},
            "receivers: [{endpoint: https://a.example, token: x}]",
            "expected a mapping",
        ),
        (
            {"NHIGUARD_SSF_PUSH_URL": ""},
            "receivers: [{name: 'a b', endpoint: https://a.example}]",
            "name 'a b'",
        ),
        (
            {"NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH},
            "receivers: [{endpoint: https://a.example, authorization: x}]",
            r"names must be unique, \['default'\]",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_what_is_wrong(tmp_path, env, file, message):
    full = RECEIVER_ENV | env
    if file is not None:
        (tmp_path / "r.yaml").write_text(file)
        full["NHIGUARD_SSF_RECEIVERS_FILE"] = str(tmp_path / "r.yaml")
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(env=full)
    assert "\n" not in str(info.value)


OURS = ("NHIGUARD_SSF", "NHIGUARD_SIGNING", "NHIGUARD_COMMAND_KEYS", "NHIGUARD_WEBHOOK", "NHIGUARD_API")


def test_serve_with_an_issuer_but_no_signing_key_says_so_in_one_line_and_exits_2(tmp_path):
    (tmp_path / "key.pem").write_bytes(new_key_pem())
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [load_signer(tmp_path / "key.pem").jwk()]}))
    (tmp_path / "a-file").write_text("not a directory")
    env = {
        "NHIGUARD_SSF_ISSUER": ISSUER,
        "NHIGUARD_SSF_PUSH_URL": "http://127.0.0.1:9/push",
        "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
    }
    for extra, message in [
        ({}, "no NHIGUARD_SSF_SIGNING_KEY or NHIGUARD_SIGNING_KEY signs SETs"),
        ({"NHIGUARD_SIGNING_KEY": str(tmp_path / "missing.pem")}, "no NHIGUARD_COMMAND_KEYS"),
        (
            {"NHIGUARD_SIGNING_KEY": str(tmp_path / "missing.pem"), "NHIGUARD_COMMAND_KEYS": "/dev/null"},
            "cannot read signing key",
        ),
        ({"NHIGUARD_SSF_PUSH_URL": "http://idp.example/push"}, "https is required"),
        (
            {
                "NHIGUARD_SIGNING_KEY": str(tmp_path / "key.pem"),
                "NHIGUARD_COMMAND_KEYS": str(tmp_path / "jwks.json"),
                "NHIGUARD_DATA_DIR": str(tmp_path / "a-file" / "data"),
            },
            "the SSF state file",
        ),
    ]:
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)} | env | extra
        p = subprocess.run(
            [sys.executable, "-m", "nhiguard.streams.cli", "serve"],
            env=run_env,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 2, p.stderr
        assert p.stderr.count("\n") == 1 and message in p.stderr, p.stderr


# --- push delivery ------------------------------------------------------------------------------------------


class Receiver:
    """A local RFC 8935 receiver answering from a script of statuses (the last one repeats)."""

    def __init__(self, statuses, body=b""):
        self.statuses, self.body, self.requests = list(statuses), body, []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.text()))
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        body = self.body if status == 400 else b""
        return web.Response(status=status, body=body, content_type="application/json" if body else None)


async def _with_receiver(receiver, scenario):
    app = web.Application()
    app.router.add_post("/push", receiver.handle)
    async with TestServer(app) as server:
        endpoint = str(server.make_url("/push"))
        return await scenario(SsfReceiver("idp", endpoint, AUTH, "https://idp.example"))


def test_push_retries_until_the_receiver_acknowledges(signer):
    receiver, token = Receiver([503, 500, 401, 202]), signer.token(command("github-pat:x"), "a")

    async def scenario(target):
        pusher = Pusher(timeout_s=5, retry_max_s=0.05, retry_base_s=0.01)
        try:
            return await pusher.deliver(target, token, asyncio.Event())
        finally:
            await pusher.close()

    result = asyncio.run(_with_receiver(receiver, scenario))
    assert (result.outcome, result.detail, result.attempts) == (ACKNOWLEDGED, "202", 4)
    for headers, body in receiver.requests:
        assert headers["Content-Type"] == "application/secevent+jwt" and headers["Authorization"] == AUTH
        assert body == token


def test_a_400_is_a_refusal_logged_with_its_err_and_not_retried(signer):
    error = json.dumps({"err": "invalid_audience", "description": "not for us"}).encode()
    receiver = Receiver([400], error)

    async def scenario(target):
        pusher = Pusher(timeout_s=5, retry_max_s=0.05, retry_base_s=0.01)
        try:
            return await pusher.deliver(target, "a.b.c", asyncio.Event())
        finally:
            await pusher.close()

    result = asyncio.run(_with_receiver(receiver, scenario))
    assert (result.outcome, result.detail, result.attempts) == (
        REFUSED,
        "400 invalid_audience: not for us",
        1,
    )
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "status, body, outcome, detail",
    [
        (200, b"", ACKNOWLEDGED, "200 (RFC 8935 answers 202)"),
        (400, b"<html>bad request</html>", REFUSED, "400 no RFC 8935 error body"),
        (302, b"", None, "HTTP 302"),
        (401, b"", None, "HTTP 401"),
        (503, b"", None, "HTTP 503"),
    ],
)
def test_one_attempts_outcome_by_the_receivers_answer(status, body, outcome, detail):
    async def scenario(target):
        pusher = Pusher(timeout_s=5, retry_max_s=0.05)
        try:
            return await pusher.attempt(target, "a.b.c")
        finally:
            await pusher.close()

    got = asyncio.run(_with_receiver(Receiver([status], body), scenario))
    assert got[0] == outcome and got[1].startswith(detail)


def test_an_unreachable_receiver_is_retried_until_the_transmitter_stops():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    target = SsfReceiver("idp", f"http://127.0.0.1:{port}/push", AUTH, "a")

    async def scenario():
        pusher, stop = Pusher(timeout_s=2, retry_max_s=0.05, retry_base_s=0.01), asyncio.Event()
        task = asyncio.create_task(pusher.deliver(target, "a.b.c", stop))
        await asyncio.sleep(0.5)
        assert not task.done()
        stop.set()
        try:
            return await asyncio.wait_for(task, 5)
        finally:
            await pusher.close()

    assert asyncio.run(scenario()) is None


# --- the transmitter's handling of command records --------------------------------------------------------


def _transmitter(tmp_path, signer, receivers, retry_base_s=0.01):
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [signer.signer.jwk()]}))
    settings = load_settings(env={})
    settings = replace(
        settings,
        data_dir=tmp_path / "data",
        ssf=replace(settings.ssf, issuer=ISSUER, receivers=tuple(receivers), retry_max_s=0.05),
    )
    jwks = Jwks.load(tmp_path / "jwks.json")
    return Transmitter(settings, signer, jwks, Delivered(tmp_path / "data" / "ssf-delivered"), retry_base_s)


def test_only_signed_actionable_revokes_are_transmitted(signer, tmp_path):
    transmitter = _transmitter(tmp_path, signer, [])
    codec = AvroCodec(load_settings(env={}).schemas_dir)
    (tmp_path / "attacker.pem").write_bytes(new_key_pem())
    attacker = load_signer(tmp_path / "attacker.pem", "k1")
    now = int(time.time() * 1000)

    def handle(record, sign_with=signer.signer):
        value = codec.encode("EnforcementCommand", record)
        headers = sign_with.headers(value) if sign_with else []
        cmd, what, why = transmitter.command(value, headers, now)
        return (cmd["command_id"] if cmd else None), what, why

    assert handle(command("verdaccio-token:ci-bot")) == ("cmd-1", "", "")
    assert handle(command("verdaccio-token:ci-bot"), None) == (None, "refused", "unsigned")
    assert handle(command("verdaccio-token:ci-bot"), attacker)[:2] == (None, "refused")
    assert handle(command("req-1", kind="DENY"))[:2] == (None, "passed")
    assert handle(command("verdaccio-token:ci-bot", status="HELD"))[:2] == (None, "passed")
    assert handle(command("verdaccio-token:ci-bot", expires_at=now - 1)) == (None, "passed", "expired")
    junk = b"not avro"
    assert transmitter.command(junk, signer.signer.headers(junk), now)[:2] == (None, "refused")


def test_each_command_is_pushed_once_per_receiver_across_restarts(signer, tmp_path):
    ok, refusing = Receiver([503, 202]), Receiver([400], b'{"err": "invalid_request", "description": "no"}')

    async def scenario():
        apps = []
        for r in (ok, refusing):
            app = web.Application()
            app.router.add_post("/push", r.handle)
            apps.append(TestServer(app))
        async with apps[0] as a, apps[1] as b:
            receivers = [
                SsfReceiver("ok", str(a.make_url("/push")), AUTH, "https://ok.example"),
                SsfReceiver("refusing", str(b.make_url("/push")), AUTH, "https://refusing.example"),
            ]
            first = _transmitter(tmp_path, signer, receivers)
            done = [await first.transmit(command("github-app:acme-release"), asyncio.Event())]
            await first.pusher.close()
            again = _transmitter(tmp_path, signer, receivers)  # a restart: the state file is read again
            done.append(await again.transmit(command("github-app:acme-release"), asyncio.Event()))
            done.append(
                await again.transmit(command("github-app:acme-release", command_id="cmd-2"), asyncio.Event())
            )
            await again.pusher.close()
            return done

    assert asyncio.run(scenario()) == [True, True, True]
    assert len(ok.requests) == 3 and len(refusing.requests) == 2  # a retry, then one per command
    jtis = [verify(body, signer.jwks(), ISSUER)["jti"] for _h, body in ok.requests]
    assert jtis == [set_id("cmd-1"), set_id("cmd-1"), set_id("cmd-2")]
    auds = {verify(body, signer.jwks(), ISSUER)["aud"] for _h, body in refusing.requests}
    assert auds == {"https://refusing.example"}
    lines = (tmp_path / "data" / "ssf-delivered").read_text().splitlines()
    assert sorted(line.split("\t")[:3] for line in lines) == sorted(
        [
            ["ok", set_id("cmd-1"), ACKNOWLEDGED],
            ["refusing", set_id("cmd-1"), REFUSED],
            ["ok", set_id("cmd-2"), ACKNOWLEDGED],
            ["refusing", set_id("cmd-2"), REFUSED],
        ]
    )


def test_start_ssf_loads_the_signing_key_and_the_command_keys(signer, tmp_path):
    (tmp_path / "key.pem").write_bytes(new_key_pem())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [load_signer(tmp_path / "key.pem").jwk()]}))
    env = RECEIVER_ENV | {
        "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
        "NHIGUARD_SIGNING_KEY": str(tmp_path / "key.pem"),
        "NHIGUARD_COMMAND_KEYS": str(jwks),
        "NHIGUARD_DATA_DIR": str(tmp_path / "data"),
    }
    transmitter = start_ssf(load_settings(env=env))
    assert transmitter.signer.jwks()["keys"][0]["x"] == json.loads(jwks.read_text())["keys"][0]["x"]


def test_sets_may_have_a_key_of_their_own_so_serve_need_not_hold_the_commands_key(tmp_path):
    from nhiguard.streams.ssf import start_ssf

    (tmp_path / "commands.pem").write_bytes(new_key_pem())
    (tmp_path / "sets.pem").write_bytes(new_key_pem())
    commands, sets = load_signer(tmp_path / "commands.pem"), load_signer(tmp_path / "sets.pem", "sets-2026")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [commands.jwk()]}))
    env = {
        "NHIGUARD_SSF_ISSUER": ISSUER,
        "NHIGUARD_SSF_PUSH_URL": "http://127.0.0.1:9/push",
        "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
        "NHIGUARD_COMMAND_KEYS": str(tmp_path / "jwks.json"),
        "NHIGUARD_DATA_DIR": str(tmp_path / "data"),
        "NHIGUARD_SSF_SIGNING_KEY": str(tmp_path / "sets.pem"),
        "NHIGUARD_SSF_SIGNING_KID": "sets-2026",
    }
    [served] = start_ssf(load_settings(env=env)).signer.jwks()["keys"]
    assert (served["kid"], served["x"]) == ("sets-2026", sets.jwk()["x"])
    with_commands_key = env | {"NHIGUARD_SIGNING_KEY": str(tmp_path / "commands.pem")}
    del with_commands_key["NHIGUARD_SSF_SIGNING_KEY"], with_commands_key["NHIGUARD_SSF_SIGNING_KID"]
    [served] = start_ssf(load_settings(env=with_commands_key)).signer.jwks()["keys"]
    assert served["x"] == commands.jwk()["x"]
