"""Policy conventions and every case file, through the engine the worker uses."""

from pathlib import Path

import pytest

from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.policy.cases import load_cases, run_cases
from nhiguard.policy.engines.regopy import RegoEvaluator
from tools import REPO_ROOT

POLICIES = REPO_ROOT / "policies"


def test_bundle_has_policies_and_each_has_deny_and_allow_cases():
    bundle = load_bundle(POLICIES)
    assert bundle.modules, "no policy found"
    for policy_id, cases in load_cases(bundle).items():
        verdicts = {c["expect"]["verdict"] for c in cases}
        assert "allow" in verdicts, f"{policy_id} has no allow case"
        assert verdicts & {"deny", "revoke"}, f"{policy_id} has no deny case"
        assert all(c.get("name") for c in cases), f"{policy_id} has an unnamed case"


def test_every_policy_has_metadata_and_mode():
    for m in load_bundle(POLICIES).modules:
        assert m.title and m.description and m.severity
        assert m.mode in ("enforce", "shadow")


@pytest.mark.parametrize("result", run_cases(load_bundle(POLICIES)), ids=lambda r: f"{r.policy_id}:{r.name}")
def test_case(result):
    assert result.passed, result.detail


def test_revision_changes_with_content(tmp_path):
    import shutil

    shutil.copytree(POLICIES, tmp_path / "p")
    before = load_bundle(tmp_path / "p").revision
    f = tmp_path / "p" / "data.yaml"
    f.write_text(f.read_text().replace("beyond_typical_day: 3", "beyond_typical_day: 4"))
    assert load_bundle(tmp_path / "p").revision != before


def test_bundle_using_unimplemented_builtin_is_refused(tmp_path):
    d = tmp_path / "runtime"
    d.mkdir()
    (d / "egress.rego").write_text(
        "# METADATA\n# title: egress\npackage nhiguard.runtime.egress\n\nimport rego.v1\n\n"
        'findings(ev) := {f | not net.cidr_contains("10.0.0.0/8", ev.ip); '
        'f := {"rule": "x", "effect": "deny", "reason": "r"}}\n'
    )
    with pytest.raises(BundleError, match=r"net\.cidr_contains is not implemented"):
        RegoEvaluator(load_bundle(tmp_path))


def test_package_must_match_file_name(tmp_path):
    d = tmp_path / "cms"
    d.mkdir()
    (d / "one.rego").write_text("# METADATA\n# title: t\npackage nhiguard.cms.other\n")
    with pytest.raises(BundleError, match=r"package must be nhiguard\.cms\.one"):
        load_bundle(tmp_path)


def test_quotes_in_input_strings_do_not_break_evaluation():
    # regopy 1.5.2 emits input strings unescaped: policies must never echo them (see the .rego comments).
    bundle = load_bundle(POLICIES)
    ev = RegoEvaluator(bundle)
    cases = load_cases(bundle)["ci.release_artifacts"]
    inp = dict(cases[0]["input"])
    inp["resource_id"] = 'evil"pkg@1.0.0'
    inp["release"] = dict(inp["release"], files=[{"path": 'a"b.js.map', "size": 1}], package='evil"pkg')
    (found,) = ev.evaluate("ci", [inp])
    assert {f["rule"] for f in found} == {"prohibited_source_map"}


@pytest.mark.parametrize(("name", "text"), [("data.yaml", "not: [valid"), ("manifest.yaml", "- a\n- b\n")])
def test_broken_yaml_is_a_bundle_error_not_a_crash(tmp_path, name, text):
    import shutil

    shutil.copytree(POLICIES, tmp_path / "p")
    (tmp_path / "p" / name).write_text(text)
    with pytest.raises(BundleError, match=name):
        load_bundle(tmp_path / "p")


