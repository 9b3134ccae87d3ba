"""What `nhiguard backtest --decisions-out` writes, and the difference between two bundles' outcomes.

One JSON line per input record, in input order: where it was (file, line), when and whose it was, the verdict
or `deadletter` and its reason, the commands, the findings, the decision id and the alert ids its findings
count in. The alert ids are the worker's (decision/alerts.py: identity, rule and event-time window, a late
window's number included), computed here by the same windows the core keeps, so a report can group alerts
from this file alone. With a baseline bundle, a line whose outcome differs between the two carries the
baseline's as `baseline_verdict`, `baseline_commands` and `baseline_findings`; `diff_of` counts the
difference from the lines alone (the backtest's summary and `nhiguard report` both use it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from nhiguard.decision import alerts
from nhiguard.decision.alert_state import AlertWindows
from nhiguard.decision.records import Command, DeadLetter, Decision, Finding
from nhiguard.streams.reader import Item, Unreadable
from nhiguard.streams.table import safe

Line = dict[str, Any]
DEADLETTER = "deadletter"
BASELINE_KEYS = ("baseline_verdict", "baseline_commands", "baseline_findings")


def iso(ms: int) -> str | None:
    """UTC ISO 8601 with milliseconds; None for a time no calendar date holds (a body may claim any)."""
    try:
        when = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertIds:
    """The alert id each of a decision's alert windows has in the worker: the same windows, in the same
    order, with the same bound (the core's identity state keeps them alike: decision/alert_state.py)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.windows: dict[str, AlertWindows] = {}

    def of(self, d: Decision) -> dict[str, str]:
        if d.event.actor.human:  # the core keeps no state, hence no alert, for a human principal
            return {}
        out = {}
        for a in alerts.of_decision(d, self.window_ms, {}):
            windows = self.windows.setdefault(a.identity, AlertWindows())
            w = windows.window(a.rule, a.start_ms)
            windows.bound(w)
            out[a.rule] = alerts.alert_id(a.identity, w)
        return out


def _command(c: Command) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "target": f"{c.target_type}:{c.target}",
        "command_id": c.command_id,
        "identity": c.identity,
        "policies": list(c.policy_ids),
        "rules": list(c.rule_ids),
        "status": c.status,
    }


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "policy": f.policy,
        "effect": f.effect,
        "mode": f.mode,
        "severity": f.severity,
        "reason": f.reason,
        "title": f.title,
        "attack": list(f.attack),
        "grade": f.grade,
        "evidence": f.evidence,
    }


def line_of(item: Item, outcome: Decision | DeadLetter, alert_ids: dict[str, str]) -> Line:
    """The decisions-out line of one input record."""
    if isinstance(item, Unreadable):
        where: Line = {"file": item.file, "line": item.line, "source": None}
    else:
        where = {"file": item.file, "line": item.line, "source": item.source or item.record.topic}
    if isinstance(outcome, DeadLetter):
        return where | {
            "event_time": iso(outcome.timestamp_ms) if outcome.timestamp_ms > 0 else None,
            "identity": None,
            "verdict": DEADLETTER,
            "reason": outcome.reason,
            "detail": outcome.detail,
            "commands": [],
            "findings": [],
            "decision_id": None,
            "alert_ids": {},
        }
    ev = outcome.event
    return where | {
        "event_time": iso(ev.occurred_at_ms),
        "identity": ev.actor.id,
        "action": ev.action,
        "resource": f"{ev.resource_type}:{ev.resource_id}",
        "verdict": outcome.verdict,
        "commands": [_command(c) for c in outcome.commands],
        "findings": [_finding(f) for f in outcome.findings],
        "decision_id": outcome.decision_id,
        "alert_ids": alert_ids,
        "bundle_revision": outcome.bundle_revision,
    }


