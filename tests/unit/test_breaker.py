"""The REVOKE circuit breaker: over a limit within the window (event time), in total or per identity kind,
further REVOKEs are held; the window slides; held revokes count; the same stream holds the same commands
whatever the batches; and the window survives a restart through the worker's tables."""

import random
from dataclasses import replace

import pytest

from nhiguard.avro import AvroCodec, command_record, decision_record
from nhiguard.decision import breaker
from nhiguard.decision.breaker import (
    POLICY,
    BreakerLimits,
    BreakerWindow,
    check,
    decode_window,
    encode_window,
)
from nhiguard.decision.records import Command
from nhiguard.settings import load_settings
from nhiguard.streams.state import breaker_key
from tests.unit.test_core import make_core, raw_records
from tests.unit.test_state import Tables
from tools import REPO_ROOT
from tools.scenarios import default_params, generate

MIN = 60_000
HOUR = 60 * MIN


def revoke(who: str, at_ms: int, n: int = 0) -> Command:
    return Command(
        command_id=f"cmd-{who}-{at_ms}-{n}",
        kind="REVOKE",
        identity=who,
        target_type="credential",
        target=f"cred:{who}:{n}",
        reasons=("r",),
        policy_ids=("registry.x",),
        rule_ids=("registry.x.y",),
        bundle_revision="rev",
        event_id=f"ev-{at_ms}",
        issued_at_ms=at_ms,
        expires_at_ms=at_ms + 1,
    )


def deny(at_ms: int) -> Command:
    return replace(revoke("x", at_ms), command_id=f"deny-{at_ms}", kind="DENY", target_type="request")


class Breaker:
    """Decisions one after another, each applied before the next: what the core does."""

    def __init__(self, limits: BreakerLimits, kinds: dict[str, str] | None = None) -> None:
        self.limits, self.kinds, self.window = limits, kinds or {}, BreakerWindow()

    def decide(self, at_ms: int, *commands: Command) -> list[Command]:
        out, counted = check(list(commands), at_ms, self.kinds, self.window, self.limits)
        if counted is not None:
            counted.apply(self.window)
        return out

    def status(self, at_ms: int, *who: str) -> list[str]:
        return [c.status for c in self.decide(at_ms, *(revoke(w, at_ms) for w in who))]


def test_more_than_the_limit_within_the_window_is_held_with_the_reason():
    b = Breaker(BreakerLimits(HOUR, total=3))
    assert [b.status(i * MIN, f"id{i}")[0] for i in range(5)] == ["ISSUED"] * 3 + ["HELD"] * 2
    held = b.decide(6 * MIN, revoke("id9", 6 * MIN), deny(6 * MIN))
    assert [(c.kind, c.status) for c in held] == [("REVOKE", "HELD"), ("DENY", "ISSUED")]
    assert held[0].hold == "circuit breaker: 6 REVOKEs within 60 min (limit 3 in total)"
    assert held[0].command_id == revoke("id9", 6 * MIN).command_id  # the same id: released as it is


def test_every_credential_of_a_held_identity_is_held_and_an_identity_counts_once_per_decision():
    b = Breaker(BreakerLimits(HOUR, total=1))
    first = b.decide(0, revoke("a", 0, 0), revoke("a", 0, 1))
    assert [c.status for c in first] == ["ISSUED", "ISSUED"]
    second = b.decide(MIN, revoke("b", MIN, 0), revoke("b", MIN, 1), revoke("c", MIN))
    assert [c.status for c in second] == ["HELD"] * 3


def test_the_window_slides_in_event_time_and_held_revokes_count():
    b = Breaker(BreakerLimits(HOUR, total=2))
    assert b.status(0, "a") + b.status(10 * MIN, "b") == ["ISSUED", "ISSUED"]
    assert b.status(20 * MIN, "c") == ["HELD"]
    # a's revoke leaves the window at 60 min; b's and the held c's are still in it: the storm goes on.
    assert b.status(61 * MIN, "d") == ["HELD"]
    # Quiet for a window: the breaker closes.
    assert b.status(61 * MIN + HOUR, "e") == ["ISSUED"]
    # A late (or backdated) event counts the revokes after it too: it cannot slip in behind them.
    late = Breaker(BreakerLimits(HOUR, total=1))
    assert late.status(5 * HOUR, "a") == ["ISSUED"]
    assert late.status(5 * HOUR - 30 * MIN, "b") == ["HELD"]
    assert late.status(HOUR, "c") == ["HELD"]  # hours before both, and still counts them
    assert late.status(7 * HOUR, "d") == ["ISSUED"]


