"""The session broker and LocalBroker on real Kafka: records go in and come back out."""

import shutil
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tools.broker import LocalBroker, default_cache_dir

pytestmark = pytest.mark.integration


def _roundtrip(bootstrap: str, records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Produce `records` to a new single-partition topic (so order is kept) and read them back."""
    topic = f"test-broker-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future, or it is cancelled
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    _produce(bootstrap, topic, records)
    return _consume(bootstrap, topic, len(records))


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0, "records still unacknowledged after 30 s"


def _consume(bootstrap: str, topic: str, n: int, timeout: float = 60) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return got


def test_produce_and_consume_100_records(kafka_bootstrap):
    records = [(f"k{i}".encode(), f"value {i}".encode()) for i in range(100)]
    assert _roundtrip(kafka_bootstrap, records) == records


@pytest.mark.skipif(shutil.which("java") is None, reason="LocalBroker needs Java")
def test_second_local_broker_runs_alongside_and_keeps_its_data_dir(kafka_bootstrap, tmp_path):
    data_dir = tmp_path / "kafka"
    topic = f"test-persist-{uuid.uuid4().hex[:8]}"
    with LocalBroker(default_cache_dir(), data_dir=data_dir) as broker:
        assert broker.bootstrap != kafka_bootstrap
        _produce(broker.bootstrap, topic, [(b"k", b"kept")])
    # Restarted from the same directory (on fresh free ports): the topic and its record are still there.
    with LocalBroker(default_cache_dir(), data_dir=data_dir) as broker:
        assert _consume(broker.bootstrap, topic, 1) == [(b"k", b"kept")]
    assert not broker.running
    # The session broker was not disturbed.
    assert _roundtrip(kafka_bootstrap, [(b"a", b"b")]) == [(b"a", b"b")]
