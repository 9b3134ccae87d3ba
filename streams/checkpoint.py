"""The worker's checkpoint: what must be true before an input offset is committed, in one place.

Faust decides *when* to commit (every `broker_commit_every` records, every `broker_commit_interval`, on a
rebalance, at shutdown) and which offsets its consumer has seen acknowledged. Right before it commits them,
`Checkpoint.commit()` runs, in this order:

1. **Deliver outputs.** Every decision, command, alert and dead letter enqueued so far, and every record
   forwarded to the by-identity topic, is acknowledged by Kafka (`OutputSink.flush`).
2. **Write state.** The per-identity and per-package state the delivered batches changed is written to the
   Faust tables (local RocksDB, and a changelog record each), at most once per key per commit.
3. **Deliver changelogs.** Faust's producer is flushed until its buffer is empty, so the state is on Kafka.
4. **Guard the offsets.** No offset may pass an input record that was fetched and never processed: every
   offset below it, down to the last commit, was processed by an agent or holds no record in the log
   (transaction markers, records compacted away). Where one would, the commit stops at the first such record
   and the worker then stops (exit 70) so that its restart reads the partition again from there (at least
   once: the records after it are decided again, with the same ids; the stateful stage recognises what it
   already applied). See `OffsetLedger` and "the Faust behaviour" below.
5. **Commit offsets** (Faust's own commit).

A failure in steps 1-3, or an offset check that cannot reach the broker, stops the worker without committing
(exit code 70): the records after the last commit are decided again by the restarted worker, with the same
ids (at least once, never lost).

The Faust behaviour worked around (faust-streaming 0.15.3, pinned in pyproject.toml; tests/unit/
test_checkpoint.py fails when an upgrade changes any of it):
- `Recovery.on_recovery_completed` resumes the stream partitions, *then* awaits the seek to the committed
  offsets, *then* resumes flow control, which clears the agents' queues. When a restart has changelog records
  to recover (local state missing or behind), the fetcher already runs during recovery, so records fetched in
  that window are dropped from the queues; the consumer's read offsets have moved past them, so their
  refetched copies are discarded as already read, and the offset gaps this leaves are committed over
  (`Consumer._new_offset` folds gaps into the acknowledged offsets, and skips its contiguity check when the
  committed offset is 0 or None). `SafeRecovery` seeks and clears while the stream partitions are still
  paused, and resumes them only then.
- Faust hands the consumer thread its *live* set of active partitions, and aiokafka's `fetched_records`
  reads an empty set as "every partition". At the end of a recovery Faust pauses the changelog partitions
  before the stream partitions are resumed: for that moment the set is empty, and a fetch already waiting
  hands out records of the still-paused stream partitions, which Faust then drops (not active) while the
  fetch position has moved past them. A whole fetch batch never reaches an agent: the worker stalls on a
  quiet partition (seen: 8 records after a restart without local state, about 1 restart in 10), or the next
  batch makes Faust record the hole as a gap it commits over. `CheckpointConsumer._getmany` passes a view of
  the live set that is never empty to aiokafka, so a paused partition is never drained.
- The guard (step 4) does not trust Faust's acknowledged-offset bookkeeping even so: it keeps its own ledger
  of the offsets the agents processed, asks the broker about any offset it did not see, and has real records
  read again instead of committing past them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Set
from typing import Any, cast

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings
from nhiguard.streams.sink import OutputSink
from nhiguard.streams.state import TableStore

log = logging.getLogger("nhiguard.checkpoint")

EXIT_NOT_COMMITTED = 70  # EX_SOFTWARE: restart me; nothing after the last commit was acknowledged


def stop_without_committing(why: str) -> None:
    """The one way out when progress must stop: no further offset is committed, the supervisor restarts the
    worker, and everything after the last commit is decided again."""
    log.critical("%s; exiting without committing", why, exc_info=sys.exc_info()[0] is not None)
    logging.shutdown()
    os._exit(EXIT_NOT_COMMITTED)


class OffsetLedger:
    """The input offsets the agents finished processing, per topic partition, since the last commit."""

    def __init__(self) -> None:
        self._done: dict[TP, set[int]] = defaultdict(set)

    def mark(self, tp: TP, offsets: Iterable[int]) -> None:
        self._done[tp].update(offsets)

    def unseen(self, tp: TP, start: int, end: int) -> list[tuple[int, int]]:
        """The ranges [a, b) of offsets in [start, end) that no agent processed."""
        out: list[tuple[int, int]] = []
        prev = start
        for o in sorted(o for o in self._done.get(tp, ()) if start <= o < end):
            if o > prev:
                out.append((prev, o))
            prev = o + 1
        if prev < end:
            out.append((prev, end))
        return out

    def committed(self, tp: TP, offset: int) -> None:
        """Offsets below a commit are settled: forget them."""
        done = self._done.get(tp)
        if done:
            self._done[tp] = {o for o in done if o >= offset}

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self._done.pop(tp, None)


def records_in(
    settings: Settings, tp: TP, ranges: list[tuple[int, int]], timeout_s: float = 30.0
) -> list[int]:
    """The offsets in the given ranges that hold a record a consumer would be given (read_uncommitted, as the
    worker's consumer reads): transaction markers and records compacted or deleted away are not among them."""
    consumer = KafkaConsumer(
        confluent_config(
            settings,
            **{
                "group.id": f"{settings.app_id}-checkpoint-guard",  # never subscribes or commits
                "enable.auto.commit": False,
                "isolation.level": "read_uncommitted",
                "log_level": 3,
            },
        )
    )
    found: list[int] = []
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout_s)
        for start, end in ranges:
            start, end = max(start, low), min(end, high)
            if start >= end:
                continue
            consumer.assign([TopicPartition(tp.topic, tp.partition, start)])
            deadline = time.monotonic() + timeout_s
            position = start
            while position < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {tp.topic}[{tp.partition}] {start}..{end} timed out")
                msg = consumer.poll(0.5)
                if msg is None:
                    position = max(position, _position(consumer, tp))
                    continue
                if msg.error():
                    continue
                if msg.offset() < end:
                    found.append(msg.offset())
                position = msg.offset() + 1
    finally:
        consumer.close()
    return found