def test_limits_per_kind_and_in_total():
    kinds = {"bot1": "ci_bot", "bot2": "ci_bot", "bot3": "ci_bot", "cms": "cms_integration", "pub": "x"}
    b = Breaker(BreakerLimits(HOUR, total=4, per_kind=(("ci_bot", 1), ("*", 2))), kinds)
    assert b.status(0, "bot1") == ["ISSUED"]
    assert b.status(MIN, "bot2") == ["HELD"]
    assert b.decide(MIN, revoke("bot3", MIN))[0].hold.startswith("circuit breaker: 3 REVOKEs of ci_bot")
    assert b.status(2 * MIN, "cms") == ["ISSUED"]  # another kind: its own count, and 4 in total so far
    assert b.status(3 * MIN, "pub") == ["HELD"]  # 5 in total
    # An identity the inventory does not know counts as `unknown`, under `*`.
    unknown = Breaker(BreakerLimits(HOUR, total=None, per_kind=(("*", 1),)))
    assert unknown.status(0, "u1") + unknown.status(MIN, "u2") == ["ISSUED", "HELD"]
    assert unknown.decide(2 * MIN, revoke("u3", 2 * MIN))[0].hold.startswith(
        "circuit breaker: 3 REVOKEs of unknown"
    )


def test_zero_holds_every_revoke_and_no_limit_holds_none():
    assert Breaker(BreakerLimits(HOUR, total=0)).status(0, "a", "b") == ["HELD", "HELD"]
    off = Breaker(BreakerLimits(HOUR, total=None))
    assert off.status(0, *(f"id{i}" for i in range(50))) == ["ISSUED"] * 50
    assert off.window.entries == []  # nothing to count when nothing is limited


def test_the_kept_window_answers_like_every_revoke_kept(monkeypatch):
    """The window forgets what no limit can still need; the holds must be those of a window that forgets
    nothing (random streams, in event order)."""
    monkeypatch.setattr(breaker, "KEEP", 1)  # keep no more than the limits need
    rng = random.Random(7)
    kinds = {f"id{i}": rng.choice(["ci_bot", "cms_integration", "service_account"]) for i in range(40)}
    limits = BreakerLimits(HOUR, total=6, per_kind=(("ci_bot", 2), ("*", 3)))
    b = Breaker(limits, kinds)
    everything: list[tuple[int, str]] = []
    t = 0
    for _ in range(2000):
        t += rng.choice([0, MIN, 5 * MIN, 20 * MIN, 2 * HOUR])
        who = rng.choice(list(kinds))
        total = sum(1 for at, _ in everything if at > t - HOUR) + 1
        of_kind = sum(1 for at, k in everything if at > t - HOUR and k == kinds[who]) + 1
        expected = "HELD" if limits.exceeded(total, of_kind, kinds[who]) else "ISSUED"
        assert b.status(t, who) == [expected]
        everything.append((t, kinds[who]))
        assert len(b.window.entries) <= 7 + 3 + 4 + 4  # keep(total) + keep of each kind
    assert decode_window(encode_window(b.window)) == b.window


def test_beyond_what_it_keeps_the_reason_says_at_least(monkeypatch):
    monkeypatch.setattr(breaker, "KEEP", 4)
    b = Breaker(BreakerLimits(HOUR, total=2))
    statuses = [b.status(i, f"id{i}")[0] for i in range(10)]
    assert statuses == ["ISSUED"] * 2 + ["HELD"] * 8 and len(b.window.entries) == 4
    assert (
        b.decide(11, revoke("z", 11))[0].hold
        == "circuit breaker: at least 5 REVOKEs within 60 min (limit 2 in total)"
    )


def test_copies_from_several_partitions_unite():
    a = BreakerWindow([(1, "ci_bot", "k1"), (3, "ci_bot", "k3")])
    a.merge(BreakerWindow([(2, "x", "k2"), (3, "ci_bot", "k3")]))
    assert a.entries == [(1, "ci_bot", "k1"), (2, "x", "k2"), (3, "ci_bot", "k3")]
    with pytest.raises(ValueError, match="breaker state format 9"):
        decode_window(b"\x09[]")


