"""Value types that flow through the decision core. Plain dataclasses: no Kafka, no Faust."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from nhiguard.decision.facts import EventFacts

# What an analyst needs to act on, by name: the file, tag, dependency, version, workflow, anomaly features
# (decision/evidence.py). Built in Python from the event's typed facts, never from strings a policy returns.
Evidence = dict[str, list[str]]


def stable_id(*parts: object) -> str:
    """A deterministic id: the same inputs give the same id in every process and every run."""
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record as it came off Kafka (or out of a replay file)."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0
    # Offset on the by-identity topic the worker's stateful stage read it from (-1 outside the worker, where
    # nothing is redelivered): that stage judges redelivery only for records that have one.
    position: int = -1

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v.decode("utf-8", "replace")
        return None


class UnreadValue(bytes):
    """A record value the consumer could not hand over as written (a compressed batch that inflates past the
    bound: streams/records_in.py): the bytes it has instead, and the dead-letter reason and detail. A Python
    type, so no producer can forge one; the core dead-letters it before reading anything."""

    reason: str
    detail: str

    def __new__(cls, value: bytes, reason: str, detail: str) -> UnreadValue:
        self = super().__new__(cls, value)
        self.reason, self.detail = reason, detail
        return self


class AdapterError(Exception):
    """Input an adapter cannot read. `reason` is a stable dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Actor:
    id: str  # canonical identity: the durable one (a workflow, an app), not a session or a generic bot
    display: str
    human: bool
    source_principal: str  # the principal as the source named it


@dataclass(slots=True)
class CanonicalEvent:
    """One audit event in the project's canonical shape (schemas/nhiguard.AuditEvent.avsc)."""

    event_id: str
    source: str
    domain: str  # cms | ci | registry | runtime
    action: str
    occurred_at_ms: int
    actor: Actor
    resource_type: str
    resource_id: str
    # What the event establishes beyond who, what and which (decision/facts.py): one family, or none.
    facts: EventFacts | None = None
    # When nhiguard received it (the input record's Kafka timestamp; None when unknown, as offline), and the
    # body's own time when that was further from it than the bound allows: occurred_at_ms is then the
    # receive time (DecisionCore: an actor who writes the body cannot move the time it is decided at).
    received_at_ms: int | None = None
    claimed_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One policy rule that fired for one event."""

    rule: str  # "<domain>.<policy>.<rule>", e.g. "cms.public_exposure.nonpublic_asset_exposed"
    effect: str  # alert | deny | revoke: what it does, after decide's cap (decide.capped)
    reason: str
    policy: str  # "<domain>.<policy>"
    severity: str
    mode: str  # enforce | shadow | waived
    identities: tuple[str, ...] = ()  # for revoke: identities other than the actor whose credentials go
    waiver: str | None = None  # the waiver that set this finding aside (mode "waived")
    title: str = ""  # the policy's METADATA title
    attack: tuple[str, ...] = ()  # the policy's ATT&CK (or other) mapping
    evidence: Evidence = field(default_factory=dict, hash=False)
    # The finding's evidence grade: hygiene | compromise | harm ("" when the policy gave none). A REVOKE needs
    # compromise or harm, from a policy that declares revoke.
    grade: str = ""
    capped_from: str = ""  # the effect the policy asked for, when the convention capped it ("" otherwise)


def is_engine_failure(f: Finding) -> bool:
    """A finding the core made because the engine gave no answer in time (not a policy's judgement)."""
    return f.rule.endswith(".engine.no_answer")


# What a command can name (the EnforcementCommand schema's TargetType; a test keeps the two the same).
TARGET_TYPES = ("request", "credential", "package_version", "asset", "entry", "package")


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    kind: str  # DENY | REVOKE
    identity: str
    target_type: str  # one of TARGET_TYPES
    target: str
    reasons: tuple[str, ...]
    policy_ids: tuple[str, ...]
    rule_ids: tuple[str, ...]
    bundle_revision: str
    event_id: str
    issued_at_ms: int
    expires_at_ms: int
    # ISSUED (to enforcement.commands) or HELD by the REVOKE circuit breaker (to enforcement.held, until an
    # operator releases it: decision/breaker.py); `hold` says why it was held.
    status: str = "ISSUED"
    hold: str = ""
    evidence: Evidence = field(default_factory=dict, hash=False)  # of the findings behind it

    @property
    def held(self) -> bool:
        return self.status == "HELD"


@dataclass(slots=True)
class Decision:
    decision_id: str
    event: CanonicalEvent
    topic: str
    partition: int
    offset: int
    verdict: str  # ALLOW | DENY | REVOKE
    # What the verdict would be if the shadow-mode findings were enforced (a rule's rollout, compared).
    shadow_verdict: str
    findings: list[Finding]
    anomaly_score: float
    anomaly_warm: bool
    anomaly_features: dict[str, float]
    identity_known: bool
    identity_kind: str
    bundle_revision: str
    commands: list[Command] = field(default_factory=list)
    redriven_from: str | None = None  # decision/headers.py REDRIVEN_FROM: a dead letter sent back


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    identity: str
    policy: str
    rule: str
    severity: str
    verdict: str
    count: int
    first_event_id: str
    last_event_id: str
    first_seen_ms: int
    last_seen_ms: int
    summary: str
    bundle_revision: str
    title: str = ""
    attack: tuple[str, ...] = ()
    evidence: Evidence = field(default_factory=dict, hash=False)  # of the grouped findings
    command_ids: tuple[str, ...] = ()  # the commands the alerted decisions produced (held ones included)
    # The event-time window [start, end) it groups (decision/alerts.py; 0: an alert of no window), the first
    # decisions of its `count`, the first command ids of command_ids_total, its late number
    # (decision/alert_state.py) and its policy's runbook (METADATA custom.runbook).
    window_start_ms: int = 0
    window_end_ms: int = 0
    decision_ids: tuple[str, ...] = ()
    command_ids_total: int = 0
    late: int = 0
    runbook: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str  # malformed_json | unknown_shape | missing_identity | oversized | malformed_origin | …
    detail: str
    original: bytes  # the whole record, or a prefix when it was over the limit
    original_length: int
    original_sha256: str
    truncated: bool
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class BatchResult:
    decisions: list[Decision] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    human_events: int = 0  # decided (no NHI rule applies) and counted
    # Set by the worker's stateful stage (streams/state.py), which knows positions; the core does not.
    skipped: int = 0  # already applied to state before a restart, outputs already delivered: not redone
    # At or below its source's watermark but later than it (a recreated source topic): decided anyway.
    reordered: int = 0
    skipped_records: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, offset)
    reordered_records: list[tuple[str, int, int]] = field(default_factory=list)
    # State the batch changed, for the worker to write to its tables: identity -> value, package -> facts.
    identity_state: dict[str, bytes] = field(default_factory=dict)
    package_state: dict[str, bytes] = field(default_factory=dict)
    # The REVOKE circuit breaker's window (decision/breaker.py), as stored, when the batch changed it.
    breaker_state: bytes | None = None

    @property
    def commands(self) -> list[Command]:
        """Every command, held ones included (`Command.held`)."""
        return [c for d in self.decisions for c in d.commands]
