"""The Faust worker: wires the decision core, the state tables, the sink and the checkpoint to three agents.

The agents are in streams/agents.py, the commit protocol in streams/checkpoint.py, durable state in
streams/state.py. This module only builds them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from nhiguard.avro import AvroCodec
from nhiguard.decision.core import DecisionCore
from nhiguard.kafka_clients import faust_settings, topic_config
from nhiguard.lookup import registry_lookup
from nhiguard.policy.engines import make_evaluator
from nhiguard.policy.engines.pool import trial_run
from nhiguard.settings import Settings
from nhiguard.streams import records_in
from nhiguard.streams.agents import Agents
from nhiguard.streams.checkpoint import (
    Checkpoint,
    CheckpointTransport,
    OffsetLedger,
    SafeTableManager,
)
from nhiguard.streams.identities import TableInventory
from nhiguard.streams.reload import BundleReloader
from nhiguard.streams.sink import OutputSink
from nhiguard.streams.state import StatefulStage, TableStore

# Faust's RocksDB defaults are a 2 GiB block cache and 3 x 64 MiB memtables per store (per table partition):
# unbounded in practice at a million identities. The worker's own LRU (NHIGUARD_STATE_CACHE) holds the hot
# identities decoded; RocksDB keeps a small cache of its own (an LRU too) and reads the rest from disk.
ROCKS = {
    "driver": "rocksdict",
    "block_cache_size": 64 * 2**20,
    "write_buffer_size": 16 * 2**20,
    "max_write_buffer_number": 2,
}


class WorkerApp(faust.App):
    """A Faust app whose consumer commits through the worker's Checkpoint (streams/checkpoint.py)."""

    checkpoint: Checkpoint | None = None

    def _new_transport(self) -> Any:
        return CheckpointTransport(self.conf.broker_consumer, self)


def _faust_app(settings: Settings) -> WorkerApp:
    return WorkerApp(
        settings.app_id,
        **faust_settings(settings),  # broker, credentials, replication of the topics Faust creates
        value_serializer="raw",
        key_serializer="raw",
        store="rocksdb://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        topic_partitions=settings.input_partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=settings.batch_max,
        # Per partition, what one fetch may return: the record limit and room for its headers (Kafka returns
        # a first batch over it anyway, so a larger record is still fetched, and dead-lettered as oversized).
        consumer_max_fetch_size=settings.max_record_bytes + 64 * 1024,
        broker_commit_interval=1.0,
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
        TableManager=SafeTableManager,
    )


def _policy_follower(app: faust.App, settings: Settings, reloader: BundleReloader) -> None:
    """Follow the bundles topic, or poll the policies directory, for a new bundle to activate."""
    if settings.policy_source == "topic":
        from nhiguard.streams.bundles import BundleFollower

        follower = BundleFollower(settings, reloader)

        async def follow_bundles() -> None:
            follower.start()

        app.task(follow_bundles)
    elif settings.policy_reload_s > 0:

        async def reload_policies() -> None:
            await asyncio.get_running_loop().run_in_executor(None, reloader.check)

        app.timer(interval=settings.policy_reload_s)(reload_policies)


def create_app(settings: Settings) -> faust.App:
    # Neither a header key that is not UTF-8 nor a compression bomb may stop the consumer.
    records_in.install(settings.max_inflated_bytes)
    app = _faust_app(settings)
    codec = AvroCodec(settings.schemas_dir)
    # Every worker holds every identity (a global table), fed from the compacted identities topic.
    # Changelogs are created by Faust with the configured replication and min.insync.replicas.
    table_kw = {
        "key_type": bytes,
        "value_type": bytes,
        "options": ROCKS,
        "extra_topic_configs": topic_config(settings),
    }
    identities = app.GlobalTable("identities", **table_kw)
    # Per-identity state lives with the identity's partition of the by-identity topic; package facts are read
    # by everyone (see streams/state.py).
    store = TableStore(
        app.Table("identity-state", **table_kw),
        app.GlobalTable("packages", **table_kw),
        settings.input_partitions,
    )
    # Prove the bundle in a throwaway process, then serve it from child processes: a native crash in
    # regopy costs one event, never the worker.
    bundle = trial_run(settings.policies_dir)
    inventory = TableInventory(identities, codec)
    evaluator = make_evaluator(settings, bundle)
    lookup = registry_lookup(settings.registry_lookup, settings.registry_lookup.url)  # else no lookups
    core = DecisionCore(settings, bundle, inventory, evaluator=evaluator, store=store, lookup=lookup)
    stage = StatefulStage(core, store, settings.state_cache_identities)  # skips redeliveries, then decides
    sink = OutputSink(settings, codec)
    ledger = OffsetLedger()
    app.checkpoint = Checkpoint(settings, sink, store, ledger)
    agents = Agents(settings, core, sink, store, ledger, codec, identities, stage)

    @app.on_partitions_revoked.connect
    async def forget_cached_state(_app: Any, revoked: Any = None, **_kw: Any) -> None:
        # Partitions may move to another worker, which then owns (and advances) their identities' state:
        # what this worker holds in memory may go stale. Pending writes go out with the rebalance's commit.
        await asyncio.get_running_loop().run_in_executor(None, stage.drop_cached)

    _policy_follower(app, settings, BundleReloader(core, settings, sink))
    raw = {"value_serializer": "raw", "key_serializer": "raw"}
    app.agent(app.topic(*settings.topics.inputs, **raw), name="route")(agents.route)
    app.agent(
        app.topic(settings.topics.by_identity, partitions=settings.input_partitions, **raw), name="decide"
    )(agents.decide)
    app.agent(app.topic(settings.topics.identities, **raw), name="follow_identities")(
        agents.follow_identities
    )
    return app


def run_worker(settings: Settings) -> None:
    """Create the input/output topics if missing, then run the worker until stopped."""
    from nhiguard.signing import command_signer, trusted_keys
    from nhiguard.streams.topics import ensure_topics

    # Keys that are configured but unusable (or missing while NHIGUARD_REQUIRE_SIGNING is set) stop the worker
    # before it touches Kafka; the sink and the bundle follower load them again for use.
    command_signer(settings)
    if settings.policy_source == "topic":
        trusted_keys(settings.bundle_keys, "NHIGUARD_BUNDLE_KEYS", settings)
    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
