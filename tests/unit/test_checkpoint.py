"""The worker's checkpoint (streams/checkpoint.py): its step order, its offset guard, and the Faust behaviour
it works around, pinned so that a faust-streaming upgrade that changes any of it fails here first."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

import pytest
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from nhiguard.streams import checkpoint
from nhiguard.streams.checkpoint import Checkpoint, OffsetLedger, SafeRecovery

TP0 = TP("audit.ci", 0)
TP1 = TP("audit.ci", 1)


def test_ledger_reports_the_offsets_no_agent_processed():
    ledger = OffsetLedger()
    ledger.mark(TP0, [10, 11, 12, 15, 16, 20])
    assert ledger.unseen(TP0, 10, 17) == [(13, 15)]
    assert ledger.unseen(TP0, 8, 22) == [(8, 10), (13, 15), (17, 20), (21, 22)]
    assert ledger.unseen(TP("other", 0), 0, 3) == [(0, 3)]
    ledger.committed(TP0, 16)
    assert ledger.unseen(TP0, 16, 21) == [(17, 20)]
    ledger.forget([TP0])
    assert ledger.unseen(TP0, 16, 18) == [(16, 18)]


class _Fakes:
    """A sink, a store, Faust's producer and its commit, each recording when it ran."""

    def __init__(self, *, sink_fails=False, buffered=0):
        self.calls = []
        self.sink_fails = sink_fails
        self.buffer = type("Buffer", (), {"size": buffered})()

    def flush(self):  # OutputSink.flush
        self.calls.append("deliver outputs")
        if self.sink_fails:
            raise RuntimeError("broker gone")

    def take_pending(self):
        self.calls.append("take state")
        return {"id": 1}, {}

    def write(self, ids, pkgs):
        self.calls.append(f"write state {sorted(ids)}")

    async def producer_flush(self):
        self.calls.append("deliver changelogs")
        self.buffer.size = max(0, self.buffer.size - 1)

    async def commit(self, offsets):
        self.calls.append(f"commit {dict(offsets)}")
        return True


def _run(fakes, ledger, offsets, committed, monkeypatch, found=(), seeks=None):
    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(checkpoint.os, "_exit", fake_exit)
    monkeypatch.setattr(checkpoint, "records_in", lambda *_a, **_k: list(found))
    producer = type("P", (), {"flush": fakes.producer_flush, "buffer": fakes.buffer})()
    cp = Checkpoint(settings=None, sink=fakes, store=fakes, ledger=ledger)
    try:
        asyncio.run(cp.commit(offsets, committed, producer, fakes.commit))
    except SystemExit:
        pass
    return exits


def test_steps_run_in_order_and_the_changelog_is_flushed_until_empty(monkeypatch):
    fakes = _Fakes(buffered=2)
    ledger = OffsetLedger()
    ledger.mark(TP0, range(5, 10))
    assert _run(fakes, ledger, {TP0: 10}, {TP0: 5}, monkeypatch) == []
    assert fakes.calls == [
        "take state",
        "deliver outputs",
        "write state ['id']",
        "deliver changelogs",
        "deliver changelogs",
        f"commit { ({TP0: 10}) }",
    ]
    assert ledger.unseen(TP0, 10, 11) == [(10, 11)]  # settled offsets forgotten


def test_undelivered_outputs_stop_the_worker_before_state_or_offsets_are_written(monkeypatch):
    fakes = _Fakes(sink_fails=True)
    ledger = OffsetLedger()
    ledger.mark(TP0, range(0, 3))
    assert _run(fakes, ledger, {TP0: 3}, {TP0: None}, monkeypatch) == [70]
    assert fakes.calls == ["take state", "deliver outputs"]


def test_a_commit_stops_at_a_record_nobody_processed_and_the_restart_reads_it_again(monkeypatch):
    fakes = _Fakes()
    ledger = OffsetLedger()
    ledger.mark(TP0, [*range(100, 110), *range(150, 160)])  # 110..149 fetched and dropped
    offsets = {TP0: 160}
    assert _run(fakes, ledger, offsets, {TP0: 100}, monkeypatch, found=range(110, 150)) == [70]
    assert fakes.calls[-1] == f"commit { ({TP0: 110}) }"
    assert offsets == {TP0: 110}, "Faust reads back what was committed from the same mapping"


