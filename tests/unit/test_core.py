"""The decision core end to end on the scenario streams, without a broker."""

import json
from collections import Counter

import pytest

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory, variant_params

BUNDLE = load_bundle(REPO_ROOT / "policies")


def raw_records(records):
    offsets = Counter()
    out = []
    for r in records:
        out.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        offsets[r.topic] += 1
    return out


def make_core(params, **settings):
    inv = Inventory.load_dict(inventory(params))
    return DecisionCore(load_settings(env={}, **settings), BUNDLE, inv)


def run(params, batch=500, ordinary=1000):
    records = generate(params, ordinary=ordinary)
    raws = raw_records(records)
    core = make_core(params)
    decisions, deadletters = [], []
    for i in range(0, len(raws), batch):
        res = core.process(raws[i : i + batch])
        decisions += res.decisions
        deadletters += res.deadletters
    label = {(r.topic, r.offset): rec.label for r, rec in zip(raws, records, strict=True)}
    return records, decisions, deadletters, label


def summary(decisions, label):
    """(label, command kind, policy) -> count: what the stream yields, independent of names."""
    out = Counter()
    for d in decisions:
        for c in d.commands:
            out[(label[(d.topic, d.offset)], c.kind, c.policy_ids)] += 1
    return out


@pytest.fixture(scope="module")
def default_run():
    return run(default_params())


def test_every_record_is_decided_or_dead_lettered(default_run):
    records, decisions, deadletters, _ = default_run
    assert len(decisions) + len(deadletters) == len(records)
    assert not deadletters, Counter(x.reason for x in deadletters)


def test_each_incident_is_stopped_and_ordinary_activity_is_not(default_run):
    _, decisions, _, label = default_run
    s = summary(decisions, label)
    kinds = {(lbl, kind) for (lbl, kind, _) in s}
    assert ("incident:cms", "DENY") in kinds and ("incident:cms", "REVOKE") in kinds
    assert ("incident:ci", "DENY") in kinds
    assert ("incident:registry", "DENY") in kinds and ("incident:registry", "REVOKE") in kinds
    stray = {k: n for k, n in s.items() if not k[0].startswith("incident:")}
    assert not stray, f"commands for ordinary activity or twins: {stray}"


def test_cms_burst_revokes_once_and_denies_every_exposure(default_run):
    _, decisions, _, label = default_run
    cms = [d for d in decisions if label[(d.topic, d.offset)] == "incident:cms"]
    revokes = [c for d in cms for c in d.commands if c.kind == "REVOKE"]
    assert len({c.target for c in revokes}) == len(revokes) >= 1  # one per credential, not one per event
    assert all(any(c.kind == "DENY" for c in d.commands) for d in cms)


def test_registry_incident_denies_both_versions_and_revokes_installers(default_run):
    _, decisions, _, label = default_run
    p = default_params()
    cmds = [c for d in decisions if label[(d.topic, d.offset)] == "incident:registry" for c in d.commands]
    denied = {c.target for c in cmds if c.kind == "DENY"}
    for version in p.bad_versions if hasattr(p, "bad_versions") else ():
        assert f"{p.compromised_package}@{version}" in denied
    assert any(c.target_type == "package_version" for c in cmds if c.kind == "DENY")
    assert any(c.kind == "REVOKE" and c.target_type == "credential" for c in cmds)


def test_variant_with_other_names_gives_the_same_commands(default_run):
    _, decisions, _, label = default_run
    _, vdecisions, vdead, vlabel = run(variant_params(7))
    assert not vdead

    def rule_based(s):
        # The anomaly stage depends on each variant's own timing by design (compared apart, below); a
        # command it shares with a rule-based finding still shows that rule.
        return {(lbl, kind, p) for (lbl, kind, policies) in s for p in policies if p != "anomaly.behaviour"}

    def behavioural(s):
        return {(lbl, kind) for (lbl, kind, policies) in s if "anomaly.behaviour" in policies}

    default, variant = summary(decisions, label), summary(vdecisions, vlabel)
    assert rule_based(variant) == rule_based(default)
    # Behaviour-based commands, where any, fall on an incident only: never on ordinary activity or twins.
    assert all(lbl.startswith("incident:") for lbl, _ in behavioural(default) | behavioural(variant))


