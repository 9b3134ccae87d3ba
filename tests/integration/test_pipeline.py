"""The worker end to end on a real broker: real topics, a real `nhiguard worker` process, Avro read back."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, Producer

from nhiguard.avro import AvroCodec
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import Topics, load_settings
from nhiguard.streams.checkpoint import EXIT_NOT_COMMITTED
from nhiguard.streams.identities import load_identities
from nhiguard.streams.topics import ensure_topics
from tools import REPO_ROOT
from tools.demo import kafka_env, produce_records, worker_env
from tools.scenarios import default_params, generate, write_inventory

pytestmark = pytest.mark.integration


@pytest.fixture
def pipeline(kafka_bootstrap, tmp_path, request):
    """Fresh topics and consumer group for one test, and a way to start workers on them (two partitions per
    topic unless the test asks for another count with indirect parametrization)."""
    run = uuid.uuid4().hex[:8]
    topics = Topics(**{k: f"t{run}.{v}" for k, v in vars(Topics()).items()})
    settings = replace(
        load_settings(env={}),
        bootstrap=kafka_bootstrap,
        topics=topics,
        app_id=f"nhiguard-test-{run}",
        # The tests replay generated history (March's incidents): a sandbox decides on the events' own times.
        sandbox=f"t{run}",
        data_dir=tmp_path / "worker",
        input_partitions=getattr(request, "param", 2),
    )
    ensure_topics(settings)
    identities = tmp_path / "identities.yaml"
    write_inventory(default_params(), identities)
    # The release workflow the probe gate requests below come from (sensitive: it must be a known identity).
    with identities.open("a") as f:
        f.write(
            "- {id: 'github:acme/cli/.github/workflows/r.yml', kind: package_publisher,\n"
            "   owner: cli@acme.example, team: cli, trust_tier: 1}\n"
        )
    load_identities(settings, identities)
    workers: list[subprocess.Popen] = []

    stopping = threading.Event()

    def spawn(env):
        log = open(tmp_path / f"worker-{len(workers)}.log", "wb")
        p = subprocess.Popen(
            [sys.executable, "-m", "nhiguard.streams.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        workers.append(p)
        return p

    def supervise(p, env):
        # As compose.yaml's `restart: unless-stopped` does: a worker that stopped without committing (exit 70)
        # is started again, and reads again what it had not committed. A SIGKILL (the tests' own) is not.
        while p.wait() == EXIT_NOT_COMMITTED and not stopping.is_set():
            p = spawn(env)

    def start(**env_extra):
        env = worker_env(settings) | {k: str(v) for k, v in env_extra.items()}
        p = spawn(env)
        threading.Thread(target=supervise, args=(p, env), daemon=True).start()
        return p

    yield settings, start, tmp_path
    stopping.set()
    for p in workers:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def reader(settings, topics):
    """A consumer of our own that reads the given topics from the start."""
    c = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe(topics)
    return c


def collect(settings, want_inputs, timeout=180, stop_when=None):
    """Read decisions, commands and dead letters until `want_inputs` input records are accounted for."""
    codec = AvroCodec(settings.schemas_dir)
    t = settings.topics
    c = reader(settings, [t.decisions, t.commands, t.deadletter, t.alerts])
    out = {"decisions": [], "commands": [], "deadletters": [], "alerts": []}
    seen = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < want_inputs and time.monotonic() < deadline:
            if stop_when and stop_when(out):
                break
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            rec = codec.decode(m.value())
            if m.topic() == t.decisions:
                out["decisions"].append(rec)
                seen.add((rec["input"]["topic"], rec["input"]["partition"], rec["input"]["offset"]))
            elif m.topic() == t.commands:
                out["commands"].append(rec)
            elif m.topic() == t.alerts:
                out["alerts"].append(rec)
            else:
                out["deadletters"].append(rec)
                seen.add((rec["topic"], rec["partition"], rec["offset"]))
    finally:
        c.close()
    out["seen"] = seen
    return out


def test_incident_stream_yields_commands_on_the_enforcement_topic(pipeline):
    settings, start, _ = pipeline
    records = generate(default_params(), ordinary=1000)
    labels = produce_records(settings.bootstrap, records, settings.topics)
    start()
    out = collect(settings, len(records))
    assert len(out["seen"]) == len(records)
    assert not out["deadletters"]
    assert len({d["decision_id"] for d in out["decisions"]}) == len(records)
    by_cmd = {}
    for d in out["decisions"]:
        label = labels[(d["input"]["topic"], d["input"]["partition"], d["input"]["offset"])]
        for cid in d["command_ids"]:
            by_cmd[cid] = label
    # Commands may still be in flight behind their decisions: wait for every one the decisions name.
    deadline = time.monotonic() + 30
    while {c["command_id"] for c in out["commands"]} < set(by_cmd) and time.monotonic() < deadline:
        more = collect(settings, 10**9, timeout=3)
        out["commands"] = more["commands"]
    kinds = Counter((by_cmd[c["command_id"]], c["kind"]) for c in out["commands"])
    assert kinds[("incident:cms", "DENY")] > 0 and kinds[("incident:cms", "REVOKE")] > 0
    assert kinds[("incident:ci", "DENY")] == 1
    assert kinds[("incident:registry", "DENY")] > 0 and kinds[("incident:registry", "REVOKE")] > 0
    assert not [k for k in kinds if not k[0].startswith("incident:")]
    assert all(c["bundle_revision"] for c in out["commands"])
    assert out["alerts"], "the SOC gets alerts"


def _bad_records(topics):
    gate = {
        "gate": "npm-publish",
        "request_id": "r1",
        "registry": "https://registry.npmjs.org/",
        "access": "public",
        "github": {
            "repository": "acme/cli",
            "workflow_ref": "acme/cli/.github/workflows/release.yml@refs/tags/v1",
        },
        "pack": {
            "name": "@acme/cli",
            "version": "1.0.0",
            "size": 10,
            "files": [{"path": "cli.js", "size": 10}],
        },
    }
    no_identity = dict(gate, github={"repository": "acme/cli"})
    return [
        (topics.cms, b'{"sys": {"id": ', "malformed_json"),
        (topics.ci, b'{"unknown": "shape"}', "unknown_shape"),
        (topics.ci, json.dumps(no_identity).encode(), "missing_identity"),
        (topics.ci, json.dumps(dict(gate, padding="x" * 5000)).encode(), "oversized"),
        (topics.ci, json.dumps(dict(gate, request_id="boom")).encode(), None),  # decided: fails closed
        (topics.ci, json.dumps(dict(gate, request_id="r3")).encode(), None),
        (
            topics.registry,
            b'{"level": 30, "msg": "m", "request": {"method": "GET", "url": "/"}, "user": "u"}',
            None,
        ),
    ]


def _strict_probe_bundle(dst):
    """The shipped bundle plus a policy the engine cannot evaluate for request "boom" (to_number fails)."""
    shutil.copytree(REPO_ROOT / "policies", dst)
    (dst / "ci" / "strict_probe.rego").write_text(
        "# METADATA\n# title: probe\n# description: fails at runtime for one input\n"
        "package nhiguard.ci.strict_probe\n\nimport rego.v1\n\n"
        'findings(ev) := {f | ev.release.request_id == "boom"; '
        'to_number(ev.release.request_id) > 0; f := {"rule": "never", "effect": "deny", "reason": "r"}}\n'
    )
    return dst


def test_bad_input_goes_to_the_dead_letter_topic_and_the_worker_keeps_going(pipeline):
    settings, start, tmp = pipeline
    bad = _bad_records(settings.topics)
    p = Producer({"bootstrap.servers": settings.bootstrap})
    for topic, value, _ in bad:
        p.produce(
            topic, value=value, headers=[("traceparent", b"t-1"), ("Authorization", b"Bearer s3cr3t-t0ken")]
        )
    assert p.flush(30) == 0
    start(
        NHIGUARD_MAX_RECORD_BYTES=4096,
        NHIGUARD_DEADLETTER_PREFIX_BYTES=1024,
        NHIGUARD_POLICIES_DIR=_strict_probe_bundle(tmp / "bundle"),
    )
    out = collect(settings, len(bad))
    assert len(out["seen"]) == len(bad)
    reasons = {x["reason"]: x for x in out["deadletters"]}
    assert set(reasons) == {r for _, _, r in bad if r}
    for topic, value, reason in bad:
        if reason is None:
            continue
        x = reasons[reason]
        assert x["topic"] == topic and x["original_length"] == len(value)
        assert x["headers"] == [{"key": "traceparent", "value": b"t-1"}]  # the allow-list: no Authorization
        if reason == "oversized":
            assert x["truncated"] and x["original"] == value[:1024]
            assert x["original_sha256"] == hashlib.sha256(value).hexdigest()
        else:
            assert x["original"] == value and not x["truncated"]
    # The gate request the engine could not evaluate is denied (ci fails closed), under the id the gate
    # waits for; the gate request beside it was decided by the policies.
    by_id = {d["event"]["event_id"]: d for d in out["decisions"]}
    assert len(out["decisions"]) == 3 and {"gate:boom", "gate:r3"} <= set(by_id)
    boom = by_id["gate:boom"]
    assert boom["verdict"] == "DENY" and [f["rule"] for f in boom["findings"]] == ["ci.engine.no_answer"]
    # Its command is on another topic: read on until it is there (collect stops once every input is seen).
    deadline = time.monotonic() + 60
    while not (cmds := [c for c in out["commands"] if c["event_id"] == "gate:boom"]):
        assert time.monotonic() < deadline, "no command for the gate request the engine could not evaluate"
        out = collect(settings, len(bad), timeout=10)
    assert [(c["kind"], c["target_type"], c["target"]) for c in cmds] == [("DENY", "request", "boom")]
    assert not any(f["rule"] == "ci.engine.no_answer" for f in by_id["gate:r3"]["findings"])


def _sigkill_and_restart(pipeline, drop_local_state):
    """Decide a stream with a worker that is SIGKILLed mid-stream and restarted (optionally without its local
    RocksDB state, as a replacement worker would start); returns what came out and the inputs produced."""
    settings, start, _ = pipeline
    records = generate(default_params(), ordinary=3000)
    produced = produce_records(settings.bootstrap, records, settings.topics)
    first = start(NHIGUARD_BATCH_MAX=50, NHIGUARD_SESSION_TIMEOUT_S=8)
    partial = collect(settings, len(records), timeout=120, stop_when=lambda o: len(o["decisions"]) >= 400)
    assert 400 <= len(partial["decisions"]) < len(records), "kill must land mid-stream"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    if drop_local_state:
        # Local state gone: the restart must recover every table from its changelog, and the consumer fetches
        # while that recovery completes (the window where Faust 0.15.3 drops records, streams/checkpoint.py).
        shutil.rmtree(settings.data_dir)
    start(NHIGUARD_BATCH_MAX=50, NHIGUARD_SESSION_TIMEOUT_S=8)
    out = collect(settings, len(records), timeout=240)
    return records, produced, out


def _assert_every_input_accounted_for_once(records, produced, out):
    inputs = {(d["input"]["topic"], d["input"]["partition"], d["input"]["offset"]) for d in out["decisions"]}
    inputs |= {(x["topic"], x["partition"], x["offset"]) for x in out["deadletters"]}
    missing = sorted(set(produced) - inputs)
    assert not missing and len(inputs) == len(records), (
        f"every input offset has a decision or a dead letter; {len(missing)} have not, e.g. {missing[:10]}"
    )
    # At least once: a record decided twice (before and after the kill) keeps its decision id and verdict.
    seen = {}
    for d in out["decisions"]:
        key = (d["input"]["topic"], d["input"]["partition"], d["input"]["offset"])
        assert seen.setdefault(key, (d["decision_id"], d["verdict"])) == (d["decision_id"], d["verdict"])


def test_sigkill_mid_batch_loses_no_input(pipeline):
    _assert_every_input_accounted_for_once(*_sigkill_and_restart(pipeline, drop_local_state=False))


def test_sigkill_and_lost_local_state_loses_no_input(pipeline):
    _assert_every_input_accounted_for_once(*_sigkill_and_restart(pipeline, drop_local_state=True))


def test_offset_gaps_left_by_transaction_markers_are_committed_over_not_taken_for_loss(pipeline):
    """A shipper that writes its input topic in transactions leaves a commit marker after each one: an offset
    with no record. The checkpoint's guard (no commit past an unprocessed record) must tell them apart."""
    from confluent_kafka import TopicPartition

    settings, start, _ = pipeline
    records = [r for r in generate(default_params(), ordinary=40) if r.topic == "audit.ci"][:30]
    topic = settings.topics.ci
    shipper = f"shipper-{uuid.uuid4().hex}"
    tx = Producer({"bootstrap.servers": settings.bootstrap, "transactional.id": shipper})
    tx.init_transactions(30)
    for i in range(0, len(records), 7):  # five transactions, five markers
        tx.begin_transaction()
        for r in records[i : i + 7]:
            tx.produce(topic, value=r.value, key=r.key, headers=list(r.headers), partition=0)
        tx.commit_transaction(30)
    worker = start(NHIGUARD_BATCH_MAX=4)
    out = collect(settings, len(records), timeout=120)
    assert len(out["seen"]) == len(records)
    high = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "probe"}).get_watermark_offsets(
        TopicPartition(topic, 0), 10
    )[1]
    assert high > len(records), "the markers take offsets"
    probe = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": settings.app_id})
    deadline = time.monotonic() + 60
    committed = -1
    while committed < high - 1 and time.monotonic() < deadline and worker.poll() is None:
        committed = probe.committed([TopicPartition(topic, 0)], 10)[0].offset
        time.sleep(0.5)
    probe.close()
    assert worker.poll() is None, "the worker stopped: it took the markers for lost records"
    assert committed >= high - 1, f"committed {committed}, log end {high}"


