"""Event time on the real worker: a live worker checks each event's body time against the broker's append
time of its record, a sandboxed one decides history on body time."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

REPO = "acme/cli"


def _gate(n: int, requested_at: datetime) -> bytes:
    return json.dumps(
        {
            "gate": "npm-publish",
            "request_id": f"time-{n}",
            "requested_at": requested_at.isoformat(),
            "registry": "https://registry.npmjs.org/",
            "tag": "latest",
            "access": "public",
            "github": {
                "repository": REPO,
                "workflow_ref": f"{REPO}/.github/workflows/r.yml@refs/tags/v9.0.{n}",
                "event_name": "push",
                "ref": f"refs/tags/v9.0.{n}",
                "head_ref": "",
                "base_ref": "",
            },
            "pack": {
                "name": "@acme/cli",
                "version": f"9.0.{n}",
                "size": 1000,
                "unpackedSize": 4000,
                "files": [{"path": "dist/index.js", "size": 400}],
            },
        }
    ).encode()


def _produce(settings, values, timestamp_ms=None):
    """Produce to the CI topic with a producer's timestamp the broker must overwrite; returns the broker's
    timestamps by offset."""
    stamped = {}
    p = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True})

    def done(err, msg):
        assert err is None, err
        stamped[msg.offset()] = msg.timestamp()

    for value in values:
        kw = {"timestamp": timestamp_ms} if timestamp_ms else {}
        p.produce(settings.topics.ci, value=value, key=REPO.encode(), partition=0, on_delivery=done, **kw)
    assert p.flush(30) == 0
    return stamped


def test_a_live_worker_decides_on_the_brokers_time_beyond_the_bound_and_says_so(pipeline):  # noqa: F811
    settings, start, _ = pipeline
    # The worker the fixture's topics feed, not in a sandbox: live.
    start(NHIGUARD_SANDBOX="")
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    (fut,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, settings.topics.ci)]).values()
    entry = fut.result(30)["message.timestamp.type"]
    assert entry.value == "LogAppendTime"  # created so: the broker's clock is the receive time
    now = datetime.now(UTC)
    # The producer claims a month ago too: the broker's append time is what counts.
    month_ago = int((now - timedelta(days=30)).timestamp() * 1000)
    stamped = _produce(settings, [_gate(1, now - timedelta(days=30)), _gate(2, now)], timestamp_ms=month_ago)
    out = collect(settings, 2)
    by_request = {d["event"]["event_id"]: d for d in out["decisions"]}
    old, fresh = by_request["gate:time-1"], by_request["gate:time-2"]
    (kind, broker_ms) = stamped[old["input"]["offset"]]
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert broker_ms > month_ago + 86_400_000  # LogAppendTime: the producer's timestamp was replaced
    assert old["flags"] == ["time_skew"]
    assert old["event"]["occurred_at"] == old["event"]["received_at"]
    assert int(old["event"]["occurred_at"].timestamp() * 1000) == broker_ms
    assert old["event"]["claimed_at"] is not None and old["event"]["claimed_at"] < old["event"]["received_at"]
    assert fresh["flags"] == [] and fresh["event"]["claimed_at"] is None


def test_a_sandboxed_worker_decides_history_on_body_time(pipeline):  # noqa: F811
    settings, start, _ = pipeline
    assert settings.sandbox and settings.topics.commands.startswith(settings.sandbox + ".")
    start()
    then = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    _produce(settings, [_gate(3, then)])
    (d,) = collect(settings, 1)["decisions"]
    assert d["flags"] == [] and d["event"]["claimed_at"] is None
    assert d["event"]["occurred_at"] == then
