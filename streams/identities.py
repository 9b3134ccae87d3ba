"""The identity inventory on Kafka: `nhiguard identities load FILE` and `nhiguard identities delete ID`.

Identities live on the compacted `identities` topic, keyed by canonical id, values Avro single-object
encoded (schemas/nhiguard.Identity.avsc); a tombstone (null value) removes one. The worker keeps them in a
Faust global table (every worker reads all of them) fed from that topic, so a change takes effect for the next
event without a restart. See README "Identity inventory".
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from nhiguard.avro import AvroCodec
from nhiguard.decision.context import Identity, Inventory
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings

log = logging.getLogger("nhiguard.identities")


def encode_identity(codec: AvroCodec, identity: Identity) -> bytes:
    return codec.encode("Identity", identity.to_dict())


def decode_identity(codec: AvroCodec, data: bytes) -> Identity:
    """Raises ValueError for anything but a valid Identity record."""
    if codec.schema_name(data) != "Identity":
        raise ValueError("not an nhiguard.Identity record (Avro single-object encoding)")
    return Identity.from_dict(codec.decode(data))


def current_ids(settings: Settings, timeout_s: float = 30.0) -> set[str]:
    """The ids the identities topic holds now (latest value per key not a tombstone)."""
    c = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": f"{settings.app_id}-identities-reader-{time.time_ns()}",  # assigned only
                "enable.auto.commit": False,
                "log_level": 3,
            },
        )
    )
    try:
        meta = c.list_topics(settings.topics.identities, timeout=timeout_s).topics[settings.topics.identities]
        parts = [TopicPartition(settings.topics.identities, p, 0) for p in meta.partitions]
        ends = {p.partition: c.get_watermark_offsets(p, timeout=timeout_s)[1] for p in parts}
        todo = {p for p, end in ends.items() if end > 0}
        c.assign([TopicPartition(settings.topics.identities, p, 0) for p in todo])
        live: dict[str, bool] = {}
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {settings.topics.identities}: {m.error()}")
                    continue
                if m.key() is not None:
                    live[m.key().decode()] = m.value() is not None
                if m.offset() + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
        if todo:
            raise RuntimeError(f"timed out reading {settings.topics.identities}")
        return {k for k, alive in live.items() if alive}
    finally:
        c.close()


def publish(settings: Settings, upserts: list[Identity], deletes: list[str], timeout_s: float = 30.0) -> None:
    codec = AvroCodec(settings.schemas_dir)
    values = [(i.id, encode_identity(codec, i)) for i in upserts]  # encode all before producing any
    producer = Producer(confluent_config(settings, **{"enable.idempotence": True, "log_level": 3}))
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in values:
        producer.produce(settings.topics.identities, key=key.encode(), value=value, on_delivery=on_delivery)
    for key in deletes:
        producer.produce(settings.topics.identities, key=key.encode(), value=None, on_delivery=on_delivery)
    if producer.flush(timeout_s) or errors:
        raise RuntimeError(f"identity records not delivered: {errors[:3]}")


def load_identities(settings: Settings, path: Path, prune: bool = False) -> tuple[int, int]:
    """Validate the whole file, then produce every identity in it; with prune, tombstone the ids on the topic
    that the file no longer has. Returns (loaded, removed)."""
    from nhiguard.streams.topics import ensure_identities_topic

    ensure_identities_topic(settings)
    wanted = Inventory.load(path).all()  # raises ValueError on the first bad record: nothing produced
    removed = sorted(current_ids(settings) - {i.id for i in wanted}) if prune else []
    publish(settings, wanted, removed)
    return len(wanted), len(removed)


def _decoded(codec: AvroCodec, raw: bytes | None) -> Identity | None:
    try:
        return None if raw is None else decode_identity(codec, raw)
    except ValueError:
        return None


def apply_identity(table: Any, codec: AvroCodec, key: bytes, value: bytes | None) -> None:
    """Apply one record of the identities topic to the table: the identity under its id and, so that every
    worker resolves an alias with one lookup (the table's changelog carries them), the same value under each
    of its aliases. An alias never replaces another identity's own record; a tombstone, or an update that
    drops an alias, removes the alias entries still pointing at this identity. `value` is a valid Identity."""
    me = key.decode()
    before = _decoded(codec, table.get(key))
    now = None if value is None else decode_identity(codec, value)
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
    for alias in before.aliases if before is not None and before.id == me else ():
        held = _decoded(codec, table.get(alias.encode()))
        if held is not None and held.id == me and (now is None or alias not in now.aliases):
            table.pop(alias.encode(), None)
    for alias in now.aliases if now is not None else ():
        held = _decoded(codec, table.get(alias.encode()))
        if held is None or held.id != alias:  # another's alias entry: the later record wins
            table[alias.encode()] = value


class TableInventory:
    """Identities for the decision core, read from the worker's global table (raw Avro values by id).

    Decoded records are cached by their bytes, so an update (new bytes) is seen at once and a tombstone (no
    value) makes the identity unknown for the next event.
    """

    def __init__(self, table: Any, codec: AvroCodec, cache_size: int = 100_000) -> None:
        self.table = table
        self.codec = codec
        self.cache_size = cache_size
        self._decoded: OrderedDict[bytes, Identity] = OrderedDict()

    def get(self, identity_id: str) -> Identity | None:
        raw = self.table.get(identity_id.encode())
        if raw is None:
            return None
        hit = self._decoded.get(raw)
        if hit is None:
            try:
                hit = decode_identity(self.codec, raw)  # validated when it was stored
            except ValueError:
                # Written under an Identity schema this worker does not know (an older or newer version):
                # decided as unknown, and said so, rather than failing every event of the identity.
                log.warning(
                    "identity %s: record not readable by this version; treated as unknown", identity_id
                )
                return None
            self._decoded[raw] = hit
            if len(self._decoded) > self.cache_size:
                self._decoded.popitem(last=False)
        return hit