def test_a_large_record_under_the_input_limit_is_decided_not_a_poison_pill(pipeline):
    # The decision embeds the event: for an input near the 1 MiB limit it is larger than Kafka's default
    # 1 MB message limit, so output topics and the producer must allow more, or the worker would crash-loop.
    settings, start, _ = pipeline
    files = [
        {"path": f"dist/chunk-{i:06d}-{'x' * 40}.js", "size": 1000 + i, "mode": 420} for i in range(9500)
    ]
    gate = {
        "gate": "npm-publish",
        "request_id": "big",
        "registry": "https://registry.npmjs.org/",
        "access": "public",
        "github": {
            "repository": "acme/web",
            "workflow_ref": "acme/web/.github/workflows/release.yml@refs/tags/v9",
        },
        "pack": {"name": "@acme/web", "version": "9.0.0", "size": 10**7, "files": files},
    }
    value = json.dumps(gate).encode()
    assert 900_000 < len(value) < settings.max_record_bytes
    p = Producer({"bootstrap.servers": settings.bootstrap, "message.max.bytes": 2 * 2**20})
    p.produce(settings.topics.ci, value=value)
    assert p.flush(30) == 0
    worker = start()
    out = collect(settings, 1, timeout=90)
    assert len(out["decisions"]) == 1 and not out["deadletters"]
    assert len(out["decisions"][0]["event"]["release"]["files"]) == 9500
    assert worker.poll() is None, "the worker is still running"


