"""The decision core: a batch of raw records in, decisions, commands, alerts and dead letters out.

One direction, one record at a time, in order:

    adapt -> enrich (reads) -> evaluate (Rego) -> score (its baseline) -> [evaluate the anomaly stage, if
    flagged] -> decide (verdict, commands, the effects it wants) -> breaker (holds REVOKEs over its limits)
    -> apply (the one writer: state, learning, the breaker's window)

Evaluation is batched (one query per domain for many events: per-call overhead dominates), so a batch is
cut into *waves*: every event of a wave is enriched and evaluated together, then scored, decided and applied
one by one, in order. An event's enrichment sees what earlier events of its wave observed (StateView), but
not their decisions: an event whose facts depend on the decision of an earlier event of the same batch (an
install of a version whose publish is pending, a release of a package whose previous release is pending)
starts a new wave. So the result never depends on where batch boundaries fall: a record reprocessed after a
crash is decided the same way.

The core knows no positions and no redelivery: the worker's stateful stage (streams/state.py) decides which
records to give it. Nor does it fetch anything: a `lookup` given to it (nhiguard/lookup.py) puts the registry
documents a batch wants into its events before the pure part runs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from nhiguard.decision import alerts, breaker, evidence
from nhiguard.decision.adapters import adapt
from nhiguard.decision.context import Identities, Identity, Inventory
from nhiguard.decision.deadletters import dead_letter
from nhiguard.decision.decide import (
    Enforcement,
    apply_waivers,
    decide,
    revoked_rules,
    to_findings,
    verdict_of,
)
from nhiguard.decision.enrich import Enriched, enrich
from nhiguard.decision.headers import REDRIVEN_FROM, redriven_from
from nhiguard.decision.records import (
    AdapterError,
    BatchResult,
    CanonicalEvent,
    Command,
    DeadLetter,
    Decision,
    Finding,
    RawRecord,
    UnreadValue,
    stable_id,
)
from nhiguard.decision.state import State, StateStore, StateView
from nhiguard.models.anomaly import Baseline, Score
from nhiguard.models.kinds import NO_PRIOR, kind_priors
from nhiguard.policy.bundle import ANOMALY_STAGE, PolicyBundle
from nhiguard.policy.engines import ERROR, WHAT_FAILED, Evaluator, Failure
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.settings import Settings

if TYPE_CHECKING:
    from nhiguard.lookup import RegistryLookup

Read = tuple[RawRecord, CanonicalEvent | DeadLetter]


class DecisionCore:
    def __init__(
        self,
        settings: Settings,
        bundle: PolicyBundle,
        inventory: Identities | None = None,
        evaluator: Evaluator | None = None,
        store: StateStore | None = None,
        lookup: RegistryLookup | None = None,
        body_time: bool | None = None,
    ) -> None:
        self.settings = settings
        # Decide on the body's time whatever it says: history (a sandbox, an offline replay of old records).
        self.body_time = settings.body_time if body_time is None else body_time
        self.lookup = lookup  # the fetch step before the core (None: no registry documents are looked up)
        self.inventory: Identities = inventory if inventory is not None else Inventory()
        self.state = State(store, max_cached=settings.state_cache_identities)
        self._skew_ms = int(settings.max_time_skew_s * 1000)
        self._window_ms = settings.alert_window_s * 1000  # alerts group events in windows this long
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
            self._priors = kind_priors(bundle.data)  # the anomaly model's per-kind priors
            self._runbooks = {m.policy_id: m.runbook for m in bundle.modules if m.runbook}
            self._enforcement = Enforcement(
                bundle.revision, self.settings.deny_ttl_s * 1000, self.settings.revoke_ttl_s * 1000
            )
            self._limits = breaker.BreakerLimits(
                self.settings.breaker_window_s * 1000,
                self.settings.breaker_max_revokes,
                self.settings.breaker_max_revokes_per_kind,
            )
        return previous

    def drop_cached_state(self) -> None:
        """Forget the state held in memory (it is read back from the store on next use). For a worker whose
        partitions may have moved; a no-op without a store, where memory is all the state there is."""
        with self._lock:
            self.state.clear()

    # -------------------------------------------------------------------------------------------------------
    def read(self, rec: RawRecord) -> CanonicalEvent | DeadLetter:
        """One record as a canonical event, or the dead letter that says why it cannot be one."""
        limit = self.settings.deadletter_prefix_bytes
        if isinstance(rec.value, UnreadValue):
            return dead_letter(rec, rec.value.reason, rec.value.detail, limit)
        if len(rec.value) > self.settings.max_record_bytes:
            detail = f"{len(rec.value)} bytes > limit {self.settings.max_record_bytes}"
            return dead_letter(rec, "oversized", detail, limit)
        try:
            domain = self.settings.topics.domain_of(rec.topic)
            ev = adapt(rec, domain, self.settings.formats.of(domain))
        except AdapterError as exc:
            return dead_letter(rec, exc.reason, exc.detail, limit)
        return self._timed(self._resolved(ev), rec.timestamp_ms)

    def _timed(self, ev: CanonicalEvent, received_ms: int) -> CanonicalEvent:
        """The event at the time it is decided at. The body's writer chose its time (a gate request's: the job
        judged), which decides waivers and expiries. Live, one beyond the bound from the receive time is
        replaced by it (kept as claimed_at_ms); history, and a record without a broker time, keep it."""
        if received_ms <= 0:
            return ev
        ev.received_at_ms = received_ms
        if not self.body_time and abs(ev.occurred_at_ms - received_ms) > self._skew_ms:
            ev.claimed_at_ms, ev.occurred_at_ms = ev.occurred_at_ms, received_ms
        return ev

    def _resolved(self, ev: CanonicalEvent) -> CanonicalEvent:
        """The event under the inventory's id for its actor, where the adapter's id is an alias (a workflow's
        jobs, named by the workflow's name, belong to the workflow, inventoried by its file), or where its
        facts name another id it may be inventoried under (a workload's pod labels). Here, before routing and
        state: the worker keys, keeps and decides an identity's events as one, as replay does."""
        if ev.actor.human:
            return ev
        identity = self.inventory.get(ev.actor.id)
        for other in ev.facts.joins() if identity is None and ev.facts is not None else ():
            if (identity := self.inventory.get(other)) is not None:
                break
        if identity is None or identity.id == ev.actor.id:
            return ev
        return replace(ev, actor=replace(ev.actor, id=identity.id))

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

    def process_read(self, read: list[Read]) -> BatchResult:
        """Decide records already read (by a stage that reads them first, to choose which to decide)."""
        if self.lookup is not None:
            read = self.lookup.annotate(read)  # evidence into the events, before the pure core
        with self._lock:
            result = BatchResult()
            wave: list[Enriched] = []
            view = StateView(self.state, self.inventory)
            pending: set[str] = set()  # what the decisions of the wave's events may change
            for rec, ev in read:
                if isinstance(ev, DeadLetter):
                    result.deadletters.append(ev)
                    continue
                if ev.facts is not None and ev.facts.reads() in pending:
                    self._run_wave(wave, result)
                    wave, pending, view = [], set(), StateView(self.state, self.inventory)
                item = enrich(view, self.inventory, rec, ev)
                view.observe(item.observed)
                wave.append(item)
                if ev.facts is not None and (key := ev.facts.writes()) is not None:
                    pending.add(key)
            self._run_wave(wave, result)
            result.alerts = alerts.latest(result.alerts)  # a window's last version in this batch
            result.identity_state, result.package_state = self.state.take_changed()
            result.breaker_state = self.state.take_breaker()
            self.state.evict()
            return result

    def policy_inputs(self, records: list[RawRecord]) -> list[dict[str, Any]]:
        """The first-stage policy input the worker would build for each record that adapts, as one wave (for
        benchmarks and tooling; decides nothing and changes no state)."""
        view = StateView(self.state, self.inventory)
        out = []
        for rec in records:
            ev = self.read(rec)
            if not isinstance(ev, DeadLetter):
                item = enrich(view, self.inventory, rec, ev)
                view.observe(item.observed)
                out.append(item.policy_input)
        return out

    # -------------------------------------------------------------------------------------------------------
    def _run_wave(self, wave: list[Enriched], result: BatchResult) -> None:
        if not wave:
            return
        raw: dict[int, list[dict[str, Any]] | None] = {}
        errors: dict[int, Failure] = {}
        by_domain: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(wave):
            if item.ev.actor.human:
                raw[i] = []  # no NHI rule applies to a human principal: decided (allow) and counted
                result.human_events += 1
            else:
                by_domain[item.ev.domain].append(i)
        for domain, idxs in by_domain.items():
            found, errs = self.evaluator.evaluate_isolating(domain, [wave[i].policy_input for i in idxs])
            for j, i in enumerate(idxs):
                raw[i] = found[j]
                if j in errs:
                    errors[i] = errs[j]
        for i, item in enumerate(wave):
            failure = errors.get(i) or (Failure(ERROR, "no result") if raw.get(i) is None else None)
            # Whatever the engine failure (error, crash, timeout, no engine), the domain's failure mode
            # decides the event (a gate fails closed) and the alert tells the SOC. No dead letter besides: the
            # event was read and decided, so each input still has exactly one outcome.
            found = (raw[i] or []) if failure is None else [self._failure_finding(item.ev, failure)]
            self._decide(item, self._findings(item, found), result)

    def _decide(self, item: Enriched, findings: list[Finding], result: BatchResult) -> None:
        """Score, the anomaly stage if flagged, decide, apply: one event, after every earlier one."""
        ev = item.ev
        me = None if ev.actor.human else self.state.identity(ev.actor.id)
        # An address inside the networks the inventory declares for the credential is vouched for.
        vouched = item.policy_input.get("identity", {}).get("address_in_networks") is True
        score = None if me is None else self._score(me.model, ev, item.identity_kind, vouched)
        if score is not None and me is not None and score.judged and self.bundle.for_plan(ANOMALY_STAGE):
            revoked = revoked_rules(me.facts, ev.actor.id, ev.occurred_at_ms)
            findings = findings + self._anomaly_stage(item, score, verdict_of(findings), revoked)
        ids = {ev.actor.id: item.identity}
        for f in findings:
            for who in f.identities:
                ids.setdefault(who, self.inventory.get(who))
        outcome = decide(ev, findings, score, ids, me.facts if me else None, self._enforcement)
        commands, counted = breaker.check(
            _with_evidence(outcome.commands, findings),
            ev.occurred_at_ms,
            _kinds(ids),
            self.state.breaker(),
            self._limits,
        )
        decision = Decision(
            decision_id=stable_id(
                "decision", item.rec.topic, item.rec.partition, item.rec.offset, ev.event_id
            ),
            event=ev,
            topic=item.rec.topic,
            partition=item.rec.partition,
            offset=item.rec.offset,
            verdict=outcome.verdict,
            shadow_verdict=outcome.shadow_verdict,
            findings=findings,
            anomaly_score=round(score.value, 6) if score else 0.0,
            anomaly_warm=score.warm if score else False,
            anomaly_features={k: round(v, 6) for k, v in score.features.items()} if score else {},
            identity_known=item.identity is not None,
            identity_kind=item.identity_kind,
            bundle_revision=self.bundle.revision,
            commands=commands,
            redriven_from=redriven_from(item.rec.header(REDRIVEN_FROM)),
        )
        result.decisions.append(decision)
        self.state.apply([*item.observed, *outcome.effects, *([counted] if counted else [])])
        for a in [] if me is None else alerts.of_decision(decision, self._window_ms, self._runbooks):
            self.state.apply([a])  # one at a time: each window as this event left it
            me = self.state.identity(ev.actor.id)
            result.alerts.append(alerts.snapshot(a, me, self._window_ms, self.bundle.revision))

    def _score(self, model: Baseline | None, ev: CanonicalEvent, kind: str, vouched: bool = False) -> Score:
        # An identity's first event is scored against an empty baseline (created when applied).
        prior = self._priors.get(kind, NO_PRIOR)
        return (model or Baseline()).score_one(ev, self.settings.anomaly_warmup_events, prior, vouched)

    def _anomaly_stage(
        self, item: Enriched, score: Score, rules_verdict: str, revoked: list[str]
    ) -> list[Finding]:
        """The second stage: the anomaly policies judge an event that broke several habits, with its score,
        the first stage's verdict and the rules whose REVOKE of the actor is in force. Such events are never
        learned from, so what this stage decides cannot change any later score."""
        anomaly = score.policy_input() | {"rules_verdict": rules_verdict.lower(), "revoked": revoked}
        found, errs = self.evaluator.evaluate_isolating(
            ANOMALY_STAGE, [{**item.policy_input, "anomaly": anomaly}]
        )
        if 0 in errs or found[0] is None:
            # Added to the first stage's findings, never replacing them: a rules DENY stays a DENY, and the
            # failure itself denies (closed) or alerts (open), never revokes.
            failure = errs.get(0) or Failure(ERROR, "no result")
            return self._findings(item, [self._failure_finding(item.ev, failure, ANOMALY_STAGE)], score)
        return self._findings(item, found[0], score)

    def _failure_finding(self, ev: CanonicalEvent, failure: Failure, stage: str = "") -> dict[str, Any]:
        """The finding an event is decided by when the engine had no answer for it, naming what failed."""
        closed = self.bundle.fails_closed(ev.domain, ev.action)
        what = WHAT_FAILED.get(failure.reason, "failed")
        return {
            "policy": f"{ev.domain}.engine",
            "rule": "no_answer",  # -> "<domain>.engine.no_answer", see records.is_engine_failure
            "effect": "deny" if closed else "alert",
            "reason": f"policy engine {what}{' in the ' + stage + ' stage' if stage else ''} "
            f"({failure.reason}: {failure.detail[:300]}); failing {'closed' if closed else 'open'}",
        }

    def _findings(
        self, item: Enriched, raw: list[dict[str, Any]], score: Score | None = None
    ) -> list[Finding]:
        """The engine's findings for one event, with waivers applied and the evidence each names (built here
        from the event's facts and, for the anomaly stage, the features that fired: decision/evidence.py)."""
        found = apply_waivers(to_findings(raw, self.bundle, item.targets), item.ev, self.bundle.waivers)
        full = evidence.of_event(item.ev, score)
        named = {(f"{r['policy']}.{r['rule']}", str(r.get("reason", ""))): r for r in raw}
        return [
            replace(f, evidence=evidence.for_finding(named.get((f.rule, f.reason), {}), full)) for f in found
        ]


def _with_evidence(commands: list[Command], findings: list[Finding]) -> list[Command]:
    """Each command with the evidence of the findings behind it (its rules)."""
    return [
        replace(c, evidence=evidence.merge(f.evidence for f in findings if f.rule in c.rule_ids))
        for c in commands
    ]


def _kinds(identities: dict[str, Identity | None]) -> dict[str, str]:
    """The inventory kind of each identity a decision names (what the breaker counts revokes by)."""
    return {who: ident.kind if ident else breaker.UNKNOWN_KIND for who, ident in identities.items()}
