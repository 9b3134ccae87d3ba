"""`nhiguard report DECISIONS.jsonl -o OUT.html`: one self-contained page of a backtest's decisions.

It reads what `nhiguard backtest --decisions-out` wrote (streams/outcomes.py) and writes one HTML file with
everything inline (CSS, the script that draws the timeline as SVG, the data): a timeline per identity of its
events, denies and revokes; the alerts with their evidence, grouped by the alert ids the lines carry (the
worker's: identity, rule and event-time window), with the same caps as the alerts topic; the difference
between the two bundles when the backtest had a baseline; and the dead letters. The page loads nothing (its
Content-Security-Policy allows no source at all but its own script), and every string from the input is
escaped: identities, reasons and evidence are the attacker's.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nhiguard.decision.alert_state import MORE, VERDICT_RANK, AlertWindow
from nhiguard.decision.breaker import RULE as BREAKER_RULE
from nhiguard.decision.evidence import merge
from nhiguard.streams.outcomes import DEADLETTER, Line, diff_of
from nhiguard.streams.report_page import page

EVENTS_SHOWN = 10  # per alert: the first events, with the total
DEADLETTERS_SHOWN = 200
TIP = 300  # characters of a reason in a timeline mark's tooltip
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}


class ReportError(Exception):
    """A decisions file the report cannot read: one line on the command line."""


def load(path: Path) -> list[Line]:
    """The lines of a decisions file, each checked for what the report reads."""
    lines = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as exc:
            raise ReportError(f"{path}:{n}: not JSON ({exc})") from None
        if not _is_line(line):
            raise ReportError(f"{path}:{n}: not a line of `nhiguard backtest --decisions-out`")
        lines.append(line)
    return lines


def _is_line(x: Any) -> bool:
    """Shaped as the backtest writes a line, as far as the report reads it (the values are shown as text)."""
    if not isinstance(x, dict) or not isinstance(x.get("verdict"), str):
        return False
    if x.get("event_time") is not None and not isinstance(x["event_time"], str):
        return False
    if x["verdict"] != DEADLETTER and not isinstance(x.get("identity"), str):
        return False
    if "baseline_revision" in x and not isinstance(x["baseline_revision"], str):
        return False
    ok = isinstance(x.get("alert_ids", {}), dict)
    for key in ("commands", "findings", "baseline_commands", "baseline_findings"):
        items = x.get(key, [])
        named = ("kind", "target") if key.endswith("commands") else ("rule", "policy", "reason", "mode")
        ok = ok and isinstance(items, list) and all(_has(i, named) for i in items)
    return ok and ("baseline_verdict" not in x or isinstance(x["baseline_verdict"], str))


def _strings(x: Any) -> list[str]:
    return [str(v) for v in x] if isinstance(x, list) else []


def _has(item: Any, names: tuple[str, ...]) -> bool:
    return isinstance(item, dict) and all(isinstance(item.get(n), str) for n in names)


def ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


@dataclass
class AlertGroup:
    """One alert as the lines rebuild it: the window's counts and capped lists (decision/alert_state.py)."""

    alert_id: str
    identity: str
    rule: str
    window: AlertWindow
    policy: str = ""
    severity: str = ""
    title: str = ""
    attack: list[str] = field(default_factory=list)
    reason: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)  # the first EVENTS_SHOWN

    def add(self, line: Line, at_ms: int) -> None:
        fs = [f for f in line["findings"] if f.get("rule") == self.rule]
        if self.rule == BREAKER_RULE:
            verdict = "HELD"
            commands = [c for c in line["commands"] if c.get("status") == "HELD"]
            self.policy, self.severity, self.title = "nhiguard.breaker", "high", "REVOKE held by the breaker"
        else:
            modes = [
                line["verdict"] if f.get("mode") == "enforce" else str(f.get("mode", "")).upper() for f in fs
            ]
            verdict = max(modes or ["ALLOW"], key=lambda v: VERDICT_RANK.get(v, 0))
            commands = [c for c in line["commands"] if self.rule in _strings(c.get("rules"))]
        if fs:
            last = fs[-1]
            self.policy, self.severity, self.title = (
                str(last.get(k, "")) for k in ("policy", "severity", "title")
            )
            self.attack = _strings(last.get("attack"))
            self.reason = str(last.get("reason", ""))
        ids = tuple(dict.fromkeys(str(c.get("command_id", "")) for c in commands))
        decision = str(line.get("decision_id") or "")
        self.window.grow(at_ms, decision, decision, verdict, ids)
        self.window.absorb(merge(_evidence(f) for f in fs))
        if len(self.events) < EVENTS_SHOWN:
            self.events.append({k: line.get(k) for k in ("event_time", "file", "line", "verdict")})
            self.events[-1]["reason"] = str(fs[-1].get("reason", "")) if fs else self.reason

    def as_dict(self) -> dict[str, Any]:
        w = self.window
        return {
            "alert_id": self.alert_id,
            "identity": self.identity,
            "rule": self.rule,
            "policy": self.policy,
            "severity": self.severity,
            "title": self.title,
            "attack": self.attack,
            "verdict": w.verdict,
            "count": w.count,
            "first_ms": w.first_ms,
            "last_ms": w.last_ms,
            "reason": self.reason,
            "evidence": w.evidence,
            "command_ids": w.command_ids,
            "commands": w.commands,
            "events": self.events,
        }


