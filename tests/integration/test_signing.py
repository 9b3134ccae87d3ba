"""Signed commands and bundles on a real broker: a worker with a key emits commands `nhiguard verify --topic`
accepts, and forged ones produced to the topic are rejected; a worker with bundle keys activates only a
signed bundle from the bundles topic."""

import json
import shutil
import subprocess
import sys
import time

import pytest
from confluent_kafka import Producer

from nhiguard.avro import AvroCodec
from nhiguard.policy.bundle import load_bundle
from nhiguard.signing import KID_HEADER, SIG_HEADER, b64url, load_signer, new_key_pem
from tests.integration.test_pipeline import collect, pipeline, reader  # noqa: F401 (a fixture)
from tools import REPO_ROOT
from tools.demo import produce_records, worker_env
from tools.scenarios import default_params, generate

pytestmark = pytest.mark.integration


def _keys(tmp):
    """The worker's key (kid w1), an attacker's key, and the JWKS that trusts only the worker's."""
    for name in ("worker.pem", "attacker.pem"):
        (tmp / name).write_bytes(new_key_pem())
    signer, attacker = load_signer(tmp / "worker.pem", "w1"), load_signer(tmp / "attacker.pem", "w1")
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}))
    return signer, attacker, jwks


def _verify(settings, jwks, topic, dump=None):
    args = ["verify", "--keys", str(jwks), "--topic", topic] + (["--dump", str(dump)] if dump else [])
    return subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", *args],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_signed_commands_verify_and_forged_ones_are_rejected(pipeline):  # noqa: F811
    settings, start, tmp = pipeline
    _, attacker, jwks = _keys(tmp)
    records = generate(default_params(), ordinary=200)
    produce_records(settings.bootstrap, records, settings.topics)
    start(NHIGUARD_SIGNING_KEY=tmp / "worker.pem", NHIGUARD_SIGNING_KID="w1", NHIGUARD_REQUIRE_SIGNING=1)
    out = collect(settings, len(records))
    assert len(out["seen"]) == len(records)
    issued = {cid for d in out["decisions"] for cid in d["command_ids"] if cid not in d["held_command_ids"]}
    assert issued, "the incident stream yields commands"
    # Commands may trail their decisions: verify once every one the decisions name is on the topic.
    deadline = time.monotonic() + 60
    while {c["command_id"] for c in collect(settings, 10**9, timeout=3)["commands"]} < issued:
        assert time.monotonic() < deadline, "not every command reached the topic"
    dump = tmp / "commands.ndjson"
    ok = _verify(settings, jwks, settings.topics.commands, dump)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    n = len(dump.read_text().splitlines())
    assert n >= len(issued) and f"{n} record(s): {n} valid (key w1)" in ok.stdout
    # The dump is the FILE format: verifying it offline gives the same answer.
    offline = subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", "verify", "--keys", str(jwks), str(dump)],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 0 and f"{n} valid" in offline.stdout

    # Forgeries by someone who can write the topic: a real command re-sent unsigned, a real command altered
    # under its own signature, and a command signed by another key under the trusted key id.
    c = reader(settings, [settings.topics.commands])
    try:
        while (m := c.poll(1.0)) is None or m.error():
            pass
        value, headers = m.value(), m.headers()
    finally:
        c.close()
    codec = AvroCodec(settings.schemas_dir)
    rec = codec.decode(value)
    other = codec.encode(
        "EnforcementCommand", dict(rec, identity="cms:someone-else", target="cms:someone-else")
    )
    p = Producer({"bootstrap.servers": settings.bootstrap})
    forged = [
        (value, None),
        (other, headers),
        (other, [(SIG_HEADER, b64url(attacker.sign(other)).encode()), (KID_HEADER, b"w1")]),
    ]
    for v, h in forged:
        p.produce(settings.topics.commands, key=b"forged", value=v, headers=h, partition=0)
    assert p.flush(30) == 0
    bad = _verify(settings, jwks, settings.topics.commands)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    lines = [ln for ln in bad.stdout.splitlines() if ln.startswith("BAD")]
    assert len(lines) == 3, bad.stdout
    assert lines[0].endswith(": unsigned")
    assert "bad signature" in lines[1] and "bad signature" in lines[2]
    assert f"{n + 3} record(s): 3 bad, {n} valid (key w1)" in bad.stdout