def test_policy_change_is_hot_reloaded_and_a_bad_bundle_is_refused(pipeline):
    from tests.unit.test_engine import CRASHY

    settings, start, tmp = pipeline
    bundle = tmp / "bundle"
    shutil.copytree(REPO_ROOT / "policies", bundle)
    start(NHIGUARD_POLICIES_DIR=bundle, NHIGUARD_POLICY_RELOAD_S=1)
    codec = AvroCodec(settings.schemas_dir)
    p = Producer({"bootstrap.servers": settings.bootstrap})
    c = reader(settings, [settings.topics.decisions, settings.topics.alerts])
    seen = {}
    alerts = []

    def gate(request_id):
        body = {
            "gate": "npm-publish",
            "request_id": request_id,
            "access": "public",
            "github": {
                "repository": "acme/cli",
                "workflow_ref": "acme/cli/.github/workflows/r.yml@refs/tags/v1",
            },
            "pack": {
                "name": "@acme/cli",
                "version": "1.0.0",
                "size": 10,
                "files": [{"path": "cli.js", "size": 5}, {"path": "src.zip", "size": 5}],
            },
        }
        p.produce(settings.topics.ci, value=json.dumps(body).encode())
        p.flush(10)

    def wait(pred, timeout=60, every=None):
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            if every and n % every == 0:
                gate(f"probe-{n}")
            n += 1
            for m in c.consume(100, 0.5):
                if m.error():
                    continue
                rec = codec.decode(m.value())
                if m.topic() == settings.topics.alerts:
                    alerts.append(rec)
                else:
                    seen[rec["event"]["event_id"]] = rec
            if pred():
                return True
        return False

    gate("before")
    assert wait(lambda: "gate:before" in seen)
    first = seen["gate:before"]
    assert first["verdict"] == "ALLOW"  # an archive is not prohibited yet

    # A policy change, with its case: archives are now prohibited in public releases.
    data = bundle / "data.yaml"
    data.write_text(
        data.read_text().replace(
            "          npm_credentials:",
            "          archive: '\\.(zip|tar|tgz)$'\n          npm_credentials:",
        )
    )
    cases = bundle / "ci" / "release_artifacts.cases.yaml"
    cases.write_text(
        cases.read_text()
        + """
  - name: an archive in a public release is denied
    input:
      domain: ci
      action: ci.release.publish_request
      resource_id: "x@1.0.0"
      release: {package: x, version: 1.0.0, access: public, size: 10, request_id: r9,
                files: [{path: a.zip, size: 5}]}
      context: {previous_release: null, size_ratio: null}
    expect: {verdict: deny, rules: [prohibited_archive]}
"""
    )
    changed = lambda: any(d["bundle_revision"] != first["bundle_revision"] for d in seen.values())  # noqa: E731
    assert wait(changed, every=4), "the new revision never decided anything"
    new = next(d for d in seen.values() if d["bundle_revision"] != first["bundle_revision"])
    assert new["verdict"] == "DENY"
    assert [f["rule"] for f in new["findings"]] == ["ci.release_artifacts.prohibited_archive"]

    # A bundle that crashes the engine is refused: an alert, and the active revision keeps deciding.
    (bundle / "cms" / "crashy.rego").write_text(CRASHY)
    assert wait(lambda: any(a["rule"] == "bundle.refused" for a in alerts), timeout=60)
    refused = next(a for a in alerts if a["rule"] == "bundle.refused")
    assert "crashed while trying the bundle" in refused["summary"]
    gate("after")
    assert wait(lambda: "gate:after" in seen)
    assert seen["gate:after"]["bundle_revision"] == new["bundle_revision"]
    assert seen["gate:after"]["verdict"] == "DENY"
    c.close()


