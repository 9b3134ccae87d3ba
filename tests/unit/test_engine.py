"""regopy out of process: crashes and hangs cost only the events that cause them."""

import shutil

import pytest

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.policy.engines import CRASH
from nhiguard.policy.engines.pool import EnginePool, trial_run
from nhiguard.settings import load_settings
from tests.unit.engine_faults import inject_faults
from tests.unit.test_core import raw_records
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

POLICIES = REPO_ROOT / "policies"

# A module rego-cpp 1.5.2 segfaults on (README, "Policy engine"): `with` applied to a rule of its own.
CRASHY = """# METADATA
# title: crashy
# description: segfaults regopy 1.5.2 on every query once loaded
package nhiguard.cms.crashy

import rego.v1

big contains "big" if input.size > 3

probe if { count(big) == 1 with input as {"size": 10} }

findings(ev) := set()
"""


@pytest.fixture(scope="module")
def pool():
    p = EnginePool(load_bundle(POLICIES), processes=1, timeout_s=3.0, child_wrap=inject_faults)
    yield p
    p.close()


def test_trial_run_accepts_the_shipped_bundle():
    assert trial_run(POLICIES).revision == load_bundle(POLICIES).revision


def test_a_bundle_that_crashes_the_engine_is_refused_at_activation(tmp_path):
    shutil.copytree(POLICIES, tmp_path / "p")
    (tmp_path / "p" / "cms" / "crashy.rego").write_text(CRASHY)
    (tmp_path / "p" / "cms" / "crashy.cases.yaml").write_text("cases: []\n")
    with pytest.raises(BundleError, match=r"crashed while trying the bundle \(killed by signal \d+\)"):
        trial_run(tmp_path / "p")


def test_a_bundle_whose_cases_fail_is_refused(tmp_path):
    shutil.copytree(POLICIES, tmp_path / "p")
    data = tmp_path / "p" / "data.yaml"
    data.write_text(data.read_text().replace("{minutes: 10, threshold: 10}", "{minutes: 10, threshold: 500}"))
    with pytest.raises(BundleError, match="policy case"):
        trial_run(tmp_path / "p")


def _inputs(pool, n=12):
    """CMS policy inputs a policy can fire on: the rule index answers the others without the engine."""
    core = DecisionCore(load_settings(env={}), pool.bundle, Inventory.load_dict(inventory(default_params())))
    recs = [r for r in generate(default_params(), ordinary=200) if r.topic == "audit.cms"]
    inputs = [i for i in core.policy_inputs(raw_records(recs)) if pool.index.applies("cms", i)][:n]
    assert len(inputs) == n
    return inputs


def test_pool_answers_like_the_in_process_engine(pool):
    from nhiguard.policy.engines.regopy import RegoEvaluator

    inputs = _inputs(pool)
    assert pool.evaluate("cms", inputs) == RegoEvaluator(pool.bundle).evaluate("cms", inputs)


def test_a_child_killed_by_sigsegv_costs_only_the_marked_event(pool):
    inputs = _inputs(pool)
    inputs[7] = dict(inputs[7], _fault="segv")
    before = pool.restarts
    found, failures = pool.evaluate_isolating("cms", inputs)
    assert set(failures) == {7} and failures[7].reason == CRASH and "exit -11" in failures[7].detail
    assert all(found[i] is not None for i in range(len(inputs)) if i != 7)
    assert pool.restarts > before
    assert pool.evaluate("cms", inputs[:3]) is not None  # the pool still serves


def test_the_production_child_has_no_fault_path():
    """Without the test hook a marked input is just an input: the child neither crashes nor hangs."""
    p = EnginePool(load_bundle(POLICIES), processes=1, timeout_s=3.0)
    try:
        inputs = _inputs(p, n=4)
        marked = [dict(i, _fault=f) for i, f in zip(inputs, ("segv", "hang", "segv", "hang"), strict=True)]
        found, failures = p.evaluate_isolating("cms", marked)
        assert failures == {} and p.restarts == 0
        assert found == p.evaluate("cms", inputs)
    finally:
        p.close()


