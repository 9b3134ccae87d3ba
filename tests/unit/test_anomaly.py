"""Quality of the per-identity baselines on the labelled scenario (fixed seeds): behaviour, not speed."""

import pytest

from bench.anomaly import quality
from nhiguard.models.anomaly import AnomalyModels


def test_auc_is_at_least_0_8_and_beats_a_trivial_baseline():
    q = quality(seed=11, n_identities=120, events_per_identity=200)
    assert q["anomaly_auc_warm"] >= 0.8, q
    assert q["anomaly_auc_warm"] > q["anomaly_auc_baseline_warm"] + 0.1, q
    assert all(auc >= 0.75 for auc in q["auc_by_kind_warm"].values()), q["auc_by_kind_warm"]


def test_score_before_learn_and_a_burst_does_not_teach_itself():
    from bench.labelled import labelled_events

    events = [ev for ev, _ in labelled_events(1, 120, anomaly_rate=0.0, seed=3)]
    m = AnomalyModels(warmup_events=30)
    for ev in events:
        score, warm, x = m.score(ev)
        m.learn(ev, x)
    assert warm and 0.0 <= score <= 1.0 and set(x) == {"hour", "target", "source", "action", "burst"}
    last = events[-1]
    from dataclasses import replace

    burst = [
        replace(last, event_id=f"b{i}", occurred_at_ms=last.occurred_at_ms + 1000 * (i + 1)) for i in range(8)
    ]
    scores = []
    for ev in burst:
        _, _, x = m.score(ev)
        scores.append(x["burst"])
        m.learn(ev, x)  # even if the core learned every burst event, the habit grows one step at a time
    assert scores[-1] > 0.5


# --- the habits, one at a time ---------------------------------------------------------------------------

HOUR, DAY = 3_600_000, 86_400_000
MONDAY = 1_772_409_600_000  # 2026-03-02 00:00 UTC


def _event(i, t, target="react", facts=None, principal="ci-web"):
    from nhiguard.decision.records import Actor, CanonicalEvent

    actor = Actor("verdaccio:ci-web", "ci-web", False, principal)
    action, kind = "registry.package.install", "npm.package_version"
    return CanonicalEvent(f"e{i}", "test", "registry", action, t, actor, kind, target, facts)


def _office_hours_baseline(weeks=3):
    from nhiguard.models.anomaly import Baseline

    b = Baseline()
    times = [
        MONDAY + w * 7 * DAY + d * DAY + h * HOUR
        for w in range(weeks)
        for d in range(5)
        for h in (10, 12, 14)
    ]
    for i, t in enumerate(times):
        ev = _event(i, t, ("react", "zod", "chalk")[i % 3])
        assert b.learn_one(ev, b.score_one(ev, 30), allowed=True)
    return b


def test_one_broken_habit_scores_nothing_however_surprising():
    from nhiguard.models.anomaly import combined

    assert combined({"hour": 1.0, "target": 0.0, "source": 0.0, "action": 0.0, "burst": 0.0}) == 0.0
    # Target and action are one group (what it acts on): a new action on a new target is one habit.
    assert combined({"hour": 0.0, "target": 1.0, "source": 0.0, "action": 1.0, "burst": 0.0}) == 0.0
    assert combined(
        {"hour": 0.9, "target": 0.8, "source": 0.0, "action": 0.0, "burst": 0.0}
    ) == pytest.approx(0.8)
    assert combined(
        {"hour": 0.9, "target": 0.8, "source": 0.9, "action": 0.0, "burst": 0.0}
    ) == pytest.approx(0.98)


def test_a_first_weekend_or_night_is_not_full_surprise():
    from nhiguard.models.anomaly import hour_surprise

    b = _office_hours_baseline()
    saturday_noon = MONDAY + 5 * DAY + 12 * HOUR
    wednesday_3am = MONDAY + 2 * DAY + 3 * HOUR
    assert hour_surprise(b, MONDAY + 12 * HOUR) == 0.0  # its habit
    # A habitual hour on its first Saturday borrows from the weekdays' habit: surprising, far from certain.
    assert 0.5 < hour_surprise(b, saturday_noon) < 0.8
    assert hour_surprise(b, wednesday_3am) == pytest.approx(1.0)  # no prior: as surprising as it gets
    # Its kind's prior (releases are cut at night by someone on call) caps a never-met hour.
    assert hour_surprise(b, wednesday_3am, prior=0.2) == pytest.approx(0.8)


def test_an_identity_that_keeps_meeting_new_hours_is_not_surprised_by_one_more():
    from nhiguard.models.anomaly import Baseline, hour_surprise

    b = Baseline()
    for i in range(40):  # on call: a release now and then, at hours all over the week
        t = MONDAY + (i * 37 % 160) * HOUR
        ev = _event(i, t)
        b.learn_one(ev, b.score_one(ev, 30), allowed=True)
    assert hour_surprise(b, MONDAY + 7 * DAY + 23 * HOUR) < 0.8


def test_novelty_normal_for_the_kind_is_less_surprising():
    from nhiguard.models.kinds import KindPrior

    b = _office_hours_baseline()
    new = _event(900, MONDAY + 21 * DAY + 12 * HOUR, "left-pad")
    alone = b.score_one(new, 30).features["target"]
    as_ci_bot = b.score_one(new, 30, KindPrior(target=0.1)).features["target"]
    assert alone > 0.8 and as_ci_bot == pytest.approx(alone * 0.9)


def test_where_from_is_the_address_or_runner_the_facts_carry():
    from dataclasses import dataclass

    from nhiguard.decision.registry_facts import Install
    from nhiguard.models.anomaly import source_of

    @dataclass(frozen=True, slots=True)
    class InstallFrom(Install):
        client_address: str = ""

    @dataclass(frozen=True, slots=True)
    class JobOn(Install):
        runner: str = ""

    def where(facts):
        return source_of(_event(1, MONDAY, facts=facts))

    assert where(None) == "ci-web"  # no place in the facts: the principal the source named
    assert where(Install("react", "1.0.0", "verdaccio")) == "ci-web"
    near = InstallFrom("react", "1.0.0", "verdaccio", client_address="10.20.30.41")
    assert where(near) == "client_address:10.20.30.0/24"
    assert where(InstallFrom("react", "1.0.0", "verdaccio", client_address="10.20.30.99")) == where(
        InstallFrom("react", "1.0.0", "verdaccio", client_address="10.20.30.41")
    )  # the same network
    pool = JobOn("react", "1.0.0", "verdaccio", runner="arc-runners-7")
    assert where(pool) == "runner:arc-runners"  # the pool
    assert where(JobOn("react", "1.0.0", "verdaccio", runner="GitHub Actions 12")) == "runner:GitHub Actions"


def test_a_suspect_window_survives_the_stored_form():
    from dataclasses import replace

    from nhiguard.models.anomaly import Baseline

    b = _office_hours_baseline()
    ev = _event(1000, MONDAY + 21 * DAY + 3 * HOUR, "left-pad")
    suspect = replace(b.score_one(ev, 30), value=0.9)
    assert not b.learn_one(ev, suspect, allowed=True)
    again = Baseline.from_bytes(b.to_bytes())
    later = _event(1001, ev.occurred_at_ms + 60_000)
    calm = replace(again.score_one(later, 30), value=0.0)
    assert not again.learn_one(later, calm, allowed=True)  # still in the window after the suspect event
    assert again.score_one(later, 30).features["burst"] >= 0.5  # and both count towards the burst
