"""A Kafka producer whose `send` an asyncio handler can await until the broker acknowledged the record.

The webhook receiver answers a sender 2xx only once its delivery is on Kafka (acks=all, idempotent): a sender
told "accepted" never has to send it again, and one told anything else retries. librdkafka calls delivery
callbacks from `poll`, which a thread of this object runs; each callback hands its result to the event loop
that is waiting for it (call_soon_threadsafe).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings

log = logging.getLogger("nhiguard.serve")

# Headroom over the record size limit for the headers a delivery keeps and the record's framing.
_HEADER_ROOM = 65_536


class DeliveryFailed(Exception):
    """Kafka did not acknowledge the record (refused, unreachable, or not within the deadline)."""


class AckedProducer:
    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._producer = Producer(
            confluent_config(
                settings,
                **{
                    "enable.idempotence": True,  # librdkafka's retries never duplicate or reorder
                    "acks": "all",
                    "linger.ms": 5,
                    # librdkafka gives up on a record at the same deadline the sender's answer waits for, so
                    # a record the sender was told failed is not written long after (it would be twice).
                    "message.timeout.ms": int(timeout_s * 1000),
                    "message.max.bytes": settings.max_record_bytes + _HEADER_ROOM,
                    # Input topics are created by the worker or `nhiguard topics create` (LogAppendTime: the
                    # broker's receive time); a producer's auto-creation would make them with the defaults.
                    "allow.auto.create.topics": False,
                    "client.id": f"{settings.app_id}-serve",
                    # librdkafka logs a broker that is down on every retry; errors come through _on_error.
                    "log_level": 2,
                    "error_cb": self._on_error,
                },
            )
        )
        self._logged: dict[str, float] = {}
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="nhiguard-serve-acks", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        # Once a minute per kind of error: enough to see a broker down, not a line per retry.
        now = time.monotonic()
        if now - self._logged.get(err.name(), -60.0) >= 60.0:
            self._logged[err.name()] = now
            log.warning("Kafka: %s", err.str())

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def check(self, topics: list[str], timeout_s: float = 10.0) -> list[str]:
        """The broker's answer to a metadata request: which of `topics` it does not have. Raises
        DeliveryFailed when no broker answers within timeout_s."""
        try:
            meta = self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise DeliveryFailed(f"no answer: {exc.args[0].str()}") from None
        return [t for t in topics if t not in meta.topics or meta.topics[t].error is not None]

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> tuple[int, int]:
        """Produce one record and wait for the broker's acknowledgement: its (partition, offset)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[tuple[int, int]] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:  # on the poll thread
            result = (msg.partition(), msg.offset())
            try:
                loop.call_soon_threadsafe(_settle, done, err, result)
            except RuntimeError:  # the loop is closed: nobody waits for this answer any more
                pass

        try:
            self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            raise DeliveryFailed("the producer's queue is full") from None
        except KafkaException as exc:
            raise DeliveryFailed(str(exc.args[0])) from None
        try:
            # A little over librdkafka's own deadline: its verdict, when it comes, is the better message.
            return await asyncio.wait_for(done, self.timeout_s + 2.0)
        except TimeoutError:
            raise DeliveryFailed(f"no acknowledgement within {self.timeout_s:g} s") from None

    def close(self, timeout_s: float) -> int:
        """Wait up to timeout_s for records in flight; the number still unacknowledged after it."""
        self._stop.set()
        self._poller.join()
        left = self._producer.flush(timeout_s)
        if left:
            log.error("%d webhook records were not acknowledged by Kafka before shutdown", left)
        return left


def _settle(done: asyncio.Future[Any], err: KafkaError | None, result: tuple[int, int]) -> None:
    if done.done():  # its waiter gave up (the sender was answered 503)
        return
    if err is not None:
        done.set_exception(DeliveryFailed(err.str()))
    else:
        done.set_result(result)