def test_a_hang_hits_the_deadline_and_the_domain_fails_closed(pool, monkeypatch):
    import nhiguard.decision.core as core_module

    settings = load_settings(env={})
    core = DecisionCore(
        settings, pool.bundle, Inventory.load_dict(inventory(default_params())), evaluator=pool
    )
    recs = raw_records([r for r in generate(default_params(), ordinary=200) if r.topic == "audit.cms"][:40])
    real = core_module.enrich
    marked = []

    def enrich(view, inventory, rec, ev):
        p = real(view, inventory, rec, ev)
        # The first event a policy can fire on: the rule index answers the others without the engine.
        if not ev.actor.human and not marked and pool.index.applies("cms", p.policy_input):
            marked.append(rec.offset)
            p.policy_input["_fault"] = "hang"
        return p

    monkeypatch.setattr(core_module, "enrich", enrich)
    res = core.process(recs)
    assert not res.deadletters and len(res.decisions) == len(recs) and marked
    hung = next(d for d in res.decisions if d.offset == marked[0])
    assert hung.verdict == "DENY" and [f.rule for f in hung.findings] == ["cms.engine.no_answer"]
    # Fail closed for this request only: never a package-version or asset deny for everyone.
    assert [(c.kind, c.target_type, c.target) for c in hung.commands] == [
        ("DENY", "request", hung.event.event_id)
    ]
    assert all(d.verdict == "ALLOW" for d in res.decisions if d.offset != marked[0])
    assert any(a.rule == "cms.engine.no_answer" for a in res.alerts)


def test_policy_test_command_reports_cases_and_refuses_crashing_bundles(tmp_path, capsys):
    from nhiguard.streams.cli import main
    from tools.opa import ensure_opa

    both = ["--engine", "both", "--opa", str(ensure_opa(load_settings(env={}).cache_dir))]
    assert main(["policy", "test", *both, str(POLICIES)]) == 0
    out = capsys.readouterr().out
    assert "PASS [regopy] cms.public_exposure: publishing an asset meant to be public is allowed" in out
    assert "PASS [opa] cms.public_exposure: publishing an asset meant to be public is allowed" in out
    assert "0 failed" in out
    shutil.copytree(POLICIES, tmp_path / "p")
    data = tmp_path / "p" / "data.yaml"
    data.write_text(data.read_text().replace("max_size_ratio: 3.0", "max_size_ratio: 9.0"))
    assert main(["policy", "test", *both, str(tmp_path / "p")]) == 1
    out = capsys.readouterr().out
    assert "FAIL [regopy] ci.release_artifacts: a release six times the size" in out
    assert "FAIL [opa] ci.release_artifacts: a release six times the size" in out
    (tmp_path / "p" / "cms" / "crashy.rego").write_text(CRASHY)
    assert main(["policy", "test", str(tmp_path / "p")]) == 1
    assert "crashed while trying the bundle" in capsys.readouterr().out