def test_a_bundle_published_to_the_topic_becomes_active_on_the_worker(pipeline, monkeypatch):
    from nhiguard.streams.cli import main

    settings, start, tmp = pipeline
    start(NHIGUARD_POLICY_SOURCE="topic")
    codec = AvroCodec(settings.schemas_dir)
    p = Producer({"bootstrap.servers": settings.bootstrap})
    c = reader(settings, [settings.topics.decisions])
    body = {
        "gate": "npm-publish",
        "access": "public",
        "github": {"repository": "acme/cli", "workflow_ref": "acme/cli/.github/workflows/r.yml@refs/tags/v1"},
        "pack": {
            "name": "@acme/cli",
            "version": "1.0.0",
            "size": 10,
            "files": [{"path": "src.zip", "size": 5}],
        },
    }

    def decide(request_id, timeout=60):
        p.produce(settings.topics.ci, value=json.dumps(dict(body, request_id=request_id)).encode())
        p.flush(10)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if not m.error():
                    d = codec.decode(m.value())
                    if d["event"]["event_id"] == f"gate:{request_id}":
                        return d
        raise AssertionError(f"no decision for {request_id}")

    before = decide("before")
    assert before["verdict"] == "ALLOW"
    # Publish a changed bundle (archives prohibited, with its case) with the CLI, as an operator would.
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
    assert main(["policy", "publish", str(bundle)]) == 0
    for i in range(30):
        d = decide(f"after-{i}", timeout=10)
        if d["bundle_revision"] != before["bundle_revision"]:
            break
    assert d["bundle_revision"] == load_bundle(bundle).revision
    assert d["verdict"] == "DENY" and d["findings"][0]["rule"] == "ci.release_artifacts.prohibited_archive"
    c.close()