def test_a_worker_with_bundle_keys_activates_only_a_signed_bundle(pipeline, monkeypatch):  # noqa: F811
    from nhiguard.streams.cli import main
    from tools.demo import kafka_env

    settings, start, tmp = pipeline
    _, _, jwks = _keys(tmp)
    start(NHIGUARD_POLICY_SOURCE="topic", NHIGUARD_BUNDLE_KEYS=jwks)
    codec = AvroCodec(settings.schemas_dir)
    p = Producer({"bootstrap.servers": settings.bootstrap})
    c = reader(settings, [settings.topics.decisions, settings.topics.alerts])
    alerts = []
    body = {
        "gate": "npm-publish",
        "access": "public",
        "github": {"repository": "acme/cli", "workflow_ref": "acme/cli/.github/workflows/r.yml@refs/tags/v1"},
        "pack": {
            "name": "@acme/cli",
            "version": "1.0.0",
            "size": 10,
            "files": [{"path": "a.zip", "size": 5}],
        },
    }

    def decide(request_id, timeout=60):
        p.produce(settings.topics.ci, value=json.dumps(dict(body, request_id=request_id)).encode())
        p.flush(10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if m.error():
                    continue
                rec = codec.decode(m.value())
                if m.topic() == settings.topics.alerts:
                    alerts.append(rec)
                elif rec["event"]["event_id"] == f"gate:{request_id}":
                    return rec
        raise AssertionError(f"no decision for {request_id}")

    before = decide("before")
    assert before["verdict"] == "ALLOW"
    bundle = tmp / "bundle"
    shutil.copytree(REPO_ROOT / "policies", bundle)
    data = bundle / "data.yaml"
    data.write_text(
        data.read_text().replace(
            "          npm_credentials:", "          archive: '\\.zip$'\n          npm_credentials:"
        )
    )
    for k, v in kafka_env(settings).items():
        monkeypatch.setenv(k, v)
    # Unsigned, then signed by a key the worker does not trust: both refused, with an alert each.
    assert main(["policy", "publish", str(bundle)]) == 0
    assert main(["policy", "publish", str(bundle), "--key", str(tmp / "attacker.pem"), "--kid", "w1"]) == 0
    deadline = time.monotonic() + 60
    while len([a for a in alerts if a["rule"] == "bundle.refused"]) < 2:
        assert time.monotonic() < deadline, f"no refusal alerts: {alerts}"
        decide(f"probe-{time.monotonic()}", timeout=10)
    summaries = sorted(a["summary"] for a in alerts if a["rule"] == "bundle.refused")
    assert any("unsigned" in s for s in summaries) and any("bad signature" in s for s in summaries)
    assert decide("still-old")["bundle_revision"] == before["bundle_revision"]
    # Signed with the trusted key: activated.
    assert main(["policy", "publish", str(bundle), "--key", str(tmp / "worker.pem"), "--kid", "w1"]) == 0
    for i in range(30):
        d = decide(f"after-{i}", timeout=10)
        if d["bundle_revision"] != before["bundle_revision"]:
            break
    assert d["bundle_revision"] == load_bundle(bundle).revision and d["verdict"] == "DENY"
    c.close()


def test_a_release_signs_what_it_sends_and_ignores_forged_held_records(pipeline, capsys):  # noqa: F811
    """No worker: the held topic gets one command held by the worker (signed) and one forged (unsigned)."""
    from dataclasses import replace

    from nhiguard.signing import Jwks, verify_record
    from nhiguard.streams.held import release
    from nhiguard.streams.verify import read_topic

    settings, _, tmp = pipeline
    signer, _, jwks = _keys(tmp)
    settings = replace(settings, signing_key=tmp / "worker.pem", signing_kid="w1", command_keys=jwks)
    codec = AvroCodec(settings.schemas_dir)

    def held(command_id):
        return {
            "command_id": command_id,
            "kind": "REVOKE",
            "identity": f"verdaccio:{command_id}",
            "target_type": "credential",
            "target": f"verdaccio:{command_id}",
            "reasons": ["r"],
            "policy_ids": ["p"],
            "rule_ids": ["p.r"],
            "bundle_revision": "b",
            "event_id": "e",
            "issued_at": 1,
            "expires_at": 2,
            "status": "HELD",
            "held_reason": "breaker",
            "released_at": None,
            "released_by": "",
            "evidence": {},
        }

    real, forged = (
        codec.encode("EnforcementCommand", held("real")),
        codec.encode("EnforcementCommand", held("fake")),
    )
    p = Producer({"bootstrap.servers": settings.bootstrap})
    p.produce(settings.topics.held, key=b"real", value=real, headers=signer.headers(real))
    p.produce(settings.topics.held, key=b"fake", value=forged)
    assert p.flush(30) == 0
    released, already = release(settings, codec, [], True, "alice")
    assert [r["command_id"] for r in released] == ["real"] and not already
    assert "ignored" in capsys.readouterr().err
    with pytest.raises(KeyError, match="fake"):
        release(settings, codec, ["fake"], False, "alice")
    sent = list(read_topic(settings, settings.topics.commands, None))
    assert len(sent) == 1 and codec.decode(sent[0].value)["status"] == "RELEASED"
    assert verify_record(sent[0].value, sent[0].headers, Jwks.load(jwks)).kid == "w1"
    # A topic that does not exist is an error (exit 2, one line), not an empty success.
    missing = _verify(settings, jwks, f"{settings.topics.commands}.missing")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "Traceback" not in missing.stderr
