"""`nhiguard replay --to-kafka` and `nhiguard deadletters redrive` through the real broker (and worker): an
interrupted replay resumes with every record on the topics once; the worker decides a replayed stream as the
offline backtest does; dead letters redriven after an adapter is added are decided, once."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.lookup import registry_lookup
from nhiguard.policy.bundle import load_bundle
from nhiguard.streams.backtest import decide_items
from nhiguard.streams.reader import read_inputs
from nhiguard.streams.redrive import FROM_HEADER
from nhiguard.streams.replay_kafka import REPLAY_HEADER
from nhiguard.streams.topics import read_to_end
from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)
from tools import REPO_ROOT
from tools.demo import worker_env
from tools.scenarios import default_params, generate, write_ndjson

pytestmark = pytest.mark.integration


def _cli(settings, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", *args, "--sandbox", settings.sandbox],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _on_topics(settings, topics):
    return [m for t in topics for m in read_to_end(settings, t, "test", missing_ok=True)]


def _demo(tmp_path):
    path = tmp_path / "demo.ndjson"
    n = write_ndjson(generate(default_params(), ordinary=1000), path)
    return path, n


def _interrupt_after(settings, path, at_least, sig):
    """Start a paced replay, wait until `at_least` of its records are on the topics, send `sig`."""
    cmd = [sys.executable, "-m", "nhiguard.streams.cli", "replay", str(path), "--to-kafka"]
    cmd += ["--sandbox", settings.sandbox, "--speed", "20000"]  # the 12-day stream in about a minute
    p = subprocess.Popen(cmd, env=worker_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while len(_on_topics(settings, settings.topics.inputs)) < at_least:
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "the replay sent nothing"
        time.sleep(0.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    return p.returncode, out.decode(), err.decode()


def test_an_interrupted_replay_resumes_and_every_record_is_on_the_topics_once(pipeline):  # noqa: F811
    settings, _, tmp_path = pipeline
    path, n = _demo(tmp_path)
    rc, out, err = _interrupt_after(settings, path, 30, signal.SIGINT)
    assert rc == 130 and "interrupted" in out and "Traceback" not in err, (out, err[-2000:])
    first = len(_on_topics(settings, settings.topics.inputs))
    assert 30 <= first < n
    rc, out, err = _interrupt_after(settings, path, first + 30, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    second = len(_on_topics(settings, settings.topics.inputs))
    assert first < second < n
    done = _cli(settings, "replay", str(path), "--to-kafka")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{n} records, {second} already on {settings.sandbox}" in done.stdout
    records = _on_topics(settings, [*settings.topics.inputs, settings.topics.deadletter])
    seqs = Counter(int(v.split(b"|")[1]) for m in records for k, v in m.headers() or [] if k == REPLAY_HEADER)
    assert sorted(seqs) == list(range(n)) and set(seqs.values()) == {1}, "each record exactly once"
    sent = Counter(m.value() for m in records)  # the file's records, no more, no less
    expected = Counter(i.record.value for i in read_inputs([path]))
    assert sent == expected
    # Again: nothing is sent twice.
    again = _cli(settings, "replay", str(path), "--to-kafka")
    assert again.returncode == 0 and f"{n} already on" in again.stdout
    assert len(_on_topics(settings, settings.topics.inputs)) == n


def _offline(settings, path, identities):
    bundle = load_bundle(settings.policies_dir)
    core = DecisionCore(
        settings,
        bundle,
        Inventory.load(identities),
        lookup=registry_lookup(settings.registry_lookup, None, None),
        body_time=True,
    )
    return decide_items(core, read_inputs([path], settings.topics))


@pytest.mark.parametrize("pipeline", [1], indirect=True)  # one partition: one total order, as offline
def test_the_worker_decides_a_replayed_stream_as_the_backtest_does(pipeline):  # noqa: F811
    settings, start, tmp_path = pipeline
    path, n = _demo(tmp_path)
    identities = tmp_path / "identities.yaml"  # the pipeline's inventory, loaded to the identities topic
    summary = tmp_path / "summary.json"
    done = _cli(settings, "replay", str(path), "--to-kafka")
    assert done.returncode == 0, done.stderr[-2000:]
    args = ["backtest", str(path), "--identities", str(identities), "--summary-json", str(summary)]
    backtest = subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", *args],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert backtest.returncode == 0, backtest.stderr[-2000:]
    figures = json.loads(summary.read_text())
    start()
    out = collect(settings, n)
    assert len(out["seen"]) == n
    wanted = {c for d in out["decisions"] for c in d["command_ids"]}
    deadline = time.monotonic() + 60
    while {c["command_id"] for c in out["commands"]} < wanted and time.monotonic() < deadline:
        out["commands"] = collect(settings, 10**9, timeout=3)["commands"]
    commands = {
        c["command_id"]: (c["kind"], c["identity"], c["target_type"], c["target"]) for c in out["commands"]
    }
    streamed = {
        d["event"]["event_id"]: (d["verdict"], sorted(commands[c] for c in d["command_ids"]))
        for d in out["decisions"]
    }
    # The summary the backtest printed and wrote, against what the worker wrote on the topics.
    assert figures["records"] == n and figures["deadletters"] == {} and not out["deadletters"]
    assert figures["decisions"] == dict(Counter(v for v, _ in streamed.values()))
    assert figures["commands"] == dict(Counter(c[0] for _, cs in streamed.values() for c in cs))
    assert figures["commands"].get("REVOKE") and figures["commands"].get("DENY"), "the incidents are stopped"
    # Record by record: the same verdict and the same commands.
    offline = _offline(settings, path, identities)
    assert not any(c.held for c in offline.commands)
    decided = {
        d.event.event_id: (
            d.verdict,
            sorted((c.kind, c.identity, c.target_type, c.target) for c in d.commands),
        )
        for d in offline.decisions
    }
    assert len(decided) == len(offline.decisions) == n, "event ids name one record each"
    assert streamed == decided


def test_redriven_unknown_shapes_are_decided_once_an_adapter_reads_them(pipeline):  # noqa: F811
    settings, start, tmp_path = pipeline
    bodies = [{"tiny_deploy": f"svc-{i}", "who": "bot-7", "at": f"2026-03-14T09:0{i}:00Z"} for i in range(2)]
    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True})
    for b in bodies:
        producer.produce(settings.topics.ci, json.dumps(b).encode(), headers=[("X-Team", b"cd")])
    producer.produce(settings.topics.ci, b"{not json")
    assert producer.flush(30) == 0
    worker = start()
    first = collect(settings, 3)
    assert sorted(x["reason"] for x in first["deadletters"]) == [
        "malformed_json",
        "unknown_shape",
        "unknown_shape",
    ]
    worker.terminate()
    assert worker.wait(60) == 0
    # The fix: a worker whose process has an adapter for these records (registered through the registry).
    code = (
        "import tests.integration.tiny_adapter\n"
        "from nhiguard.streams.cli import main\n"
        "raise SystemExit(main(['worker']))"
    )
    log = open(tmp_path / "worker-tiny.log", "wb")
    fixed = subprocess.Popen(
        [sys.executable, "-c", code],
        env=worker_env(settings),
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        later = _cli(settings, "deadletters", "redrive", "--since", "2099-01-01T00:00:00Z", "--dry-run")
        assert later.returncode == 0 and "would redrive: 0" in later.stdout, later.stderr[-2000:]
        dry = _cli(settings, "deadletters", "redrive", "--reason", "unknown_shape", "--dry-run")
        assert dry.returncode == 0 and "would redrive: 2" in dry.stdout, dry.stderr[-2000:]
        done = _cli(settings, "deadletters", "redrive", "--reason", "unknown_shape")
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"redriven: {{'{settings.topics.ci}': 2}}" in done.stdout
        out = collect(settings, 10**9, stop_when=lambda o: len(o["decisions"]) >= 2)
        assert sorted(d["event"]["resource_id"] for d in out["decisions"]) == ["svc-0", "svc-1"]
        assert {d["event"]["source"] for d in out["decisions"]} == {"tiny.deployer"}
        # Each redriven record, and its decision, name where it was first read (as its dead letter did).
        origins = sorted(
            f"{x['topic']}|{x['partition']}|{x['offset']}"
            for x in first["deadletters"]
            if x["reason"] == "unknown_shape"
        )
        on_ci = _on_topics(settings, [settings.topics.ci])
        redriven = [dict(m.headers() or []) for m in on_ci if FROM_HEADER in dict(m.headers() or [])]
        assert sorted(h[FROM_HEADER].decode().rsplit("|", 1)[0] for h in redriven) == origins
        flags = [f for d in out["decisions"] for f in d["flags"] if f.startswith("redriven:")]
        assert sorted(f.removeprefix("redriven:").rsplit("|", 1)[0] for f in flags) == origins
        # Again: once per dead letter.
        again = _cli(settings, "deadletters", "redrive", "--reason", "unknown_shape")
        assert again.returncode == 0 and "'already redriven': 2" in again.stdout, again.stdout
        assert len(_on_topics(settings, [settings.topics.ci])) == len(on_ci) == 5
    finally:
        fixed.terminate()
        fixed.wait(30)
