"""`nhiguard replay FILE…`: run a recorded stream through the decision core offline (no broker).

Shows what the current (or a candidate) policy bundle would have stopped: test a policy change against a
historical incident stream before it goes live. With `--to-kafka --sandbox PREFIX` the stream goes to a
sandbox's topics instead, for a worker to decide (streams/replay_kafka.py).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from nhiguard.avro import command_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.lookup import registry_lookup
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams import table
from nhiguard.streams.backtest import decide_items
from nhiguard.streams.reader import input_args, parse_headers, read_inputs


def run_replay(
    settings: Settings,
    paths: list[str],
    identities: Path | None,
    policies: Path | None,
    registry: str | None = None,
    registry_docs: Path | None = None,
    fmt: str | None = None,
    headers: tuple[str, ...] = (),
) -> int:
    try:
        items = list(read_inputs(paths, settings.topics, fmt, parse_headers(headers)))
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


def add_parser(sub: Any, registry_args: Any, sandbox: Any) -> None:
    """`nhiguard replay` on the CLI (streams/cli.py)."""
    r = sub.add_parser(
        "replay",
        parents=[sandbox],
        help="run recorded streams through the decision core offline and print what would have been "
        "stopped; or, with --to-kafka, into a sandbox's topics in event-time order",
    )
    input_args(r)
    r.add_argument("--identities", help="identity inventory file (offline)")
    r.add_argument("--policies", help="policy bundle directory (offline: test a change before it goes live)")
    registry_args(r)
    k = r.add_argument_group("into Kafka")
    k.add_argument(
        "--to-kafka",
        action="store_true",
        help="produce the records to the --sandbox's topics in event-time order (again: continues an "
        "interrupted replay, never sends a record twice)",
    )
    k.add_argument(
        "--speed", type=float, metavar="N", help="N times real time (default: as fast as possible)"
    )
    k.add_argument(
        "--from", dest="since", metavar="TIME", help="only records at or after this ISO time (zone)"
    )
    k.add_argument(
        "--to", dest="until", metavar="TIME", help="only records at or before this ISO time (zone)"
    )
    r.set_defaults(func=_cli)


def _cli(args: Any) -> int:
    from nhiguard.settings import load_settings

    settings = load_settings()
    if args.to_kafka:
        return _cli_to_kafka(args, settings)
    if args.speed or args.since or args.until:
        print("nhiguard replay: --speed, --from and --to go with --to-kafka", file=sys.stderr)
        return 2
    return run_replay(
        settings,
        list(args.files),
        Path(args.identities) if args.identities else None,
        Path(args.policies) if args.policies else None,
        args.registry,
        Path(args.registry_docs) if args.registry_docs else None,
        args.fmt,
        tuple(args.header),
    )


def _cli_to_kafka(args: Any, settings: Settings) -> int:
    from nhiguard.streams.replay_kafka import parse_time, run_to_kafka

    if args.identities or args.policies or args.registry or args.registry_docs:
        print(
            "nhiguard replay: --to-kafka: the worker decides; --identities, --policies and --registry* "
            "are for an offline replay",
            file=sys.stderr,
        )
        return 2
    try:
        if args.speed is not None and args.speed <= 0:
            raise ValueError(f"--speed {args.speed:g}: must be positive")
        window = tuple(
            None if t is None else parse_time(t, f) for t, f in ((args.since, "--from"), (args.until, "--to"))
        )
        headers = parse_headers(args.header)
    except ValueError as exc:
        print(f"nhiguard replay: {exc}", file=sys.stderr)
        return 2
    return run_to_kafka(settings, list(args.files), args.fmt, headers, args.speed, window)  # type: ignore[arg-type]
