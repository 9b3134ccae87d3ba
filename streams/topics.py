"""Topic administration with confluent-kafka's AdminClient, and reading a topic to its end."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from nhiguard.kafka_clients import confluent_config, topic_config
from nhiguard.settings import Settings

log = logging.getLogger("nhiguard.topics")


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(settings, log_level=3))


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the input and output topics that do not exist yet (existing ones are left as they are), with the
    configured replication factor and min.insync.replicas."""
    admin = _admin(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    big = [*settings.topics.outputs, settings.topics.by_identity]
    _check_output_limits(admin, settings, [t for t in big if t in existing], timeout_s)
    _check_identities_partitions(admin, settings, existing, timeout_s)
    _check_receive_time(admin, settings, [t for t in settings.topics.inputs if t in existing], timeout_s)
    base = topic_config(settings)
    # The broker's clock stamps each input record: the receive time an event's body time is checked against
    # (DecisionCore._timed), which neither the actor nor its shipper sets.
    in_config = {**base, "message.timestamp.type": "LogAppendTime"}
    out_config = {**base, "max.message.bytes": str(settings.max_output_bytes)}
    compacted = {**base, "cleanup.policy": "compact"}
    rf, n = settings.replication_factor, settings.input_partitions
    wanted = [NewTopic(t, n, rf, config=in_config) for t in settings.topics.inputs if t not in existing]
    wanted += [NewTopic(t, n, rf, config=out_config) for t in big if t not in existing]
    if settings.topics.identities not in existing:
        wanted.append(NewTopic(settings.topics.identities, n, rf, config=compacted))
    if not wanted:
        return
    for topic, fut in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            fut.result(timeout_s)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"cannot create topic {topic}: {exc}") from exc


def _check_output_limits(admin: AdminClient, settings: Settings, topics: list[str], timeout_s: float) -> None:
    """Existing output topics must take records of max_output_bytes, or a large decision fails forever."""
    if not topics:
        return
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    for res, fut in futures.items():
        entry = fut.result(timeout_s).get("max.message.bytes")
        if entry is not None and int(entry.value) < settings.max_output_bytes:
            raise RuntimeError(
                f"output topic {res.name} takes records of at most {entry.value} bytes; nhiguard needs "
                f"{settings.max_output_bytes}: raise its max.message.bytes or lower NHIGUARD_MAX_RECORD_BYTES"
            )


def _check_receive_time(admin: AdminClient, settings: Settings, topics: list[str], timeout_s: float) -> None:
    """Say so when an existing live input topic keeps its producers' timestamps (CreateTime): the receive time
    is then the shipper's clock, not the broker's. A warning, not a refusal: a trusted shipper's is fine."""
    if not topics or settings.body_time:
        return
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    for res, fut in futures.items():
        try:
            entry = fut.result(timeout_s).get("message.timestamp.type")
        except KafkaException as exc:  # e.g. no DescribeConfigs on input topics: the README's ACLs need none
            log.info("cannot read input topic %s's timestamp type: %s", res.name, exc)
            continue
        if entry is not None and entry.value != "LogAppendTime":
            log.warning(
                "input topic %s has message.timestamp.type=%s: event times are checked against its producers'"
                " clocks; LogAppendTime makes the broker's the receive time (README, Event time)",
                res.name,
                entry.value,
            )


def ensure_compacted_topic(settings: Settings, name: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Create a compacted topic if it does not exist (the inventory, the policy bundles)."""
    admin = _admin(settings)
    if name in admin.list_topics(timeout=timeout_s).topics:
        return
    config = {**topic_config(settings), "cleanup.policy": "compact"}
    topic = NewTopic(name, partitions, settings.replication_factor, config=config)
    try:
        admin.create_topics([topic])[name].result(timeout_s)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise


def ensure_identities_topic(settings: Settings) -> None:
    """The identities topic, for loading before any worker ran: as many partitions as the worker's tables."""
    ensure_compacted_topic(settings, settings.topics.identities, settings.input_partitions)


def _check_identities_partitions(
    admin: AdminClient, settings: Settings, existing: set[str], timeout_s: float
) -> None:
    """The worker's identity table mirrors the identities topic partition by partition into a changelog of
    input_partitions partitions: Faust requires the counts to be equal."""
    if settings.topics.identities not in existing:
        return
    meta = admin.list_topics(settings.topics.identities, timeout=timeout_s).topics[settings.topics.identities]
    if len(meta.partitions) != settings.input_partitions:
        raise RuntimeError(
            f"topic {settings.topics.identities} has {len(meta.partitions)} partitions; the worker runs with "
            f"NHIGUARD_INPUT_PARTITIONS={settings.input_partitions}: they must be equal (Faust table rule)"
        )


def internal_topics(app_id: str) -> list[str]:
    """The topics Faust creates for a worker: the assignor's and the tables' changelogs."""
    tables = ("identities", "identity-state", "packages")
    return [f"{app_id}-__assignor-__leader", *(f"{app_id}-{t}-changelog" for t in tables)]


def delete_topics(settings: Settings, topics: list[str], timeout_s: float = 30.0) -> None:
    admin = _admin(settings)
    for fut in admin.delete_topics(topics, operation_timeout=timeout_s).values():
        try:
            fut.result(timeout_s)
        except KafkaException:
            pass  # already gone


def delete_groups(settings: Settings, groups: list[str], timeout_s: float = 30.0) -> None:
    admin = _admin(settings)
    for fut in admin.delete_consumer_groups(groups, request_timeout=timeout_s).values():
        try:
            fut.result(timeout_s)
        except KafkaException:
            pass  # never created, or already gone


def _end_offsets(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, int] | None:
    """The end offset of each non-empty partition as of now; None for a topic that does not exist."""
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    ends = {}
    for p in meta.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        if high > low:
            ends[p] = high
    return ends


class TopicReadError(RuntimeError):
    """A topic could not be read to its end."""


def read_to_end(
    settings: Settings, topic: str, purpose: str, timeout_s: float = 60.0, missing_ok: bool = False
) -> Iterator[Any]:
    """Every record of `topic` (confluent-kafka messages), from the start of each partition to its end as of
    now, through an assigned consumer that never commits. A topic that does not exist yields nothing when
    `missing_ok`; otherwise it, a broker error, or no progress for `timeout_s` raises TopicReadError."""
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": f"{settings.app_id}-{purpose}-{uuid.uuid4().hex}",  # assigned, never committed
                "enable.auto.commit": False,
                "log_level": 3,
            },
        )
    )
    try:
        ends = _end_offsets(consumer, topic, timeout_s)
        if ends is None:
            if missing_ok:
                return
            raise TopicReadError(f"topic {topic} on {settings.bootstrap}: not found")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                left = len(ends)
                raise TopicReadError(f"timed out reading {topic} ({left} partition(s) not read to the end)")
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() and msg.error().code() != KafkaError._PARTITION_EOF:
                raise TopicReadError(f"cannot read {topic}: {msg.error()}")
            if msg is not None and not msg.error() and msg.offset() < ends.get(msg.partition(), 0):
                yield msg
                deadline = time.monotonic() + timeout_s
            # Done with a partition once its position reaches the end it had when we started.
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    del ends[tp.partition]
    except KafkaException as exc:
        raise TopicReadError(f"cannot read {topic} on {settings.bootstrap}: {exc}") from exc
    finally:
        consumer.close()
