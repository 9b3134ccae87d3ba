"""Topic administration with confluent-kafka's AdminClient."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from nhiguard.settings import Settings


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the input and output topics that do not exist yet (existing ones are left as they are)."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap, "log_level": 3})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    _check_output_limits(admin, settings, [t for t in settings.topics.outputs if t in existing], timeout_s)
    out_config = {"max.message.bytes": str(settings.max_output_bytes)}
    wanted = [
        NewTopic(t, num_partitions=settings.input_partitions, replication_factor=1)
        for t in settings.topics.inputs
        if t not in existing
    ] + [
        NewTopic(t, num_partitions=settings.input_partitions, replication_factor=1, config=out_config)
        for t in settings.topics.outputs
        if t not in existing
    ]
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


def delete_topics(bootstrap: str, topics: list[str], timeout_s: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    for fut in admin.delete_topics(topics, operation_timeout=timeout_s).values():
        try:
            fut.result(timeout_s)
        except KafkaException:
            pass  # already gone


def delete_groups(bootstrap: str, groups: list[str], timeout_s: float = 30.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    for fut in admin.delete_consumer_groups(groups, request_timeout=timeout_s).values():
        try:
            fut.result(timeout_s)
        except KafkaException:
            pass  # never created, or already gone
