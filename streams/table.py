"""The readable command table the demo and replay print."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

COLUMNS = (
    ("time (UTC)", 19),
    ("identity", 44),
    ("command", 7),
    ("target", 34),
    ("policy", 30),
    ("reason", 0),
)


def _cut(s: str, n: int) -> str:
    return s if n == 0 or len(s) <= n else s[: n - 1] + "…"


def header() -> str:
    return "  ".join(name.ljust(w) if w else name for name, w in COLUMNS)


def row(cmd: dict[str, Any]) -> str:
    issued = cmd["issued_at"]
    when = issued if isinstance(issued, datetime) else datetime.fromtimestamp(issued / 1000, UTC)
    cells = (
        when.strftime("%Y-%m-%d %H:%M:%S"),
        cmd["identity"],
        cmd["kind"],
        f"{cmd['target_type']}:{cmd['target']}",
        ",".join(cmd["policy_ids"]),
        "; ".join(cmd["reasons"]),
    )
    return "  ".join(_cut(c, w).ljust(w) if w else c for c, (_, w) in zip(cells, COLUMNS, strict=True))
