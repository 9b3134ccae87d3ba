"""Where the decision API (streams/decision_api.py) waits: the decisions and dead letters the worker writes,
read as they arrive and handed to the request that produced their input record.

Each `nhiguard serve` process reads every partition of `authz.decisions` and `audit.deadletter` itself (an
assigned consumer that never commits: every replica must see every outcome), from the end offsets as of its
start, fetched before it serves, so no outcome of a request it produces can be missed. A decision names its
input record in its `nhiguard-input` header (streams/sink.py), so only the decisions a request waits for are
decoded; a dead letter names it in its body. Outcomes that arrive before their request starts waiting (the
worker can be faster than the producer's acknowledgement) are kept a little while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings
from nhiguard.streams.sink import INPUT_HEADER

log = logging.getLogger("nhiguard.serve")

Ref = tuple[str, int, int]  # the input record: topic, partition, offset
Outcome = tuple[str, dict[str, Any]]  # ("decision" | "deadletter", the decoded record)
EARLY = 1024  # outcomes kept for a request that has not started waiting yet


class WaiterError(Exception):
    """The outcome topics cannot be read (at start: one line for the CLI)."""


class DecisionWaiter:
    def __init__(self, settings: Settings, codec: AvroCodec) -> None:
        self.codec = codec
        self.decisions, self.deadletters = settings.topics.decisions, settings.topics.deadletter
        self._consumer = Consumer(
            confluent_config(
                settings,
                **{
                    # Assigned, never committed: the group id only names this reader in the broker's logs.
                    "group.id": f"{settings.app_id}-api-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "client.id": f"{settings.app_id}-api",
                    "log_level": 3,
                },
            )
        )
        self._waiting: dict[Ref, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Outcome]]]] = {}
        self._early: OrderedDict[Ref, Outcome | bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._missing: list[str] = []
        self._thread = threading.Thread(target=self._run, name="nhiguard-api-outcomes", daemon=True)

    def start(self, timeout_s: float = 10.0) -> list[str]:
        """Assign every partition at its end offset as of now; the outcome topics that do not exist yet (they
        are read from their beginning once they do). WaiterError when no broker answers."""
        self._missing = self._assign(timeout_s, initial=True)
        self._thread.start()
        return list(self._missing)

    def _assign(self, timeout_s: float, initial: bool) -> list[str]:
        try:
            meta = self._consumer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise WaiterError(f"no answer from Kafka: {exc.args[0].str()}") from None
        parts, missing = [], []
        for topic in (self.decisions, self.deadletters):
            found = meta.topics.get(topic)
            if found is None or found.error is not None:
                missing.append(topic)
                continue
            for p in found.partitions:
                if initial:
                    _, end = self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                    parts.append(TopicPartition(topic, p, end))
                else:  # created since we started: everything in it is recent
                    parts.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        if parts:
            self._consumer.incremental_assign(parts)
        return missing

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        with contextlib.suppress(Exception):
            self._consumer.close()

    async def wait(self, ref: Ref, timeout_s: float) -> Outcome | None:
        """The decision (or dead letter) of the input record `ref`, or None if none came within timeout_s."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Outcome] = loop.create_future()
        with self._lock:
            early = self._early.pop(ref, None)
            if early is None:
                self._waiting.setdefault(ref, []).append((loop, fut))
        if early is not None:
            return self._decoded(early)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return None
        finally:
            with self._lock:
                left = [w for w in self._waiting.get(ref, []) if w[1] is not fut]
                if left:
                    self._waiting[ref] = left
                else:
                    self._waiting.pop(ref, None)

    # -- the reader thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        retry = 0
        while not self._stop.is_set():
            if self._missing and (retry := retry + 1) % 20 == 0:  # every ~10 s until the topics exist
                with contextlib.suppress(WaiterError):
                    self._missing = self._assign(5.0, initial=False)
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                self._arrived(msg)
            except Exception:  # one unreadable record never stops the reader
                log.exception("outcome %s[%d]@%d unreadable", msg.topic(), msg.partition(), msg.offset())

    def _arrived(self, msg: Any) -> None:
        value = msg.value() or b""
        if msg.topic() == self.decisions:
            ref = _ref(dict(msg.headers() or []).get(INPUT_HEADER))
            if ref is None:  # written by a worker before the header: decode it to know
                outcome: Outcome | bytes = ("decision", self.codec.decode(value))
                ref = _ref_of(outcome[1]["input"])
            else:
                outcome = value  # decoded only if someone waits for it
        else:
            record = self.codec.decode(value)
            outcome, ref = ("deadletter", record), (record["topic"], record["partition"], record["offset"])
        with self._lock:
            waiters = self._waiting.pop(ref, None)
            if not waiters:
                self._early[ref] = outcome
                while len(self._early) > EARLY:
                    self._early.popitem(last=False)
                return
        result = self._decoded(outcome)
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, fut, result)

    def _decoded(self, outcome: Outcome | bytes) -> Outcome:
        return ("decision", self.codec.decode(outcome)) if isinstance(outcome, bytes) else outcome


def _ref(header: Any) -> Ref | None:
    try:
        topic, partition, offset = bytes(header).decode().rsplit("|", 2)
        return topic, int(partition), int(offset)
    except (TypeError, ValueError):
        return None


def _ref_of(record: dict[str, Any]) -> Ref:
    return str(record["topic"]), int(record["partition"]), int(record["offset"])


def _settle(fut: asyncio.Future[Outcome], result: Outcome) -> None:
    if not fut.done():
        fut.set_result(result)
