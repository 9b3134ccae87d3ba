"""Helpers shared by the adapters: strict field access that fails with a reason code, time parsing."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from nhiguard.decision.records import AdapterError


def need(obj: Any, *path: str, reason: str = "unknown_shape") -> Any:
    """obj[path[0]][path[1]]…, or AdapterError naming the missing path."""
    cur = obj
    for i, key in enumerate(path):
        if not isinstance(cur, dict) or key not in cur or cur[key] is None:
            raise AdapterError(reason, f"missing field {'.'.join(path[: i + 1])}")
        cur = cur[key]
    return cur


def get(obj: Any, *path: str, default: Any = None) -> Any:
    cur = obj
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
    return default if cur is None else cur


def text(obj: Any, *path: str) -> str:
    """obj[path…] when it is a string, else "" (an optional name or label)."""
    value = get(obj, *path, default="")
    return value if isinstance(value, str) else ""


def iso_ms(value: Any, fallback: int) -> int:
    """Milliseconds since the epoch from an ISO-8601 string with a zone (or ms number); the fallback when
    absent. A time without a zone, or not a time, is AdapterError `bad_time`."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return long_field(value, "timestamp")
    if isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AdapterError("bad_time", f"not an ISO-8601 time: {value[:64]!r}") from exc
        if when.tzinfo is None:
            # Read in the worker's local zone it would move with the host's TZ: the record is refused instead.
            raise AdapterError("bad_time", f"time without a zone: {value[:64]!r}")
        return int(when.timestamp() * 1000)
    return fallback


_LONG_MAX = 2**63 - 1


def long_field(value: Any, name: str) -> int:
    """A non-negative integer that fits an Avro long (a size, a count); AdapterError otherwise."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _LONG_MAX:
        raise AdapterError("unknown_shape", f"{name} is not a size: {str(value)[:40]}")
    return int(value)


def body_hash(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()[:32]


def semver_key(version: str) -> tuple[tuple[int, int, int], int, tuple[str, ...]]:
    """Sort key for npm versions: a release sorts after its pre-releases. Loose on purpose: registry data."""
    core, _, pre = version.partition("+")[0].partition("-")
    nums = [int(p) if p.isdigit() else 0 for p in core.split(".")[:3]]
    nums += [0] * (3 - len(nums))
    return (nums[0], nums[1], nums[2]), (0 if pre else 1), tuple(pre.split(".")) if pre else ()


_ZONED = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def utc_ms(value: Any, fallback: int) -> int:
    """iso_ms for a source whose times are UTC by its own specification (Kubernetes audit, CloudTrail, Cloud
    Audit Logs, Falco, Tetragon): a time written without a zone is that source's UTC, not a guess (Panther's
    data lake, for one, rewrites them as `2024-01-19 13:47:18.279`). A zone that is written is honoured."""
    if not isinstance(value, str) or not value or _ZONED.search(value.strip()):
        return iso_ms(value, fallback)
    return iso_ms(value.strip() + "+00:00", fallback)
