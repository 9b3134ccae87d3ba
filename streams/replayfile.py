"""The replay file `nhiguard replay` reads: NDJSON, one input record per line, as Kafka would carry it.

A line is `{"topic", "key", "headers", "value" | "value_base64", "timestamp_ms"}` and may carry a `label`
(ground truth a writer attaches, e.g. the scenario generator's; never sent to Kafka). The value stays a JSON
object where that is lossless (its compact encoding gives back the same bytes), so files are readable and
diffable; anything else (non-compact JSON, a bare JSON string, plain text) is kept as a string, and bytes that
are not UTF-8 as base64. So `read_replay(write_replay(r))` gives back the same bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ReplayFileError(ValueError):
    """A replay file line that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ReplayRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    label: str | None = None


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
    if isinstance(parsed, str) or _compact(parsed) != value:
        return "value", text
    return "value", parsed


def to_line(rec: ReplayRecord) -> str:
    names = [k for k, _ in rec.headers]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate header names cannot be kept in a replay line: {names}")
    field, value = _value_field(rec.value)
    obj: dict[str, Any] = {
        "topic": rec.topic,
        "key": None if rec.key is None else rec.key.decode("utf-8"),
        "headers": {k: v.decode("utf-8") for k, v in rec.headers},
        field: value,
        "timestamp_ms": rec.timestamp_ms,
    }
    if rec.label is not None:
        obj["label"] = rec.label
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def from_line(line: str) -> ReplayRecord:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, not {type(obj).__name__}")
    if "value_base64" in obj:
        value = base64.b64decode(obj["value_base64"], validate=True)
    elif isinstance(obj["value"], str):
        value = obj["value"].encode("utf-8")
    else:
        value = _compact(obj["value"])
    key, label = obj.get("key"), obj.get("label")
    return ReplayRecord(
        topic=str(obj["topic"]),
        key=None if key is None else str(key).encode("utf-8"),
        value=value,
        headers=tuple((str(k), str(v).encode("utf-8")) for k, v in (obj.get("headers") or {}).items()),
        timestamp_ms=int(obj["timestamp_ms"]),
        label=None if label is None else str(label),
    )


def write_replay(records: Iterable[ReplayRecord], path: str | Path) -> int:
    """Write a replay file; returns the number of records written."""
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(to_line(rec))
            fh.write("\n")
            n += 1
    return n


def read_replay(path: str | Path) -> list[ReplayRecord]:
    """Every record of a replay file, in file order; a line that cannot be read raises ReplayFileError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReplayFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    out = []
    # Lines end at "\n" only: a JSON string may hold U+2028 and other characters str.splitlines() splits at.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(from_line(line))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ReplayFileError(f"{path}:{n}: not a replay record: {reason}") from exc
    return out