# -- through the core -------------------------------------------------------------------------------------
TIGHT = {"breaker_max_revokes": None, "breaker_max_revokes_per_kind": (("ci_bot", 1),)}


def _run(batch: int, **settings):
    params = default_params()
    core = make_core(params, **settings)
    raws = raw_records(generate(params, ordinary=300))
    decisions, alerts = [], []
    for i in range(0, len(raws), batch):
        res = core.process(raws[i : i + batch])
        decisions += res.decisions
        alerts += res.alerts
    return decisions, alerts


def test_a_held_revoke_is_a_revoke_decision_with_a_held_command_and_an_alert():
    decisions, alerts = _run(500, **TIGHT)
    held = [(d, c) for d in decisions for c in d.commands if c.held]
    # The demo's registry incident revokes two CI bots within the hour: the second one is held.
    assert [(d.verdict, c.kind, c.identity) for d, c in held] == [
        ("REVOKE", "REVOKE", "verdaccio:ci-web-build")
    ]
    d, c = held[0]
    record = decision_record(d, 0)
    assert record["held_command_ids"] == [c.command_id] and c.command_id in record["command_ids"]
    (alert,) = [a for a in alerts if a.policy == POLICY]
    assert alert.verdict == "HELD" and alert.identity == c.identity and alert.command_ids == (c.command_id,)
    assert alert.evidence["version"] == ["1.14.1"]
    codec = AvroCodec(REPO_ROOT / "schemas")
    back = codec.decode(codec.encode("EnforcementCommand", command_record(c)))
    assert back["status"] == "HELD" and back["held_reason"] == c.hold and back["command_id"] == c.command_id
    # With the default limits nothing in the demo is held.
    assert not any(c.held for d in _run(500)[0] for c in d.commands)


def test_a_replay_holds_the_same_commands_whatever_the_batches():
    def held(batch):
        return [(c.command_id, c.status, c.hold) for d in _run(batch, **TIGHT)[0] for c in d.commands]

    one = held(1)
    assert any(s == "HELD" for _, s, _ in one)
    assert held(10_000) == one == held(37)


def test_the_window_survives_a_restart_in_the_worker_tables():
    """A worker restarts (nothing in memory) between two revokes of CI bots: the second is still held,
    because the window was written with the first batch's state."""
    params = default_params()
    raws = [replace(r, position=i) for i, r in enumerate(raw_records(generate(params, ordinary=300)))]
    decisions, _ = _run(10_000, **TIGHT)
    reference = [c for d in decisions for c in d.commands if c.held]
    first_ci_revoke = next(
        d
        for d in decisions
        if any(c.kind == "REVOKE" and c.identity.startswith("verdaccio:") for c in d.commands)
    )
    cut = 1 + next(
        i
        for i, r in enumerate(raws)
        if (r.topic, r.offset) == (first_ci_revoke.topic, first_ci_revoke.offset)
    )
    tables = Tables()
    first = tables.worker(**TIGHT)
    Tables.write(first, first.process(raws[:cut]))
    assert tables.packages.get(breaker_key(0)), "the window is stored with the packages"
    second = tables.worker(**TIGHT)  # a restart: only the tables are left
    res = second.process(raws[cut:])
    assert [c for d in res.decisions for c in d.commands if c.held] == reference
    # Without the first worker's window, nothing would be held.
    fresh = Tables().worker(**TIGHT)
    assert not any(c.held for d in fresh.process(raws[cut:]).decisions for c in d.commands)


def test_breaker_settings_from_the_environment():
    s = load_settings(
        env={
            "NHIGUARD_BREAKER_WINDOW_S": "600",
            "NHIGUARD_BREAKER_MAX_REVOKES": "none",
            "NHIGUARD_BREAKER_MAX_REVOKES_PER_KIND": "ci_bot=5, cms_integration=0 ,*=10",
        }
    )
    assert (s.breaker_window_s, s.breaker_max_revokes) == (600, None)
    assert s.breaker_max_revokes_per_kind == (("ci_bot", 5), ("cms_integration", 0), ("*", 10))
    assert load_settings(env={}).breaker_max_revokes == 20
    with pytest.raises(ValueError, match="kind=limit"):
        load_settings(env={"NHIGUARD_BREAKER_MAX_REVOKES_PER_KIND": "ci_bot"})
    with pytest.raises(ValueError, match="not a limit"):
        load_settings(env={"NHIGUARD_BREAKER_MAX_REVOKES": "-3"})
