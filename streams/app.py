"""The Faust worker: consume the audit topics in batches, call the decision core, produce, then ack.

The agent is deliberately thin: no policy logic lives here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import faust

from nhiguard.avro import AvroCodec
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.engine import trial_run
from nhiguard.decision.records import RawRecord
from nhiguard.settings import Settings
from nhiguard.streams.engines import make_evaluator
from nhiguard.streams.reload import BundleReloader
from nhiguard.streams.sink import OutputSink

log = logging.getLogger("nhiguard.worker")


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (str(k), v if isinstance(v, bytes) else b"" if v is None else str(v).encode()) for k, v in items
    )


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
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
    inventory = Inventory.load(settings.identities_file) if settings.identities_file else Inventory()
    # Prove the bundle in a throwaway process, then serve it from child processes: a native crash in
    # regopy costs one event, never the worker.
    bundle = trial_run(settings.policies_dir)
    core = DecisionCore(settings, bundle, inventory, evaluator=make_evaluator(settings, bundle))
    sink = OutputSink(settings, AvroCodec(settings.schemas_dir))
    topic = app.topic(*settings.topics.inputs, value_serializer="raw", key_serializer="raw")

    # At least once, without waiting for the broker after every batch: a batch's outputs are only enqueued,
    # and Faust flushes its producer right before it commits offsets (Consumer._commit_offsets: periodic
    # commits, rebalances and shutdown all go through it). Our producer is flushed there too, so no offset
    # is committed before the outputs of the records up to it are on Kafka.
    faust_flush = app.producer.flush

    async def flush_before_commit() -> None:
        await faust_flush()
        try:
            await asyncio.get_running_loop().run_in_executor(None, sink.flush)
        except Exception:
            log.critical("outputs were not delivered; exiting without committing", exc_info=True)
            logging.shutdown()
            os._exit(70)

    app.producer.flush = flush_before_commit  # type: ignore[method-assign]

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

    @app.agent(topic)
    async def decide(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            records = [
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
            try:
                t0 = time.perf_counter()
                # In a thread: while the engine process evaluates, the event loop keeps consuming.
                result = await asyncio.get_running_loop().run_in_executor(None, core.process, records)
                t1 = time.perf_counter()
                sink.enqueue(result)
                t2 = time.perf_counter()
            except BaseException:
                # Our own output failed, the core broke, or the agent was cancelled mid-batch: never let
                # Faust ack this batch (take_events acks in its finally). Exit hard so nothing
                # after it is committed either; the supervisor restarts us and the batch is reprocessed.
                log.critical("batch at %s failed; exiting without committing", records[0:1], exc_info=True)
                logging.shutdown()
                os._exit(70)
            log.info(
                "batch: %d records -> %d decisions, %d commands, %d dead letters (%.0f ms, out %.0f ms)",
                len(records),
                len(result.decisions),
                len(result.commands),
                len(result.deadletters),
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
