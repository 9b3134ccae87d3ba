"""The worker's agents, thin: read a batch, call the decision core, hand the results to the sink and the
store, mark the batch processed. No policy logic lives here; the commit protocol is in streams/checkpoint.py.

- `route` (stage 1, stateless): adapt each audit record, dead-letter what cannot be read, forward the rest
  keyed by canonical identity to the by-identity topic.
- `decide` (stage 2, stateful): all of an identity's events reach one partition, in order, where its state
  lives; decide them with that state.
- `follow_identities`: keep the identity inventory table current from the compacted identities topic.

An agent that cannot finish a batch stops the worker without committing (never let Faust acknowledge it).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import faust

from nhiguard.avro import AvroCodec
from nhiguard.decision.core import DecisionCore, dead_letter
from nhiguard.decision.headers import is_internal, kept
from nhiguard.decision.records import BatchResult, DeadLetter, RawRecord
from nhiguard.settings import Settings
from nhiguard.streams.checkpoint import OffsetLedger, stop_without_committing
from nhiguard.streams.identities import apply_identity, decode_identity
from nhiguard.streams.sink import OutputSink
from nhiguard.streams.state import StatefulStage, TableStore

log = logging.getLogger("nhiguard.worker")

ORIGIN = "nhiguard-origin"  # on by-identity records: where the record was read (topic|partition|offset|ms)
ORIGIN_KEY = "nhiguard-origin-key"  # and its original key, if it had one


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (str(k), v if isinstance(v, bytes) else b"" if v is None else str(v).encode()) for k, v in items
    )


def forward_headers(rec: RawRecord) -> list[tuple[str, bytes]]:
    """The headers route writes with a record it forwards: the input's allow-listed headers (never one in
    nhiguard's namespace: on an input record that is a forgery), then its own, last."""
    origin = f"{rec.topic}|{rec.partition}|{rec.offset}|{rec.timestamp_ms}".encode()
    extra = [(ORIGIN_KEY, rec.key)] if rec.key is not None else []
    return [*kept(rec.headers), (ORIGIN, origin), *extra]


class ForwardedError(ValueError):
    """A by-identity record without a readable origin: not written by route (dead-lettered, never trusted)."""


# What Kafka accepts as a topic name: route writes only real ones (their watermarks are stored by name).
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def _last(headers: tuple[tuple[str, bytes], ...], name: str) -> bytes | None:
    return next((v for k, v in reversed(headers) if k.lower() == name), None)


def from_forwarded(value: bytes, headers: tuple[tuple[str, bytes], ...], position: int) -> RawRecord:
    """The record as it was read from its source topic (decision ids and dead letters name the source, and
    the stateful stage judges redelivery by it), plus its position on the by-identity topic. Route writes its
    headers last, so the last of each is route's; ForwardedError when the origin cannot be read."""
    origin = _last(headers, ORIGIN)
    try:
        topic, partition, offset, ts = (origin or b"").decode().rsplit("|", 3)
        coordinates = int(partition), int(offset), int(ts)
    except ValueError as exc:  # UnicodeDecodeError included
        shown = "missing" if origin is None else repr(origin[:80])
        raise ForwardedError(f"{ORIGIN} header {shown}: not written by route") from exc
    p, o, t = coordinates
    # Kafka's ranges (int32 partition, int64 offset and time): stored as such (streams/delivery.py).
    if not _TOPIC.fullmatch(topic) or not (0 <= p < 2**31 and 0 <= o < 2**63 and -(2**63) <= t < 2**63):
        raise ForwardedError(f"{ORIGIN} header {(origin or b'')[:80]!r}: not written by route")
    own = tuple((k, v) for k, v in headers if not is_internal(k))
    key = _last(headers, ORIGIN_KEY)
    return RawRecord(topic, p, o, value, key, own, t, position=position)


def raw_record(event: Any) -> RawRecord:
    m = event.message
    return RawRecord(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        value=m.value or b"",
        key=m.key,
        headers=_headers(m.headers),
        timestamp_ms=int((m.timestamp or 0) * 1000),
    )


