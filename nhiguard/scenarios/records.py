"""The scenario's record type and its replay file format (NDJSON, one record per line).

A replay line keeps the value as a JSON object where that is lossless, so the files stay readable and
diffable; anything else (non-canonical JSON, a bare JSON string, plain text) is kept as a string, and bytes
that are not UTF-8 as base64, so `read_ndjson(write_ndjson(r))` gives back the same bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nhiguard.scenarios._util import dumps

LABELS = (
    "ordinary",
    "twin:cms",
    "twin:ci",
    "twin:registry",
    "incident:cms",
    "incident:ci",
    "incident:registry",
)


@dataclass(frozen=True)
class SourceRecord:
    """One input record. `label` is ground truth for tests and is never sent to Kafka."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    label: str

    def json(self) -> Any:
        return json.loads(self.value)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v.decode("utf-8")
        return None


def _value_field(value: bytes) -> tuple[str, Any]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "value_base64", base64.b64encode(value).decode("ascii")
    try:
        parsed = json.loads(text)
    except ValueError:
        return "value", text
    # A bare JSON string would read back as raw text; non-compact JSON would not re-encode to the same bytes.
    if isinstance(parsed, str) or dumps(parsed) != value:
        return "value", text
    return "value", parsed


def to_line(rec: SourceRecord) -> str:
    names = [k for k, _ in rec.headers]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate header names cannot be kept in a replay line: {names}")
    field, value = _value_field(rec.value)
    obj = {
        "topic": rec.topic,
        "key": None if rec.key is None else rec.key.decode("utf-8"),
        "headers": {k: v.decode("utf-8") for k, v in rec.headers},
        field: value,
        "timestamp_ms": rec.timestamp_ms,
        "label": rec.label,
    }
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def from_line(line: str) -> SourceRecord:
    obj = json.loads(line)
    if "value_base64" in obj:
        value = base64.b64decode(obj["value_base64"])
    elif isinstance(obj["value"], str):
        value = obj["value"].encode("utf-8")
    else:
        value = dumps(obj["value"])
    key = obj.get("key")
    return SourceRecord(
        topic=obj["topic"],
        key=None if key is None else key.encode("utf-8"),
        value=value,
        headers=tuple((k, v.encode("utf-8")) for k, v in (obj.get("headers") or {}).items()),
        timestamp_ms=int(obj["timestamp_ms"]),
        label=obj.get("label", "ordinary"),
    )


def write_ndjson(records: Iterable[SourceRecord], path: str | Path) -> int:
    """Write a replay file; returns the number of records written."""
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(to_line(rec))
            fh.write("\n")
            n += 1
    return n


def read_ndjson(path: str | Path) -> list[SourceRecord]:
    with Path(path).open(encoding="utf-8") as fh:
        return [from_line(line) for line in fh if line.strip()]
