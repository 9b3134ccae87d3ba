"""`nhiguard alerts tail [--identity GLOB] [--severity MIN] [--rule GLOB]`: the SOC's live view of soc.alerts.

One row per alert (the latest version of its id: a window that grows is sent again, README "For the SOC"),
the most recently seen first, coloured by severity and verdict, updated in place on a terminal. Filters:
`--identity` and `--rule` are globs (an exact name matches itself), `--severity` a minimum (`high` shows high
and critical). It starts at the end of the topic (what comes next) or, with `--from-start`, at its beginning;
`--until-end` shows what the topic holds now and exits. Piped, it prints one line per alert record. A record
it cannot read is counted and named, never a reason to stop.
"""

from __future__ import annotations

import fnmatch
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from nhiguard.avro import AvroCodec
from nhiguard.settings import Settings

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan"}
VERDICT_STYLE = {
    "REVOKE": "bold magenta",
    "DENY": "red",
    "HELD": "bold yellow",
    "REFUSED": "red",
    "ALLOW": "green",
    "SHADOW": "dim",
    "WAIVED": "dim",
}
ROWS = 200  # alerts kept on the board: the most recently seen


@dataclass(frozen=True)
class Filters:
    identity: str | None = None
    rule: str | None = None
    severity: str | None = None  # the lowest shown

    def keep(self, a: dict[str, Any]) -> bool:
        if self.identity and not fnmatch.fnmatchcase(a["identity"], self.identity):
            return False
        if self.rule and not fnmatch.fnmatchcase(a["rule"], self.rule):
            return False
        return not self.severity or _rank(a["severity"]) >= _rank(self.severity)


def _rank(severity: str) -> int:
    s = severity.lower()
    return SEVERITIES.index(s) if s in SEVERITIES else 0


def _ms(t: Any) -> int:
    """A timestamp-millis field as decoded (a datetime), in epoch milliseconds."""
    return round(t.timestamp() * 1000) if isinstance(t, datetime) else int(t)


