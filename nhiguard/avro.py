"""Avro single-object encoding of the output records, from the schemas in schemas/.

Single-object encoding (Avro spec): 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint of the
schema's parsing canonical form, then the Avro binary body. A consumer with only schemas/ can tell which
schema wrote a record and decode it.

Schemas evolve by adding fields with defaults. The earlier versions are kept beside the current ones,
expanded (`nhiguard.<Name>.v<N>.avsc`), so a record an earlier version wrote still decodes, into the current
shape (Avro schema resolution: the new fields get their defaults); an old reader given the new schema as the
writer's reads a new record (it skips what it does not know).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema, fingerprint, load_schema, to_parsing_canonical_form

from nhiguard.decision.families import FAMILIES
from nhiguard.decision.records import Alert, Command, DeadLetter, Decision
from nhiguard.decision.redact import redact, redact_tree

MAGIC = b"\xc3\x01"
NAMES = ("AuditEvent", "Decision", "EnforcementCommand", "Alert", "DeadLetter", "Identity")


def _load(path: Path) -> tuple[Any, bytes]:
    # load_schema resolves references to other nhiguard.* types from files beside it; expanding makes the
    # canonical form (and so the fingerprint) self-contained.
    schema = expand_schema(load_schema(path))
    return schema, bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


class AvroCodec:
    def __init__(self, schemas_dir: Path) -> None:
        self.schemas: dict[str, Any] = {}
        self.fingerprints: dict[str, bytes] = {}
        # fingerprint -> (name, the writer's schema): the current schemas and the earlier versions
        self._by_fp: dict[bytes, tuple[str, Any]] = {}
        for name in NAMES:
            schema, fp = _load(Path(schemas_dir) / f"nhiguard.{name}.avsc")
            self.schemas[name], self.fingerprints[name] = schema, fp
            self._by_fp[fp] = (name, schema)
        for name in NAMES:
            for path in sorted(Path(schemas_dir).glob(f"nhiguard.{name}.v*.avsc")):
                schema, fp = _load(path)
                self._by_fp.setdefault(fp, (name, schema))

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(MAGIC + self.fingerprints[name])
        schemaless_writer(buf, self.schemas[name], record)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        if data[:2] != MAGIC or len(data) < 10:
            raise ValueError("not an Avro single-object encoded record")
        found = self._by_fp.get(data[2:10])
        if found is None:
            raise ValueError(f"unknown schema fingerprint {data[2:10].hex()}")
        name, writer = found
        reader = self.schemas[name]
        # An earlier version's record is resolved into the current shape (new fields get their defaults).
        return schemaless_reader(  # type: ignore[return-value]
            io.BytesIO(data[10:]), writer, None if writer is reader else reader
        )

    def schema_name(self, data: bytes) -> str | None:
        found = self._by_fp.get(data[2:10])
        return None if found is None else found[0]


def event_record(d: Decision) -> dict[str, Any]:
    ev = d.event
    # Each fact family is a field of its own; the event carries at most one of them.
    facts: dict[str, Any] = {family.family: None for family in FAMILIES}
    if ev.facts is not None:
        facts[ev.facts.family] = ev.facts.record()
    return {
        "event_id": ev.event_id,
        "source": ev.source,
        "domain": ev.domain,
        "action": ev.action,
        "occurred_at": ev.occurred_at_ms,
        "received_at": ev.received_at_ms,
        "claimed_at": ev.claimed_at_ms,
        "actor": {
            "id": ev.actor.id,
            "display": ev.actor.display,
            "human": ev.actor.human,
            "source_principal": ev.actor.source_principal,
        },
        "resource_type": ev.resource_type,
        "resource_id": redact(ev.resource_id),  # a request's URL may carry a token in its query
        **redact_tree(facts),
    }


def decision_flags(d: Decision) -> list[str]:
    """What is unusual about how the decision was made (Decision.flags in the schema)."""
    flags = ["time_skew"] if d.event.claimed_at_ms is not None else []
    if d.redriven_from is not None:  # sent back from the dead letters: where it was first read
        flags.append(f"redriven:{redact(d.redriven_from[:300])}")
    return flags


def decision_record(d: Decision, decided_at_ms: int) -> dict[str, Any]:
    return {
        "decision_id": d.decision_id,
        "verdict": d.verdict,
        "shadow_verdict": d.shadow_verdict,
        "event": event_record(d),
        "input": {"topic": d.topic, "partition": d.partition, "offset": d.offset},
        "identity_known": d.identity_known,
        "identity_kind": d.identity_kind,
        "findings": [
            {
                "rule": f.rule,
                "policy": f.policy,
                "effect": f.effect,
                "reason": redact(f.reason),
                "severity": f.severity,
                "mode": f.mode,
                "identities": list(f.identities),
                "waiver": f.waiver,
                "title": f.title,
                "attack": list(f.attack),
                "evidence": redact_tree(f.evidence),
            }
            for f in d.findings
        ],
        "anomaly": {"score": d.anomaly_score, "warm": d.anomaly_warm, "features": d.anomaly_features},
        "command_ids": [c.command_id for c in d.commands],
        "held_command_ids": [c.command_id for c in d.commands if c.held],
        "flags": decision_flags(d),
        "bundle_revision": d.bundle_revision,
        "decided_at": decided_at_ms,
    }


def command_record(c: Command) -> dict[str, Any]:
    return {
        "command_id": c.command_id,
        "kind": c.kind,
        "identity": c.identity,
        "target_type": c.target_type,
        "target": c.target,
        "reasons": [redact(r) for r in c.reasons],
        "policy_ids": list(c.policy_ids),
        "rule_ids": list(c.rule_ids),
        "bundle_revision": c.bundle_revision,
        "event_id": c.event_id,
        "issued_at": c.issued_at_ms,
        "expires_at": c.expires_at_ms,
        "status": c.status,
        "held_reason": c.hold,
        "released_at": None,
        "released_by": "",
        "evidence": redact_tree(c.evidence),
    }


def alert_record(a: Alert) -> dict[str, Any]:
    return {
        "alert_id": a.alert_id,
        "identity": a.identity,
        "policy": a.policy,
        "rule": a.rule,
        "severity": a.severity,
        "verdict": a.verdict,
        "count": a.count,
        "first_event_id": a.first_event_id,
        "last_event_id": a.last_event_id,
        "first_seen": a.first_seen_ms,
        "last_seen": a.last_seen_ms,
        "summary": redact(a.summary),
        "bundle_revision": a.bundle_revision,
        "title": a.title,
        "attack": list(a.attack),
        "evidence": redact_tree(a.evidence),
        "command_ids": list(a.command_ids),
        "window_start": a.window_start_ms,
        "window_end": a.window_end_ms,
        "decision_ids": list(a.decision_ids),
        "command_ids_total": a.command_ids_total,
        "late": a.late,
        "runbook": a.runbook,
    }


def deadletter_record(x: DeadLetter) -> dict[str, Any]:
    return {
        "topic": x.topic,
        "partition": x.partition,
        "offset": x.offset,
        "reason": x.reason,
        "detail": x.detail,
        "original": x.original,
        "original_length": x.original_length,
        "original_sha256": x.original_sha256,
        "truncated": x.truncated,
        "headers": [{"key": k, "value": v} for k, v in x.headers],
        "timestamp": x.timestamp_ms,
    }