def test_nothing_is_committed_for_a_partition_whose_first_record_was_dropped(monkeypatch):
    fakes = _Fakes()
    ledger = OffsetLedger()
    ledger.mark(TP0, range(120, 130))
    offsets = {TP0: 130}
    assert _run(fakes, ledger, offsets, {TP0: 100}, monkeypatch, found=range(100, 120)) == [70]
    assert not [c for c in fakes.calls if c.startswith("commit")]
    assert offsets == {}


def test_an_offset_check_that_cannot_reach_the_broker_stops_the_worker(monkeypatch):
    fakes = _Fakes()
    ledger = OffsetLedger()
    ledger.mark(TP0, [0, 5])

    def unreachable(*_a, **_k):
        raise TimeoutError("broker gone")

    monkeypatch.setattr(checkpoint, "records_in", unreachable)
    monkeypatch.setattr(checkpoint.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    producer = type("P", (), {"flush": fakes.producer_flush, "buffer": fakes.buffer})()
    cp = Checkpoint(settings=None, sink=fakes, store=fakes, ledger=ledger)
    with pytest.raises(SystemExit):
        asyncio.run(cp.commit({TP0: 6}, {TP0: None}, producer, fakes.commit))
    assert not [c for c in fakes.calls if c.startswith("commit")]


def test_offsets_that_hold_no_record_transaction_markers_are_not_loss(monkeypatch):
    fakes = _Fakes()
    ledger = OffsetLedger()
    ledger.mark(TP0, [0, 1, 2, 4, 5, 6, 8])  # 3 and 7: commit markers of two transactions
    assert _run(fakes, ledger, {TP0: 9}, {TP0: None}, monkeypatch, found=()) == []
    assert fakes.calls[-1] == f"commit { ({TP0: 9}) }"


# -- the Faust behaviour the checkpoint relies on or works around (faust-streaming, pinned) ------------------


def test_faust_streaming_is_the_verified_version():
    assert version("faust-streaming") == "0.15.3", (
        "streams/checkpoint.py works around faust-streaming 0.15.3's recovery path and relies on its "
        "consumer internals: re-verify them (and the tests below) before changing the pin in pyproject.toml"
    )


def test_aiokafka_is_the_verified_version():
    assert version("aiokafka") == "0.14.0", (
        "streams/checkpoint.py (ActivePartitions) and streams/records_in.py rely on aiokafka 0.14.0's "
        "fetcher internals: re-verify them (and the tests that pin them) before changing its pin"
    )


def test_faust_recovery_still_resumes_stream_partitions_before_seeking():
    # SafeRecovery exists because of this order; if Faust fixes it, SafeRecovery may be dropped.
    src = inspect.getsource(Recovery.on_recovery_completed)
    assert src.index("resume_partitions") < src.index("perform_seek") < src.index("flow_control.resume")
    safe = inspect.getsource(SafeRecovery.on_recovery_completed)
    assert safe.index("perform_seek") < safe.index("flow_control.resume") < safe.index("resume_partitions")


def test_faust_records_as_committed_the_mapping_it_passed_to_commit():
    # The guard lowers an offset in that mapping in place; Faust must read the same object back.
    src = inspect.getsource(faust_consumer.Consumer._commit_offsets)
    assert "self._commit(committable_offsets)" in src
    assert "self._committed_offset.update(committable_offsets)" in src
    assert src.index("self._commit(committable_offsets)") < src.index("_committed_offset.update(committable")


def test_faust_internals_the_checkpoint_uses_are_there():
    for name in ("_set_recovery_ended", "_is_changelog_tp", "_wait", "on_recovery_completed"):
        assert callable(getattr(Recovery, name)), name
    assert "self._recovery" in inspect.getsource(TableManager.recovery.fget)
    assert "_committed_offset" in inspect.getsource(faust_consumer.Consumer._commit_offsets)
    assert "self._commit(" in inspect.getsource(faust_consumer.Consumer._commit_offsets)
    assert inspect.iscoroutinefunction(faust_aiokafka.Consumer._commit)
    assert faust_aiokafka.Transport.Consumer is faust_aiokafka.Consumer


def test_faust_new_offset_still_skips_its_contiguity_check_for_offset_zero():
    # The reason the guard keeps its own ledger instead of trusting Faust's acknowledged offsets.
    src = inspect.getsource(faust_consumer.Consumer._new_offset)
    assert "if committed_offset:" in src


@pytest.mark.parametrize("name", ["route", "decide", "follow_identities"])
def test_every_agent_marks_what_it_processed(name):
    from nhiguard.streams.agents import Agents

    assert "self.processed(" in inspect.getsource(getattr(Agents, name))


def _drained(partitions):
    """What aiokafka's fetched_records hands out of a buffer holding records of one partition."""
    from types import SimpleNamespace

    from aiokafka.consumer.fetcher import Fetcher, FetchResult
    from aiokafka.structs import TopicPartition

    tp = TopicPartition("audit.registry", 0)
    result = FetchResult(tp, assignment=None, partition_records=None, backoff=0)
    result.getall = lambda max_records=None: ["record 38"]
    result.has_more = lambda: False
    fetcher = SimpleNamespace(
        _subscriptions=SimpleNamespace(reassignment_in_progress=False, is_assigned=lambda tp: True),
        _records={tp: result},
        _notify=lambda future: None,
        _wait_consume_future=None,
    )
    return asyncio.run(Fetcher.fetched_records(fetcher, partitions, timeout=0))


def test_aiokafka_still_drains_every_partition_for_an_empty_set_and_the_consumer_never_passes_one():
    # The stall after a restart without local state: Faust's live set of active partitions is empty for a
    # moment at the end of recovery, and aiokafka reads it as "all" (module docstring). If aiokafka changes
    # this, ActivePartitions may go.
    assert _drained(set()) == {("audit.registry", 0): ["record 38"]}
    live: set = set()
    view = checkpoint.ActivePartitions(live)
    assert _drained(view) == {}  # not active: left in the fetcher for when it is
    live.add(TP("audit.registry", 0))  # resumed while a fetch waits: the view follows the live set
    assert _drained(view) == {("audit.registry", 0): ["record 38"]}


def test_the_consumer_fetches_through_a_never_empty_view_of_the_live_active_set(monkeypatch):
    seen = []

    async def base_getmany(self, active_partitions, timeout):
        seen.append(active_partitions)
        return {}

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", base_getmany)
    consumer = object.__new__(checkpoint.CheckpointConsumer)
    live: set = set()
    asyncio.run(consumer._getmany(active_partitions=live, timeout=1.0))
    (view,) = seen
    assert isinstance(view, checkpoint.ActivePartitions) and bool(view) and view.live is live
    assert "self._getmany(" in inspect.getsource(faust_consumer.Consumer._wait_next_records)


def test_faust_forgets_a_revoked_partitions_committed_offset_before_the_commit_it_makes_for_it():
    # Why the consumer remembers them (checkpoint.committed_view): pinned, so an upgrade changing it shows.
    src = inspect.getsource(faust_consumer.Consumer.on_partitions_revoked)
    assert src.index("self._committed_offset.pop(tp") < src.index("self._on_partitions_revoked")


def test_a_revocation_commit_is_guarded_from_the_offset_this_consumer_started_at(monkeypatch):
    # This process sought to 508 at its assignment and decided 508..; on the revocation Faust has forgotten
    # 508, and the guard read 0..507 (decided and committed by another process) as fetched and never
    # processed, and exited: a restart at every rebalance.
    fakes = _Fakes()
    ledger = OffsetLedger()
    ledger.mark(TP0, range(508, 600))
    committed = checkpoint.committed_view({TP0: 508}, {})
    assert committed == {TP0: 508}
    assert _run(fakes, ledger, {TP0: 600}, committed, monkeypatch, found=range(0, 508)) == []
    assert fakes.calls[-1] == f"commit { ({TP0: 600}) }"
    # What Faust knows wins where it knows it (a later commit of this consumer's).
    assert checkpoint.committed_view({TP0: 508}, {TP0: 550, TP1: None}) == {TP0: 550}


def test_the_consumer_remembers_the_offsets_it_sought_to_and_committed(monkeypatch):
    consumer = object.__new__(checkpoint.CheckpointConsumer)
    consumer._committed_offset = {TP0: 508, TP1: None}

    async def seek(self):
        return None

    monkeypatch.setattr(faust_aiokafka.Consumer, "perform_seek", seek)
    asyncio.run(consumer.perform_seek())
    consumer._committed_offset = {}  # revoked: Faust forgot them
    assert checkpoint.committed_view(consumer._remember(), consumer._committed_offset) == {TP0: 508}
