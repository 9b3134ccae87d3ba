"""`nhiguard deadletters redrive [--reason R] [--since T]`: dead letters back through the pipeline after a fix
(an adapter added, a bug mended).

Reads the dead-letter topic from the start to its current end and sends each chosen dead letter's original
bytes, with the headers it kept, back to the input topic it was read from. The record says where it came
from: `X-Nhiguard-Redriven-From: <topic>|<partition>|<offset>|<timestamp ms>` (allow-listed, so it stays
with the record through route, into a dead letter should it fail again, and into its decision's flags as
`redriven:<the same>`). It is decided as a new record of that topic: the redelivery guard
(streams/delivery.py) judges it by where it now is, because its old offset is below its identity's watermark
once later records of that partition were applied (it would be skipped as applied), and because coordinates
taken from an input header would let anyone who writes to an input topic move another identity's watermark.

Once per dead letter: each redriven record carries `nhiguard-redrive: <dead-letter topic>|<partition>|
<offset>`, and a run first reads the input topics back and leaves out the dead letters already there.
Not redriven (counted): a dead letter of a file line (`file:…`: fix the file and ingest it again) or of any
topic that is not an input topic here, and one whose original was truncated (only a prefix was kept).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException

from nhiguard.avro import AvroCodec
from nhiguard.decision.headers import REDRIVEN_FROM
from nhiguard.settings import Settings
from nhiguard.streams.ingest import Writer

REDRIVE_HEADER = "nhiguard-redrive"  # the tool's own: route drops it (decision/headers.py)
FROM_HEADER = REDRIVEN_FROM  # where the record was first read: kept with it, named in its decision


@dataclass(frozen=True)
class Redrive:
    """One dead letter to send back: its id (where the dead letter is) and the record to send."""

    redrive_id: str
    topic: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def choose(settings: Settings, reasons: set[str], since_ms: int | None) -> tuple[list[Redrive], Counter[str]]:
    """The dead letters to send back, oldest first, and why the others that match are not sent."""
    from nhiguard.streams.topics import read_to_end

    codec = AvroCodec(settings.schemas_dir)
    chosen: list[Redrive] = []
    skipped: Counter[str] = Counter()
    for msg in read_to_end(settings, settings.topics.deadletter, "redrive", missing_ok=True):
        try:
            if codec.schema_name(msg.value() or b"") != "DeadLetter":
                raise ValueError("not a dead letter")
            x = codec.decode(msg.value())
        except (ValueError, EOFError, TypeError):  # not written by nhiguard: nothing to send back
            skipped["not a dead-letter record"] += 1
            continue
        _, written = msg.timestamp()
        if (reasons and x["reason"] not in reasons) or (since_ms is not None and written < since_ms):
            continue
        if x["topic"] not in settings.topics.inputs:
            skipped["not from an input topic"] += 1
        elif x["truncated"]:
            skipped["truncated"] += 1
        else:
            where = f"{x['topic']}|{x['partition']}|{x['offset']}|{_ms(x['timestamp'])}".encode()
            hdrs = tuple(
                (h["key"], h["value"]) for h in x["headers"] if h["key"].lower() != FROM_HEADER.lower()
            )
            rid = f"{msg.topic()}|{msg.partition()}|{msg.offset()}"
            chosen.append(Redrive(rid, x["topic"], x["original"], (*hdrs, (FROM_HEADER, where))))
    return chosen, skipped


def _ms(value: Any) -> int:
    """A decoded timestamp-millis (fastavro gives a datetime) in milliseconds."""
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def already_redriven(settings: Settings) -> set[str]:
    """The redrive ids on the input topics."""
    from nhiguard.streams.replay_kafka import header_values

    return {v.decode() for v in header_values(settings, list(settings.topics.inputs), REDRIVE_HEADER)}


def run_redrive(settings: Settings, reasons: set[str], since: str | None, dry_run: bool = False) -> int:
    from nhiguard.streams.replay_kafka import parse_time

    try:
        since_ms = parse_time(since, "--since") if since else None
        chosen, skipped = choose(settings, reasons, since_ms)
        done = already_redriven(settings)
        todo = [r for r in chosen if r.redrive_id not in done]
        if len(chosen) > len(todo):
            skipped["already redriven"] += len(chosen) - len(todo)
        if dry_run:
            for r in todo:
                print(f"{r.redrive_id}\t-> {r.topic}\t{dict(r.headers)[FROM_HEADER].decode()}")
            print(f"would redrive: {len(todo)}; not: {dict(skipped)}")
            return 0
        return _send(settings, todo, skipped)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: a topic that cannot be read (TopicReadError)
        print(f"nhiguard deadletters redrive: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(
            f"nhiguard deadletters redrive: Kafka: {exc.args[0].str() if exc.args else exc}", file=sys.stderr
        )
        return 2


def _send(settings: Settings, todo: list[Redrive], skipped: Counter[str]) -> int:
    writer = Writer(settings)
    for r in todo:
        writer.send(r.topic, None, r.value, (*r.headers, (REDRIVE_HEADER, r.redrive_id.encode())))
    print(f"not redriven: {dict(skipped)}")
    return writer.close("deadletters redrive", "redriven")


def add_parser(sub: Any, sandbox: Any) -> None:
    """`nhiguard deadletters redrive` on the CLI (streams/cli.py)."""
    d = sub.add_parser("deadletters", help="the dead-letter topic (audit.deadletter)")
    d_sub = d.add_subparsers(dest="deadletters_command", required=True)
    r = d_sub.add_parser(
        "redrive",
        parents=[sandbox],
        help="send dead letters' original records back to their input topics after a fix (once each)",
    )
    r.add_argument(
        "--reason", action="append", default=[], metavar="R", help="only this reason (again for more)"
    )
    r.add_argument(
        "--since", metavar="TIME", help="only dead letters written at or after this ISO time (zone)"
    )
    r.add_argument("--dry-run", action="store_true", help="list what would be sent; send nothing")
    r.set_defaults(func=_cli)


def _cli(args: Any) -> int:
    from nhiguard.settings import load_settings

    return run_redrive(load_settings(), set(args.reason), args.since, args.dry_run)
