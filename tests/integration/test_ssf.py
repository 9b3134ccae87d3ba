"""`nhiguard serve` as an SSF/CAEP transmitter, on the real broker: a receiver discovers it through
/.well-known/ssf-configuration, fetches its JWKS, verifies every SET pushed to it and acknowledges with 202.
Each signed REVOKE on the commands topic reaches it once, with its subject; unsigned and forged commands and
DENYs do not; a receiver that fails is retried; after a restart nothing is pushed again. And end to end: the
REVOKEs a worker issues for CloudTrail calls from outside a role's networks reach the receiver as SETs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka import Producer

from nhiguard.avro import AvroCodec
from nhiguard.secevent import CREDENTIAL_CHANGE, SESSION_REVOKED, set_id, verify
from nhiguard.settings import Topics, load_settings
from nhiguard.signing import load_signer, new_key_pem
from nhiguard.streams.identities import load_identities
from nhiguard.streams.topics import ensure_topics
from tests.integration.test_enforce import command
from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)
from tests.integration.test_serve import _free_port
from tools import REPO_ROOT
from tools.demo import worker_env

pytestmark = pytest.mark.integration

AUTH = "Bearer pushed-by-nhiguard-0123456789"


class Receiver:
    """An RFC 8935 push receiver: verifies each SET against the transmitter's JWKS (fetched through its
    metadata, as a receiver configures itself), keeps the ones it acknowledges; the first push gets a 503."""

    def __init__(self, fail_first: bool = True) -> None:
        self.fail_first = fail_first
        self.jwks: dict | None = None
        self.issuer = ""
        self.received: list[dict] = []
        self.failures: list[str] = []
        self.pushes = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                receiver.pushes += 1
                if receiver.pushes == 1 and receiver.fail_first:
                    return self._answer(503, b"")
                if self.headers["Authorization"] != AUTH or receiver.jwks is None:
                    receiver.failures.append(
                        f"unauthenticated or undiscovered: {self.headers['Authorization']}"
                    )
                    return self._answer(400, b'{"err": "authentication_failed", "description": "who?"}')
                if self.headers["Content-Type"] != "application/secevent+jwt":
                    receiver.failures.append(self.headers["Content-Type"])
                try:
                    claims = verify(body, receiver.jwks, receiver.issuer)
                except ValueError as exc:
                    receiver.failures.append(str(exc))
                    return self._answer(
                        400, json.dumps({"err": "invalid_key", "description": str(exc)}).encode()
                    )
                receiver.received.append(claims)
                return self._answer(202, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/push"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def discover(self, issuer: str) -> dict:
        with urllib.request.urlopen(issuer + "/.well-known/ssf-configuration", timeout=30) as resp:
            meta = json.loads(resp.read())
        with urllib.request.urlopen(meta["jwks_uri"], timeout=30) as resp:
            self.jwks = json.loads(resp.read())
        self.issuer = meta["issuer"]
        return meta

    def wait_for(self, jtis: set[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not jtis <= {c["jti"] for c in self.received}:
            assert time.monotonic() < deadline, f"got {self.received}, failures {self.failures}"
            time.sleep(0.3)


class Serve:
    def __init__(self, env: dict, port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nhiguard.streams.cli", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as resp:
                    assert json.loads(resp.read())["ssf"] is True
                    return
            except OSError:
                time.sleep(0.3)

    def wait_log(self, text: str, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.log.read_text().count(text) < count:
            assert time.monotonic() < deadline, f"no {text!r} x{count}: {self.log.read_text()}"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(60) == 0, self.log.read_text()


def test_a_receiver_gets_one_verified_set_per_signed_revoke_and_nothing_else(kafka_bootstrap, tmp_path):
    run = uuid.uuid4().hex[:8]
    settings = replace(
        load_settings(env={}),
        bootstrap=kafka_bootstrap,
        topics=Topics(**{k: f"s{run}.{v}" for k, v in vars(Topics()).items()}),
        app_id=f"ssf-{run}",
        data_dir=tmp_path / "data",
    )
    ensure_topics(settings)
    codec = AvroCodec(settings.schemas_dir)
    (tmp_path / "worker.pem").write_bytes(new_key_pem())
    (tmp_path / "attacker.pem").write_bytes(new_key_pem())
    signer, attacker = (
        load_signer(tmp_path / "worker.pem", "w1"),
        load_signer(tmp_path / "attacker.pem", "w1"),
    )
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [signer.jwk()]}))
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})

    def produce(record: dict, sign_with=signer) -> None:
        value = codec.encode("EnforcementCommand", record)
        headers = sign_with.headers(value) if sign_with else []
        producer.produce(settings.topics.commands, value=value, headers=headers)
        assert producer.flush(30) == 0

    receiver = Receiver()
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = worker_env(settings) | {
        "NHIGUARD_SSF_ISSUER": issuer,
        "NHIGUARD_SSF_PUSH_URL": receiver.endpoint,
        "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
        "NHIGUARD_SSF_RETRY_MAX_S": "1",
        "NHIGUARD_SIGNING_KEY": str(tmp_path / "worker.pem"),
        "NHIGUARD_SIGNING_KID": "w1",
        "NHIGUARD_COMMAND_KEYS": str(tmp_path / "jwks.json"),
    }
    serve = Serve(env, port, tmp_path / "serve.log")
    try:
        serve.start()
        meta = receiver.discover(issuer)
        assert meta["issuer"] == issuer and meta["delivery_methods_supported"] == ["urn:ietf:rfc:8935"]

        produce(command("verdaccio-token:ci-bot", "cmd-unsigned"), None)
        produce(command("verdaccio-token:ci-bot", "cmd-forged"), attacker)
        produce(command("verdaccio-token:ci-bot", "cmd-a"))
        produce(
            command("verdaccio-token:ci-bot", "cmd-a")
        )  # the same command again: the same SET, not pushed
        produce(command("verdaccio-token:ci-bot", "cmd-deny") | {"kind": "DENY", "target_type": "request"})
        whole = command("identity:github:acme/cli/workflow:release", "cmd-b")
        produce(whole | {"identity": "github:acme/cli/workflow:release"})
        produce(command("github-app:acme-release", "cmd-c") | {"identity": "github:bot/acme-release"})
        receiver.wait_for({set_id("cmd-a"), set_id("cmd-b"), set_id("cmd-c")})
        serve.wait_log("REFUSED", 2)
        serve.wait_log("PASSED", 1)
        serve.wait_log("ALREADY", 1)
        serve.stop()

        assert receiver.failures == []
        by_jti = {c["jti"]: c for c in receiver.received}
        assert [c["jti"] for c in receiver.received] == [set_id("cmd-a"), set_id("cmd-b"), set_id("cmd-c")]
        assert receiver.pushes == 4  # cmd-a's first push answered 503, then retried
        app = {"format": "iss_sub", "iss": issuer}
        a = by_jti[set_id("cmd-a")]
        assert a["sub_id"] == {
            "format": "complex",
            "application": app | {"sub": "verdaccio:ci-bot"},
            "credential": {"format": "opaque", "id": "verdaccio-token:ci-bot"},
        }
        assert a["events"][CREDENTIAL_CHANGE]["change_type"] == "revoke"
        assert a["events"][CREDENTIAL_CHANGE]["credential_type"] == "registry-publish-token"
        assert a["aud"] == receiver.endpoint.rsplit("/", 1)[0] and a["txn"] == "cmd-a"
        b = by_jti[set_id("cmd-b")]
        assert b["sub_id"] == {
            "format": "complex",
            "application": app | {"sub": "github:acme/cli/workflow:release"},
        }
        assert list(b["events"]) == [SESSION_REVOKED]
        c = by_jti[set_id("cmd-c")]
        assert c["events"][CREDENTIAL_CHANGE]["credential_type"] == "oauth-client"
        assert c["sub_id"]["application"]["sub"] == "github:bot/acme-release"

        # Restarted: what was acknowledged is committed, so only the new REVOKE is pushed.
        serve.start()
        produce(command("npm-trusted-publisher:@acme/cli", "cmd-d") | {"identity": "github:acme/cli"})
        receiver.wait_for({set_id("cmd-d")})
        serve.stop()
        assert [c["jti"] for c in receiver.received] == [
            set_id(x) for x in ("cmd-a", "cmd-b", "cmd-c", "cmd-d")
        ]
        # Committed, not merely remembered: the restarted consumer did not read the old records again.
        assert serve.log.read_text().count("ALREADY") == 1 and serve.log.read_text().count("REFUSED") == 2
        last = receiver.received[-1]["events"][CREDENTIAL_CHANGE]
        assert last["credential_type"] == "ci-oidc-trust" and receiver.failures == []
    finally:
        serve.stop()
        receiver.server.shutdown()


RELEASE, DEPLOY = (
    "arn:aws:iam::210987654321:role/ci/gha-release",
    "arn:aws:iam::210987654321:role/ci/gha-deploy",
)
INVENTORY = f"""
- {{id: '{RELEASE}', kind: ci_bot, owner: devex@acme.example, team: devex, networks: ['10.0.0.0/8'],
   credential_ids: ['aws-role:{RELEASE}', 'github-oidc:acme/cli']}}
