"""Hostile input against the real worker on a real broker: forged internal headers, records that used to
stop the worker. Each record is accounted for by a decision or a dead letter, and the worker keeps running."""

import json
import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import Producer

from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)
from tools.scenarios import default_params, generate

pytestmark = pytest.mark.integration


def _produce(settings, items):
    """Produce (topic, value, headers) to partition 0 of each topic, in order; returns their coordinates."""
    coords = []
    p = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True})

    def done(err, msg):
        assert err is None, err
        coords.append((msg.topic(), msg.partition(), msg.offset()))

    for topic, value, headers in items:
        p.produce(topic, value=value, headers=headers, partition=0, on_delivery=done)
        p.flush(30)  # one at a time: the offsets below are predicted from the order
    return coords


def test_forged_internal_headers_neither_steer_nor_stop_the_worker(pipeline):  # noqa: F811
    settings, start, _ = pipeline
    rename = {t: getattr(settings.topics, f) for f, t in vars(type(settings.topics)()).items()}
    real = [(rename[r.topic], r.value, list(r.headers)) for r in generate(default_params(), ordinary=40)]
    per_topic: dict[str, int] = {}
    for topic, _, _ in real:
        per_topic[topic] = per_topic.get(topic, 0) + 1
    # First, per topic: a junk origin (crash-looped decide), then for each real record a forgery carrying
    # the coordinates that real record will get (its later arrival would have been skipped as applied).
    forged, later = [], dict.fromkeys(per_topic, 0)
    for topic, value, headers in real:
        offset = 1 + per_topic[topic] + later[topic]  # after the junk record and this topic's forgeries
        later[topic] += 1
        forged.append((topic, value, [*headers, ("nhiguard-origin", f"{topic}|0|{offset}|0".encode())]))
    first = {t: (v, h) for t, v, h in reversed(real)}
    bad = [("NHIGUARD-ORIGIN", b"\xff junk"), ("nhiguard-origin-key", b"x")]
    junk = [(t, first[t][0], [*first[t][1], *bad]) for t in per_topic]
    coords = _produce(settings, junk + sorted(forged, key=lambda x: x[0]) + real)
    # And a record written straight to the by-identity topic without route's origin: dead-lettered there.
    coords += _produce(settings, [(settings.topics.by_identity, b"{}", [("nhiguard-origin", b"nope")])])
    worker = start()
    out = collect(settings, len(coords))
    assert out["seen"] == set(coords)
    real_coords = coords[-1 - len(real) : -1]
    decided = {(d["input"]["topic"], d["input"]["partition"], d["input"]["offset"]) for d in out["decisions"]}
    assert set(real_coords) <= decided, "no real record was skipped as already applied"
    assert {x["reason"] for x in out["deadletters"]} == {"malformed_origin"}
    assert [x["topic"] for x in out["deadletters"]] == [settings.topics.by_identity]
    time.sleep(1)
    assert worker.poll() is None, "the worker is still running"


# A header key that is not UTF-8: no client library writes one, but a broker stores it. aiokafka's pure-Python
# batch builder encodes a key with its `encode`, so a str that encodes to other bytes gets one written.
_PRODUCE_BAD_KEY = """
import asyncio, sys
from aiokafka import AIOKafkaProducer

class RawKey(str):
    def encode(self, *args, **kw):
        return b"\\xff\\xfebad-key"

async def main():
    p = AIOKafkaProducer(bootstrap_servers=sys.argv[1])
    await p.start()
    try:
        value = sys.stdin.buffer.read()
        await p.send_and_wait(sys.argv[2], value, partition=0, headers=[(RawKey("x"), b"v")])
    finally:
        await p.stop()

asyncio.run(main())
"""


def test_records_that_used_to_stop_the_worker_are_decided_or_dead_lettered(pipeline):  # noqa: F811
    settings, start, _ = pipeline
    t = settings.topics
    line = {"level": 30, "msg": "m", "user": "ci-deploy", "sub": "out", "status": 404, "time": 1774500000000}
    url = "/@" + "a%2f" * 200_000 + "@"  # 800 KB: the old package-name pattern would take hours on it
    items = [
        (t.ci, b'{"gate": "npm-publish", "n": ' + b"9" * 5000 + b"}", []),
        (t.registry, json.dumps(line | {"request": {"method": "GET", "url": url}}).encode(), []),
    ]
    coords = _produce(settings, items)
    gate = next(r.value for r in generate(default_params(), ordinary=0) if b'"gate"' in r.value)
    env = os.environ | {"AIOKAFKA_NO_EXTENSIONS": "1"}
    cmd = [sys.executable, "-c", _PRODUCE_BAD_KEY, settings.bootstrap, t.ci]
    subprocess.run(cmd, input=gate, env=env, check=True, timeout=60)
    coords.append((t.ci, 0, 1))
    worker = start()
    out = collect(settings, len(coords))
    assert out["seen"] == set(coords)
    reasons = {(x["topic"], x["offset"]): x["reason"] for x in out["deadletters"]}
    assert reasons == {(t.ci, 0): "malformed_json"}
    decided = {(d["input"]["topic"], d["input"]["offset"]) for d in out["decisions"]}
    assert decided == {(t.registry, 0), (t.ci, 1)}
    assert worker.poll() is None, "the worker is still running"


def test_a_compression_bomb_is_dead_lettered_record_by_record_and_costs_the_bound(pipeline):  # noqa: F811
    settings, start, _ = pipeline
    t = settings.topics
    # Three records of 256 MiB of zeros in one zstd batch: a few tens of KiB on the wire, within the
    # broker's limit; 768 MiB inflated, which aiokafka's own reader holds at once (and more, in copies).
    inflated = 3 * 256 * 2**20
    p = Producer(
        {
            "bootstrap.servers": settings.bootstrap,
            "compression.type": "zstd",
            "message.max.bytes": 10**9,
            "batch.size": 10**9,
            "linger.ms": 2000,
        }
    )
    for _ in range(3):
        p.produce(t.ci, value=bytes(inflated // 3), partition=0)
    assert p.flush(120) == 0
    del p
    gate = next(r.value for r in generate(default_params(), ordinary=0) if b'"gate"' in r.value)
    _produce(settings, [(t.ci, gate, [])])  # an ordinary record after it
    worker = start(NHIGUARD_MAX_INFLATED_BYTES=str(8 * 2**20))
    out = collect(settings, 4)
    assert out["seen"] == {(t.ci, 0, n) for n in range(4)}
    bombs = sorted(out["deadletters"], key=lambda x: x["offset"])
    assert [(x["offset"], x["reason"]) for x in bombs] == [(n, "oversized") for n in range(3)]
    assert all("zstd" in x["detail"] and "inflates past" in x["detail"] for x in bombs)
    assert [d["input"]["offset"] for d in out["decisions"]] == [3]
    status = open(f"/proc/{worker.pid}/status").read().splitlines()
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    assert worker.poll() is None, "the worker is still running"
    # Its peak resident memory, Python and Faust included, stayed under what the batch inflates to.
    assert peak < inflated, f"peak RSS {peak >> 20} MiB"
    print(f"worker peak RSS {peak >> 20} MiB")