@dataclass
class Agents:
    """What the agents share: built once per worker by streams/app.py."""

    settings: Settings
    core: DecisionCore
    sink: OutputSink
    store: TableStore
    ledger: OffsetLedger
    codec: AvroCodec
    identities: Any  # the Faust global table of identities
    stage: StatefulStage  # the stateful stage: skips redeliveries, decides the rest through the core

    def processed(self, events: list[Any]) -> None:
        # One ledger update per partition per batch, not one per event.
        by_tp: dict[Any, list[int]] = defaultdict(list)
        for e in events:
            by_tp[e.message.tp].append(e.message.offset)
        for tp, offsets in by_tp.items():
            self.ledger.mark(tp, offsets)

    async def route(self, stream: faust.StreamT) -> None:
        """Stage 1, stateless: adapt, dead-letter what cannot be read, forward the rest keyed by identity."""
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            records = [raw_record(e) for e in events]
            try:
                routed, deadletters = self.core.route(records)
                # In read order. The stateful stage's redelivery check (streams/delivery.py) needs each
                # source partition's records of an identity to arrive in source-offset order, and they do:
                # one producer (the sink's, idempotent: librdkafka keeps at most 5 requests in flight and
                # retries without reordering or duplicating within a partition) produces them in this order,
                # all to the identity's one partition. A restart, or another worker taking the source
                # partition, forwards again from the committed offset, in order too: whatever producer a
                # record above a watermark came from, the records below it had come before it, so one at or
                # below the watermark is a copy of a record applied.
                self.sink.forward(s.topics.by_identity, [(k, r.value, forward_headers(r)) for k, r in routed])
                self.sink.enqueue(BatchResult(deadletters=deadletters))
            except BaseException:
                stop_without_committing(f"routing {records[0:1]} failed")
            self.processed(events)

    async def decide(self, stream: faust.StreamT) -> None:
        """Stage 2, stateful: decide each identity's events in order, with its state."""
        s = self.settings
        async for events in stream.take_events(s.batch_max, within=s.batch_within_s):
            try:
                records, unreadable = self._forwarded(events)
                by_identity = {
                    e.message.key.decode("utf-8", "replace"): e for e in events if e.message.key is not None
                }
                t0 = time.perf_counter()
                # In a thread: while the engine process evaluates, the event loop keeps consuming.
                result = await asyncio.get_running_loop().run_in_executor(None, self.stage.process, records)
                t1 = time.perf_counter()
                result.deadletters.extend(unreadable)
                self.sink.enqueue(result)
                self.store.stage(result, by_identity, events[-1])
            except BaseException:
                # Our own output failed, the core broke, or the agent was cancelled mid-batch: never let Faust
                # acknowledge this batch (take_events acks in its finally).
                stop_without_committing(f"batch at {events[0:1]} failed")
            self.processed(events)
            _log_batch(len(records), result, t1 - t0)

    def _forwarded(self, events: list[Any]) -> tuple[list[RawRecord], list[DeadLetter]]:
        """The by-identity records as read from their source, and a dead letter for each whose origin is not
        route's (written to the topic by someone else): never a crash loop, never trusted."""
        records, unreadable = [], []
        for e in events:
            m = e.message
            try:
                records.append(from_forwarded(m.value or b"", _headers(m.headers), m.offset))
            except ForwardedError as exc:
                rec = RawRecord(m.topic, m.partition, m.offset, m.value or b"", m.key, _headers(m.headers))
                limit = self.settings.deadletter_prefix_bytes
                unreadable.append(dead_letter(rec, "malformed_origin", str(exc), limit))
        return records, unreadable

    async def follow_identities(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            if msg.key is not None and msg.value is None:
                # A tombstone: unknown from the next event on (its aliases too).
                apply_identity(self.identities, self.codec, msg.key, None)
            elif msg.key is not None:
                try:
                    decode_identity(self.codec, msg.value)
                    apply_identity(self.identities, self.codec, msg.key, msg.value)
                except ValueError as exc:
                    rec = raw_record(event)
                    limit = self.settings.deadletter_prefix_bytes
                    x = dead_letter(rec, "invalid_identity", str(exc), limit)
                    self.sink.enqueue(BatchResult(deadletters=[x]))
            self.processed([event])


def _log_batch(n: int, result: BatchResult, seconds: float) -> None:
    if result.skipped_records:
        log.info("already applied, not decided again: %s", result.skipped_records)
    if result.reordered:
        log.warning(
            "decided, at or below their source's watermark but later (source topic recreated?): %s",
            result.reordered_records,
        )
    log.info(
        "batch: %d records -> %d decisions (%d human), %d commands, %d dead letters, %d already applied, "
        "%d states (%.0f ms)",
        n,
        len(result.decisions),
        result.human_events,
        len(result.commands),
        len(result.deadletters),
        result.skipped,
        len(result.identity_state),
        seconds * 1000,
    )
