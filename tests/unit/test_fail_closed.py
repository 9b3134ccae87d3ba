"""Every policy-engine failure follows the domain's failure mode (#11): an evaluation error, a crash, a
timeout and an engine that cannot be started each DENY the event in a closed domain (a gate request under the
id the gate waits for) and ALERT in an open one, with a finding naming what failed; never only a dead letter.

Through `DecisionCore.process` with the real engine pool: crashes, hangs and an engine that cannot restart
are injected in its real child process (tests/unit/engine_faults.py) by a marker a real record carries; the
evaluation error is a real policy that fails at runtime (to_number of a non-number, strict builtin errors).
"""

import json
import shutil
from dataclasses import replace

import pytest

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.engines import CRASH, ERROR, TIMEOUT, UNAVAILABLE
from nhiguard.policy.engines.pool import EnginePool
from nhiguard.settings import load_settings
from tests.unit.engine_faults import BROKEN_FLAG, inject_faults
from tests.unit.test_core import raw_records
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

POLICIES = REPO_ROOT / "policies"
STREAM = generate(default_params(), ordinary=200)


def _nhi(records):
    """The first three records a non-human identity acted in (a person's events are not evaluated)."""
    core = DecisionCore(load_settings(env={}), load_bundle(POLICIES))
    return [r for r in records if not core.read(raw_records([r])[0]).actor.human][:3]


GATES = _nhi(r for r in STREAM if r.topic == "audit.ci" and b'"npm-publish"' in r.value)
CMS = _nhi(r for r in STREAM if r.topic == "audit.cms")

# Fails at runtime for an event whose resource or gate request id holds "nhiguard-fault-error".
PROBE = """# METADATA
# title: runtime error probe
# description: to_number of a non-number, for the marked event only
package nhiguard.identity.fault_probe

import rego.v1

fault_probe_text(ev) := concat(" ", [ev.resource_id, object.get(ev, ["release", "request_id"], "")])

findings(ev) := {f |
	contains(fault_probe_text(ev), "nhiguard-fault-error")
	to_number(ev.resource_id) > 0
	f := {"rule": "never", "effect": "alert", "reason": "unreachable"}
}
"""

KINDS = {"error": ERROR, "segv": CRASH, "hang": TIMEOUT, "gone": UNAVAILABLE}


def probe_bundle(dst, **modes):
    """The shipped bundle plus the runtime-error probe, with the failure modes given."""
    shutil.copytree(POLICIES, dst)
    (dst / "identity" / "fault_probe.rego").write_text(PROBE)
    manifest = dst / "manifest.yaml"
    text = manifest.read_text()
    for domain, mode in modes.items():
        text = text.replace(f"{domain}: closed", f"{domain}: {mode}").replace(
            f"{domain}: open", f"{domain}: {mode}"
        )
    manifest.write_text(text)
    return load_bundle(dst)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    b = probe_bundle(tmp_path_factory.mktemp("fail") / "policies", cms="open")
    assert b.failure_mode["ci"] == "closed" and b.failure_mode["cms"] == "open"
    return b


@pytest.fixture(scope="module")
def pool(bundle):
    p = EnginePool(bundle, processes=1, timeout_s=3.0, child_wrap=inject_faults)
    yield p
    p.close()


def marked(rec, kind):
    """The record with the fault marker in its gate request id or CMS entity id (what reaches the engine)."""
    body = json.loads(rec.value)
    if rec.topic == "audit.ci":
        body["request_id"] = f"nhiguard-fault-{kind}-{body['request_id']}"
    else:
        body["sys"]["id"] = f"nhiguard-fault-{kind}-{body['sys']['id']}"
    return replace(rec, value=json.dumps(body).encode())


def core_with(bundle, evaluator):
    inv = Inventory.load_dict(inventory(default_params()))
    return DecisionCore(load_settings(env={}), bundle, inv, evaluator=evaluator)


def failed_as(d, domain, code, closed):
    """Assert `d` was decided by the domain's failure mode for an engine failure `code`; no other finding."""
    assert [f.rule for f in d.findings] == [f"{domain}.engine.no_answer"], d.findings
    f = d.findings[0]
    assert code in f.reason and ("failing closed" if closed else "failing open") in f.reason
    if closed:
        assert f.effect == "deny" and d.verdict == "DENY"
        target = d.event.facts.request_id if domain == "ci" else d.event.event_id
        assert [(c.kind, c.target_type, c.target) for c in d.commands] == [("DENY", "request", target)]
    else:
        assert f.effect == "alert" and d.verdict == "ALLOW" and d.commands == []


def check(res, records, domain, code, closed, failing):
    assert res.deadletters == [] and len(res.decisions) == len(records)  # decided, never only dead-lettered
    for d in res.decisions:
        if d.offset in failing:
            failed_as(d, domain, code, closed)
            assert any(
                a.rule == f"{domain}.engine.no_answer" and a.identity == d.event.actor.id for a in res.alerts
            )
        else:
            assert d.verdict == "ALLOW" and not any(".engine." in f.rule for f in d.findings)