def test_decisions_do_not_depend_on_batch_boundaries():
    params = default_params()
    _, one, _, _ = run(params, batch=1, ordinary=200)
    _, many, _, _ = run(params, batch=10_000, ordinary=200)

    def key(ds):
        return [(d.decision_id, d.verdict, [c.command_id for c in d.commands], d.anomaly_score) for d in ds]

    assert key(one) == key(many)


def test_reprocessing_gives_the_same_ids(default_run):
    _, decisions, _, _ = default_run
    _, again, _, _ = run(default_params())
    assert [d.decision_id for d in again] == [d.decision_id for d in decisions]
    assert [c.command_id for d in again for c in d.commands] == [
        c.command_id for d in decisions for c in d.commands
    ]


def test_bad_records_are_dead_lettered_with_original_bytes():
    core = make_core(default_params(), max_record_bytes=2048, deadletter_prefix_bytes=100)
    big = json.dumps({"sys": {"id": "x" * 5000}}).encode()
    raws = [
        RawRecord("audit.cms", 0, 0, b"{oops"),
        RawRecord("audit.ci", 0, 1, b'{"no": "adapter"}'),
        RawRecord(
            "audit.cms", 0, 2, big, headers=(("X-Contentful-Topic", b"ContentManagement.Asset.create"),)
        ),
        RawRecord("audit.registry", 0, 3, b'{"level": 30, "msg": "m", "request": {"method": "GET"}}'),
    ]
    res = core.process(raws)
    assert not res.decisions
    by_offset = {x.offset: x for x in res.deadletters}
    assert {o: x.reason for o, x in by_offset.items()} == {
        0: "malformed_json",
        1: "unknown_shape",
        2: "oversized",
        3: "missing_identity",
    }
    assert by_offset[0].original == b"{oops" and not by_offset[0].truncated
    assert (
        by_offset[2].truncated
        and by_offset[2].original == big[:100]
        and by_offset[2].original_length == len(big)
    )
    assert by_offset[2].headers == raws[2].headers


def test_policy_engine_failure_costs_only_the_failing_event(monkeypatch):
    core = make_core(default_params())
    records = raw_records([r for r in generate(default_params(), ordinary=100) if r.topic == "audit.ci"][:20])
    real = core.evaluator.evaluate
    poisoned = {5}

    def flaky(domain, inputs):
        # Fault injection: the engine refuses any batch holding the poisoned event.
        if any(i.get("_poison") for i in inputs):
            from nhiguard.policy.engines import EvaluationError

            raise EvaluationError("injected")
        return real(domain, inputs)

    monkeypatch.setattr(core.evaluator, "evaluate", flaky)
    import nhiguard.decision.core as core_module

    orig_enrich = core_module.enrich

    def enrich(view, inventory, rec, ev):
        p = orig_enrich(view, inventory, rec, ev)
        if rec.offset in poisoned:
            p.policy_input["_poison"] = True
        return p

    monkeypatch.setattr(core_module, "enrich", enrich)
    res = core.process(records)
    # The failing event is decided by ci's failure mode (closed), not dead-lettered; the others as usual.
    assert not res.deadletters and len(res.decisions) == len(records)
    failed = [d for d in res.decisions if any(f.rule == "ci.engine.no_answer" for f in d.findings)]
    assert [d.offset for d in failed] == [5] and failed[0].verdict == "DENY"
    assert "policy_evaluation_error: injected" in failed[0].findings[0].reason