def _time(t: Any) -> str:
    return datetime.fromtimestamp(_ms(t) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _count(a: dict[str, Any]) -> str:
    return f"{a['count']} (late {a['late']})" if a.get("late") else str(a["count"])


class AlertBoard:
    """The latest version of each alert that passes the filters, the most recently seen first."""

    def __init__(self, filters: Filters, title: str = "soc.alerts") -> None:
        self.filters = filters
        self.title = title
        self.alerts: dict[str, dict[str, Any]] = {}
        self.records = 0  # alert records read (every version)
        self.unreadable: list[str] = []

    def add(self, a: dict[str, Any]) -> bool:
        """Take one alert record; whether it is shown."""
        self.records += 1
        if not self.filters.keep(a):
            return False
        self.alerts[a["alert_id"]] = a
        if len(self.alerts) > ROWS:
            oldest = min(self.alerts.values(), key=lambda x: (_ms(x["last_seen"]), x["alert_id"]))
            del self.alerts[oldest["alert_id"]]
        return True

    def rows(self) -> list[dict[str, Any]]:
        return sorted(self.alerts.values(), key=lambda a: (_ms(a["last_seen"]), a["alert_id"]), reverse=True)

    def table(self) -> Table:
        shown = self.rows()
        critical = sum(a["severity"].lower() == "critical" for a in shown)
        # On top: a table taller than the terminal is cut at the bottom.
        title = f"{self.title}: {len(shown)} alerts ({critical} critical) from {self.records} records"
        if self.unreadable:
            title += f"; {len(self.unreadable)} unreadable, the last: {self.unreadable[-1]}"
        t = Table(title=title, expand=True)
        for name, kw in (
            ("last seen UTC", {"no_wrap": True}),
            ("severity", {}),
            ("verdict", {}),
            ("identity", {"overflow": "fold", "max_width": 28}),
            ("rule", {"overflow": "fold", "max_width": 32}),
            ("count", {"justify": "right"}),
            ("window", {"no_wrap": True}),
            ("latest reason", {"overflow": "fold", "ratio": 1}),
        ):
            t.add_column(name, **kw)
        for a in shown:
            t.add_row(*self._cells(a))
        return t

    def _cells(self, a: dict[str, Any]) -> list[Text | str]:
        window = ""
        if _ms(a["window_end"]) > 0:  # 0: an alert of no window (bundle.refused), or one written before them
            window = f"{_time(a['window_start'])[11:16]}-{_time(a['window_end'])[11:16]}"
        # The summary less what the row says already ("60x <rule>; last: ")
        summary = Text(a["summary"].removeprefix(f"{a['count']}x {a['rule']}; last: "))
        if a.get("runbook"):
            summary.append(" runbook", style=f"underline link {a['runbook']}")
        return [
            _time(a["last_seen"])[5:],
            Text(a["severity"], style=SEVERITY_STYLE.get(a["severity"].lower(), "")),
            Text(a["verdict"], style=VERDICT_STYLE.get(a["verdict"], "")),
            a["identity"],
            a["rule"],
            _count(a),
            window,
            summary,
        ]

    def line(self, a: dict[str, Any]) -> Text:
        """One alert record as one line (piped output)."""
        out = Text(_time(a["last_seen"]))
        for cell in self._cells(a)[1:7]:
            out.append("  " + str(cell), style=cell.style if isinstance(cell, Text) else "")
        out.append(f"  {a['alert_id']}  {a['summary']}")
        return out


def _decode(codec: AvroCodec, value: bytes | None, where: str) -> dict[str, Any] | str:
    """The alert, or why it cannot be read."""
    try:
        a = codec.decode(value or b"")
    except Exception as exc:  # not ours, truncated, corrupt: fastavro's errors vary; named, never fatal
        return f"{where}: {type(exc).__name__}: {exc}"[:300]
    if codec.schema_name(value or b"") != "Alert":
        return f"{where}: a {codec.schema_name(value or b'')} record, not an alert"
    return a


def feed(board: AlertBoard, codec: AvroCodec, messages: Iterable[Any]) -> Iterable[dict[str, Any]]:
    """Each readable alert from confluent-kafka messages, onto the board; yields those shown."""
    for m in messages:
        a = _decode(codec, m.value(), f"partition {m.partition()} offset {m.offset()}")
        if isinstance(a, str):
            board.unreadable.append(a)
        elif board.add(a):
            yield a


def run_tail(
    settings: Settings, filters: Filters, from_start: bool, until_end: bool, console: Console | None = None
) -> int:
    from nhiguard.streams.topics import TopicReadError, read_to_end

    console = console or Console()
    codec = AvroCodec(settings.schemas_dir)
    topic = settings.topics.alerts
    board = AlertBoard(filters, f"{topic} on {settings.bootstrap}")
    try:
        _probe(settings)
        if until_end:
            for _ in feed(board, codec, read_to_end(settings, topic, "alerts-tail", missing_ok=False)):
                pass
            _print(console, board)
            return 0
        return _follow(settings, console, codec, board, from_start)
    except TopicReadError as exc:
        print(f"nhiguard alerts tail: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def _consumer(settings: Settings, **extra: Any) -> Any:
    from confluent_kafka import Consumer

    from nhiguard.kafka_clients import confluent_config

    # Its own group, never committed; librdkafka's own log stays quiet (what fails is said once, here).
    group = f"{settings.app_id}-alerts-tail-{uuid.uuid4().hex}"
    return Consumer(
        confluent_config(
            settings, **{"group.id": group, "enable.auto.commit": False, "log_level": 0}, **extra
        )
    )


def _probe(settings: Settings, timeout_s: float = 15.0) -> None:
    """TopicReadError, in one line, when Kafka cannot be reached or the alerts topic is not there."""
    from confluent_kafka import KafkaException

    from nhiguard.streams.topics import TopicReadError

    topic = settings.topics.alerts
    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as exc:
        raise TopicReadError(f"cannot reach Kafka at {settings.bootstrap}: {exc.args[0].str()}") from None
    finally:
        consumer.close()
    if meta is None or meta.error is not None:
        raise TopicReadError(f"topic {topic} on {settings.bootstrap}: not found")


def _print(console: Console, board: AlertBoard) -> None:
    """What the topic holds: the table on a terminal, else a line per alert (its latest version)."""
    if console.is_terminal:
        console.print(board.table())
    else:
        for a in board.rows():
            console.print(board.line(a), soft_wrap=True)
        for why in board.unreadable:
            console.print(f"unreadable: {why}", soft_wrap=True)


def _follow(
    settings: Settings, console: Console, codec: AvroCodec, board: AlertBoard, from_start: bool
) -> int:
    """Follow the topic until interrupted: a table updated in place on a terminal, lines otherwise."""
    consumer = _consumer(settings, **{"auto.offset.reset": "earliest" if from_start else "latest"})
    consumer.subscribe([settings.topics.alerts])
    try:
        if console.is_terminal:
            with Live(board.table(), console=console, refresh_per_second=4) as live:
                for m in _messages(consumer, settings):
                    if m is not None and list(feed(board, codec, [m])):
                        live.update(board.table())
        else:
            for m in _messages(consumer, settings):
                for a in feed(board, codec, [m] if m is not None else []):
                    console.print(board.line(a), soft_wrap=True)
    finally:
        consumer.close()
    return 0


def _messages(consumer: Any, settings: Settings) -> Iterator[Any]:
    """Each record as it comes (None while none does); TopicReadError when the topic goes away. Any other
    error (a broker restarting) is librdkafka's to retry: said on stderr, and the tail goes on."""
    from confluent_kafka import KafkaError

    from nhiguard.streams.topics import TopicReadError

    topic = settings.topics.alerts
    while True:
        m = consumer.poll(0.25)
        if m is None or m.error() is None:
            yield m
        elif m.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise TopicReadError(f"topic {topic} on {settings.bootstrap}: not found")
        elif m.error().code() != KafkaError._PARTITION_EOF:
            print(f"nhiguard alerts tail: {m.error().str()} (retrying)", file=sys.stderr)


def add_parser(sub: Any, sandbox: Any) -> None:
    """`nhiguard alerts tail` on the CLI (streams/cli.py)."""
    p = sub.add_parser("alerts", help="the SOC's alerts (soc.alerts)")
    tail = p.add_subparsers(dest="alerts_command", required=True).add_parser(
        "tail",
        parents=[sandbox],
        help="a live view of the alerts, the latest version of each, coloured by severity and verdict",
    )
    tail.add_argument("--identity", metavar="GLOB", help="only alerts of identities that match")
    tail.add_argument("--rule", metavar="GLOB", help="only alerts of rules that match")
    tail.add_argument("--severity", choices=SEVERITIES, help="only alerts of this severity or higher")
    tail.add_argument("--from-start", action="store_true", help="read the topic from its beginning")
    tail.add_argument("--until-end", action="store_true", help="show what the topic holds now, then exit")
    tail.set_defaults(func=_cli)


def _cli(args: Any) -> int:
    from nhiguard.settings import load_settings

    filters = Filters(args.identity, args.rule, args.severity)
    return run_tail(load_settings(), filters, args.from_start or args.until_end, args.until_end)
