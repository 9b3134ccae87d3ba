"""Writes a batch's results to the output topics with confluent-kafka.

`enqueue` encodes and hands records to the producer; `flush` waits until every enqueued record is delivered
and raises if any was not. The worker calls `flush` before every offset commit (see streams/app.py), so an
offset is never committed before its decision, commands, alerts (Avro, and OCSF) or dead letter are on Kafka
(at least once).
A failure here is loud: it raises.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, Producer

from nhiguard import ocsf
from nhiguard.avro import (
    AvroCodec,
    alert_record,
    command_record,
    deadletter_record,
    decision_record,
)
from nhiguard.decision.records import BatchResult
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings
from nhiguard.signing import command_signer

log = logging.getLogger("nhiguard.sink")

# On each decision: the input record it decides (`topic|partition|offset`, as its `input` field says), so a
# reader waiting for one decision (the decision API of nhiguard serve) finds it without decoding the others.
INPUT_HEADER = "nhiguard-input"


class OutputError(RuntimeError):
    """An output record could not be encoded or delivered: progress must stop."""


class OutputSink:
    def __init__(self, settings: Settings, codec: AvroCodec) -> None:
        self.topics = settings.topics
        self.codec = codec
        self._producer = Producer(
            confluent_config(
                settings,
                **{
                    "enable.idempotence": True,  # retries never duplicate or reorder within a partition
                    "acks": "all",
                    "linger.ms": 5,
                    "compression.type": "lz4",
                    "message.max.bytes": settings.max_output_bytes,
                    "client.id": f"{settings.app_id}-sink",
                },
            )
        )
        self._errors: list[str] = []
        # Commands are signed (README "Signed commands"); a key that is configured but unusable stops the
        # worker here, before it emits anything.
        self._signer = command_signer(settings)
        if self._signer is None:
            log.warning("no NHIGUARD_SIGNING_KEY: commands go out UNSIGNED (production must configure a key)")
        else:
            log.info("commands are signed with key id %s", self._signer.kid)

    def _on_delivery(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery
                )
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain, then retry

    def forward(self, topic: str, records: list[tuple[str, bytes, list[tuple[str, bytes]]]]) -> None:
        """Produce (key, value, headers) records as they are: the by-identity repartition."""
        if self._errors:
            raise OutputError(f"earlier output records were not delivered: {self._errors[:5]}")
        for key, value, headers in records:
            self._produce(topic, key, value, headers)
        self._producer.poll(0)

    def enqueue(self, result: BatchResult) -> None:
        """Encode and produce a batch's outputs without waiting for delivery."""
        if self._errors:
            raise OutputError(f"earlier output records were not delivered: {self._errors[:5]}")
        now = int(time.time() * 1000)
        try:
            for d in result.decisions:
                key = d.event.actor.id
                value = self.codec.encode("Decision", decision_record(d, now))
                ref = f"{d.topic}|{d.partition}|{d.offset}".encode()
                self._produce(self.topics.decisions, key, value, [(INPUT_HEADER, ref)])
                for c in d.commands:
                    # A REVOKE the circuit breaker held waits on its own topic, keyed by command id, until an
                    # operator releases it (nhiguard commands release).
                    value = self.codec.encode("EnforcementCommand", command_record(c))
                    self._produce(
                        self.topics.held if c.held else self.topics.commands,
                        c.command_id if c.held else c.identity,
                        value,
                        self._signer.headers(value) if self._signer else None,
                    )
            for a in result.alerts:
                # Keyed by alert id: a window that grows sends its alert again, the newer record superseding;
                # and the same alert as an OCSF Detection Finding, for SIEMs.
                self._produce(self.topics.alerts, a.alert_id, self.codec.encode("Alert", alert_record(a)))
                self._produce(self.topics.ocsf, a.alert_id, ocsf.encode(a))
            for x in result.deadletters:
                self._produce(
                    self.topics.deadletter, None, self.codec.encode("DeadLetter", deadletter_record(x))
                )
        except (ValueError, TypeError, KeyError) as exc:
            raise OutputError(f"cannot encode an output record: {exc}") from exc
        self._producer.poll(0)  # serve delivery callbacks

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until everything enqueued is delivered; raise if anything was not."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            # Sticky: a concurrent flush (commit and rebalance) must fail too, never report success.
            raise OutputError(f"{remaining} output records undelivered; errors: {self._errors[:5]}")

    def close(self) -> None:
        self._producer.flush(10)