def test_a_waiver_sets_findings_aside_until_it_expires_and_says_so(tmp_path):
    import shutil
    from datetime import timedelta

    from tools.scenarios import default_params as dp

    shutil.copytree(REPO_ROOT / "policies", tmp_path / "p")
    params = dp()
    workflow = f"github:{params.ci_repository}/{params.ci_workflow_path}"
    expired = (params.ci_leak_at - timedelta(days=1)).replace(microsecond=0).isoformat()
    (tmp_path / "p" / "waivers.yaml").write_text(
        "waivers:\n"
        "  - id: W-1\n    rule: ci.release_artifacts.prohibited_source_map\n"
        f'    identity: "{workflow}"\n    owner: cli-team@acme.example\n    reason: maps ship on purpose\n'
        f"    expires: {expired}\n"  # a day before the leak: no longer in force
        "  - id: W-2\n    rule: ci.release_artifacts.size_jump\n"
        f'    identity: "{workflow}"\n    owner: cli-team@acme.example\n    reason: planned growth\n'
        "    expires: 2030-01-01T00:00:00Z\n"
    )
    bundle = load_bundle(tmp_path / "p")
    core = DecisionCore(load_settings(env={}), bundle, Inventory.load_dict(inventory(params)))
    records = generate(params)
    res = core.process(raw_records(records))
    leak = next(d for d, r in zip(res.decisions, records, strict=True) if r.label == "incident:ci")
    by_rule = {f.rule: f for f in leak.findings}
    # W-2 is in force: the size jump is set aside and says so; W-1 had expired: the source map still denies.
    assert by_rule["ci.release_artifacts.size_jump"].mode == "waived"
    assert by_rule["ci.release_artifacts.size_jump"].waiver == "W-2"
    assert by_rule["ci.release_artifacts.prohibited_source_map"].mode == "enforce"
    assert leak.verdict == "DENY"
    assert [c.rule_ids for c in leak.commands] == [("ci.release_artifacts.prohibited_source_map",)]


def test_a_waiver_without_owner_or_expiry_is_refused(tmp_path):
    import shutil

    from nhiguard.policy.bundle import BundleError

    shutil.copytree(REPO_ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "waivers.yaml").write_text(
        "waivers:\n  - id: W-9\n    rule: cms.public_exposure\n    reason: r\n"
    )
    with pytest.raises(BundleError, match="W-9 lacks owner, expires"):
        load_bundle(tmp_path / "p")


def test_shadow_mode_records_findings_without_commands_and_compares_verdicts(tmp_path):
    import shutil

    shutil.copytree(REPO_ROOT / "policies", tmp_path / "p")
    rego = tmp_path / "p" / "ci" / "release_artifacts.rego"
    rego.write_text(rego.read_text().replace("#   mode: enforce", "#   mode: shadow"))
    params = default_params()
    core = DecisionCore(
        load_settings(env={}), load_bundle(tmp_path / "p"), Inventory.load_dict(inventory(params))
    )
    records = generate(params)
    res = core.process(raw_records(records))
    leak = next(d for d, r in zip(res.decisions, records, strict=True) if r.label == "incident:ci")
    assert leak.findings and all(f.mode == "shadow" for f in leak.findings)
    assert leak.verdict == "ALLOW" and leak.shadow_verdict == "DENY" and not leak.commands
    others = [d for d in res.decisions if d is not leak and d.event.domain != "ci"]
    assert all(d.shadow_verdict == d.verdict for d in others)


def test_exposure_window_counts_late_events_in_their_own_window():
    from nhiguard.decision.enrich import enrich
    from nhiguard.decision.facts import CmsChange
    from nhiguard.decision.records import Actor, CanonicalEvent
    from nhiguard.decision.state import State, StateView

    view = StateView(State(), Inventory())
    counts, tags = [], ("internal",)
    for minute in (60, 10, 65, 66, 67):  # the second one arrives late
        ev = CanonicalEvent(
            event_id=f"e{minute}",
            source="t",
            domain="cms",
            action="cms.asset.create",
            occurred_at_ms=minute * 60_000,
            actor=Actor("a", "a", False, "a"),
            resource_type="r",
            resource_id=f"r{minute}",
            facts=CmsChange("Asset", "create", tags, False, True, "upload", True, True, restricted_tags=tags),
        )
        item = enrich(view, Inventory(), RawRecord("t", 0, minute, b""), ev)
        view.observe(item.observed)
        counts.append(sum(item.policy_input["context"]["exposure_minutes"][:10]))  # a ten-minute window
    assert counts == [1, 1, 2, 3, 4]


