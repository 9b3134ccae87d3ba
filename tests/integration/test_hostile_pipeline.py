"""Hostile input against the real worker on a real broker: forged internal headers, records that used to
stop the worker. Each record is accounted for by a decision or a dead letter, and the worker keeps running."""

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
    first = {t: v for t, v, _ in reversed(real)}
    bad = [("NHIGUARD-ORIGIN", b"\xff junk"), ("nhiguard-origin-key", b"x")]
    junk = [(t, first[t], bad) for t in per_topic]
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
