"""The Faust worker: consume the audit topics in batches, call the decision core, produce, then ack.

Two stages: `route` adapts each audit record and forwards it keyed by its canonical identity (the by-identity
topic); `decide` reads that topic, so all of an identity's events reach one partition, in order, where its
state lives (Faust tables, streams/state.py). A third agent keeps the identity inventory table current.
The agents are deliberately thin: no policy logic lives here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import faust

from nhiguard.avro import AvroCodec
from nhiguard.decision.core import DecisionCore, dead_letter
from nhiguard.decision.engine import trial_run
from nhiguard.decision.records import BatchResult, RawRecord
from nhiguard.settings import Settings
from nhiguard.streams.engines import make_evaluator
from nhiguard.streams.identities import TableInventory, decode_identity
from nhiguard.streams.reload import BundleReloader
from nhiguard.streams.sink import OutputSink
from nhiguard.streams.state import StatefulStage, TableStore

log = logging.getLogger("nhiguard.worker")


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (str(k), v if isinstance(v, bytes) else b"" if v is None else str(v).encode()) for k, v in items
    )


ORIGIN = "nhiguard-origin"  # on by-identity records: where the record was read (topic|partition|offset|ms)
ORIGIN_KEY = "nhiguard-origin-key"  # and its original key, if it had one


def forward_headers(rec: RawRecord) -> list[tuple[str, bytes]]:
    origin = f"{rec.topic}|{rec.partition}|{rec.offset}|{rec.timestamp_ms}".encode()
    extra = [(ORIGIN_KEY, rec.key)] if rec.key is not None else []
    return [*rec.headers, (ORIGIN, origin), *extra]


def from_forwarded(value: bytes, headers: tuple[tuple[str, bytes], ...], position: int) -> RawRecord:
    """The record as it was read from its source topic (decision ids and dead letters name the source),
    plus its position on the by-identity topic (what per-identity state records as applied)."""
    origin = next(v for k, v in headers if k == ORIGIN).decode()
    topic, partition, offset, ts = origin.rsplit("|", 3)
    key = next((v for k, v in headers if k == ORIGIN_KEY), None)
    own = tuple((k, v) for k, v in headers if k not in (ORIGIN, ORIGIN_KEY))
    return RawRecord(topic, int(partition), int(offset), value, key, own, int(ts), position=position)


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        topic_partitions=settings.input_partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_max,
        broker_commit_interval=1.0,
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
    )
    codec = AvroCodec(settings.schemas_dir)
    rocks = {"driver": "rocksdict"}
    # Every worker holds every identity (a global table), fed from the compacted identities topic.
    identities = app.GlobalTable("identities", key_type=bytes, value_type=bytes, options=rocks)
    # Per-identity state lives with the identity's partition of the by-identity topic; package facts are read
    # by everyone (see streams/state.py).
    store = TableStore(
        app.Table("identity-state", key_type=bytes, value_type=bytes, options=rocks),
        app.GlobalTable("packages", key_type=bytes, value_type=bytes, options=rocks),
        settings.input_partitions,
    )
    # Prove the bundle in a throwaway process, then serve it from child processes: a native crash in
    # regopy costs one event, never the worker.
    bundle = trial_run(settings.policies_dir)
    core = DecisionCore(
        settings,
        bundle,
        TableInventory(identities, codec),  # type: ignore[arg-type]
        evaluator=make_evaluator(settings, bundle),
        store=store,
    )
    stage = StatefulStage(core, store, settings.state_cache_identities)  # skips redeliveries, then decides
    sink = OutputSink(settings, codec)
    raw = {"value_serializer": "raw", "key_serializer": "raw"}
    inputs = app.topic(*settings.topics.inputs, **raw)
    by_identity = app.topic(settings.topics.by_identity, partitions=settings.input_partitions, **raw)
    identity_topic = app.topic(settings.topics.identities, **raw)

    # At least once, without waiting for the broker after every batch: a batch's outputs are only enqueued,
    # and Faust flushes its producer right before it commits offsets (Consumer._commit_offsets: periodic
    # commits, rebalances and shutdown all go through it). There, in this order: our outputs (decisions,
    # commands, alerts, dead letters, records forwarded by identity) are delivered; the state the delivered
    # batches changed is written to the tables; Faust delivers the changelog. Only then are offsets
    # committed (they were chosen before this ran, so they never cover a batch whose state is not written).
    faust_flush = app.producer.flush

    commit_lock = asyncio.Lock()  # a periodic and a rebalance commit must not write state out of order

    async def flush_before_commit() -> None:
        async with commit_lock:
            await _flush_before_commit()

    async def _flush_before_commit() -> None:
        ids, pkgs = store.take_pending()
        try:
            await asyncio.get_running_loop().run_in_executor(None, sink.flush)
        except Exception:
            log.critical("outputs were not delivered; exiting without committing", exc_info=True)
            logging.shutdown()
            os._exit(70)
        store.write(ids, pkgs)
        # Faust's buffer flush gives up after 0.1 s without a send; the changelog must be out before the
        # commit, so keep flushing until the buffer is empty.
        deadline = time.monotonic() + 60
        await faust_flush()
        while app.producer.buffer.size:
            if time.monotonic() > deadline:
                log.critical("state changelog not delivered; exiting without committing")
                logging.shutdown()
                os._exit(70)
            await faust_flush()

    app.producer.flush = flush_before_commit  # type: ignore[method-assign]

    @app.on_partitions_revoked.connect
    async def forget_cached_state(_app: Any, revoked: Any = None, **_kw: Any) -> None:
        # Partitions may move to another worker, which then owns (and advances) their identities' state:
        # what this worker holds in memory may go stale. Pending writes go out with the rebalance's commit.
        await asyncio.get_running_loop().run_in_executor(None, stage.drop_cached)

    reloader = BundleReloader(core, settings, sink)
    if settings.policy_source == "topic":
        from nhiguard.streams.bundles import BundleFollower

        follower = BundleFollower(settings, reloader)

        @app.task
        async def follow_bundles() -> None:
            follower.start()

    elif settings.policy_reload_s > 0:

        @app.timer(interval=settings.policy_reload_s)
        async def reload_policies() -> None:
            await asyncio.get_running_loop().run_in_executor(None, reloader.check)

    @app.agent(identity_topic)
    async def follow_identities(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            if msg.key is None:
                continue
            if msg.value is None:
                identities.pop(msg.key, None)  # tombstone: unknown from the next event on
                continue
            try:
                decode_identity(codec, msg.value)
            except ValueError as exc:
                rec = RawRecord(
                    msg.topic, msg.partition, msg.offset, msg.value, msg.key, _headers(msg.headers)
                )
                limit = settings.deadletter_prefix_bytes
                sink.enqueue(BatchResult(deadletters=[dead_letter(rec, "invalid_identity", str(exc), limit)]))
                continue
            identities[msg.key] = msg.value

    def batch_of(events: list[Any]) -> list[RawRecord]:
        return [
            RawRecord(
                topic=e.message.topic,
                partition=e.message.partition,
                offset=e.message.offset,
                value=e.message.value or b"",
                key=e.message.key,
                headers=_headers(e.message.headers),
                timestamp_ms=int((e.message.timestamp or 0) * 1000),
            )
            for e in events
        ]

    @app.agent(inputs)
    async def route(stream: faust.StreamT) -> None:
        """Stage 1, stateless: adapt, dead-letter what cannot be read, forward the rest keyed by identity."""
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            records = batch_of(events)
            try:
                routed, deadletters = core.route(records)
                sink.forward(
                    settings.topics.by_identity, [(k, r.value, forward_headers(r)) for k, r in routed]
                )
                sink.enqueue(BatchResult(deadletters=deadletters))
            except BaseException:
                log.critical("routing %s failed; exiting without committing", records[0:1], exc_info=True)
                logging.shutdown()
                os._exit(70)

    @app.agent(by_identity)
    async def decide(stream: faust.StreamT) -> None:
        """Stage 2, stateful: decide each identity's events in order, with its state."""
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            try:
                records = [
                    from_forwarded(e.message.value or b"", _headers(e.message.headers), e.message.offset)
                    for e in events
                ]
                by_identity_event = {e.message.key.decode(): e for e in events if e.message.key is not None}
                t0 = time.perf_counter()
                # In a thread: while the engine process evaluates, the event loop keeps consuming.
                result = await asyncio.get_running_loop().run_in_executor(None, stage.process, records)
                t1 = time.perf_counter()
                sink.enqueue(result)
                store.stage(result, by_identity_event, events[-1])
                t2 = time.perf_counter()
            except BaseException:
                # Our own output failed, the core broke, or the agent was cancelled mid-batch: never let
                # Faust ack this batch (take_events acks in its finally). Exit hard so nothing
                # after it is committed either; the supervisor restarts us and the batch is reprocessed.
                log.critical("batch at %s failed; exiting without committing", events[0:1], exc_info=True)
                logging.shutdown()
                os._exit(70)
            if result.skipped_records:
                log.info("already applied, not decided again: %s", result.skipped_records)
            if result.reordered:
                log.warning("%d records arrived below their identity's applied position", result.reordered)
            log.info(
                "batch: %d records -> %d decisions (%d human), %d commands, %d dead letters, %d already "
                "applied, %d states (%.0f ms, out %.0f ms)",
                len(records),
                len(result.decisions),
                result.human_events,
                len(result.commands),
                len(result.deadletters),
                result.skipped,
                len(result.identity_state),
                (t1 - t0) * 1000,
                (t2 - t1) * 1000,
            )

    return app


def run_worker(settings: Settings) -> None:
    """Create the input/output topics if missing, then run the worker until stopped."""
    from nhiguard.streams.topics import ensure_topics

    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
