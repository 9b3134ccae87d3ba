"""The readable command table the demo, `nhiguard replay` and `nhiguard commands held` print.

One block per command: a line with its time, kind, policy and reasons, then the whole identity, target,
evidence and command id, each on a line of its own and wrapped between words, never cut: an analyst copies
an id from here. Strings that come from the input (ids, file names, tags) are printed with control and
format characters escaped, so a crafted name cannot rewrite the terminal or hide part of a line.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

WIDTH = 110
INDENT = " " * 21  # under the kind column
SHOWN_VALUES = 5  # per evidence key; the records carry up to evidence.MAX_VALUES


def safe(s: str) -> str:
    """`s` with every character that is not printable escaped (\\x1b, \\u202e, \\n, ...)."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)


def _time(value: Any) -> str:
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def header() -> str:
    return f"{'time (UTC)':<19}  {'command':<7}  {'policy':<30}  reason"


def _wrap(text: str, first: str, rest: str = INDENT) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _field(label: str, text: str) -> list[str]:
    return _wrap(text, f"{INDENT}{label:<9}", INDENT + " " * 9)


def evidence_text(evidence: dict[str, list[str]], skip: tuple[str, ...] = ("identity",)) -> str:
    """`key=v1, v2; key2=v3 (+4 more)`: each key's first values, and how many more the record holds."""
    parts = []
    for key, values in evidence.items():
        if key in skip or key.endswith("_more") or not values:
            continue
        recorded = sum(int(v) for v in evidence.get(f"{key}_more", []) if v.isdigit())
        more = max(0, len(values) - SHOWN_VALUES) + recorded
        shown = ", ".join(safe(v) for v in values[:SHOWN_VALUES])
        parts.append(f"{safe(key)}={shown}" + (f" (+{more} more)" if more > 0 else ""))
    return "; ".join(parts)


def _status(cmd: dict[str, Any]) -> list[str]:
    status = cmd.get("status") or "ISSUED"
    if status == "HELD":
        why = safe(cmd.get("held_reason") or "circuit breaker")
        return _field("HELD", f"{why}; release: nhiguard commands release {cmd['command_id']}")
    if status == "RELEASED":
        at = cmd.get("released_at")
        when = f" at {_time(at)} UTC" if at is not None else ""
        return _field("RELEASED", f"by {safe(cmd.get('released_by') or '?')}{when}")
    return []


def row(cmd: dict[str, Any]) -> str:
    """One command (an EnforcementCommand record, as `avro.command_record` makes or a consumer decodes)."""
    reasons = safe("; ".join(cmd["reasons"]))
    lines = [f"{_time(cmd['issued_at'])}  {cmd['kind']:<7}  {','.join(cmd['policy_ids']):<30}  {reasons}"]
    target = f"{cmd['target_type']}:{cmd['target']}"
    lines += _field("identity", safe(cmd["identity"]))
    lines += _field("target", safe(target))
    evidence = cmd.get("evidence") or {}
    # What the lines above already say is not repeated.
    repeated = any(str(cmd["target"]) in r for r in evidence.get("resource", []))
    if ev := evidence_text(evidence, ("identity", "resource") if repeated else ("identity",)):
        lines += _field("evidence", ev)
    lines += _field("command", cmd["command_id"]) + _status(cmd)
    return "\n".join(lines)