def test_policy_metadata_flows_into_decisions_and_alerts(default_run):
    _, decisions, _, label = default_run
    leak = next(d for d in decisions if label[(d.topic, d.offset)] == "incident:registry" and d.findings)
    f = leak.findings[0]
    assert f.title == "Package versions must come from the package's established publisher"
    assert f.attack == ("T1195.001 Compromise Software Dependencies and Development Tools",)
    core = make_core(default_params())
    res = core.process(raw_records([r for r in generate(default_params()) if r.label == "incident:ci"]))
    (alert,) = res.alerts
    assert alert.title.startswith("Public releases must not ship") and alert.attack


def npm_publish(i, when, package="left-pad", user="release-bot"):
    """An npm registry hook for one publish (the shape docs/sources.md describes)."""
    version = f"1.0.{i}"
    manifest = {"name": package, "version": version, "_npmUser": {"name": user, "email": "r@acme.example"}}
    body = {
        "event": "package:publish",
        "hookOwner": {"username": "acme-security"},
        "name": package,
        "change": {"version": version},
        "payload": {"name": package, "versions": {version: manifest}, "time": {version: when}},
    }
    return RawRecord("audit.registry", 0, i, json.dumps(body).encode(), None, (), 0)


def proxy_install(i, when_ms, package, user="ci-web", ip="10.1.2.3"):
    """A Verdaccio log line for one tarball fetch (the shape docs/sources.md describes)."""
    body = {
        "level": 30,
        "time": when_ms,
        "sub": "out",
        "request": {"method": "GET", "url": f"/{package}/-/{package}-1.0.{i % 7}.tgz"},
        "user": user,
        "remoteIP": ip,
        "status": 200,
        "msg": "@{status}, user: @{user}(@{remoteIP}), req: '@{request.method} @{request.url}'",
    }
    return RawRecord("audit.registry", 0, i, json.dumps(body).encode(), None, (), when_ms)


def _ci_bot_habit(user="ci-web"):
    """Three weeks of weekday installs of four packages between 10:00 and 16:00 UTC, one at a time."""
    monday = 1_772_409_600_000  # 2026-03-02 00:00 UTC, a Monday
    hour, day = 3_600_000, 86_400_000
    times = [
        monday + w * 7 * day + d * day + (10 + k) * hour for w in range(3) for d in range(5) for k in range(6)
    ]
    pkgs = ["react", "lodash", "zod", "chalk"]
    return [proxy_install(i, t, pkgs[i % 4], user) for i, t in enumerate(times)], monday + 21 * day


CI_BOT = {"identities": [{"id": "verdaccio:ci-web", "kind": "ci_bot", "credential_ids": ["tok-ci-web"]}]}


def test_one_surprising_habit_never_revokes_and_is_learned():
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(CI_BOT))
    habit, monday = _ci_bot_habit()
    early = core.process(habit[:5]).decisions
    assert all(not d.anomaly_warm and not d.commands for d in early)
    core.process(habit[5:])
    # Its first Saturday, at 03:00: a new hour (the on-call or weekend class), everything else habitual.
    saturday = core.process([proxy_install(500, monday + 5 * 86_400_000 + 3 * 3_600_000, "react")]).decisions
    (odd,) = saturday
    assert odd.anomaly_warm and odd.anomaly_features["hour"] > 0.5
    assert odd.anomaly_score == 0.0 and not odd.findings and not odd.commands  # one habit: nothing to judge
    # Learned: the next Saturday at 03:00 is about half the surprise, and habitual after a few more.
    again = core.process([proxy_install(501, monday + 12 * 86_400_000 + 3 * 3_600_000, "react")]).decisions
    assert again[0].anomaly_features["hour"] < 0.6 * odd.anomaly_features["hour"]