def test_policy_test_takes_opa_from_the_option_the_setting_or_path_and_says_so_in_one_line_if_none(
    tmp_path, capsys, monkeypatch
):
    from nhiguard.streams.cli import main
    from tools.opa import ensure_opa

    opa = ensure_opa(load_settings(env={}).cache_dir)
    monkeypatch.delenv("NHIGUARD_OPA_BINARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no opa on PATH
    missing = str(tmp_path / "x")
    for argv in (["--engine", "opa"], ["--engine", "both"], ["--engine", "opa", "--opa", missing]):
        assert main(["policy", "test", *argv, str(POLICIES)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and err.startswith("nhiguard policy test: ")
        assert "Traceback" not in err
    main(["policy", "test", "--engine", "opa", str(POLICIES)])
    err = capsys.readouterr().err
    assert all(w in err for w in ("--opa PATH", "NHIGUARD_OPA_BINARY", "opa on PATH"))  # every way to say it
    # The regopy default needs no OPA.
    assert main(["policy", "test", str(POLICIES)]) == 0
    assert "[opa]" not in capsys.readouterr().out
    monkeypatch.setenv("NHIGUARD_OPA_BINARY", str(opa))
    assert main(["policy", "test", "--engine", "opa", str(POLICIES)]) == 0
    assert "PASS [opa] cms.public_exposure" in capsys.readouterr().out
    monkeypatch.delenv("NHIGUARD_OPA_BINARY")
    (tmp_path / "opa").symlink_to(opa)
    assert main(["policy", "test", "--engine", "opa", str(POLICIES)]) == 0
    assert "PASS [opa] cms.public_exposure" in capsys.readouterr().out


def test_a_restarted_engine_serves_the_loaded_revision_even_if_the_disk_changed(tmp_path):
    shutil.copytree(POLICIES, tmp_path / "p")
    bundle = load_bundle(tmp_path / "p")
    p = EnginePool(bundle, processes=1, timeout_s=5.0, child_wrap=inject_faults)
    try:
        inputs = _inputs(p)
        expected = p.evaluate("cms", inputs)
        (tmp_path / "p" / "data.yaml").write_text("not: [valid")  # an operator is mid-edit
        p.evaluate_isolating("cms", [dict(inputs[0], _fault="segv")])  # the child dies and is replaced
        assert p.restarts == 2  # it died, and again on the one retry
        assert p.evaluate("cms", inputs) == expected
    finally:
        p.close()


def test_one_hanging_event_in_a_batch_costs_the_deadline_about_once():
    import time

    p = EnginePool(load_bundle(POLICIES), processes=1, timeout_s=1.0, child_wrap=inject_faults)
    try:
        inputs = _inputs(p, n=12)
        inputs[5] = dict(inputs[5], _fault="hang")
        t = time.monotonic()
        found, failures = p.evaluate_isolating("cms", inputs)
        elapsed = time.monotonic() - t
        assert set(failures) == {5} and failures[5].reason == "policy_engine_timeout"
        assert all(found[i] is not None for i in range(12) if i != 5)
        # The batch and the hanging event each hit the deadline once (plus restarts); bisection would hit it
        # at every level. Behaviour, not speed: count the restarts.
        assert p.restarts == 2, elapsed
    finally:
        p.close()


def test_a_child_grown_past_its_memory_bound_is_replaced_and_answers_stay_the_same():
    """regopy keeps memory per evaluated event: a child past max_rss_mb is retired after its answer and the
    next query starts a fresh one (a spawned interpreter is well over 1 MB, so every answer retires it)."""
    bounded = EnginePool(load_bundle(POLICIES), processes=1, timeout_s=5.0, max_rss_mb=1)
    unbounded = EnginePool(load_bundle(POLICIES), processes=1, timeout_s=5.0)
    try:
        inputs = _inputs(bounded)
        pids = set()
        for _ in range(3):
            assert bounded.evaluate("cms", inputs) == unbounded.evaluate("cms", inputs)
            pids.add(bounded._free[0].proc.pid if bounded._free[0] is not None else None)
        assert bounded.recycled == 3 and bounded.restarts == 0
        assert pids == {None}  # retired, not handed out again
        child = unbounded._free[0]
        assert unbounded.recycled == 0 and child is not None and child.proc.is_alive()
    finally:
        bounded.close()
        unbounded.close()


@pytest.mark.parametrize("value", ["-1", "1", "63"])
def test_an_engine_memory_bound_below_a_fresh_child_is_refused(value):
    from nhiguard.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="NHIGUARD_ENGINE_MAX_RSS_MB: 64 or more, or 0 for no bound"):
        load_settings(env={"NHIGUARD_ENGINE_MAX_RSS_MB": value})
    assert load_settings(env={"NHIGUARD_ENGINE_MAX_RSS_MB": "0"}).engine_max_rss_mb == 0


@pytest.mark.parametrize(
    "answer, ok",
    [
        ([{"p.a": [{"rule": "r"}], "p.b": []}, {}], True),
        ({"p.a": []}, False),  # not one answer per input
        ([[{"rule": "r"}]], False),  # findings not by policy (an entry module of another shape)
        ([{"p.a": {"rule": "r"}}], False),  # a policy's findings not a list
        ([{"p.a": ["r"]}], False),  # a finding that is not an object: fails closed, is never dropped
    ],
)
def test_the_entry_answer_is_tagged_by_policy_or_refused(answer, ok):
    from nhiguard.policy.bundle import tagged

    if ok:
        assert tagged(answer) == [[{"rule": "r", "policy": "p.a"}], []]
    else:
        with pytest.raises(ValueError):
            tagged(answer)


def test_a_policy_giving_a_finding_that_is_not_an_object_fails_the_event_not_open():
    from dataclasses import replace

    from nhiguard.policy.engines import ERROR
    from nhiguard.policy.engines.regopy import RegoEvaluator

    bundle = load_bundle(POLICIES)
    bad = replace(
        bundle.by_id["cms.public_exposure"],
        source='package nhiguard.cms.public_exposure\n\nimport rego.v1\n\nfindings(ev) := {"oops"}\n',
    )
    bundle = replace(bundle, modules=[bad if m.policy_id == bad.policy_id else m for m in bundle.modules])
    found, failures = RegoEvaluator(bundle, rule_index=False).evaluate_isolating("cms", [{"action": "x"}])
    assert found == [None] and failures[0].reason == ERROR and "not an object" in failures[0].detail
