"""`nhiguard ingest [--format FMT] FILE…|-`: audit records from files onto the input topics.

Files are read by the one reader (streams/reader.py). Each record goes to its source's input topic, keyed by
the identity its adapter names (so one identity's records keep their order on one partition), with an
idempotent producer; a record the reader cannot read goes to the dead-letter topic, naming its file and line.
Old records are history: they belong in a sandbox (`--sandbox PREFIX`: its own topics, decided on body time);
writing them to the live topics takes `--live`, and there they are decided on the time they are ingested when
their own is beyond the bound (README, Event time and history). `--dry-run` shows what each record is
recognised as, and writes nothing.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaException, Producer

from nhiguard.avro import AvroCodec, deadletter_record
from nhiguard.decision.adapters import adapt
from nhiguard.decision.records import AdapterError, RawRecord
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings
from nhiguard.streams.reader import Item, Read, Unreadable, input_args, parse_headers, read_inputs


def _identity(settings: Settings, item: Read) -> tuple[str | None, str]:
    """(the identity the record's adapter names, or None; what it was recognised as): key and dry run."""
    r = item.record
    rec = RawRecord(r.topic, 0, 0, r.value, r.key, r.headers, r.timestamp_ms)
    try:
        domain = settings.topics.domain_of(r.topic)
        ev = adapt(rec, domain, settings.formats.of(domain))
    except AdapterError as exc:
        return None, f"dead letter: {exc.reason}: {exc.detail}"[:160]
    return ev.actor.id, f"{ev.source} {ev.action} by {ev.actor.id}"


def dry_run(settings: Settings, items: Iterator[Item]) -> int:
    counts: Counter[str] = Counter()
    for item in items:
        if isinstance(item, Unreadable):
            print(f"{item.file}:{item.line}\tunread\t{item.reason}: {item.detail}")
            counts["unread"] += 1
            continue
        _, what = _identity(settings, item)
        print(f"{item.file}:{item.line}\t{item.record.topic}\t{what}")
        counts[item.record.topic] += 1
    print(f"would write: {dict(counts)}", file=sys.stderr)
    return 0


def run_ingest(
    settings: Settings,
    files: list[str],
    fmt: str | None,
    dry: bool,
    live: bool,
    headers: tuple[str, ...] = (),
    progress: bool = True,
) -> int:
    if not settings.sandbox and not live and not dry:
        print(
            "nhiguard ingest: old records are history: give --sandbox PREFIX (or --live to write them to the "
            "live input topics, decided on the ingest time where theirs is beyond the bound)",
            file=sys.stderr,
        )
        return 2
    try:
        items = read_inputs(files, settings.topics, fmt, parse_headers(headers))
        if dry:
            return dry_run(settings, items)
        return _produce(settings, list(items), progress)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: topics that do not fit (ensure_topics)
        print(f"nhiguard ingest: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:
        print(f"nhiguard ingest: Kafka: {exc.args[0].str() if exc.args else exc}", file=sys.stderr)
        return 2


def _produce(settings: Settings, items: list[Item], progress: bool) -> int:
    from nhiguard.streams.topics import ensure_topics

    ensure_topics(settings)
    codec = AvroCodec(settings.schemas_dir)
    writer = Writer(settings)
    with progress_bar(len(items), "ingest", progress and len(items) > 1000) as advance:
        for item in items:
            writer.send(*outgoing(settings, codec, item))
            advance()
    return writer.close("ingest")


Outgoing = tuple[str, bytes | None, bytes, tuple[tuple[str, bytes], ...]]


def outgoing(settings: Settings, codec: AvroCodec, item: Item) -> Outgoing:
    """(topic, key, value, headers) of what the reader read: the record to its input topic, keyed by the
    identity its adapter names; a dead letter for one it could not read or whose topic is no input here."""
    if not isinstance(item, Unreadable) and item.record.topic not in settings.topics.inputs:
        # Only this deployment's input topics are written (a sandbox's when sandboxed).
        inputs = ", ".join(settings.topics.inputs)
        why = f"topic {item.record.topic!r} is not an input topic here ({inputs})"
        item = Unreadable(item.file, item.line, "unknown_topic", why, item.record.value)
    if isinstance(item, Unreadable):
        return (
            settings.topics.deadletter,
            None,
            codec.encode("DeadLetter", deadletter_record(item.dead_letter())),
            (),
        )
    key, _ = _identity(settings, item)
    r = item.record
    return r.topic, key.encode() if key else r.key, r.value, r.headers


class Writer:
    """The idempotent producer ingest, replay and redrive write input records with (retries never duplicate
    or reorder), and what it delivered."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(confluent_config(settings, **{"enable.idempotence": True, "linger.ms": 20}))
        self.counts: Counter[str] = Counter()  # delivered, per topic
        self.errors: list[str] = []

    def _done(self, err: object, msg: object) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.counts[msg.topic()] += 1  # type: ignore[attr-defined]

    def send(
        self, topic: str, key: bytes | None, value: bytes, headers: tuple[tuple[str, bytes], ...]
    ) -> None:
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, headers=list(headers), on_delivery=self._done
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.1)
        self.producer.poll(0)

    def close(self, tool: str, done: str = "written") -> int:
        """Wait for every delivery and say what was written; 0, or 1 if any record was not."""
        left = self.producer.flush(60)
        print(f"{done}: {dict(self.counts)}" + (f"; not acknowledged: {left}" if left else ""))
        if self.errors or left:
            print(
                f"nhiguard {tool}: {len(self.errors) + left} records not written: {self.errors[:3]}",
                file=sys.stderr,
            )
            return 1
        return 0


@contextmanager
def progress_bar(total: int, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    """A progress bar with count, rate and time left on a terminal (rich); nothing otherwise."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda: None
        return
    from rich.progress import MofNCompleteColumn, Progress, ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:,.0f} rec/s" if task.speed else "- rec/s", style="progress.data.speed")

    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), Rate(), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def add_parser(sub: Any, sandbox: Any) -> None:
    """`nhiguard ingest` on the CLI (streams/cli.py)."""
    p = sub.add_parser(
        "ingest",
        parents=[sandbox],
        help="write audit files (the sources' own JSON, any layout, gzip too; or replay files) to the input "
        "topics of a sandbox (--sandbox) or, with --live, the live ones",
    )
    input_args(p)
    p.add_argument(
        "--dry-run", action="store_true", help="show what each record is recognised as; write none"
    )
    p.add_argument("--live", action="store_true", help="write to the live input topics (not history)")
    p.set_defaults(func=_cli)


def _cli(args: Any) -> int:
    from nhiguard.settings import load_settings

    return run_ingest(
        load_settings(), list(args.files), args.fmt, args.dry_run, args.live, tuple(args.header)
    )
