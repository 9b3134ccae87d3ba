"""`nhiguard eval FILE…`: detection quality on a labelled recording, per class and overall.

A labelled recording is a replay file (streams/replayfile.py) whose lines carry a `label`: `attack` or
`benign`, optionally followed by `:<class>`, or `context:<class>`. Any other label, or none, counts as benign.
The files are decided offline by the decision core, in argument order, as one stream.

`context` is for records an attack causes that are not its harmful act, from an identity under attack (the
push and workflow runs of a release an attacker started, the metadata GET before a bad install): a command on
one is neither a catch nor a false command against a healthy identity, so context records count in no
benign or attack figure nor in a precision; their commands are reported on their own.

Counts are of records: an attack record is *commanded* when its decision carries at least one command; a
dead-lettered record counts as uncommanded. DENY precision is the share of records with a DENY that are
attack records; REVOKE precision likewise. A precision is null only when nothing was denied (revoked).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.lookup import registry_lookup
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams.backtest import reads_only
from nhiguard.streams.reader import read_inputs
from nhiguard.streams.replayfile import ReplayRecord

BATCH = 500


ATTACK, BENIGN, CONTEXT = "attack", "benign", "context"


def parse_label(label: str | None) -> tuple[str, str]:
    """(kind, class) from a record's label: kind attack, benign or context; unlabelled and unknown labels
    are benign."""
    kind, _, cls = (label or "").partition(":")
    if kind in (ATTACK, CONTEXT):
        return kind, cls or kind
    return BENIGN, cls if kind == BENIGN and cls else BENIGN if kind == BENIGN else "unlabelled"


@dataclass
class Outcome:
    kind: str  # attack | benign | context
    cls: str
    time_ms: int
    kinds: frozenset[str] = frozenset()  # command kinds on the record's decision (DENY, REVOKE)
    deadletter: str | None = None


@dataclass
class ClassFigures:
    records: int = 0
    commanded: int = 0
    denied: int = 0
    revoked: int = 0
    deadlettered: int = 0
    first_ms: int | None = None
    first_command_ms: int | None = None

    def add(self, o: Outcome) -> None:
        self.records += 1
        self.commanded += bool(o.kinds)
        self.denied += "DENY" in o.kinds
        self.revoked += "REVOKE" in o.kinds
        self.deadlettered += o.deadletter is not None
        self.first_ms = o.time_ms if self.first_ms is None else min(self.first_ms, o.time_ms)
        if o.kinds:
            t = o.time_ms
            self.first_command_ms = t if self.first_command_ms is None else min(self.first_command_ms, t)


@dataclass
class Evaluation:
    attack: dict[str, ClassFigures] = field(default_factory=lambda: defaultdict(ClassFigures))
    benign: dict[str, ClassFigures] = field(default_factory=lambda: defaultdict(ClassFigures))
    context: dict[str, ClassFigures] = field(default_factory=lambda: defaultdict(ClassFigures))

    def _of(self, kind: str) -> dict[str, ClassFigures]:
        return {ATTACK: self.attack, CONTEXT: self.context}.get(kind, self.benign)

    def add(self, o: Outcome) -> None:
        self._of(o.kind)[o.cls].add(o)

    def merge(self, other: Evaluation) -> None:
        """Add another recording's counts (times to first command stay per recording: they are not added)."""
        for kind in (ATTACK, BENIGN, CONTEXT):
            mine, theirs = self._of(kind), other._of(kind)
            for cls, f in theirs.items():
                m = mine[cls]
                m.records += f.records
                m.commanded += f.commanded
                m.denied += f.denied
                m.revoked += f.revoked
                m.deadlettered += f.deadlettered

    def summary(self) -> dict[str, Any]:
        a, b, c = self.attack.values(), self.benign.values(), self.context.values()
        denied = sum(x.denied for x in a) + sum(x.denied for x in b)
        revoked = sum(x.revoked for x in a) + sum(x.revoked for x in b)
        benign_records = sum(x.records for x in b)
        benign_commands = sum(x.commanded for x in b)
        return {
            "attack_records": sum(x.records for x in a),
            "attack_records_commanded": sum(x.commanded for x in a),
            "attack_classes": len(self.attack),
            "attack_classes_caught": sum(1 for x in a if x.commanded),
            "benign_records": benign_records,
            "benign_commands": benign_commands,
            "benign_revokes": sum(x.revoked for x in b),
            "benign_commands_per_1000": round(1000 * benign_commands / benign_records, 3)
            if benign_records
            else None,
            "deny_precision": _ratio(sum(x.denied for x in a), denied),
            "revoke_precision": _ratio(sum(x.revoked for x in a), revoked),
            "context_records": sum(x.records for x in c),
            "context_commands": sum(x.commanded for x in c),
            "context_revokes": sum(x.revoked for x in c),
            "classes": {
                **{f"attack:{k}": _class_json(v) for k, v in sorted(self.attack.items())},
                **{f"benign:{k}": _class_json(v) for k, v in sorted(self.benign.items())},
                **{f"context:{k}": _class_json(v) for k, v in sorted(self.context.items())},
            },
        }


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _class_json(x: ClassFigures) -> dict[str, Any]:
    ttc = None if x.first_command_ms is None or x.first_ms is None else x.first_command_ms - x.first_ms
    return {
        "records": x.records,
        "commanded": x.commanded,
        "recall": _ratio(x.commanded, x.records),
        "deny": x.denied,
        "revoke": x.revoked,
        "deadlettered": x.deadlettered,
        "time_to_first_command_s": None if ttc is None else round(ttc / 1000, 1),
    }


