"""The dead letter of a record the core cannot decide: its original bytes intact, why, and what headers it
kept."""

from __future__ import annotations

import hashlib

from nhiguard.decision.headers import kept
from nhiguard.decision.records import DeadLetter, RawRecord
from nhiguard.decision.redact import redact, redact_headers


def dead_letter(rec: RawRecord, reason: str, detail: str, limit: int) -> DeadLetter:
    """The record's original bytes intact (a prefix, its length and hash, when over the limit); the detail
    and the headers it keeps (the allow-list's: decision/headers.py) with known secret shapes redacted."""
    truncated = len(rec.value) > limit
    return DeadLetter(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        reason=reason,
        detail=redact(detail),
        original=rec.value[:limit] if truncated else rec.value,
        original_length=len(rec.value),
        original_sha256=hashlib.sha256(rec.value).hexdigest(),
        truncated=truncated,
        timestamp_ms=rec.timestamp_ms,
        headers=redact_headers(kept(rec.headers)),
    )
