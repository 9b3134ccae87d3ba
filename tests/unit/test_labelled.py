"""The labelled scenario generator and scoring helpers of bench/labelled.py: behaviour only, no speed and no
detection threshold for any model."""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import pytest

# bench/ is not an installed package: `python -m pytest` finds it from the repo root, bare `pytest` does not.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

from bench.labelled import (  # noqa: E402
    ANOMALY_KINDS,
    BURST_WINDOW_MS,
    MIN_HISTORY,
    benign_stream,
    deviations,
    hour_of_week,
    labelled_events,
    labelled_scenario,
    precision_at,
    recall_at,
    roc_auc,
    target_of,
    zscore_baseline,
)


@pytest.fixture(scope="module")
def scenario():
    return labelled_scenario(40, 160, anomaly_rate=0.02, seed=11)


def _by_identity(events):
    out = defaultdict(list)
    for ev, label in events:
        out[ev.actor.id].append((ev, label))
    return out


def test_same_seed_same_events_other_seed_other_events():
    a = labelled_events(12, 120, 0.02, seed=3)
    b = labelled_events(12, 120, 0.02, seed=3)
    c = labelled_events(12, 120, 0.02, seed=4)
    assert a == b
    assert [ev.event_id for ev, _ in a] != [ev.event_id for ev, _ in c]


def test_sorted_by_time_with_the_requested_size():
    events = labelled_events(10, 100, 0.01, seed=5)
    assert len(events) == 1000
    times = [ev.occurred_at_ms for ev, _ in events]
    assert times == sorted(times)
    assert len({ev.event_id for ev, _ in events}) == len(events)
    per_identity = _by_identity(events)
    assert len(per_identity) == 10
    assert all(len(v) == 100 for v in per_identity.values())


@pytest.mark.parametrize(
    ("n", "per", "rate"), [(30, 200, 0.01), (20, 100, 0.05), (7, 150, 0.003), (10, 80, 0.0), (3, 30, 0.5)]
)
def test_anomaly_rate_at_most_requested(n, per, rate):
    events = labelled_events(n, per, rate, seed=2)
    anomalies = sum(1 for _, label in events if label)
    assert anomalies <= rate * len(events)
    if rate == 0.0 or per <= MIN_HISTORY:
        assert anomalies == 0


def test_anomalies_are_injected_and_every_kind_occurs(scenario):
    labels = [label for _, label in scenario.events]
    assert 0 < sum(labels) <= 0.02 * len(labels)
    assert set(scenario.kinds.values()) == set(ANOMALY_KINDS)
    anomalous_ids = {ev.event_id for ev, label in scenario.events if label}
    assert anomalous_ids == set(scenario.kinds)
    assert all(scenario.kind_of(ev) is None for ev, label in scenario.events if not label)


def test_each_anomaly_departs_from_its_habit_in_exactly_one_feature(scenario):
    """Checked against the habit's fields directly, independently of deviations()."""
    for identity, pairs in _by_identity(scenario.events).items():
        habit = scenario.habits[identity]
        times = [ev.occurred_at_ms for ev, _ in pairs]
        for i, (ev, label) in enumerate(pairs):
            in_window = sum(1 for t in times[: i + 1] if t > ev.occurred_at_ms - BURST_WINDOW_MS)
            changed = {
                "off_hours": hour_of_week(ev.occurred_at_ms) not in habit.active_hours,
                "target": target_of(ev) not in habit.targets,
                "new_source": ev.actor.source_principal != habit.source_principal,
                "burst": in_window > habit.max_in_window,
                "action": ev.action not in habit.actions,
                "domain": (ev.domain, ev.source) != (habit.domain, habit.source),
            }
            changed = {k for k, v in changed.items() if v}
            if not label:
                assert changed == set(), (identity, i, changed)
                continue
            kind = scenario.kinds[ev.event_id]
            assert kind in habit.anomaly_kinds
            expected = "target" if kind in ("new_target", "new_package") else kind
            assert changed == {expected}, (identity, i, kind, changed)
            assert i >= MIN_HISTORY  # there was a habit to break


def test_deviations_match_the_labels(scenario):
    for identity, pairs in _by_identity(scenario.events).items():
        devs = deviations([ev for ev, _ in pairs], scenario.habits[identity])
        for (ev, label), d in zip(pairs, devs, strict=True):
            assert d == ({scenario.kinds[ev.event_id]} if label else set())


def test_package_kinds_go_to_package_identities(scenario):
    for ev, label in scenario.events:
        kind = scenario.kind_of(ev)
        habit = scenario.habits[ev.actor.id]
        if kind == "new_package":
            assert habit.target_is_package
        if kind == "new_target":
            assert not habit.target_is_package
        assert label == (kind is not None)


def test_benign_stream_prefix_is_stable():
    habit, short = benign_stream(4, 25, seed=9)
    habit_long, long = benign_stream(4, 90, seed=9)
    assert long[:25] == short
    assert habit.identity == habit_long.identity


def test_roc_auc_perfect_inverse_and_ties():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert roc_auc([0.5] * 6, [True, False, True, False, False, True]) == 0.5


def test_roc_auc_hand_computed():
    # positive/negative pairs: 0.35 < 0.4, 0.35 > 0.1, 0.8 > both: 3 of 4
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    # a tie between a positive and a negative counts one half: (0.5 + 1 + 1 + 1) / 4
    assert roc_auc([0.5, 0.5, 0.2, 0.9], [True, False, False, True]) == pytest.approx(0.875)


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [False, False])
    with pytest.raises(ValueError):
        roc_auc([0.1], [True, False])


def test_precision_and_recall_at_threshold():
    scores = [0.9, 0.85, 0.7, 0.95, 0.1]
    labels = [True, False, True, True, False]
    assert precision_at(scores, labels, 0.8) == pytest.approx(2 / 3)
    assert recall_at(scores, labels, 0.8) == pytest.approx(2 / 3)
    assert precision_at(scores, labels, 0.99) == 0.0  # nothing flagged
    assert precision_at(scores, labels, 0.0) == pytest.approx(3 / 5)


def test_zscore_baseline_is_finite_and_scores_before_learning(scenario):
    scores = zscore_baseline(scenario.events)
    assert len(scores) == len(scenario.events)
    assert all(math.isfinite(s) and s >= 0 for s in scores)
    seen = defaultdict(int)
    for (ev, _), s in zip(scenario.events, scores, strict=True):
        if seen[ev.actor.id] < 2:
            assert s == 0.0
        seen[ev.actor.id] += 1
    # takes bare events too
    assert zscore_baseline([ev for ev, _ in scenario.events]) == scores