@pytest.mark.parametrize("call", ["time.now_ns()", 'rand.intn("x", 10)', "net.lookup_ip_addr(ev.host)"])
def test_a_policy_that_reads_the_clock_randomness_or_the_network_is_refused(tmp_path, call):
    d = tmp_path / "ci"
    d.mkdir()
    (d / "clock.rego").write_text(
        "# METADATA\n# title: clock\npackage nhiguard.ci.clock\n\nimport rego.v1\n\n"
        f"findings(ev) := {{f | x := {call}; x != null; "
        '   f := {"rule": "r", "effect": "deny", "reason": "r"}}\n'
    )
    with pytest.raises(BundleError, match="reads the clock, randomness or the network"):
        RegoEvaluator(load_bundle(tmp_path))


def _declared_effects(module) -> list[str] | None:
    from nhiguard.policy.bundle import _metadata

    return (_metadata(module.source, Path(module.path)).get("custom") or {}).get("effects")


def test_every_policy_declares_its_effects_and_a_revoking_one_shows_both_sides_of_its_evidence():
    """The convention of evidence-graded enforcement (README "Adding a policy"): each policy says what its
    findings may do; one that may revoke has a case where it revokes, on a finding graded compromise or harm,
    and a case where a hygiene finding (one that may look revoke-worthy) does not revoke."""
    from nhiguard.decision.decide import REVOKE_GRADES, capped, grade_of
    from nhiguard.policy.cases import expected_of

    bundle = load_bundle(POLICIES)
    engine = RegoEvaluator(bundle)
    for policy_id, cases in load_cases(bundle).items():
        m = bundle.by_id[policy_id]
        assert _declared_effects(m), f"{policy_id}: METADATA custom.effects is not declared"
        if "revoke" not in m.effects:
            continue
        revokes_on_evidence = hygiene_holds = False
        for case in cases:
            stage = "anomaly" if m.domain == "anomaly" else case["input"]["domain"]
            found = [f for f in engine.evaluate(stage, [case["input"]])[0] if f["policy"] == policy_id]
            enforced = [f | {"effect": capped(f["effect"], grade_of(f), m.effects)} for f in found]
            verdict, _ = expected_of(enforced)
            revokes_on_evidence |= verdict == "revoke" and all(
                grade_of(f) in REVOKE_GRADES for f in enforced if f["effect"] == "revoke"
            )
            hygiene_holds |= verdict != "revoke" and any(grade_of(f) == "hygiene" for f in found)
        assert revokes_on_evidence, f"{policy_id}: no case revokes on a compromise- or harm-graded finding"
        # A policy that grades some finding hygiene shows it does not revoke (one whose every finding is
        # evidence of compromise or harm has no such side).
        if '"hygiene"' in m.source:
            assert hygiene_holds, f"{policy_id}: no case shows a hygiene-graded finding that does not revoke"


def test_effects_must_be_drawn_from_alert_deny_revoke(tmp_path):
    d = tmp_path / "ci"
    d.mkdir()
    head = "# METADATA\n# title: t\n# description: d\n# custom:\n#   effects: {}\npackage nhiguard.ci.one\n"
    (d / "one.rego").write_text(head.format("[alert, quarantine]"))
    with pytest.raises(BundleError, match=r"custom\.effects has quarantine"):
        load_bundle(tmp_path)
    (d / "one.rego").write_text(head.format("revoke"))
    with pytest.raises(BundleError, match=r"custom\.effects must be a list"):
        load_bundle(tmp_path)
    (d / "one.rego").write_text(head.format("[revoke, alert]"))
    assert load_bundle(tmp_path).by_id["ci.one"].effects == ("alert", "revoke")
    (d / "one.rego").write_text("# METADATA\n# title: t\npackage nhiguard.ci.one\n")
    assert load_bundle(tmp_path).by_id["ci.one"].effects == ("alert", "deny")  # absent: never revoke


def test_the_anomaly_models_kind_priors_are_checked_with_the_bundle(tmp_path):
    import shutil

    shutil.copytree(POLICIES, tmp_path / "p")
    f = tmp_path / "p" / "data.yaml"
    f.write_text(f.read_text().replace("ci_bot: {hour: 0.05,", "ci_bot: {hour: 1.5,"))
    with pytest.raises(BundleError, match=r"data\.yaml: anomaly\.kinds\.ci_bot: novelty rates"):
        load_bundle(tmp_path / "p")
