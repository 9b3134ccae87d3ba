"""The decision core: a batch of raw records in, decisions, commands, alerts and dead letters out.

adapt -> enrich -> evaluate (Rego, one query per domain per wave) -> score, learn (per identity, in order)
-> evaluate the anomaly stage for flagged events (with `input.anomaly`) -> decide.

Batches are cut into *waves*: an event whose facts depend on the decision of an earlier, not yet decided
event of the same batch (an install of a version whose publish is pending, a release of a package whose
previous release is pending) starts a new wave. So the result never depends on where batch boundaries fall:
a record reprocessed after a crash is decided the same way.
"""

from __future__ import annotations

import hashlib
import threading
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Protocol

from nhiguard.decision.adapters import adapt, external_principals
from nhiguard.decision.context import (
    ContextState,
    Identity,
    Inventory,
    StateStore,
    encode_identity_state,
)
from nhiguard.decision.decide import apply_waivers, commands_for, to_findings, verdict_of
from nhiguard.decision.facts import Publish
from nhiguard.decision.policy import ANOMALY_STAGE, Failure, PolicyBundle, RegoEvaluator
from nhiguard.decision.records import (
    AdapterError,
    Alert,
    BatchResult,
    CanonicalEvent,
    DeadLetter,
    Decision,
    Finding,
    RawRecord,
    stable_id,
)
from nhiguard.models.anomaly import ANOMALY_THRESHOLD, AnomalyModels
from nhiguard.settings import Settings


def dead_letter(rec: RawRecord, reason: str, detail: str, limit: int) -> DeadLetter:
    truncated = len(rec.value) > limit
    return DeadLetter(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        reason=reason,
        detail=detail,
        original=rec.value[:limit] if truncated else rec.value,
        original_length=len(rec.value),
        original_sha256=hashlib.sha256(rec.value).hexdigest(),
        truncated=truncated,
        timestamp_ms=rec.timestamp_ms,
        headers=rec.headers,
    )


class Evaluator(Protocol):
    """What the core needs from a policy engine: RegoEvaluator in process, EnginePool out of process."""

    def evaluate_isolating(
        self, domain: str, inputs: list[dict[str, Any]]
    ) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]: ...


@dataclass
class _Pending:
    rec: RawRecord
    ev: CanonicalEvent
    identity: Identity | None
    policy_input: dict[str, Any]
    anomaly: tuple[float, bool, dict[str, float]] = (0.0, False, {})


def identity_facts(identity: Identity | None, ev: CanonicalEvent) -> dict[str, Any]:
    """What the policies know about who acted: from the inventory, judged at the event's time."""
    if identity is None:
        return {
            "known": False,
            # A principal outside the organisation (its source says so) is "external", not unknown.
            "kind": "human"
            if ev.actor.human
            else "external"
            if external_principals(ev.source)
            else "unknown",
            "trust_tier": 0,
            "expired": False,
            "action_allowed": True,  # nothing to hold it against; the unknown_identity rule covers it
        }
    return {
        "known": True,
        "kind": identity.kind,
        "trust_tier": identity.trust_tier,
        "team": identity.team,
        "expired": identity.expires_ms is not None and ev.occurred_at_ms >= identity.expires_ms,
        "action_allowed": identity.allows(ev.action),
    }