def test_a_credential_breaking_three_habits_is_revoked_and_its_requests_refused():
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(CI_BOT))
    habit, monday = _ci_bot_habit()
    core.process(habit)
    # A Wednesday at 02:00: packages it never fetches, a few seconds apart (a stolen token's session).
    start = monday + 2 * 86_400_000 + 2 * 3_600_000
    session = [proxy_install(600 + i, start + 4_000 * i, f"pkg-{i}") for i in range(12)]
    ds = core.process(session).decisions
    rule = "anomaly.behaviour.habits_broken"
    first = next(i for i, d in enumerate(ds) if any(c.kind == "REVOKE" for c in d.commands))
    # Before: two habits broken at most (hour, packages): alerted on, never a command.
    assert first >= 2 and all(not d.commands for d in ds[:first])
    assert all(d.anomaly_score >= 0.5 for d in ds[:first])
    revoke = ds[first]
    assert revoke.verdict == "REVOKE" and rule in [f.rule for f in revoke.findings]
    assert next(f for f in revoke.findings if f.rule == rule).grade == "compromise"
    assert sorted((c.kind, c.target_type, c.target) for c in revoke.commands) == [
        ("DENY", "request", revoke.event.event_id),  # this request is refused too, not the package version
        ("REVOKE", "credential", "tok-ci-web"),
    ]
    # After: one REVOKE in force; each further request of the session is refused.
    for d in ds[first + 1 :]:
        assert [(c.kind, c.target_type) for c in d.commands] == [("DENY", "request")]


def test_the_anomaly_stage_revokes_no_credential_the_inventory_does_not_hold():
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory())
    habit, monday = _ci_bot_habit()
    core.process(habit)
    start = monday + 2 * 86_400_000 + 2 * 3_600_000
    ds = core.process([proxy_install(600 + i, start + 4_000 * i, f"pkg-{i}") for i in range(12)]).decisions
    assert any("anomaly.behaviour.activity_anomalous" in [f.rule for f in d.findings] for d in ds)
    assert not any(d.commands for d in ds)


def test_unknown_identity_is_enriched_denied_for_sensitive_actions_and_alerted(default_run):
    params = default_params()
    records = generate(params, ordinary=300)
    inv = inventory(params)
    publisher = next(i["id"] for i in inv["identities"] if i["kind"] == "package_publisher")
    inv["identities"] = [i for i in inv["identities"] if i["id"] != publisher]
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(inv))
    res = core.process(raw_records(records))
    mine = [d for d in res.decisions if d.event.actor.id == publisher]
    assert mine and all(not d.identity_known and d.identity_kind == "unknown" for d in mine)
    gated = [d for d in mine if d.event.action == "ci.release.publish_request"]
    assert gated and all(d.verdict == "DENY" for d in gated)
    assert all("identity.inventory.unknown_identity" in [f.rule for f in d.findings] for d in gated)
    alerted = {(a.rule, a.identity) for a in res.alerts}
    assert ("identity.inventory.unknown_identity", publisher) in alerted
    # Its other actions are decided and recorded, not denied.
    assert all(d.verdict == "ALLOW" for d in mine if d.event.action != "ci.release.publish_request")


def test_human_principals_are_decided_and_counted(default_run):
    params = default_params()
    core = make_core(params)
    res = core.process(raw_records(generate(params, ordinary=300)))
    humans = [d for d in res.decisions if d.identity_kind == "human"]
    assert humans and res.human_events == len(humans)
    assert all(d.verdict == "ALLOW" and not d.findings and not d.anomaly_warm for d in humans)
