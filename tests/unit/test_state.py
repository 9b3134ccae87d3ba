"""Durable per-identity and per-package state: what the worker's stateful stage writes to its tables and
reads back, and how it recognises a record it already applied."""

from dataclasses import replace

import pytest

from nhiguard.decision.adapters import adapt
from nhiguard.decision.codec import decode_identity_state, decode_package_state, encode_package_state
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.package_state import LastRelease, PackageFacts
from nhiguard.models.anomaly import Baseline
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.state import StatefulStage, TableStore, decode_value
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

BUNDLE = load_bundle(REPO_ROOT / "policies")
PARAMS = default_params()
TOPICS = load_settings(env={}).topics


class Event:
    """What TableStore.write needs of a Faust event: the partition its writes go to."""

    class message:
        partition = 0


class Tables:
    """The worker's two tables as dicts (identity -> value, package@partition -> facts), shared by the
    workers of a test as the changelog shares them across restarts."""

    def __init__(self) -> None:
        self.identities: dict[bytes, bytes] = {}
        self.packages: dict[bytes, bytes] = {}

    def worker(self, **settings):
        """A fresh worker process over these tables: nothing in memory."""
        store = TableStore(self.identities, self.packages, partitions=1)
        settings = load_settings(env={}, **settings)
        inv = Inventory.load_dict(inventory(PARAMS))
        return StatefulStage(
            DecisionCore(settings, BUNDLE, inv, store=store), store, settings.state_cache_identities
        )

    @staticmethod
    def write(stage, result):
        """What the worker's commit does with a batch's result: stage it, then write it."""
        stage.store.stage(result, {}, Event())
        stage.store.write(*stage.store.take_pending())


@pytest.fixture(scope="module")
def records():
    from tests.unit.test_core import raw_records

    raws = raw_records(generate(PARAMS, ordinary=600))
    return [replace(r, position=i) for i, r in enumerate(raws)]


def core(**settings):
    return DecisionCore(load_settings(env={}, **settings), BUNDLE, Inventory.load_dict(inventory(PARAMS)))


def outcome(decisions):
    return {d.decision_id: (d.anomaly_score, d.anomaly_warm, d.verdict) for d in decisions}


@pytest.fixture(scope="module")
def reference(records):
    c = core()
    out = []
    for i in range(0, len(records), 100):
        out += c.process(records[i : i + 100]).decisions
    return outcome(out)


def test_a_restart_from_the_store_gives_the_same_scores_and_skips_what_was_applied(records, reference):
    tables = Tables()
    first = tables.worker()
    seen = {}
    # Batches of 100: state is written after each, but offsets are committed only up to 300, so the
    # restarted worker gets 300.. again, though state already holds everything up to 500.
    for i in range(0, 500, 100):
        res = first.process(records[i : i + 100])
        tables.write(first, res)
        seen |= outcome(res.decisions)
    second = tables.worker()  # a fresh process: nothing in memory
    skipped = 0
    for i in range(300, len(records), 70):
        res = second.process(records[i : i + 70])
        tables.write(second, res)
        skipped += res.skipped
        for d in res.decisions:
            k, v = d.decision_id, outcome([d])[d.decision_id]
            # People's events keep no state: redone, identically. Everyone else's were applied: not redone.
            assert k not in seen or d.identity_kind == "human", "an applied event was decided again"
            assert seen.setdefault(k, v) == v
    assert skipped > 0
    assert seen == reference


def test_evicted_identities_come_back_from_the_store_unchanged(records, reference):
    tables = Tables()
    c = tables.worker(state_cache_identities=5)
    out = []
    for i in range(0, len(records), 100):
        res = c.process(records[i : i + 100])
        tables.write(c, res)
        assert c.core.state.cached[0] <= 5
        out += res.decisions
    assert outcome(out) == reference


