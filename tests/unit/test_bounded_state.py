"""Every collection in per-identity and per-package state has a bound and a deterministic eviction (README
"Bounded state"): each test drives a key past its bound and checks what is kept and that the stored value's
size stays bounded."""

from __future__ import annotations

import itertools
import random
from collections import OrderedDict

from nhiguard.decision.alert_state import MAX_IDS, MAX_WINDOWS
from nhiguard.decision.alerts import Alerted
from nhiguard.decision.codec import (
    decode_package_state,
    encode_identity_state,
    encode_package_state,
)
from nhiguard.decision.effects import Exposed, Installed, Learned, Revoked, Seen, VersionDenied
from nhiguard.decision.identity_state import MAX_REVOKED, IdentityState
from nhiguard.decision.package_state import MAX_DENIED, MAX_INSTALLS, MAX_UNVOUCHED, PackageFacts
from nhiguard.decision.records import Actor, CanonicalEvent
from nhiguard.models.anomaly import Baseline
from nhiguard.streams.delivery import MAX_SOURCES, Delivery, encode_value

HOUR_MS = 3_600_000
T0 = 1_773_900_000_000


def test_revocations_remembered_keep_the_identitys_own_and_those_in_force_longest():
    state = IdentityState()
    Revoked("me", ("me|anomaly.behaviour.habits_broken",), T0, T0 + HOUR_MS).apply(state)
    for i in range(1000):  # a flood of distinct revocations within the hour
        Revoked("me", (f"other-{i:04d}|registry.x.y",), T0 + i, T0 + i + HOUR_MS).apply(state)
    kept = state.facts.revoked
    assert len(kept) == MAX_REVOKED
    # The acting identity's own revocation stays in force though it expires first (its next suspect requests
    # are refused while it is: policies/anomaly/behaviour.rego); of the others, those in force longest.
    assert state.facts.in_force("me|anomaly.behaviour.habits_broken", T0 + 1000)
    others = sorted(k for k in kept if k.startswith("other-"))
    assert others == [f"other-{i:04d}|registry.x.y" for i in range(1000 - MAX_REVOKED + 1, 1000)]
    assert len(encode_identity_state(state)) < MAX_REVOKED * (len(others[0]) + 20) + 200