def evaluate(core: DecisionCore, replayed: Iterable[ReplayRecord]) -> Evaluation:
    """Decide every record through the core, in order, and score each decision against its label."""
    offsets: Counter[str] = Counter()
    labelled: dict[tuple[str, int], tuple[str, str, int]] = {}
    records: list[RawRecord] = []
    for r in replayed:
        rec = RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms)
        offsets[r.topic] += 1
        labelled[(rec.topic, rec.offset)] = (*parse_label(r.label), r.timestamp_ms)
        records.append(rec)
    ev = Evaluation()
    for i in range(0, len(records), BATCH):
        result = core.process(records[i : i + BATCH])
        for d in result.decisions:
            kind, cls, _ = labelled[(d.topic, d.offset)]
            kinds = frozenset(c.kind for c in d.commands)
            ev.add(Outcome(kind, cls, d.event.occurred_at_ms, kinds))
        for x in result.deadletters:
            kind, cls, ts = labelled[(x.topic, x.offset)]
            ev.add(Outcome(kind, cls, ts, deadletter=x.reason))
    return ev


def render(summary: dict[str, Any]) -> str:
    cols = ("records", "commanded", "recall", "DENY", "REVOKE", "first cmd")
    widths = (8, 9, 7, 6, 6, 10)
    head = f"{'class':<44} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
    lines = [head, "-" * len(head)]
    for name, c in summary["classes"].items():
        ttc = "" if c["time_to_first_command_s"] is None else f"{c['time_to_first_command_s']:.0f} s"
        recall = "" if c["recall"] is None else f"{c['recall']:.2f}"
        cells = (c["records"], c["commanded"], recall, c["deny"], c["revoke"], ttc)
        lines.append(f"{name:<44} " + " ".join(f"{v:>{w}}" for v, w in zip(cells, widths, strict=True)))
    s = summary
    lines += [
        "",
        f"attack classes caught: {s['attack_classes_caught']} of {s['attack_classes']}; "
        f"attack records commanded: {s['attack_records_commanded']} of {s['attack_records']}",
        f"benign records with a command: {s['benign_commands']} of {s['benign_records']} "
        f"({s['benign_commands_per_1000']} per 1,000); with a REVOKE: {s['benign_revokes']}",
        f"DENY precision: {s['deny_precision']}; REVOKE precision: {s['revoke_precision']}",
    ]
    if s["context_records"]:
        lines.append(
            f"context records (an attack's, not its harmful act; in no figure above): "
            f"{s['context_records']}, "
            f"{s['context_commands']} with a command, {s['context_revokes']} with a REVOKE"
        )
    return "\n".join(lines)


def run_eval(
    settings: Settings,
    files: list[Path],
    identities: Path | None,
    policies: Path | None,
    summary_json: Path | None,
    registry: str | None = None,
    registry_docs: Path | None = None,
) -> int:
    try:
        reads, unread = reads_only(read_inputs(files, settings.topics))
        replayed = [r.record for r in reads]
        inventory = Inventory.load(identities) if identities else Inventory()
        bundle = load_bundle(policies or settings.policies_dir)
        # No network unless asked: a recording is judged on what it carries (and recorded documents).
        lookup = registry_lookup(settings.registry_lookup, registry, registry_docs)
    except (OSError, ValueError, BundleError) as exc:
        print(f"nhiguard eval: {exc}", file=sys.stderr)
        return 2
    core = DecisionCore(settings, bundle, inventory, lookup=lookup, body_time=True)  # history: body times
    summary = evaluate(core, replayed).summary()
    print(render(summary))
    if unread:  # in no figure: they carry no label
        first = unread[0]
        print(f"{len(unread)} records could not be read (first {first.file}:{first.line}: {first.detail})")
    if summary_json is not None:
        try:
            summary_json.write_text(json.dumps(summary, indent=1) + "\n")
        except OSError as exc:
            print(f"nhiguard eval: cannot write {summary_json}: {exc}", file=sys.stderr)
            return 2
    return 0