class DecisionCore:
    def __init__(
        self,
        settings: Settings,
        bundle: PolicyBundle,
        inventory: Inventory | None = None,
        state: ContextState | None = None,
        anomaly: AnomalyModels | None = None,
        evaluator: Evaluator | None = None,
        store: StateStore | None = None,
    ) -> None:
        self.settings = settings
        self.inventory = inventory or Inventory()
        self.state = state or ContextState(store, max_cached=settings.state_cache_identities)
        self.anomaly = anomaly or AnomalyModels(warmup_events=settings.anomaly_warmup_events)
        self.state.on_identity_load = self._on_identity_load
        # A bundle swap waits for the batch in progress: one batch is decided by one bundle revision.
        self._lock = threading.Lock()
        self.load_bundle(bundle, evaluator)

    def load_bundle(self, bundle: PolicyBundle, evaluator: Evaluator | None = None) -> Evaluator | None:
        """Swap in a bundle and its evaluator (in process unless one is given, e.g. an EnginePool) between
        batches; returns the evaluator it replaced, for the caller to close."""
        with self._lock:
            previous = getattr(self, "evaluator", None)
            self.evaluator = evaluator or RegoEvaluator(bundle)
            self.bundle = bundle
        return previous

    def drop_cached_state(self) -> None:
        """Forget the state held in memory (it is read back from the store on next use). For a worker whose
        partitions may have moved; a no-op without a store, where memory is all the state there is."""
        with self._lock:
            if self.state.store is None:
                return
            self.state.identities.clear()
            self.state.packages.clear()
            self.anomaly = AnomalyModels(warmup_events=self.settings.anomaly_warmup_events)

    # -------------------------------------------------------------------------------------------------------
    def read(self, rec: RawRecord) -> CanonicalEvent | DeadLetter:
        """One record as a canonical event, or the dead letter that says why it cannot be one."""
        limit = self.settings.deadletter_prefix_bytes
        if len(rec.value) > self.settings.max_record_bytes:
            detail = f"{len(rec.value)} bytes > limit {self.settings.max_record_bytes}"
            return dead_letter(rec, "oversized", detail, limit)
        try:
            return adapt(rec, self.settings.topics.domain_of(rec.topic))
        except AdapterError as exc:
            return dead_letter(rec, exc.reason, exc.detail, limit)

    def route(self, records: list[RawRecord]) -> tuple[list[tuple[str, RawRecord]], list[DeadLetter]]:
        """The stateless first stage of the worker: each record that adapts, with the canonical identity its
        state is kept under (the key it is repartitioned by), and a dead letter for each that does not.
        Pure and lock-free: adapters keep no state."""
        routed: list[tuple[str, RawRecord]] = []
        deadletters = []
        for rec in records:
            ev = self.read(rec)
            if isinstance(ev, DeadLetter):
                deadletters.append(ev)
            else:
                routed.append((ev.actor.id, rec))
        return routed, deadletters

    def process(self, records: list[RawRecord]) -> BatchResult:
        """Decide a batch of records in order: each is read (adapted, or dead-lettered), then decided."""
        return self.process_read([(rec, self.read(rec)) for rec in records])

    def process_read(self, read: list[tuple[RawRecord, CanonicalEvent | DeadLetter]]) -> BatchResult:
        """Decide records already read (a stage that reads them first, to choose which to decide)."""
        with self._lock:
            return self._process(read)

    def _on_identity_load(self, identity: str, model: bytes | None) -> None:
        # An identity's model is loaded with its facts (one table value), or starts fresh with them.
        if model is not None:
            self.anomaly.restore(identity, model)
        else:
            self.anomaly.forget(identity)

    def _process(self, read: list[tuple[RawRecord, CanonicalEvent | DeadLetter]]) -> BatchResult:
        result = BatchResult()
        wave: list[_Pending] = []
        pending_writes: set[str] = set()
        for rec, ev in read:
            if isinstance(ev, DeadLetter):
                result.deadletters.append(ev)
                continue
            key = ContextState.reads(ev)
            if key is not None and key in pending_writes:
                self._run_wave(wave, result)
                wave, pending_writes = [], set()
            wave.append(self._enrich(rec, ev))
            if (w := ContextState.writes(ev)) is not None:
                pending_writes.add(w)
        self._run_wave(wave, result)
        result.alerts = self._alerts(result.decisions)
        if self.state.store is not None:
            ids, result.package_state = self.state.take_dirty()
            result.identity_state = {
                i: encode_identity_state(self.state.identities[i], self.anomaly.export(i)) for i in ids
            }
            for identity in self.state.evict():
                self.anomaly.forget(identity)
        return result

    def policy_inputs(self, records: list[RawRecord]) -> list[dict[str, Any]]:
        """The first-stage policy input the worker would build for each record that adapts (for benchmarks
        and tooling). Enriches in order, so it advances the context state like processing does."""
        out = []
        for rec in records:
            ev = self.read(rec)
            if not isinstance(ev, DeadLetter):
                out.append(self._enrich(rec, ev).policy_input)
        return out

    def _enrich(self, rec: RawRecord, ev: CanonicalEvent) -> _Pending:
        identity = None if ev.actor.human else self.inventory.get(ev.actor.id)
        # No NHI rule applies to a person: no state kept for them either.
        ctx = {} if ev.actor.human else self.state.observe(ev)
        if isinstance(ev.facts, Publish):
            installs = self.state.installers(ev.facts.package, ev.facts.version)
            ctx["prior_installers"] = [
                {"id": who, "known": self.inventory.get(who) is not None}
                for who in sorted({w for w, _ in installs})
            ]
        # Only the fields the policies read go to the engine: conversion cost grows with the input.
        pin: dict[str, Any] = {
            "domain": ev.domain,
            "action": ev.action,
            "actor": ev.actor.id,
            "resource_id": ev.resource_id,
            "identity": identity_facts(identity, ev),
            "context": ctx,
        }
        if ev.facts is not None:
            pin[ev.facts.family] = ev.facts.policy_input()
        return _Pending(rec, ev, identity, pin)

    def _run_wave(self, wave: list[_Pending], result: BatchResult) -> None:
        if not wave:
            return
        raw: dict[int, list[dict[str, Any]] | None] = {}
        errors: dict[int, Failure] = {}
        by_domain: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(wave):
            if p.ev.actor.human:
                raw[i] = []  # no NHI rule applies to a human principal: decided (allow) and counted
                result.human_events += 1
            else:
                by_domain[p.ev.domain].append(i)
        for domain, idxs in by_domain.items():
            self._evaluate(domain, [wave[i].policy_input for i in idxs], idxs, raw, errors)
        limit = self.settings.deadletter_prefix_bytes
        # First stage decided; now score each event in order (score, then learn from what was allowed).
        decided: list[tuple[_Pending, list[Finding]]] = []
        flagged: list[int] = []
        for i, p in enumerate(wave):
            failure = errors.get(i) or (
                Failure("policy_evaluation_error", "no result") if raw.get(i) is None else None
            )
            if failure is not None and failure.reason == "policy_engine_timeout":
                # The engine may answer this event given time, but not within the deadline: the domain's
                # failure mode decides (a gate fails closed), and the SOC is told either way.
                findings = self._findings(p, [self._failure_finding(p.ev.domain, failure)])
            elif failure is not None:
                result.deadletters.append(dead_letter(p.rec, failure.reason, failure.detail, limit))
                continue
            else:
                findings = self._findings(p, raw[i] or [])
            if self._score(p, verdict_of(findings)):
                flagged.append(len(decided))
            decided.append((p, findings))
        # Second stage: the anomaly policies see the flagged events with their score. Flagged events are
        # never learned from, so what this stage decides cannot change any later score.
        if flagged and self.bundle.for_plan(ANOMALY_STAGE):
            second: dict[int, list[dict[str, Any]] | None] = {}
            errs: dict[int, Failure] = {}
            inputs = [decided[k][0].policy_input for k in flagged]
            self._evaluate(ANOMALY_STAGE, inputs, flagged, second, errs)
            for k in flagged:
                p, findings = decided[k]
                extra = (
                    [self._failure_finding(p.ev.domain, errs[k])]
                    if k in errs or second.get(k) is None
                    else second[k] or []
                )
                decided[k] = (p, findings + self._findings(p, extra))
        for p, findings in decided:
            result.decisions.append(self._decide(p, findings))

    def _evaluate(
        self,
        plan: str,
        inputs: list[dict[str, Any]],
        idxs: list[int],
        out: dict[int, list[dict[str, Any]] | None],
        errors: dict[int, Failure],
    ) -> None:
        found, errs = self.evaluator.evaluate_isolating(plan, inputs)
        for j, i in enumerate(idxs):
            out[i] = found[j]
            if j in errs:
                errors[i] = errs[j]

    def _failure_finding(self, domain: str, failure: Failure) -> dict[str, Any]:
        closed = self.bundle.failure_mode.get(domain, "closed") == "closed"
        return {
            "policy": f"{domain}.engine",
            "rule": "no_answer",  # -> "<domain>.engine.no_answer", see records.is_engine_failure
            "effect": "deny" if closed else "alert",
            "reason": f"policy engine gave no answer in time; failing {'closed' if closed else 'open'}",
        }

    def _findings(self, p: _Pending, raw: list[dict[str, Any]]) -> list[Finding]:
        known_installers = tuple(
            i["id"] for i in p.policy_input["context"].get("prior_installers", ()) if i["known"]
        )
        return apply_waivers(to_findings(raw, self.bundle, known_installers), p.ev, self.bundle.waivers)

    def _score(self, p: _Pending, verdict: str) -> bool:
        """Score the event against its identity's baseline, then learn from it if it was allowed and looked
        normal. Puts the score into the event's policy input; True when the event is flagged."""
        if p.ev.actor.human:
            p.anomaly = (0.0, False, {})
            return False
        score, warm, x = self.anomaly.score(p.ev)
        # Never learn from an event that was denied or looked anomalous: that is how baselines get poisoned.
        if verdict == "ALLOW" and (not warm or score < ANOMALY_THRESHOLD):
            self.anomaly.learn(p.ev, x)
        p.anomaly = (score, warm, x)
        top = sorted(x.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        p.policy_input["anomaly"] = {
            "score": round(score, 6),
            "warm": warm,
            "threshold": ANOMALY_THRESHOLD,
            "top": [{"feature": k, "value": round(v, 6)} for k, v in top],
        }
        return warm and score >= ANOMALY_THRESHOLD

    def _decide(self, p: _Pending, findings: list[Finding]) -> Decision:
        ev = p.ev
        verdict = verdict_of(findings)
        score, warm, x = p.anomaly
        ids = {ev.actor.id: p.identity}
        for f in findings:
            for who in f.identities:
                ids.setdefault(who, self.inventory.get(who))
        decision = Decision(
            decision_id=stable_id("decision", p.rec.topic, p.rec.partition, p.rec.offset, ev.event_id),
            event=ev,
            topic=p.rec.topic,
            partition=p.rec.partition,
            offset=p.rec.offset,
            verdict=verdict,
            shadow_verdict=verdict_of(
                [replace(f, mode="enforce") if f.mode == "shadow" else f for f in findings]
            ),
            findings=findings,
            anomaly_score=round(score, 6),
            anomaly_warm=warm,
            anomaly_features={k: round(v, 6) for k, v in x.items()},
            identity_known=p.identity is not None,
            identity_kind=p.policy_input["identity"]["kind"],
            bundle_revision=self.bundle.revision,
        )
        decision.commands = commands_for(
            ev,
            findings,
            ids,
            self.state,
            self.bundle.revision,
            self.settings.deny_ttl_s * 1000,
            self.settings.revoke_ttl_s * 1000,
        )
        self.state.record_decision(decision)
        return decision

    def _alerts(self, decisions: list[Decision]) -> list[Alert]:
        """One alert per (identity, policy rule) per batch, with a count: the SOC sees bursts, not floods."""
        groups: dict[tuple[str, str], list[tuple[Decision, Any]]] = defaultdict(list)
        for d in decisions:
            for f in d.findings:
                groups[(d.event.actor.id, f.rule)].append((d, f))
        alerts = []
        for (identity, rule), items in groups.items():
            first, last = items[0][0], items[-1][0]
            f = items[0][1]
            verdict = "REVOKE" if any(d.verdict == "REVOKE" for d, _ in items) else items[0][0].verdict
            alerts.append(
                Alert(
                    alert_id=stable_id("alert", identity, rule, first.event.event_id),
                    identity=identity,
                    policy=f.policy,
                    rule=rule,
                    severity=f.severity,
                    verdict=verdict if f.mode == "enforce" else f.mode.upper(),
                    count=len(items),
                    first_event_id=first.event.event_id,
                    last_event_id=last.event.event_id,
                    first_seen_ms=first.event.occurred_at_ms,
                    last_seen_ms=last.event.occurred_at_ms,
                    summary=f.reason
                    if len(items) == 1
                    else f"{len(items)}x {rule}; last: {items[-1][1].reason}",
                    bundle_revision=self.bundle.revision,
                    title=f.title,
                    attack=f.attack,
                )
            )
        return alerts