def _outcome_key(line: Line) -> tuple[Any, ...]:
    """What a bundle changes about a record: its verdict (or dead-letter reason), its commands' kinds and
    targets, and its findings' rules, reasons and modes."""
    return (
        line["verdict"],
        line.get("reason"),
        sorted((c["kind"], c["target"]) for c in line["commands"]),
        sorted((f["rule"], f["reason"], f["mode"]) for f in line["findings"]),
    )


def with_baseline(line: Line, base: Line, baseline_revision: str) -> Line:
    """`line` naming the baseline bundle, and the baseline's outcome where it differs."""
    line["baseline_revision"] = baseline_revision
    if _outcome_key(line) != _outcome_key(base):
        verdict = base["verdict"]
        line["baseline_verdict"] = f"{DEADLETTER}:{base['reason']}" if verdict == DEADLETTER else verdict
        line["baseline_commands"] = base["commands"]
        line["baseline_findings"] = base["findings"]
    return line


def _verdict(line: Line) -> str:
    return f"{DEADLETTER}:{line['reason']}" if line["verdict"] == DEADLETTER else line["verdict"]


class _Figures:
    """Counts per policy or identity, each a Counter of what changed."""

    def __init__(self) -> None:
        self.by: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, key: str | None, what: str, n: int = 1) -> None:
        self.by[key or "(none)"][what] += n

    def as_dict(self) -> dict[str, dict[str, int]]:
        order = sorted(self.by.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        return {k: dict(sorted(v.items())) for k, v in order}


CHANGES_KEPT = 200  # command changes listed in the diff (all are counted)
Issued = dict[tuple[str, str], tuple[str, Line, dict[str, Any]]]  # (kind, target) -> first (time, line, cmd)


def diff_of(lines: Iterable[Line]) -> dict[str, Any] | None:
    """The difference between the bundle and the baseline over the records, or None when the lines carry
    no baseline. Commands are compared over the whole run by kind and target: new, removed, or issued by
    both at another event (earlier or later); findings per record by rule (a rule that fires in both with
    another reason is a changed reason)."""
    revisions: tuple[str, str] | None = None
    changed = 0
    verdicts: Counter[str] = Counter()
    mine: Issued = {}
    theirs: Issued = {}
    policies, identities = _Figures(), _Figures()
    for line in lines:
        if "baseline_revision" not in line:
            continue
        revisions = revisions or (line.get("bundle_revision") or "", line["baseline_revision"])
        for issued, commands in ((mine, line["commands"]), (theirs, line.get("baseline_commands"))):
            for c in line["commands"] if commands is None else commands:
                issued.setdefault((c["kind"], c["target"]), (line["event_time"] or "", line, c))
        if "baseline_verdict" not in line:
            continue
        changed += 1
        if (before := line["baseline_verdict"]) != (after := _verdict(line)):
            verdicts[f"{before} -> {after}"] += 1
            identities.add(line.get("identity"), "verdicts_changed")
        _findings_diff(line, policies, identities)
    if revisions is None:
        return None
    commands, changes = _commands_diff(mine, theirs, policies, identities)
    return {
        "revision": revisions[0],
        "baseline_revision": revisions[1],
        "records_changed": changed,
        "verdicts": dict(verdicts.most_common()),
        "commands": commands,
        "command_changes": changes[:CHANGES_KEPT],
        "command_changes_total": len(changes),
        "policies": policies.as_dict(),
        "identities": identities.as_dict(),
    }


def _commands_diff(
    mine: Issued, theirs: Issued, policies: _Figures, identities: _Figures
) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]]]:
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("new", "removed", "earlier", "later")}
    changes = []

    def first(k: tuple[str, str]) -> tuple[str, str, str]:
        return (min(x[0] for x in (mine.get(k), theirs.get(k)) if x), *k)

    for key in sorted(mine.keys() | theirs.keys(), key=first):
        now, then = mine.get(key), theirs.get(key)
        if now is None or then is None:
            change = "new" if then is None else "removed"
        elif now[0] != then[0]:
            change = "earlier" if now[0] < then[0] else "later"
        else:
            continue
        _, line, cmd = now or then  # type: ignore[misc]
        counts[change][key[0]] += 1
        identities.add(cmd["identity"], f"{change}_commands")
        for p in cmd.get("policies") or ["(none)"]:
            policies.add(p, f"{change}_commands")
        changes.append(
            {
                "change": change,
                "kind": key[0],
                "target": key[1],
                "identity": cmd["identity"],
                "policies": cmd.get("policies", []),
                "event_time": now[0] if now else None,
                "baseline_event_time": then[0] if then else None,
                "file": line["file"],
                "line": line["line"],
            }
        )
    return {k: dict(v) for k, v in counts.items() if v}, changes