@pytest.mark.parametrize("kind", ["error", "segv", "hang"])
@pytest.mark.parametrize(
    ("source", "domain", "closed"), [(GATES, "ci", True), (CMS, "cms", False)], ids=["gate", "open"]
)
def test_an_engine_failure_on_one_event_decides_it_by_the_failure_mode(
    pool, bundle, kind, source, domain, closed
):
    records = raw_records([source[0], marked(source[1], kind), source[2]])
    res = core_with(bundle, pool).process(records)
    check(res, records, domain, KINDS[kind], closed, failing={1})


@pytest.mark.parametrize(
    ("source", "domain", "closed"), [(GATES, "ci", True), (CMS, "cms", False)], ids=["gate", "open"]
)
def test_an_engine_that_cannot_be_started_decides_every_event_by_the_failure_mode(
    bundle, tmp_path, monkeypatch, source, domain, closed
):
    flag = tmp_path / "broken"
    monkeypatch.setenv(BROKEN_FLAG, str(flag))  # read by the pool's children, which inherit the environment
    p = EnginePool(bundle, processes=1, timeout_s=5.0, child_wrap=inject_faults)
    try:
        core = core_with(bundle, p)
        # The child dies on the first query and no replacement will start: every later query fails too.
        records = raw_records([marked(source[0], "gone"), source[1], source[2]])
        res = core.process(records)
        assert flag.exists()
        check(res, records, domain, UNAVAILABLE, closed, failing={0, 1, 2})
        assert all("could not be restarted" in d.findings[0].reason for d in res.decisions)
        flag.unlink()  # the engine can start again: the next batch is judged by the policies
        again = [replace(r, offset=r.offset + 10) for r in raw_records(source)]
        res = core.process(again)
        check(res, again, domain, UNAVAILABLE, closed, failing=set())
    finally:
        p.close()


def test_a_gate_fails_closed_even_in_an_open_domain(tmp_path):
    """`ci: open` makes other ci events alert on a failure; a gate request is still denied."""
    from nhiguard.policy.engines.regopy import RegoEvaluator

    bundle = probe_bundle(tmp_path / "p", ci="open")
    assert bundle.failure_mode["ci"] == "open"
    records = raw_records([GATES[0], marked(GATES[1], "error")])
    res = core_with(bundle, RegoEvaluator(bundle)).process(records)
    check(res, records, "ci", ERROR, True, failing={1})


# Fails at runtime for every event the anomaly stage evaluates (an actor id is not a number).
ANOMALY_PROBE = """# METADATA
# title: anomaly stage error probe
# description: to_number of a non-number, for every flagged event
package nhiguard.anomaly.fault_probe

import rego.v1

findings(ev) := {f |
	to_number(ev.actor) > 0
	f := {"rule": "never", "effect": "alert", "reason": "unreachable"}
}
"""


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_an_anomaly_stage_failure_never_loosens_the_rules_and_never_revokes(tmp_path, mode):
    """A stolen CI token's session (tests/unit/test_core.py): the working anomaly stage revokes it, a failing
    one adds its failure finding to the first stage's, which decide with it; it revokes nothing."""
    from nhiguard.decision.decide import verdict_of
    from nhiguard.policy.engines.regopy import RegoEvaluator
    from tests.unit.test_core import CI_BOT, _ci_bot_habit, proxy_install

    shutil.copytree(POLICIES, tmp_path / "p")
    (tmp_path / "p" / "anomaly" / "fault_probe.rego").write_text(ANOMALY_PROBE)
    (tmp_path / "p" / "manifest.yaml").write_text(
        "failure_mode: {" + ", ".join(f"{d}: {mode}" for d in ("cms", "ci", "registry", "runtime")) + "}\n"
    )
    runs = []
    for root in (POLICIES, tmp_path / "p"):
        b = load_bundle(root)
        core = DecisionCore(load_settings(env={}), b, Inventory.load_dict(CI_BOT), evaluator=RegoEvaluator(b))
        habit, monday = _ci_bot_habit()
        core.process(habit)
        start = monday + 2 * 86_400_000 + 2 * 3_600_000
        runs.append(core.process([proxy_install(600 + i, start + 4_000 * i, f"pkg-{i}") for i in range(12)]))
    healthy, broken = runs
    assert any(c.kind == "REVOKE" for d in healthy.decisions for c in d.commands)  # what the stage would do
    failed = [d for d in broken.decisions if any(".engine.no_answer" in f.rule for f in d.findings)]
    assert failed and not broken.deadletters
    for d in broken.decisions:
        engine = [f for f in d.findings if f.rule.endswith(".engine.no_answer")]
        rules = [f for f in d.findings if f not in engine]
        first = verdict_of(rules)  # the first stage's findings are kept, not replaced
        assert not any(c.kind == "REVOKE" for c in d.commands if set(c.rule_ids) - {f.rule for f in rules})
        if engine:
            assert "in the anomaly stage (policy_evaluation_error" in engine[0].reason
            assert engine[0].effect == ("deny" if mode == "closed" else "alert")
            assert d.verdict == (first if mode == "open" or first == "REVOKE" else "DENY")
        else:
            assert d.verdict == first
