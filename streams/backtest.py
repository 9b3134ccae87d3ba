"""`nhiguard backtest FILE…`: what the policies would have done with audit records, offline.

Files are read by the one reader (streams/reader.py): replay files or the sources' own JSON in any layout.
Every record is decided by the core, in order, on its body time (history), or dead-lettered with a reason; a
record the reader cannot read is a dead letter naming its file and line. The summary counts records per
source, verdicts, commands and dead letters by reason, and `--summary-json` writes the same figures.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import Command, DeadLetter, Decision, RawRecord
from nhiguard.lookup import registry_lookup
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams.reader import Item, Read, Unreadable, input_args, parse_headers, read_inputs

BATCH = 500


@dataclass
class Offline:
    """Every outcome of an offline run, in input order: one decision or dead letter per record."""

    decisions: list[Decision] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)  # records per recognised source (or topic)

    @property
    def commands(self) -> list[Command]:
        return [c for d in self.decisions for c in d.commands]


def decide_items(core: DecisionCore, items: Iterable[Item]) -> Offline:
    """Decide what the reader read, in batches, each record at its own offset of its topic."""
    out = Offline()
    offsets: Counter[str] = Counter()
    batch: list[RawRecord] = []
    for item in items:
        if isinstance(item, Unreadable):
            out.deadletters.append(item.dead_letter(core.settings.deadletter_prefix_bytes))
            out.sources["(unread)"] += 1
            continue
        r = item.record
        batch.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        offsets[r.topic] += 1
        out.sources[item.source or r.topic] += 1
        if len(batch) >= BATCH:
            _decide(core, batch, out)
            batch = []
    _decide(core, batch, out)
    return out


def _decide(core: DecisionCore, batch: list[RawRecord], out: Offline) -> None:
    if batch:
        result = core.process(batch)
        out.decisions += result.decisions
        out.deadletters += result.deadletters


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
) -> int:
    try:
        inventory = Inventory.load(identities) if identities else Inventory()
        bundle = load_bundle(policies or settings.policies_dir)
        lookup = registry_lookup(settings.registry_lookup, registry, registry_docs)
        items = list(read_inputs(files, settings.topics, fmt, parse_headers(headers)))
    except (OSError, ValueError, BundleError) as exc:
        print(f"nhiguard backtest: {exc}", file=sys.stderr)
        return 2
    core = DecisionCore(settings, bundle, inventory, lookup=lookup, body_time=True)  # history: body times
    figures = summary(decide_items(core, items), bundle.revision)
    print(render(figures))
    if summary_json is not None:
        try:
            summary_json.write_text(json.dumps(figures, indent=1) + "\n")
        except OSError as exc:
            print(f"nhiguard backtest: cannot write {summary_json}: {exc.strerror}", file=sys.stderr)
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
    p.add_argument("--summary-json", metavar="OUT", help="also write the figures as JSON here")
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
    )
