"""Alerts for the SOC (nhiguard/decision/alerts.py): one per identity and rule per event-time window, with an
id from the identity, the rule and the window start. The same alerts whatever the batch sizes and after a
worker restart; a window that grows is sent again under its id, never dropped; the state behind them is
bounded and never lets a late event overwrite an alert already sent."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from dataclasses import replace

import pytest

from nhiguard.decision.alert_state import (
    EVIDENCE_CHARS,
    EVIDENCE_VALUES,
    MAX_IDS,
    MAX_WINDOWS,
    AlertWindow,
)
from nhiguard.decision.alerts import Alerted, alert_id, snapshot
from nhiguard.decision.breaker import POLICY as BREAKER_POLICY
from nhiguard.decision.breaker import RULE as BREAKER_RULE
from nhiguard.decision.codec import decode_identity_state, encode_identity_state
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.identity_state import IdentityState
from nhiguard.decision.records import stable_id
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import load_settings
from tests.unit.test_core import raw_records
from tests.unit.test_state import Tables
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

BUNDLE = load_bundle(REPO_ROOT / "policies")
PARAMS = default_params()
RAWS = raw_records(generate(PARAMS, ordinary=1000))
WINDOW_MS = 600_000


def core(bundle=BUNDLE, **settings):
    return DecisionCore(load_settings(env={}, **settings), bundle, Inventory.load_dict(inventory(PARAMS)))


def run(batch, raws=RAWS, **settings):
    """Every decision and every alert record sent, in order, deciding `raws` in batches of `batch`."""
    c = core(**settings)
    decisions, sent = [], []
    for i in range(0, len(raws), batch):
        res = c.process(raws[i : i + batch])
        decisions += res.decisions
        assert len({a.alert_id for a in res.alerts}) == len(res.alerts), "one record per alert per batch"
        sent += res.alerts
    return decisions, sent


def final(sent):
    """What a reader of the alerts topic (keyed by alert id) ends with: the latest record of each id."""
    out = {}
    for a in sent:
        out[a.alert_id] = a
    return out


@pytest.fixture(scope="module")
def by_500():
    return run(500)


def test_alert_ids_and_contents_are_identical_for_batch_sizes_1_and_500(by_500):
    _, sent = by_500
    _, one = run(1)
    assert len(one) > len(sent)  # batches of one send every step of a window
    assert final(one) == final(sent) and list(final(one)) == list(final(sent))
    assert len(final(sent)) > 20


def _windows(decisions, window_ms=WINDOW_MS):
    """The ground truth, from the decisions alone: (identity, rule, window start) -> its decisions."""
    out = defaultdict(list)
    for d in decisions:
        start = d.event.occurred_at_ms // window_ms * window_ms
        for rule in dict.fromkeys(f.rule for f in d.findings):
            out[(d.event.actor.id, rule, start)].append(d)
        if any(c.held for c in d.commands):
            out[(d.event.actor.id, BREAKER_RULE, start)].append(d)
    return out


def test_each_alert_is_the_decisions_of_its_identity_rule_and_window(by_500):
    decisions, sent = by_500
    truth = _windows(decisions)
    alerts = final(sent)
    assert {(a.identity, a.rule, a.window_start_ms) for a in alerts.values()} == set(truth)
    for a in alerts.values():
        ds = truth[(a.identity, a.rule, a.window_start_ms)]
        times = [d.event.occurred_at_ms for d in ds]
        assert a.alert_id == stable_id("alert", a.identity, a.rule, a.window_start_ms) and a.late == 0
        assert a.window_end_ms - a.window_start_ms == WINDOW_MS and a.window_start_ms % WINDOW_MS == 0
        assert a.count == len(ds) and (a.first_seen_ms, a.last_seen_ms) == (min(times), max(times))
        assert a.decision_ids == tuple(d.decision_id for d in ds[:MAX_IDS])
        commands = [c.command_id for d in ds for c in d.commands if a.rule in c.rule_ids]
        assert a.command_ids == tuple(commands[:MAX_IDS]) and a.command_ids_total == len(commands)
        module = BUNDLE.by_id[a.policy]
        assert (a.severity, a.attack, a.title, a.runbook) == (
            module.severity,
            module.attack,
            module.title,
            "",
        )
        reason = next(f.reason for f in reversed(ds[-1].findings) if f.rule == a.rule)
        assert a.summary == (reason if a.count == 1 else f"{a.count}x {a.rule}; last: {reason}")
    # The demo's exposure burst: one alert per window, not one per batch.
    burst = [a for a in alerts.values() if a.rule == "cms.public_exposure.restricted_content_public"]
    assert max(a.count for a in burst) > MAX_IDS and all(a.verdict == "REVOKE" for a in burst if a.count > 1)


def test_a_window_that_grows_is_sent_again_under_its_id_each_version_counting_every_event():
    _, one = run(1)
    versions = defaultdict(list)
    for a in one:
        versions[a.alert_id].append(a.count)
    # Event by event, each version counts one more: the newer record of an id supersedes the older, and no
    # event of a window is left out of it.
    assert all(counts == list(range(1, len(counts) + 1)) for counts in versions.values())
    assert max(len(c) for c in versions.values()) > 10


def test_after_a_restart_the_alerts_are_identical(by_500):
    """A worker whose state round-trips through its tables (encode, decode) stops in the middle of the
    largest window, having committed 100 records less than it applied; a fresh one (nothing in memory, a
    cache of 3 identities) gets those again: it skips what was applied and grows the windows the first one
    opened."""
    decisions, sent = by_500
    records = [replace(r, position=i) for i, r in enumerate(RAWS)]
    index = {(r.topic, r.offset): i for i, r in enumerate(records)}
    largest = max(_windows(decisions).values(), key=len)
    stop = index[(largest[len(largest) // 2].topic, largest[len(largest) // 2].offset)]
    tables = Tables()
    first = tables.worker()
    before = []
    for i in range(0, stop, 70):
        res = first.process(records[i : min(i + 70, stop)])
        tables.write(first, res)
        before += res.alerts
    second = tables.worker(state_cache_identities=3)
    after, skipped = [], 0
    for i in range(stop - 100, len(records), 70):
        res = second.process(records[i : i + 70])
        tables.write(second, res)
        skipped += res.skipped
        after += res.alerts
    assert skipped > 0
    # The window open at the stop goes on counting where it was (its id sent by both workers).
    grown = {a.alert_id for a in before} & {a.alert_id for a in after}
    assert any(a.count > len(largest) // 2 for a in after if a.alert_id in grown)
    assert final(before + after) == final(sent)


def test_the_window_length_is_configurable(by_500):
    decisions, sent = run(500, alert_window_s=60)
    alerts = final(sent)
    assert all(a.window_end_ms - a.window_start_ms == 60_000 for a in alerts.values())
    assert {(a.identity, a.rule, a.window_start_ms) for a in alerts.values()} == set(
        _windows(decisions, 60_000)
    )
    assert len(alerts) > len(final(by_500[1]))


def test_revokes_the_breaker_held_are_alerted_in_windows_with_their_command_ids():
    decisions, sent = run(500, breaker_max_revokes=0)  # every REVOKE waits for an operator
    held = [a for a in final(sent).values() if a.rule == BREAKER_RULE]
    assert held and all(a.policy == BREAKER_POLICY and a.verdict == "HELD" for a in held)
    truth = _windows(decisions)
    for a in held:
        ds = truth[(a.identity, BREAKER_RULE, a.window_start_ms)]
        commands = list(dict.fromkeys(c.command_id for d in ds for c in d.commands if c.held))
        assert a.command_ids == tuple(commands[:MAX_IDS]) and a.command_ids_total == len(commands)
        assert a.summary.startswith(f"{len(commands)} REVOKE command(s) held (circuit breaker")


def test_a_policys_runbook_is_in_its_alerts_and_must_be_a_url(tmp_path):
    shutil.copytree(REPO_ROOT / "policies", tmp_path / "p")
    rego = tmp_path / "p" / "ci" / "release_artifacts.rego"
    text = rego.read_text()
    url = "https://runbooks.example.org/nhiguard/ci-release-artifacts"
    rego.write_text(re.sub(r"(#   severity: .*\n)", rf"\1#   runbook: {url}\n", text, count=1))
    bundle = load_bundle(tmp_path / "p")
    c = core(bundle)
    res = c.process(raw_records([r for r in generate(PARAMS) if r.label == "incident:ci"]))
    (alert,) = res.alerts
    assert alert.policy == "ci.release_artifacts" and alert.runbook == url
    rego.write_text(re.sub(r"(#   severity: .*\n)", r"\1#   runbook: javascript:alert(1)\n", text, count=1))
    with pytest.raises(BundleError, match=r"custom\.runbook must be an http"):
        load_bundle(tmp_path / "p")


# -- the windows an identity keeps (decision/alert_state.py) ----------------------------------------------
def _event(rule, at_ms, n, evidence=None):
    return Alerted(
        identity="me",
        rule=rule,
        start_ms=at_ms // WINDOW_MS * WINDOW_MS,
        at_ms=at_ms,
        event_id=f"e{n}",
        decision_id=f"d{n}",
        verdict="DENY",
        command_ids=(f"c{n}",),
        evidence=evidence or {"identity": ["me"], "resource": [f"asset:{n}"]},
        policy="ci.x",
        severity="high",
        title="t",
        attack=(),
        runbook="",
        reason=f"reason {n}",
    )


def _apply(state, e):
    e.apply(state)
    return snapshot(e, state, WINDOW_MS, "rev")


def test_beyond_the_bound_the_oldest_windows_go_and_a_late_event_gets_an_alert_of_its_own():
    state = IdentityState()
    first = _apply(state, _event("r", 0, 0))
    for k in range(1, MAX_WINDOWS + 2):
        _apply(state, _event("r", k * WINDOW_MS, k))
    assert len(state.alerts.windows) == MAX_WINDOWS and state.alerts.floor_ms == WINDOW_MS
    # An event of a window forgotten: were it counted under that window's id, its count (1) would replace
    # the alert already sent for it. It opens the identity's first late window instead, under another id.
    late = _apply(state, _event("r", 5, 100))
    assert late.late == 1 and late.alert_id != first.alert_id and late.count == 1
    assert late.alert_id == alert_id("me", state.alerts.windows[("r", 0)])
    assert ("r", 0) in state.alerts.windows, "the window an event just grew is never the one forgotten"
    again = _apply(state, _event("r", 7, 101))
    assert (again.alert_id, again.count, again.late) == (late.alert_id, 2, 1)
    # A rule never seen, in a window at or below the floor: late too (the floor is one for all rules).
    assert _apply(state, _event("other", WINDOW_MS, 102)).late == 2
    # The windows, the floor and the late count survive encoding.
    back = decode_identity_state(encode_identity_state(state))
    assert back.alerts == state.alerts
    assert b'"w"' not in encode_identity_state(IdentityState()), "an identity that never alerted: no windows"


def test_an_alert_keeps_bounded_evidence_and_ids_and_counts_what_it_leaves_out():
    w = AlertWindow("r", 0)
    for n in range(3 * MAX_IDS):
        w.grow(n, f"e{n}", f"d{n}", "DENY", (f"c{n}a", f"c{n}b"))
        w.absorb({"files": [f"{n:02d}" + "x" * 60], "files_more": ["2"]})
    assert w.count == 3 * MAX_IDS and w.decision_ids == [f"d{n}" for n in range(MAX_IDS)]
    assert len(w.command_ids) == MAX_IDS and w.commands == 6 * MAX_IDS
    assert len(w.evidence["files"]) == EVIDENCE_VALUES
    # Each value left out counts, and so do those the findings' own evidence had left out.
    assert w.evidence["files_more"] == [str(3 * MAX_IDS - EVIDENCE_VALUES + 2 * 3 * MAX_IDS)]
    w.absorb({"tags": ["y" * EVIDENCE_CHARS]})  # past the characters an alert keeps
    assert "tags" not in w.evidence and w.evidence["tags_more"] == ["1"]
    assert (
        sum(len(v) for k, vs in w.evidence.items() if not k.endswith("_more") for v in vs) <= EVIDENCE_CHARS
    )
    assert (w.first_event, w.last_event) == ("e0", f"e{3 * MAX_IDS - 1}")
    w.grow(-5, "early", "d-early", "REVOKE", ())  # an event earlier than the first: the first now
    assert (w.first_ms, w.first_event, w.verdict) == (-5, "early", "REVOKE")
