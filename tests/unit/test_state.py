"""Durable per-identity and per-package state: what the worker's stateful stage writes to its tables and
reads back, and how it recognises a record it already applied."""

import json
from dataclasses import replace

import pytest

from nhiguard.decision.adapters import adapt
from nhiguard.decision.codec import (
    decode_identity_state,
    decode_package_state,
    encode_identity_state,
    encode_package_state,
)
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.package_state import LastRelease, PackageFacts
from nhiguard.decision.records import AdapterError
from nhiguard.models.anomaly import Baseline
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.delivery import MAX_SOURCES, decode_value, encode_value
from nhiguard.streams.state import StatefulStage, TableStore
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
    sizes, windows = [], []
    for value in tables.identities.values():
        core_part, delivery = decode_value(value)
        state = decode_identity_state(core_part)
        # Open alert windows are apart: ~0.5-1.8 KB each (decision/alert_state.py bounds them).
        alerts = len(json.dumps(state.alerts.to_json(), separators=(",", ":")))
        sizes.append(len(value) - alerts)
        windows += [
            len(json.dumps(w.to_json(), separators=(",", ":"))) for w in state.alerts.windows.values()
        ]
        assert state.facts.events > 0 and delivery.marks and delivery.legacy is None
        again = decode_identity_state(encode_identity_state(state))
        assert (again.facts, again.alerts) == (state.facts, state.alerts)
        assert decode_value(encode_value(core_part, delivery)) == (core_part, delivery)
        if state.model is not None:
            model = state.model.to_bytes()
            assert Baseline.from_bytes(model).to_bytes() == model
    assert sizes and max(sizes) <= 4096, sorted(sizes)[-5:]
    assert windows and max(windows) <= 2048, sorted(windows)[-5:]


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


def test_a_record_is_judged_by_its_source_coordinates_never_by_its_position(records):
    tables = Tables()
    first = tables.worker()
    tables.write(first, first.process(records[:200]))
    second = tables.worker()  # restarted: identities read back
    res = second.process(records[100:300])  # 100..199 are redeliveries, 200.. are new
    assert res.skipped > 0 and res.reordered == 0
    moved_on = {d.event.actor.id for d in res.decisions if d.identity_kind != "human"}
    # Another source record that arrives with an old by-identity position (the position says nothing of
    # where it was read): decided, and not counted as reordered.
    late = next(r for r in records[:100] if actor(r) in moved_on)
    res = second.process([replace(late, offset=late.offset + 100_000)])
    assert len(res.decisions) == 1 and res.skipped == res.reordered == 0


def actor(rec):
    """The identity whose state a record changes (None for a person's, or a record that does not adapt)."""
    try:
        ev = adapt(rec, TOPICS.domain_of(rec.topic))
    except AdapterError:
        return None
    return None if ev.actor.human else ev.actor.id


def busiest(records):
    """The non-human identity with the most records, and its records."""
    mine: dict[str, list] = {}
    for r in records:
        if (who := actor(r)) is not None:
            mine.setdefault(who, []).append(r)
    who = max(mine, key=lambda k: len(mine[k]))
    return who, mine[who]


def test_a_record_forwarded_twice_far_behind_its_identity_is_still_applied_once(records):
    """Redelivery memory is not a window of recent records: a copy of an identity's record forwarded after
    more than 64 others of that identity is recognised, in the running worker and after a restart."""
    tables = Tables()
    c = tables.worker()
    for i in range(0, len(records), 100):
        tables.write(c, c.process(records[i : i + 100]))
    _, mine = busiest(records)
    assert len(mine) > 65
    res = c.process([replace(mine[0], position=10_000)])
    assert res.skipped == 1 and not res.decisions and not res.identity_state
    again = tables.worker()
    res = again.process([replace(r, position=20_000 + i) for i, r in enumerate(mine[:70])])
    assert res.skipped == 70 and not res.decisions


def test_a_record_of_a_recreated_source_topic_is_decided_never_dropped(records):
    """A source topic deleted and recreated restarts its offsets: a record at an offset already applied from
    it but with a later time is a new record, decided (and counted as reordered); the watermark then starts
    again from it, so a second forward of it is skipped and the next offset is new."""
    tables = Tables()
    c = tables.worker()
    for i in range(0, len(records), 100):
        tables.write(c, c.process(records[i : i + 100]))
    _, mine = busiest(records)
    later = mine[-1].timestamp_ms + 86_400_000
    # The recreated topic's record at an offset the old one applied lately, for the same identity.
    new = replace(mine[-2], timestamp_ms=later, position=30_000)
    res = c.process([new])
    assert len(res.decisions) == 1 and res.reordered == 1 and res.skipped == 0
    assert res.reordered_records == [(new.topic, new.partition, new.offset)]
    tables.write(c, res)
    res = tables.worker().process([replace(new, position=30_001)])  # forwarded twice, across a restart
    assert res.skipped == 1 and not res.decisions
    nxt = replace(mine[-1], timestamp_ms=later + 1, position=30_002)
    res = c.process([nxt])
    assert len(res.decisions) == 1 and res.skipped == res.reordered == 0


def test_source_watermarks_are_bounded_per_identity_least_recently_advanced_first(records):
    tables = Tables()
    c = tables.worker()
    who, mine = busiest(records)
    rec = mine[0]
    # The identity's records from more source partitions than the bound: one each.
    batch = [replace(rec, partition=p, position=p) for p in range(MAX_SOURCES + 20)]
    res = c.process(batch)
    tables.write(c, res)
    value = tables.identities[who.encode()]
    _, delivery = decode_value(value)
    assert len(delivery.marks) == MAX_SOURCES
    assert list(delivery.marks) == [(rec.topic, p) for p in range(20, MAX_SOURCES + 20)]
    # ~21 bytes a source partition: the value stays within the identity budget.
    assert len(value) - len(decode_value(value)[0]) <= 5 + 3 + len(rec.topic) + 21 * MAX_SOURCES
    # The most recent sources are remembered; the forgotten one's copy is decided again (never lost).
    again = c.process([replace(rec, partition=MAX_SOURCES + 19, position=500), replace(rec, position=501)])
    assert again.skipped == 1 and len(again.decisions) == 1


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


def test_memory_holds_at_most_the_cache_size_and_the_least_recently_used_go_first():
    """The decision state and the delivery watermarks in memory are LRUs bounded by the state cache; every
    identity's value is in the store."""
    from bench.scale import line
    from nhiguard.decision.records import RawRecord

    base = 1_795_000_000_000

    def install(i: int, seq: int) -> RawRecord:
        at = base + seq * 20
        value = line(f"svc-{i}", "left-pad", "1.0.0", at, "10.0.0.1")
        return RawRecord(TOPICS.registry, 0, seq, value, f"svc-{i}".encode(), (), at, position=seq)

    tables = Tables()
    c = tables.worker(state_cache_identities=5)
    for i in range(1, 41):
        # Identity 0 comes back in every batch, after another: always the most recently used.
        res = c.process([install(i, 2 * i), install(0, 2 * i + 1)])
        assert not res.deadletters
        tables.write(c, res)
        assert c.core.state.cached[0] <= 5 and len(c._delivery) <= 5
    assert "verdaccio:svc-0" in c.core.state._identities and "verdaccio:svc-0" in c._delivery
    assert "verdaccio:svc-1" not in c.core.state._identities and "verdaccio:svc-1" not in c._delivery
    assert len(tables.identities) == 41