- {{id: '{DEPLOY}', kind: ci_bot, owner: devex@acme.example, team: devex, networks: ['10.0.0.0/8']}}
"""


def _calls_from_outside(settings) -> None:
    """Each role reads a secret now, from an address outside its networks (identity.networks: REVOKE)."""
    fixture = REPO_ROOT / "tests/fixtures/sources/aws.cloudtrail/assumed-role-reads-secret.json"
    record = json.loads(fixture.read_text())
    topic = {t: getattr(settings.topics, f) for f, t in vars(Topics()).items()}[record["topic"]]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True, "acks": "all"})
    for role in ("gha-release", "gha-deploy"):
        body = json.loads(json.dumps(record["body"]).replace("gha-release", role))
        body |= {"eventTime": now, "eventID": str(uuid.uuid4())}
        producer.produce(topic, value=json.dumps(body).encode())
    assert producer.flush(30) == 0


def test_the_revokes_a_worker_issues_reach_the_receiver_as_verified_sets(pipeline):  # noqa: F811
    settings, start, tmp_path = pipeline
    (tmp_path / "ssf-identities.yaml").write_text(INVENTORY)
    load_identities(settings, tmp_path / "ssf-identities.yaml")
    (tmp_path / "worker.pem").write_bytes(new_key_pem())
    (tmp_path / "jwks.json").write_text(
        json.dumps({"keys": [load_signer(tmp_path / "worker.pem", "w1").jwk()]})
    )
    receiver, port = Receiver(fail_first=False), _free_port()
    issuer = f"http://127.0.0.1:{port}"
    keys = {"NHIGUARD_SIGNING_KEY": str(tmp_path / "worker.pem"), "NHIGUARD_SIGNING_KID": "w1"}
    env = (
        worker_env(settings)
        | keys
        | {
            "NHIGUARD_SSF_ISSUER": issuer,
            "NHIGUARD_SSF_PUSH_URL": receiver.endpoint,
            "NHIGUARD_SSF_PUSH_AUTHORIZATION": AUTH,
            "NHIGUARD_COMMAND_KEYS": str(tmp_path / "jwks.json"),
        }
    )
    serve = Serve(env, port, tmp_path / "serve.log")
    try:
        serve.start()
        receiver.discover(issuer)
        start(**keys)
        _calls_from_outside(settings)
        out = collect(
            settings, 10**9, stop_when=lambda o: sum(c["kind"] == "REVOKE" for c in o["commands"]) >= 3
        )
        revokes = {c["command_id"]: c for c in out["commands"] if c["kind"] == "REVOKE"}
        assert sorted(c["target"] for c in revokes.values()) == [
            f"aws-role:{RELEASE}",
            "github-oidc:acme/cli",
            f"identity:{DEPLOY}",
        ], out["decisions"]
        receiver.wait_for({set_id(cid) for cid in revokes})
        serve.stop()
    finally:
        serve.stop()
        receiver.server.shutdown()
    assert receiver.failures == [] and len(receiver.received) == 3
    by_target = {}
    for claims in receiver.received:
        ((event_type, event),) = claims["events"].items()
        by_target[revokes[claims["txn"]]["target"]] = (
            event_type,
            event.get("credential_type"),
            claims["sub_id"],
        )
    app = {"format": "iss_sub", "iss": issuer}
    assert by_target[f"identity:{DEPLOY}"] == (
        SESSION_REVOKED,
        None,
        {"format": "complex", "application": app | {"sub": DEPLOY}},
    )
    assert by_target["github-oidc:acme/cli"] == (
        CREDENTIAL_CHANGE,
        "ci-oidc-trust",
        {
            "format": "complex",
            "application": app | {"sub": RELEASE},
            "credential": {"format": "opaque", "id": "github-oidc:acme/cli"},
        },
    )
    assert by_target[f"aws-role:{RELEASE}"][:2] == (CREDENTIAL_CHANGE, "nhi-credential")