def test_identity_state_fits_the_budget_and_round_trips(records):
    tables = Tables()
    c = tables.worker()
    for i in range(0, len(records), 100):
        tables.write(c, c.process(records[i : i + 100]))
    sizes = sorted(len(b) for b in tables.identities.values())
    assert sizes and sizes[-1] <= 4096, sizes[-5:]
    for value in tables.identities.values():
        core_part, delivery = decode_value(value)
        state = decode_identity_state(core_part)
        assert state.facts.events > 0 and delivery.applied >= 0 and delivery.recent
        if state.model is not None:
            model = state.model.to_bytes()
            assert Baseline.from_bytes(model).to_bytes() == model


def test_package_copies_from_several_partitions_merge_to_one_answer():
    one, two = LastRelease("1", 10, 40), LastRelease("2", 12, 48)
    a = PackageFacts(last_release=one, last_release_ms=10, created_ms=5, denied={"1.0.1": "harm"})
    a.installs = {"1.0.1": [("x", 1)]}
    a.proxy_publishes, a.top, a.new_tops, a.unvouched = 3, "1.4.2", 2, {"9.9.9"}
    b = PackageFacts(last_release=two, last_release_ms=20, created_ms=3, denied={"1.0.2": "compromise"})
    b.installs = {"1.0.1": [("y", 2), ("x", 1)]}
    b.denied["1.0.1"] = "hygiene"  # a copy that denied it on weaker evidence: the strongest grade stays
    b.proxy_publishes, b.top, b.new_tops = 2, "1.4.10", 3
    for first, second in ((a, b), (b, a)):
        m = PackageFacts()
        m.merge(decode_package_state(encode_package_state(first)))
        m.merge(decode_package_state(encode_package_state(second)))
        assert m.last_release == two and m.created_ms == 3
        assert m.denied == {"1.0.1": "harm", "1.0.2": "compromise"}
        assert m.installs == {"1.0.1": [("x", 1), ("y", 2)]}
        # Counters: each copy holds what it read from the others, so the larger one is the answer.
        assert (m.proxy_publishes, m.top, m.new_tops, m.unvouched) == (3, "1.4.10", 3, {"9.9.9"})


def test_a_record_below_the_applied_position_is_never_dropped_once_the_identity_moved_on(records):
    tables = Tables()
    first = tables.worker()
    tables.write(first, first.process(records[:200]))
    second = tables.worker()  # restarted: identities read back are "fresh"
    res = second.process(records[100:300])  # 100..199 are redeliveries, 200.. are new
    assert res.skipped > 0 and res.reordered == 0
    moved_on = {d.event.actor.id for d in res.decisions if d.identity_kind != "human"}
    # A record that arrives with an old position after its identity has moved on is not a redelivery as
    # far as this process can tell: it is decided (and counted), not silently dropped.
    late = next(r for r in records[:100] if adapt(r, TOPICS.domain_of(r.topic)).actor.id in moved_on)
    res = second.process([replace(late, offset=late.offset + 100_000)])  # another source record
    assert len(res.decisions) == 1 and res.reordered == 1


def test_a_source_record_forwarded_twice_is_applied_once(records, reference):
    tables = Tables()
    c = tables.worker()
    out = []
    for i in range(0, 300, 100):
        res = c.process(records[i : i + 100])
        tables.write(c, res)
        out += res.decisions
    # The routing stage redid records it had not committed: the same source records at new positions.
    again = [replace(r, position=10_000 + r.position) for r in records[250:300]]
    res = c.process(again)
    assert all(d.identity_kind == "human" for d in res.decisions)  # people's events keep no state
    assert res.skipped == len(again) - len(res.decisions)
    for i in range(300, len(records), 100):
        out += c.process(records[i : i + 100]).decisions
    assert outcome(out) == reference


def test_the_pure_core_has_no_positions_a_redelivered_record_is_decided_again(records):
    # Redelivery is the stateful stage's business: replays, tests and the gate decide what they are given.
    c = core()
    first = c.process(records[:50])
    again = c.process(records[:50])
    assert len(again.decisions) == len(first.decisions) and again.skipped == 0


def test_a_rebalance_forgets_what_is_cached_and_reads_it_back(records, reference):
    tables = Tables()
    c = tables.worker()
    out = []
    for i in range(0, len(records), 100):
        res = c.process(records[i : i + 100])
        tables.write(c, res)
        out += res.decisions
        c.drop_cached()
    assert outcome(out) == reference