def _findings_diff(line: Line, policies: _Figures, identities: _Figures) -> None:
    def by_rule(findings: list[dict[str, Any]]) -> dict[str, tuple[str, set[str]]]:
        out: dict[str, tuple[str, set[str]]] = {}
        for f in findings:
            out.setdefault(f["rule"], (f["policy"], set()))[1].add(f"{f['mode']}: {f['reason']}")
        return out

    mine, theirs = by_rule(line["findings"]), by_rule(line["baseline_findings"])
    for rule in sorted(mine.keys() | theirs.keys()):
        policy = (mine.get(rule) or theirs[rule])[0]
        if rule not in theirs:
            what = "new_findings"
        elif rule not in mine:
            what = "removed_findings"
        elif mine[rule][1] != theirs[rule][1]:
            what = "changed_reasons"
        else:
            continue
        policies.add(policy, what)
        identities.add(line.get("identity"), what)


COLUMNS = (
    "verdicts_changed",
    "new_commands",
    "removed_commands",
    "earlier_commands",
    "later_commands",
    "new_findings",
    "removed_findings",
    "changed_reasons",
)
SHOWN_ROWS = 25


def diff_tables(diff: dict[str, Any]) -> list[Table]:
    """The difference as rich tables: the totals, the commands that changed, then per policy and per
    identity (the most changed first; only the columns where something changed)."""
    head = Table(title=f"bundle {diff['revision']} against baseline {diff['baseline_revision']}")
    for name in ("records changed", "verdicts (baseline -> bundle)", "commands (bundle against baseline)"):
        head.add_column(name)
    head.add_row(
        str(diff["records_changed"]),
        "\n".join(f"{k}: {n}" for k, n in diff["verdicts"].items()) or "none",
        "\n".join(
            f"{ch}: {', '.join(f'{k} {n}' for k, n in by.items())}" for ch, by in diff["commands"].items()
        )
        or "none",
    )
    out = [head]
    if diff["command_changes"]:
        shown = diff["command_changes"][:SHOWN_ROWS]
        t = Table(title=f"commands that changed ({len(shown)} of {diff['command_changes_total']})")
        for name in ("change", "kind", "target", "identity", "policy", "bundle (UTC)", "baseline (UTC)"):
            t.add_column(name, overflow="fold")
        for c in shown:
            t.add_row(
                c["change"],
                c["kind"],
                *(Text(safe(x)) for x in (c["target"], c["identity"], ", ".join(c["policies"]))),
                (c["event_time"] or "-")[:19].replace("T", " "),
                (c["baseline_event_time"] or "-")[:19].replace("T", " "),
            )
        out.append(t)
    for what, rows in (("policy", diff["policies"]), ("identity", diff["identities"])):
        cols = [c for c in COLUMNS if any(r.get(c) for r in rows.values())]
        if not rows:
            continue
        most = f" (the {SHOWN_ROWS} most changed of {len(rows)})" if len(rows) > SHOWN_ROWS else ""
        t = Table(title=f"per {what}{most}")
        t.add_column(what, overflow="fold")
        for c in cols:
            t.add_column(c.replace("_", " "), justify="right")
        for key, counts in list(rows.items())[:SHOWN_ROWS]:
            # Text, not markup: an identity is the input's ("[b]" stays as written), control chars escaped
            t.add_row(Text(safe(key)), *(str(counts.get(c, 0)) for c in cols))
        out.append(t)
    return out
