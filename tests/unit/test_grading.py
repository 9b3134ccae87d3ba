"""Evidence-graded enforcement in decide: a finding does at most what its policy declares, a REVOKE needs a
finding graded compromise or harm, and a REVOKE of the actor also refuses the request in hand."""

from __future__ import annotations

import pytest

from nhiguard.decision.decide import Enforcement, capped, decide, grade_of, to_findings
from nhiguard.decision.facts import ReleaseRequest
from nhiguard.decision.identity_state import IdentityFacts
from nhiguard.decision.records import Actor, CanonicalEvent
from nhiguard.decision.registry_facts import Install
from nhiguard.policy.bundle import load_bundle

ENF = Enforcement("rev", 1000, 2000)


@pytest.mark.parametrize(
    ("effect", "grade", "declared", "enforced"),
    [
        ("revoke", "compromise", ("alert", "deny", "revoke"), "revoke"),
        ("revoke", "harm", ("alert", "deny", "revoke"), "revoke"),
        ("revoke", "hygiene", ("alert", "deny", "revoke"), "deny"),  # an e-mail change never revokes
        ("revoke", "", ("alert", "deny", "revoke"), "deny"),  # no grade, no revoke
        ("revoke", "compromise", ("alert", "deny"), "deny"),  # not declared
        ("revoke", "hygiene", ("alert", "revoke"), "alert"),  # capped twice: no deny declared either
        ("deny", "", ("alert", "revoke"), "alert"),
        ("deny", "hygiene", ("alert", "deny"), "deny"),
        ("alert", "compromise", ("alert", "deny", "revoke"), "alert"),
    ],
)
def test_caps(effect, grade, declared, enforced):
    assert capped(effect, grade, declared) == enforced


def test_the_grade_is_read_from_engine_output_as_a_string_or_a_structured_evidence_object():
    assert grade_of({"evidence": "harm"}) == "harm"
    assert grade_of({"evidence": {"grade": "compromise", "file": "cli.js.map"}}) == "compromise"
    assert grade_of({"evidence": "certain"}) == "" and grade_of({}) == ""


def _bundle(tmp_path, effects: str | None):
    d = tmp_path / "registry"
    d.mkdir(exist_ok=True)
    custom = f"# custom:\n#   effects: {effects}\n" if effects else ""
    (d / "p.rego").write_text(f"# METADATA\n# title: t\n{custom}package nhiguard.registry.p\n")
    return load_bundle(tmp_path)


def test_findings_are_capped_to_their_policy_and_keep_what_they_asked_for(tmp_path):
    raw = [
        {"policy": "registry.p", "rule": "a", "effect": "revoke", "evidence": "compromise", "reason": "r"},
        {"policy": "registry.p", "rule": "b", "effect": "revoke", "evidence": "hygiene", "reason": "r"},
        {"policy": "registry.engine", "rule": "no_answer", "effect": "deny", "reason": "r"},  # no module
    ]
    declared = {f.rule: (f.effect, f.grade, f.capped_from) for f in to_findings(raw, _bundle(tmp_path, None))}
    assert declared == {
        "registry.p.a": ("deny", "compromise", "revoke"),  # the policy does not declare revoke
        "registry.p.b": ("deny", "hygiene", "revoke"),
        "registry.engine.no_answer": ("deny", "", ""),  # an engine failure still fails closed
    }
    found = {f.rule: f.effect for f in to_findings(raw, _bundle(tmp_path, "[alert, deny, revoke]"))}
    assert found["registry.p.a"] == "revoke" and found["registry.p.b"] == "deny"


def _event(facts, event_id="ev-1", actor="verdaccio:ci-web"):
    return CanonicalEvent(
        event_id, "test", "registry", "registry.package.install", 1_000, Actor(actor, actor, False, actor),
        "npm.package_version", "left-pad@1.0.0", facts,
    )  # fmt: skip


def _finding(bundle_dir, effect, grade="compromise", identities=()):
    raw = {"policy": "registry.p", "rule": "r", "effect": effect, "evidence": grade, "reason": "why"}
    if identities:
        raw["identities"] = list(identities)
    return to_findings([raw], _bundle(bundle_dir, "[alert, deny, revoke]"))


def test_a_revoke_on_a_gate_request_also_denies_that_request(tmp_path):
    gate = ReleaseRequest(
        "left-pad", "1.0.0", "https://registry.npmjs.org/", "public", "latest", 1, 1, (), "req-9"
    )
    out = decide(_event(gate), _finding(tmp_path, "revoke"), None, {}, IdentityFacts(), ENF)
    assert out.verdict == "REVOKE"
    assert sorted((c.kind, c.target_type, c.target) for c in out.commands) == [
        ("DENY", "request", "req-9"),
        ("REVOKE", "credential", "identity:verdaccio:ci-web"),
    ]


def test_a_revoke_of_the_actor_denies_only_its_request_never_the_version_for_everyone(tmp_path):
    out = decide(_event(Install("left-pad", "1.0.0", "verdaccio")), _finding(tmp_path, "revoke"), None, {},
                 IdentityFacts(), ENF)  # fmt: skip
    assert [(c.kind, c.target_type, c.target) for c in out.commands if c.kind == "DENY"] == [
        ("DENY", "request", "ev-1")
    ]


def test_revoking_other_identities_does_not_deny_the_actors_request(tmp_path):
    findings = _finding(tmp_path, "revoke", "harm", identities=("verdaccio:other",))
    out = decide(_event(Install("left-pad", "1.0.0", "verdaccio")), findings, None, {}, IdentityFacts(), ENF)
    assert [c.kind for c in out.commands] == ["REVOKE"] and out.commands[0].identity == "verdaccio:other"


def test_a_hygiene_finding_that_asked_to_revoke_denies_and_an_alert_commands_nothing(tmp_path):
    hygiene = _finding(tmp_path, "revoke", "hygiene")
    out = decide(_event(Install("left-pad", "1.0.0", "verdaccio")), hygiene, None, {}, IdentityFacts(), ENF)
    assert out.verdict == "DENY" and [c.kind for c in out.commands] == ["DENY"]
    alert = _finding(tmp_path, "alert")
    out = decide(_event(Install("left-pad", "1.0.0", "verdaccio")), alert, None, {}, IdentityFacts(), ENF)
    assert out.verdict == "ALLOW" and not out.commands
