"""Alerts for the SOC: one per identity and rule per event-time window, updated while the window grows.

Every finding of a decision (enforced, shadow or waived; an engine failure's too) counts its event in the
window of the acting identity and the finding's rule that holds the event's time. Windows are aligned,
[k*W, (k+1)*W) with W = NHIGUARD_ALERT_WINDOW_S, so the window an event falls in depends on its time alone:
never on batch cuts, the order batches come in, or a restart. REVOKEs the circuit breaker held count the same
way under the rule `nhiguard.breaker.revoke_held`, for the identity whose event asked for them.

The alert id is stable_id("alert", identity, rule, window start) (a late window's also carries its number:
decision/alert_state.py), so reprocessing yields the same ids. The window is state (alert_state.py, in the
identity's value, written by the `Alerted` effect in event order like every other), and each batch that grows
a window emits its alert again, whole, under the same id: the newer record of an id supersedes the older (the
alerts topic is keyed by alert id), and the last one is the same whatever the batch sizes were, and after a
restart. Nothing is dropped: lists that are capped say how many they had (`count` decisions,
`command_ids_total` commands, `<key>_more` evidence values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nhiguard.decision.alert_state import VERDICT_RANK, AlertWindow
from nhiguard.decision.breaker import POLICY as BREAKER_POLICY
from nhiguard.decision.breaker import RULE as BREAKER_RULE
from nhiguard.decision.effects import IdentityEffect
from nhiguard.decision.evidence import merge
from nhiguard.decision.identity_state import IdentityState
from nhiguard.decision.records import Alert, Decision, Evidence, Finding, stable_id


@dataclass(frozen=True, slots=True)
class Alerted(IdentityEffect):
    """One event counted in the alert window of its identity and a rule; with what its alert says besides
    the window (the rule's metadata and this event's reason: each event brings its own, so none is stored)."""

    identity: str
    rule: str
    start_ms: int
    at_ms: int
    event_id: str
    decision_id: str
    verdict: str
    command_ids: tuple[str, ...]
    evidence: Evidence = field(hash=False)
    policy: str
    severity: str
    title: str
    attack: tuple[str, ...]
    runbook: str
    reason: str

    def apply(self, state: IdentityState) -> bool:
        w = state.alerts.window(self.rule, self.start_ms)
        w.grow(self.at_ms, self.event_id, self.decision_id, self.verdict, self.command_ids)
        w.absorb(self.evidence)
        state.alerts.bound(w)
        return True


def window_start(at_ms: int, window_ms: int) -> int:
    return at_ms - at_ms % window_ms


def of_decision(d: Decision, window_ms: int, runbooks: Mapping[str, str]) -> list[Alerted]:
    """The alert windows a decision counts in: one per rule among its findings, and the breaker's when it
    has held REVOKEs. `runbooks` maps policy ids to their METADATA runbook."""
    by_rule: dict[str, list[Finding]] = {}
    for f in d.findings:
        by_rule.setdefault(f.rule, []).append(f)
    ev = d.event
    at = {
        "identity": ev.actor.id,
        "start_ms": window_start(ev.occurred_at_ms, window_ms),
        "at_ms": ev.occurred_at_ms,
        "event_id": ev.event_id,
        "decision_id": d.decision_id,
    }
    out = []
    for rule, fs in by_rule.items():
        last = fs[-1]
        verdict = max((d.verdict if f.mode == "enforce" else f.mode.upper() for f in fs), key=_rank)
        commands = tuple(dict.fromkeys(c.command_id for c in d.commands if rule in c.rule_ids))
        out.append(
            Alerted(
                **at,
                rule=rule,
                verdict=verdict,
                command_ids=commands,
                evidence=merge(f.evidence for f in fs),
                policy=last.policy,
                severity=last.severity,
                title=last.title,
                attack=last.attack,
                runbook=runbooks.get(last.policy, ""),
                reason=last.reason,
            )
        )
    held = [c for c in d.commands if c.held]
    if held:
        out.append(
            Alerted(
                **at,
                rule=BREAKER_RULE,
                verdict="HELD",
                command_ids=tuple(dict.fromkeys(c.command_id for c in held)),
                evidence=merge(c.evidence for c in held),
                policy=BREAKER_POLICY,
                severity="high",
                title="REVOKE held by the circuit breaker",
                attack=(),
                runbook="",
                reason=held[-1].hold,
            )
        )
    return out


def _rank(verdict: str) -> int:
    return VERDICT_RANK.get(verdict, 0)


def alert_id(identity: str, w: AlertWindow) -> str:
    if w.late:
        return stable_id("alert", identity, w.rule, w.start_ms, "late", w.late)
    return stable_id("alert", identity, w.rule, w.start_ms)


def snapshot(e: Alerted, state: IdentityState, window_ms: int, revision: str) -> Alert:
    """The alert of the window event `e` grew, as `e` left it (applied to `state` just before)."""
    w = state.alerts.windows[(e.rule, e.start_ms)]  # the window an event grew is always kept
    if e.rule == BREAKER_RULE:
        summary = (
            f"{w.commands} REVOKE command(s) held ({e.reason}); review them, then "
            "`nhiguard commands release COMMAND_ID…`"
        )
    else:
        summary = e.reason if w.count == 1 else f"{w.count}x {e.rule}; last: {e.reason}"
    return Alert(
        alert_id=alert_id(e.identity, w),
        identity=e.identity,
        policy=e.policy,
        rule=e.rule,
        severity=e.severity,
        verdict=w.verdict,
        count=w.count,
        first_event_id=w.first_event,
        last_event_id=w.last_event,
        first_seen_ms=w.first_ms,
        last_seen_ms=w.last_ms,
        summary=summary,
        bundle_revision=revision,
        title=e.title,
        attack=e.attack,
        evidence={k: list(vs) for k, vs in w.evidence.items()},
        command_ids=tuple(w.command_ids),
        window_start_ms=w.start_ms,
        window_end_ms=w.start_ms + window_ms,
        decision_ids=tuple(w.decision_ids),
        command_ids_total=w.commands,
        late=w.late,
        runbook=e.runbook,
    )


def latest(alerts: list[Alert]) -> list[Alert]:
    """The last version of each alert a batch made, in the order the batch first touched them."""
    out: dict[str, Alert] = {}
    for a in alerts:
        out[a.alert_id] = a  # a key set again keeps its place
    return list(out.values())
