"""`nhiguard backtest FILE…`: what the policies would have done with audit records, offline.

Files are read by the one reader (streams/reader.py): replay files or the sources' own JSON in any layout.
Every record is decided by the core, in order, on its body time (history), or dead-lettered with a reason; a
record the reader cannot read is a dead letter naming its file and line. The summary counts records per
source, verdicts, commands and dead letters by reason, and `--summary-json` writes the same figures.
`--decisions-out` writes one line per input record (streams/outcomes.py). With `--baseline-policies` the same
records are decided again by a second bundle, from the same empty state, and the difference is printed as
tables, in the summary under "diff" and in the lines; the exit status is 0 whatever either bundle decides.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import Alert, Command, DeadLetter, Decision, RawRecord
from nhiguard.lookup import registry_lookup
from nhiguard.policy.bundle import BundleError, PolicyBundle, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams.outcomes import AlertIds, Line, diff_of, diff_tables, line_of, with_baseline
from nhiguard.streams.reader import Item, Read, Unreadable, input_args, parse_headers, read_inputs

BATCH = 500


@dataclass
class Offline:
    """Every outcome of an offline run, in input order: one decision or dead letter per record."""

    decisions: list[Decision] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)  # records per recognised source (or topic)
    outcomes: list[Decision | DeadLetter | None] = field(default_factory=list)  # one per input, in order
    alerts: dict[str, Alert] = field(default_factory=dict)  # the last version of each alert, by id

    @property
    def commands(self) -> list[Command]:
        return [c for d in self.decisions for c in d.commands]


def decide_items(core: DecisionCore, items: Iterable[Item]) -> Offline:
    """Decide what the reader read, in batches, each record at its own offset of its topic."""
    out = Offline()
    offsets: Counter[str] = Counter()
    slots: dict[tuple[str, int], int] = {}  # (topic, offset) -> the input's place
    batch: list[RawRecord] = []
    for item in items:
        out.outcomes.append(None)
        if isinstance(item, Unreadable):
            out.outcomes[-1] = x = item.dead_letter(core.settings.deadletter_prefix_bytes)
            out.deadletters.append(x)
            out.sources["(unread)"] += 1
            continue
        r = item.record
        batch.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        slots[(r.topic, offsets[r.topic])] = len(out.outcomes) - 1
        offsets[r.topic] += 1
        out.sources[item.source or r.topic] += 1
        if len(batch) >= BATCH:
            _decide(core, batch, out, slots)
            batch = []
    _decide(core, batch, out, slots)
    return out


def _decide(
    core: DecisionCore, batch: list[RawRecord], out: Offline, slots: dict[tuple[str, int], int]
) -> None:
    if batch:
        result = core.process(batch)
        out.decisions += result.decisions
        out.deadletters += result.deadletters
        for o in [*result.decisions, *result.deadletters]:
            out.outcomes[slots.pop((o.topic, o.offset))] = o
        out.alerts.update((a.alert_id, a) for a in result.alerts)


def lines_of(items: list[Item], run: Offline, window_ms: int) -> list[Line]:
    """The decisions-out lines of a run: one per input record, in input order."""
    ids = AlertIds(window_ms)
    out = []
    for item, outcome in zip(items, run.outcomes, strict=True):
        if outcome is None:  # the core gives every record it is handed one outcome: a bug, said loudly
            raise RuntimeError(f"{item.file}:{item.line}: no decision and no dead letter")
        out.append(line_of(item, outcome, ids.of(outcome) if isinstance(outcome, Decision) else {}))
    return out


def summary(run: Offline, revision: str) -> dict[str, Any]:
    records = len(run.decisions) + len(run.deadletters)
    return {
        "bundle_revision": revision,
        "records": records,
        "decided": len(run.decisions),
        "decided_ratio": round(len(run.decisions) / records, 4) if records else None,
        "decisions": dict(Counter(d.verdict for d in run.decisions)),
        "commands": dict(Counter(c.kind for c in run.commands)),
        "deadletters": dict(Counter(x.reason for x in run.deadletters)),
        "sources": dict(run.sources.most_common()),
        "time_skew": sum(d.event.claimed_at_ms is not None for d in run.decisions),
    }


def render(s: dict[str, Any]) -> str:
    lines = [
        f"bundle {s['bundle_revision']}: {s['records']} records, {s['decided']} decided"
        + (f" ({s['decided_ratio']:.1%})" if s["decided_ratio"] is not None else ""),
        f"decisions: {s['decisions']}; commands: {s['commands']}",
        f"dead letters: {s['deadletters']}",
        "records by source:",
    ]
    lines += [f"  {name:<40} {n:>8}" for name, n in s["sources"].items()]
    return "\n".join(lines)


@dataclass(frozen=True)
class Inputs:
    """What a backtest decides, read and loaded before anything is decided (a bad one is exit 2)."""

    items: list[Item]
    bundle: PolicyBundle
    baseline: PolicyBundle | None
    identities: Path | None
    lookup: Any


def run_backtest(
    settings: Settings,
    files: list[str],
    identities: Path | None,
    policies: Path | None,
    summary_json: Path | None = None,
    fmt: str | None = None,
    registry: str | None = None,
    registry_docs: Path | None = None,
    headers: tuple[str, ...] = (),
    decisions_out: Path | None = None,
    baseline: Path | None = None,
) -> int:
    try:
        Inventory.load(identities) if identities else Inventory()  # refused here, before any deciding
        inputs = Inputs(
            list(read_inputs(files, settings.topics, fmt, parse_headers(headers))),
            load_bundle(policies or settings.policies_dir),
            load_bundle(baseline) if baseline else None,
            identities,
            registry_lookup(settings.registry_lookup, registry, registry_docs),
        )
    except (OSError, ValueError, BundleError) as exc:
        print(f"nhiguard backtest: {exc}", file=sys.stderr)
        return 2
    run = _run(settings, inputs, inputs.bundle)
    figures = summary(run, inputs.bundle.revision)
    lines = lines_of(inputs.items, run, settings.alert_window_s * 1000) if decisions_out or baseline else []
    if inputs.baseline is not None:
        base = lines_of(inputs.items, _run(settings, inputs, inputs.baseline), settings.alert_window_s * 1000)
        lines = [
            with_baseline(mine, theirs, inputs.baseline.revision)
            for mine, theirs in zip(lines, base, strict=True)
        ]
        figures["diff"] = diff_of(lines)
    print(render(figures))
    if figures.get("diff"):
        console = Console(width=max(Console().width, 120))
        for table in diff_tables(figures["diff"]):
            console.print(table)
    return _write(summary_json, json.dumps(figures, indent=1) + "\n") or _write(
        decisions_out, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    )


def _run(settings: Settings, inputs: Inputs, bundle: PolicyBundle) -> Offline:
    """The records decided by `bundle` from an empty state (each bundle's run its own), on body times."""
    inventory = Inventory.load(inputs.identities) if inputs.identities else Inventory()
    core = DecisionCore(settings, bundle, inventory, lookup=inputs.lookup, body_time=True)  # history
    return decide_items(core, inputs.items)


def _write(path: Path | None, text: str) -> int:
    if path is None:
        return 0
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"nhiguard backtest: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def reads_only(items: Iterable[Item]) -> tuple[list[Read], list[Unreadable]]:
    """The readable records and the unreadable ones, apart (for tools that take only the former)."""
    reads: list[Read] = []
    bad: list[Unreadable] = []
    for item in items:
        (bad if isinstance(item, Unreadable) else reads).append(item)  # type: ignore[arg-type]
    return reads, bad


def add_parser(sub: Any, registry_args: Any) -> None:
    """`nhiguard backtest` on the CLI (streams/cli.py)."""
    p = sub.add_parser(
        "backtest",
        help="decide audit files offline (replay files or the sources' own JSON, any layout, gzip too): "
        "verdicts, commands and dead letters, per source",
    )
    input_args(p)
    p.add_argument("--identities", help="identity inventory file")
    p.add_argument("--policies", help="policy bundle directory (default: the configured policies/)")
    p.add_argument(
        "--baseline-policies",
        metavar="DIR",
        help="decide the records with this bundle too and show the difference (new and removed commands, "
        "changed verdicts and reasons, per policy and per identity)",
    )
    p.add_argument("--summary-json", metavar="OUT", help="also write the figures as JSON here")
    p.add_argument(
        "--decisions-out",
        metavar="OUT",
        help="write one JSON line per input record, in input order (`nhiguard report` reads it)",
    )
    registry_args(p)
    p.set_defaults(func=_cli)


def _cli(args: Any) -> int:
    from nhiguard.settings import load_settings

    def path(x: str | None) -> Path | None:
        return Path(x) if x else None

    return run_backtest(
        load_settings(),
        list(args.files),
        path(args.identities),
        path(args.policies),
        path(args.summary_json),
        args.fmt,
        args.registry,
        path(args.registry_docs),
        tuple(args.header),
        path(args.decisions_out),
        path(args.baseline_policies),
    )