def _position(consumer: KafkaConsumer, tp: TP) -> int:
    pos = consumer.position([TopicPartition(tp.topic, tp.partition)])[0].offset
    return pos if pos >= 0 else 0


class Checkpoint:
    """Runs the numbered steps of the module docstring before each offset commit of the worker."""

    def __init__(self, settings: Settings, sink: OutputSink, store: TableStore, ledger: OffsetLedger) -> None:
        self.settings = settings
        self.sink = sink
        self.store = store
        self.ledger = ledger
        self._lock = asyncio.Lock()  # a periodic and a rebalance commit must not write state out of order

    async def commit(
        self,
        offsets: dict[TP, int],
        committed: Mapping[TP, int | None],
        faust_producer: Any,
        commit_offsets: Callable[[Mapping[TP, int]], Awaitable[bool]],
    ) -> bool:
        """`offsets` is Faust's own mapping: the guard lowers an entry in place, so Faust records as committed
        what was committed (test_checkpoint.py pins that Faust reads the same mapping back)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            # 1. deliver outputs
            ids, pkgs = self.store.take_pending()
            try:
                await loop.run_in_executor(None, self.sink.flush)
            except Exception:
                stop_without_committing("outputs were not delivered")
            # 2. write state
            self.store.write(ids, pkgs)
            # 3. deliver changelogs: Faust's buffer flush gives up after 0.1 s without a send, so keep going
            #    until the buffer is empty.
            deadline = time.monotonic() + 60
            await faust_producer.flush()
            while faust_producer.buffer.size:
                if time.monotonic() > deadline:
                    stop_without_committing("state changelog not delivered")
                await faust_producer.flush()
            # 4. guard the offsets
            rewind = await self._guard(offsets, committed)
            # 5. commit offsets
            done = await commit_offsets(offsets) if offsets else False
            if done:
                for tp, offset in offsets.items():
                    self.ledger.committed(tp, offset)
            # Records fetched and never processed: committed up to the first of them, and read again from
            # there by the restarted worker (a seek from inside the commit path stalled the fetcher: tried).
            if rewind:
                where = ", ".join(f"{tp.topic}[{tp.partition}] from {o}" for tp, o in rewind.items())
                stop_without_committing(f"records fetched and never processed are to be read again: {where}")
            return done

    async def _guard(self, offsets: dict[TP, int], committed: Mapping[TP, int | None]) -> dict[TP, int]:
        """Lower every offset that would pass a record nobody processed to that record; returns where each
        such partition must be read again from."""
        loop = asyncio.get_running_loop()
        rewind: dict[TP, int] = {}
        for tp, offset in list(offsets.items()):
            start = committed.get(tp) or 0
            unseen = self.ledger.unseen(tp, start, offset)
            if not unseen:
                continue
            try:
                lost = await loop.run_in_executor(None, records_in, self.settings, tp, unseen)
            except Exception:
                stop_without_committing(f"cannot check offsets {unseen[:3]} of {tp} before committing")
            if not lost:
                log.info("offsets %s of %s hold no record (transaction markers or compacted)", unseen[:5], tp)
                continue
            log.warning(
                "%s[%s]: %d records (offsets %d..%d) were fetched but never processed; committing up to %d "
                "and reading them again",
                tp.topic,
                tp.partition,
                len(lost),
                lost[0],
                lost[-1],
                lost[0],
            )
            rewind[tp] = lost[0]
            if lost[0] > start:
                offsets[tp] = lost[0]
            else:
                del offsets[tp]
        return rewind


class ActivePartitions:
    """Faust's live set of active partitions as the consumer thread's fetch reads it: membership follows the
    live set (a partition paused while a fetch waits is not drained), but it is never empty, because aiokafka
    takes an empty set for "every partition" (the module docstring)."""

    __slots__ = ("live",)

    def __init__(self, live: Set[TP]) -> None:
        self.live = live

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.live


def committed_view(remembered: Mapping[TP, int], live: Mapping[TP, int | None]) -> dict[TP, int | None]:
    """Where each partition's commit starts from, as the guard must see it. Faust's own view (live) is what
    this consumer last committed or sought to after an assignment; but on a revocation Faust forgets the
    revoked partitions (consumer.on_partitions_revoked pops them) *before* the commit it then makes for them,
    and a guard reading "nothing committed" checked every offset from 0: records another process had decided
    and committed looked fetched and never processed, and the worker exited to read them again, at every
    rebalance (make soak: a cascade of restarts). So a partition Faust forgot keeps the offset remembered."""
    view: dict[TP, int | None] = dict(remembered)
    view.update({tp: o for tp, o in live.items() if o is not None})
    return view


class CheckpointConsumer(faust_aiokafka.Consumer):
    """Faust's Kafka consumer, committing through the app's Checkpoint, and fetching only what is active."""

    _remembered: dict[TP, int] | None = None

    def _remember(self) -> dict[TP, int]:
        if self._remembered is None:
            self._remembered = {}
        self._remembered.update({tp: o for tp, o in self._committed_offset.items() if o is not None})
        return self._remembered

    async def perform_seek(self) -> None:
        await super().perform_seek()
        self._remember()  # the committed offsets of this assignment, before a revocation forgets them

    async def _getmany(self, active_partitions: Set[TP] | None, timeout: float) -> Any:
        live = None if active_partitions is None else ActivePartitions(active_partitions)
        return await super()._getmany(cast(Any, live), timeout)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        checkpoint: Checkpoint | None = getattr(self.app, "checkpoint", None)
        if checkpoint is None:
            return await super()._commit(offsets)
        # None for none, and for 0: Faust stores 0 as None, which reads as 0 here too.
        committed = committed_view(self._remember(), self._committed_offset)
        done = await checkpoint.commit(cast(dict, offsets), committed, self.app.producer, super()._commit)
        if done:
            self._remember().update({tp: o for tp, o in offsets.items() if o})
        return done


class CheckpointTransport(faust_aiokafka.Transport):
    Consumer = CheckpointConsumer


class SafeRecovery(Recovery):
    """Recovery that seeks the stream partitions to their committed offsets while they are still paused, and
    clears the agents' queues, before it lets the consumer fetch from them (see the module docstring)."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again: generation %s, not %s",
                self.app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets (still paused).")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        self.app.flow_control.resume()  # clears whatever the queues hold from before the seek
        consumer.resume_flow()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class SafeTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SafeRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
