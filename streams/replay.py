"""`nhiguard replay FILE`: run a recorded stream through the decision core offline (no broker).

Shows what the current (or a candidate) policy bundle would have stopped: test a policy change against a
historical incident stream before it goes live.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from nhiguard.avro import command_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.lookup import registry_lookup
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams import table
from nhiguard.streams.backtest import decide_items
from nhiguard.streams.reader import read_inputs


def run_replay(
    settings: Settings,
    path: Path,
    identities: Path | None,
    policies: Path | None,
    registry: str | None = None,
    registry_docs: Path | None = None,
) -> int:
    try:
        items = list(read_inputs([path], settings.topics))
        inventory = Inventory.load(identities) if identities else Inventory()
        bundle = load_bundle(policies or settings.policies_dir)
        # No network unless asked: a recording is judged on what it carries (and recorded documents).
        lookup = registry_lookup(settings.registry_lookup, registry, registry_docs)
    except (OSError, ValueError, BundleError) as exc:
        print(f"nhiguard replay: {exc}", file=sys.stderr)
        return 2
    # A recording is history: decided on the times its records carry (settings.py, sandbox).
    core = DecisionCore(settings, bundle, inventory, lookup=lookup, body_time=True)
    result = decide_items(core, items)
    print(f"bundle {core.bundle.revision}: {len(items)} records")
    print(table.header())
    for c in result.commands:
        print(table.row(command_record(c)))
    held = sum(c.held for c in result.commands)
    print(
        f"\nverdicts: {dict(Counter(d.verdict for d in result.decisions))}; "
        f"dead letters: {dict(Counter(x.reason for x in result.deadletters))}"
        + (f"; REVOKEs held by the circuit breaker: {held}" if held else "")
    )
    for x in result.deadletters:
        if x.topic.startswith("file:"):  # unreadable lines: where they are, so they can be fixed
            print(f"unread: {x.detail}")
    return 0