def test_identity_load_update_and_tombstone_take_effect_for_the_next_event(pipeline):
    """The inventory on the identities topic, through the CLI a platform team uses; no worker restart."""
    settings, start, tmp = pipeline
    who = "github:acme/tool/.github/workflows/release.yml"
    codec = AvroCodec(settings.schemas_dir)
    p = Producer({"bootstrap.servers": settings.bootstrap})
    c = reader(settings, [settings.topics.decisions, settings.topics.deadletter])
    verdicts: dict[str, dict] = {}
    deadletters: list[dict] = []

    def gate(request_id):
        body = {
            "gate": "npm-publish",
            "request_id": request_id,
            "access": "public",
            "github": {"repository": "acme/tool", "workflow_ref": f"{who[7:]}@refs/tags/v1"},
            "pack": {
                "name": "@acme/tool",
                "version": "1.0.0",
                "size": 10,
                "files": [{"path": "a.js", "size": 9}],
            },
        }
        p.produce(settings.topics.ci, value=json.dumps(body).encode())
        p.flush(10)

    def until(pred, timeout=60):
        """Send probe requests until one is decided as pred wants (a change applies to the *next* event)."""
        deadline = time.monotonic() + timeout
        n = 0
        while time.monotonic() < deadline:
            n += 1
            gate(f"probe-{uuid.uuid4().hex[:6]}")
            for m in c.consume(100, 1.0):
                if m.error():
                    continue
                rec = codec.decode(m.value())
                if m.topic() == settings.topics.deadletter:
                    deadletters.append(rec)
                else:
                    verdicts[rec["event"]["event_id"]] = rec
                    if pred(rec):
                        return rec
        raise AssertionError(
            f"no decision as expected within {timeout}s; last: {list(verdicts.values())[-1:]}"
        )

    def cli(*args):
        run = subprocess.run(
            [sys.executable, "-m", "nhiguard.streams.cli", "identities", *args],
            env={**os.environ, **kafka_env(settings)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout

    start()
    first = until(lambda d: True)
    assert not first["identity_known"] and first["identity_kind"] == "unknown" and first["verdict"] == "DENY"
    inv = tmp / "tool.csv"
    inv.write_text(
        "id,kind,owner,team,credential_ids,allowed_actions,trust_tier,expires\n"
        f"{who},package_publisher,tool@acme.example,tool,npm:tool,ci.release.*,1,2099-01-01T00:00:00Z\n"
    )
    assert "1 identities written" in cli("load", str(inv))
    known = until(lambda d: d["identity_known"])
    assert known["identity_kind"] == "package_publisher" and known["verdict"] == "ALLOW"
    # An update: the identity has expired.
    inv.write_text(inv.read_text().replace("2099-01-01", "2020-01-01"))
    cli("load", str(inv))
    expired = until(lambda d: d["verdict"] == "DENY" and d["identity_known"])
    assert [f["rule"] for f in expired["findings"]] == ["identity.inventory.expired_identity"]
    # A tombstone: unknown again.
    cli("delete", who)
    gone = until(lambda d: not d["identity_known"])
    assert [f["rule"] for f in gone["findings"]] == ["identity.inventory.unknown_identity"]
    # A record that is not an identity is dead-lettered, not applied.
    p.produce(settings.topics.identities, key=b"junk", value=b"not avro")
    p.flush(10)
    until(lambda d: any(x["reason"] == "invalid_identity" for x in deadletters))
    c.close()


@pytest.mark.parametrize("pipeline", [1], indirect=True)
def test_after_sigkill_and_restart_the_same_events_get_the_same_scores(pipeline):
    """Per-identity state (facts and behavioural model) survives a SIGKILL through the changelog: every event
    decided after the restart gets the anomaly score and verdict it gets in a run without a kill.

    The run without a kill is the decision core in process over the same records: with one partition per
    topic each identity's events reach the worker in the order they were produced, so it is exact."""
    from nhiguard.decision.context import Inventory
    from nhiguard.decision.core import DecisionCore
    from tests.unit.test_core import raw_records
    from tools.scenarios import inventory

    settings, start, _ = pipeline
    params = default_params()
    records = generate(params, ordinary=3000)
    core = DecisionCore(
        load_settings(env={}), load_bundle(settings.policies_dir), Inventory.load_dict(inventory(params))
    )
    raws = raw_records(records)
    ref = {}
    for i in range(0, len(raws), 500):
        for d in core.process(raws[i : i + 500]).decisions:
            ref[(d.topic, d.offset)] = (round(d.anomaly_score, 6), d.anomaly_warm, d.verdict)
    assert sum(warm for _, warm, _ in ref.values()) > 500, (
        "enough warm identities for the test to mean something"
    )

    prefix = settings.topics.cms.split(".")[0] + "."
    produce_records(settings.bootstrap, records, settings.topics)
    first = start(NHIGUARD_BATCH_MAX=50, NHIGUARD_SESSION_TIMEOUT_S=8)
    partial = collect(settings, len(records), timeout=120, stop_when=lambda o: len(o["decisions"]) >= 1500)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert len(partial["decisions"]) < len(records), "kill must land mid-stream"
    start(NHIGUARD_BATCH_MAX=50, NHIGUARD_SESSION_TIMEOUT_S=8)
    out = collect(settings, len(records), timeout=240)
    got = {}
    for d in out["decisions"]:
        key = (d["input"]["topic"].removeprefix(prefix), d["input"]["offset"])
        value = (round(d["anomaly"]["score"], 6), d["anomaly"]["warm"], d["verdict"])
        assert got.setdefault(key, value) == value, "a record decided twice got two different outcomes"
    assert len(got) == len(ref)
    differ = [(k, got[k], ref[k]) for k in ref if got[k] != ref[k]]
    assert not differ, f"{len(differ)} outcomes differ from the run without a kill, e.g. {differ[:3]}"