def _event(i: int) -> CanonicalEvent:
    actor = Actor("me", "me", False, "me")
    # Distinct targets and hours, a burst every so often: every part of the model is exercised.
    at = T0 + i * (HOUR_MS // 7 if i % 10 else 1000)
    return CanonicalEvent(f"e{i}", "test", "ci", f"act{i % 5}", at, actor, "repo", f"target-{i}")


def test_a_whole_identity_value_driven_past_every_bound_stays_bounded():
    """Exposures (minutes, days), revocations, the model (its recent event times) and the source watermarks,
    each driven far past its bound: the stored value stays within a few kilobytes."""
    state = IdentityState(model=Baseline())
    for i in range(3000):
        ev = _event(i)
        at = ev.occurred_at_ms
        Seen("me", at).apply(state)
        Exposed("me", at).apply(state)
        if i % 3 == 0:
            Revoked("me", (f"identity-{i:05d}|registry.x.y",), at, at + HOUR_MS).apply(state)
        assert state.model is not None
        Learned("me", ev, state.model.score_one(ev, 30), allowed=True).apply(state)
    assert state.model is not None and len(state.model.recent) <= 32
    facts = state.facts
    assert len(facts.exposure_minutes) <= 240 and len(facts.exposure_days) <= 14
    assert len(facts.revoked) <= MAX_REVOKED
    marks = OrderedDict(((f"audit.source-{p % 4}", p), (10**12, T0)) for p in range(MAX_SOURCES))
    value = encode_value(encode_identity_state(state), Delivery(marks))
    assert len(value) < 9_000, len(value)


def test_denied_versions_keep_the_strongest_grades_then_the_highest_versions():
    facts = PackageFacts()
    VersionDenied("pkg", "1.0.0", "harm").apply(facts)
    for i in range(1000):
        facts.deny(f"2.0.{i}", "hygiene")
    for i in range(200):
        facts.deny(f"3.0.{i}", "compromise")
    assert len(facts.denied) == MAX_DENIED
    # Never a weaker grade before a stronger one: the harm denial of an old version stays.
    assert facts.denied["1.0.0"] == "harm"
    assert "hygiene" not in facts.denied.values()
    left = MAX_DENIED - 1
    assert {v for v, g in facts.denied.items() if g == "compromise"} == {
        f"3.0.{i}" for i in range(200 - left, 200)
    }
    assert facts.deny("2.0.5000", "hygiene") is False  # weaker than all kept: nothing changes
    assert len(encode_package_state(facts)) < MAX_DENIED * 40


def test_installs_keep_the_latest_pairs_each_installer_once_and_the_first_install():
    facts = PackageFacts()
    for v in range(100):
        for who in range(300):
            at = T0 + v * 10_000 + who
            Installed("pkg", f"1.0.{v}", f"verdaccio:ci-{who:03d}", at).apply(facts)
            Installed("pkg", f"1.0.{v}", f"verdaccio:ci-{who:03d}", at).apply(facts)  # redelivered
    pairs = sorted((t, v, w) for v, xs in facts.installs.items() for w, t in xs)
    assert len(pairs) == MAX_INSTALLS == len({(v, w) for _, v, w in pairs})  # each installer once a version
    # The latest installs, whatever their versions.
    everything = sorted(
        (T0 + v * 10_000 + w, f"1.0.{v}", f"verdaccio:ci-{w:03d}") for v in range(100) for w in range(300)
    )
    assert pairs == everything[-MAX_INSTALLS:]
    assert facts.first_install_ms() == T0  # the earliest install, though its version is forgotten
    size = len(encode_package_state(facts))
    assert size < MAX_INSTALLS * (len("verdaccio:ci-000") + 20), size
    assert decode_package_state(encode_package_state(facts)) == facts


def _copies(seed: int) -> list[PackageFacts]:
    """Three partitions' copies of one package, each past every bound, overlapping."""
    rnd = random.Random(seed)
    copies = [PackageFacts() for _ in range(3)]
    grades = ("hygiene", "compromise", "harm")
    for _ in range(400):
        c = rnd.choice(copies)
        c.deny(f"{rnd.randrange(5)}.{rnd.randrange(60)}.0", rnd.choice(grades))
        c.unvouched.add(f"9.{rnd.randrange(40)}.0")
    for _ in range(4000):  # together past MAX_INSTALLS, each copy below it
        who, at = f"id-{rnd.randrange(300)}", T0 + rnd.randrange(10**6)
        rnd.choice(copies).installed(f"1.{rnd.randrange(30)}.0", who, at)
    return copies


def test_merged_copies_keep_the_bounds_whatever_the_merge_order():
    copies = _copies(7)
    assert all(len(c.denied) < MAX_DENIED < len({v for c in copies for v in c.denied}) for c in copies)
    assert sum(len(xs) for c in copies for xs in c.installs.values()) > MAX_INSTALLS
    results = []
    for order in itertools.permutations(copies):
        merged = PackageFacts()
        for c in order:
            merged.merge(decode_package_state(encode_package_state(c)))
        results.append(encode_package_state(merged))
        assert len(merged.denied) <= MAX_DENIED and len(merged.unvouched) <= MAX_UNVOUCHED
        assert sum(len(xs) for xs in merged.installs.values()) <= MAX_INSTALLS
    assert len(set(results)) == 1
    # A copy merged again (each partition's copy holds what it read from the others) changes nothing.
    again = decode_package_state(results[0])
    for c in copies:
        again.merge(c)
    assert encode_package_state(again) == results[0]


def test_alert_windows_driven_past_every_bound_stay_bounded():
    """Many rules, windows and events, each with long evidence and many commands: at most MAX_WINDOWS
    windows, each within its caps; the stored value stays within the README's bound."""
    state = IdentityState()
    for i in range(2000):
        evidence = {f"key{k}": [f"{i}-{k}-" + "v" * 120 for _ in range(3)] for k in range(12)}
        at = T0 + (i % 40) * 600_000 + i
        Alerted(
            identity="me",
            rule=f"registry.policy_{i % 7}.rule_with_a_long_name_{i % 3}",
            start_ms=at // 600_000 * 600_000,
            at_ms=at,
            event_id=f"event-{i:06d}-" + "e" * 40,
            decision_id=f"{i:032x}",
            verdict="DENY",
            command_ids=tuple(f"{i:016x}{c:016x}" for c in range(4)),
            evidence=evidence,
            policy="registry.x",
            severity="high",
            title="t",
            attack=(),
            runbook="",
            reason="r",
        ).apply(state)
    assert len(state.alerts.windows) == MAX_WINDOWS
    assert all(
        len(w.decision_ids) <= MAX_IDS and len(w.command_ids) <= MAX_IDS
        for w in state.alerts.windows.values()
    )
    value = encode_identity_state(state)
    assert len(value) < 40_000, len(value)
