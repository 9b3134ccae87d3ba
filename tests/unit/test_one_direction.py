"""One direction: enrichment reads, decide returns the effects it wants, `State.apply` is the one writer, and
the baseline itself refuses what it must not learn."""

from dataclasses import replace

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.decide import Enforcement, decide
from nhiguard.decision.effects import Learned, Revoked, VersionDenied
from nhiguard.decision.identity_state import IdentityFacts
from nhiguard.decision.records import Finding
from nhiguard.models.anomaly import Baseline
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tests.unit.test_core import npm_publish, raw_records
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

BUNDLE = load_bundle(REPO_ROOT / "policies")


def test_enrichment_changes_no_state():
    params = default_params()

    def core():
        return DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(inventory(params)))

    def outcome(res):
        return [(d.decision_id, d.verdict, d.anomaly_score, [c.command_id for c in d.commands]) for d in res]

    raws = raw_records(generate(params, ordinary=100))
    enriched = core()
    first = enriched.policy_inputs(raws)
    assert enriched.policy_inputs(raws) == first  # the same inputs again: nothing was applied
    assert outcome(enriched.process(raws).decisions) == outcome(core().process(raws).decisions)


def test_decide_returns_effects_and_writes_nothing():
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory())
    ev = core.read(npm_publish(1, "2026-03-02T10:00:00Z"))
    revoke = Finding("registry.x.y", "revoke", "r", "registry.x", "high", "enforce")
    facts = IdentityFacts()
    out = decide(ev, [revoke], None, {}, facts, Enforcement("rev", 1000, 2000))
    # A REVOKE of the actor also refuses its request (only the request, never the version for everyone).
    assert out.verdict == "REVOKE" and [c.kind for c in out.commands] == ["DENY", "REVOKE"]
    assert (out.commands[0].target_type, out.commands[0].target) == ("request", ev.event_id)
    assert facts == IdentityFacts()  # the actor's revocations are an effect, not a write
    (revoked, denied) = out.effects
    assert isinstance(revoked, Revoked) and revoked.keys == (f"{ev.actor.id}|registry.x.y",)
    assert denied == VersionDenied("left-pad", "1.0.1")
    # Applied, the revocation is in force: the same finding an hour later does not revoke again.
    facts.revoke(revoked.keys, revoked.at_ms, revoked.until_ms)
    again = decide(ev, [revoke], None, {}, facts, Enforcement("rev", 1000, 2000))
    assert [c.kind for c in again.commands] == ["DENY"]  # the request, while the REVOKE is in force
    assert not any(isinstance(e, Revoked) for e in again.effects)


def test_the_baseline_refuses_to_learn_what_policy_denied_or_what_scored_anomalous():
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory())
    ev = core.read(npm_publish(1, "2026-03-02T10:00:00Z"))
    b = Baseline()
    score = replace(b.score_one(ev, warmup=0), value=0.9)  # warm (no warm-up), several habits broken
    assert score.flagged and not score.learnable
    assert not b.learn_one(ev, score, allowed=True) and b.n == 0
    calm = replace(score, value=0.1)
    assert not b.learn_one(ev, calm, allowed=False) and b.n == 0
    # Nor anything in the ten minutes after an event that broke several habits (the same hands, maybe).
    assert not b.learn_one(replace(ev, occurred_at_ms=ev.occurred_at_ms + 60_000), calm, True) and b.n == 0
    later = replace(ev, occurred_at_ms=ev.occurred_at_ms + 11 * 60_000)
    assert b.learn_one(later, calm, allowed=True) and b.n == 1
    # What decide offers the model: the event, its score, and whether policy allowed it.
    out = decide(ev, [], calm, {}, IdentityFacts(), Enforcement("rev", 1000, 2000))
    assert out.effects == (Learned(ev.actor.id, ev, calm, allowed=True),)