def _evidence(f: dict[str, Any]) -> dict[str, list[str]]:
    """A finding's evidence as the alert windows take it (a `_more` count that is no number is dropped)."""
    ev = f.get("evidence")
    out: dict[str, list[str]] = {}
    for k, vs in ev.items() if isinstance(ev, dict) else ():
        values = [str(v) for v in vs] if isinstance(vs, list) else []
        if str(k).endswith(MORE):
            values = [v for v in values if v.isdigit()]
        if values:
            out[str(k)] = values
    return out


def alerts_of(lines: list[Line]) -> list[dict[str, Any]]:
    """The alerts of the lines, by the ids they carry: the most severe first, then the earliest."""
    groups: dict[str, AlertGroup] = {}
    for line in lines:
        at = ms(line.get("event_time"))
        ids = line.get("alert_ids")
        if at is None or not isinstance(ids, dict):
            continue
        for rule, aid in ids.items():
            g = groups.get(str(aid))
            if g is None:
                g = groups[str(aid)] = AlertGroup(
                    str(aid), line["identity"], str(rule), AlertWindow(str(rule), 0)
                )
            g.add(line, at)
    out = [g.as_dict() for g in groups.values()]
    out.sort(
        key=lambda a: (
            -SEVERITY_RANK.get(str(a["severity"]).lower(), 0),
            -VERDICT_RANK.get(a["verdict"], 0),
            a["first_ms"],
            a["alert_id"],
        )
    )
    return out


def _tip(line: Line) -> str:
    """A mark's tooltip: when, the verdict, the first finding's rule and reason, and where the record was."""
    what = line["verdict"]
    if line["findings"]:
        f = line["findings"][0]
        what += f" {f.get('rule', '')}: {f.get('reason', '')}"[: TIP + 1]
    at = (line.get("event_time") or "")[:19].replace("T", " ")
    return f"{at} {what} ({line.get('file')}:{line.get('line')})"


VERDICT_CODE = {"ALLOW": 0, "DENY": 1, "REVOKE": 2}


def timeline(lines: list[Line]) -> dict[str, Any]:
    """Per identity its events in time order, each [time ms, verdict code, REVOKE commands issued, tooltip];
    the identities with a REVOKE first, then those with a DENY, each group by its first such event."""
    lanes: dict[str, list[list[Any]]] = {}
    for line in lines:
        at = ms(line.get("event_time"))
        if line["verdict"] == DEADLETTER or at is None:
            continue
        revokes = sum(c.get("kind") == "REVOKE" for c in line["commands"])
        code = VERDICT_CODE.get(line["verdict"], 0)
        lanes.setdefault(line["identity"], []).append([at, code, revokes, _tip(line)])

    def order(item: tuple[str, list[list[Any]]]) -> tuple[int, int, str]:
        who, events = item
        worst = max(max(e[1], 2 if e[2] else 0) for e in events)
        first = min((e[0] for e in events if e[1] == worst or (worst == 2 and e[2])), default=0)
        return (-worst, first, who)

    for events in lanes.values():
        events.sort(key=lambda e: e[0])
    return {"lanes": [{"identity": who, "events": ev} for who, ev in sorted(lanes.items(), key=order)]}


def overview(lines: list[Line], source: str) -> dict[str, Any]:
    verdicts = Counter(x["verdict"] for x in lines if x["verdict"] != DEADLETTER)
    commands = Counter(str(c.get("kind")) for x in lines for c in x["commands"])
    revisions = sorted({str(x["bundle_revision"]) for x in lines if x.get("bundle_revision")})
    return {
        "source": source,
        "records": len(lines),
        "files": sorted({str(x.get("file")) for x in lines}),
        "revisions": revisions,
        "verdicts": dict(verdicts.most_common()),
        "commands": dict(commands.most_common()),
        "deadletters": dict(Counter(str(x.get("reason")) for x in lines if x["verdict"] == DEADLETTER)),
    }


def run_report(decisions: Path, out: Path) -> int:
    try:
        lines = load(decisions)
    except ReportError as exc:
        print(f"nhiguard report: {exc}", file=sys.stderr)
        return 2
    dead = [x for x in lines if x["verdict"] == DEADLETTER]
    drawn = timeline(lines)
    html = page(
        overview(lines, decisions.name), drawn, alerts_of(lines), diff_of(lines), dead[:DEADLETTERS_SHOWN]
    )
    try:
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        print(f"nhiguard report: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {len(lines)} records, {len(drawn['lanes'])} identities")
    return 0


def add_parser(sub: Any) -> None:
    """`nhiguard report` on the CLI (streams/cli.py)."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page of a backtest's --decisions-out: a timeline per identity, the "
        "alerts with their evidence, the policy diff",
    )
    p.add_argument(
        "decisions", metavar="DECISIONS.jsonl", help="what `nhiguard backtest --decisions-out` wrote"
    )
    p.add_argument("-o", "--out", required=True, metavar="OUT.html", help="the page to write")
    p.set_defaults(func=lambda args: run_report(Path(args.decisions), Path(args.out)))
