"""`nhiguard replay FILE… --to-kafka --sandbox PREFIX`: a recorded stream into a sandbox's input topics, in
event-time order, for a worker on that sandbox to decide as it would have live.

Files are read by the one reader (streams/reader.py) and each record goes where `nhiguard ingest` sends it
(streams/ingest.py `outgoing`: its input topic keyed by identity, or a dead letter), through its idempotent
producer. The order is event time across all files: a replay line's own timestamp (when Kafka carried it),
else the time its adapter reads in the body; a record with neither (one the worker will dead-letter) keeps
its place after the record before it in its file. `--from/--to` keep the records of that window (an untimed
record goes with its neighbour); `--speed N` waits N times faster than the event times did, else records go
as fast as the broker takes them.

Resumable without duplicates: every record carries `nhiguard-replay: <replay id>|<sequence>`, the replay id
a hash of what is to be sent (same files and window, same id). A run first reads back the sandbox's input and
dead-letter topics and sends only the sequence numbers that are not there, so an interrupted replay (Ctrl-C,
a kill, a lost connection) is continued by running the same command again. (Route keeps only allow-listed
headers: decisions never see it.)
"""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaException, Producer

from nhiguard.avro import AvroCodec
from nhiguard.decision.adapters import adapt
from nhiguard.decision.records import AdapterError, RawRecord
from nhiguard.settings import Settings
from nhiguard.streams.ingest import Outgoing, Writer, outgoing, progress_bar
from nhiguard.streams.reader import Item, Unreadable, read_inputs

REPLAY_HEADER = "nhiguard-replay"


@dataclass(frozen=True)
class Planned:
    """A record to send: its sequence number in the replay, what goes out, the event time it is ordered by."""

    seq: int
    out: Outgoing
    time_ms: int | None


def parse_time(text: str, flag: str) -> int:
    """An ISO 8601 time with its zone (`2026-03-14T09:00:00Z`) in epoch milliseconds; ValueError otherwise."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: not an ISO 8601 time (e.g. 2026-03-14T09:00:00Z)") from None
    if at.tzinfo is None:
        raise ValueError(f"{flag} {text!r}: give its zone (Z or +HH:MM); a time without one is ambiguous")
    return int(at.timestamp() * 1000)


def event_time(settings: Settings, item: Item) -> int | None:
    """A replay line's timestamp, else the time the record's adapter reads; None when neither is known."""
    if isinstance(item, Unreadable):
        return None
    r = item.record
    if r.timestamp_ms > 0:
        return r.timestamp_ms
    try:
        ev = adapt(RawRecord(r.topic, 0, 0, r.value, r.key, r.headers, 0), settings.topics.domain_of(r.topic))
    except AdapterError:
        return None
    return ev.occurred_at_ms if ev.occurred_at_ms > 0 else None


def anchors(times: list[int | None]) -> list[int | None]:
    """Each record's ordering time: its own; an untimed one takes the previous timed record's in its file
    (the next one's before the first), so it keeps its place next to its neighbour."""
    out: list[int | None] = []
    last = next((t for t in times if t is not None), None)
    for t in times:
        last = t if t is not None else last
        out.append(last)
    return out


def plan(
    settings: Settings,
    files: list[str],
    fmt: str | None,
    headers: tuple[tuple[str, bytes], ...],
    window: tuple[int | None, int | None] = (None, None),
) -> list[Planned]:
    """What the replay sends, in event-time order across the files (ties: argument, then file order)."""
    codec = AvroCodec(settings.schemas_dir)
    keyed: list[tuple[int, int, int, Outgoing, int | None]] = []
    for f, name in enumerate(files):
        items = list(read_inputs([name], settings.topics, fmt, headers))
        times = anchors([event_time(settings, item) for item in items])
        for i, (item, t) in enumerate(zip(items, times, strict=True)):
            if t is None or ((window[0] is None or t >= window[0]) and (window[1] is None or t <= window[1])):
                keyed.append((-1 if t is None else t, f, i, outgoing(settings, codec, item), t))
    keyed.sort(key=lambda k: k[:3])
    return [Planned(seq, out, t) for seq, (_, _, _, out, t) in enumerate(keyed)]


def replay_id(planned: list[Planned]) -> str:
    """The same records in the same order (same files and window): the same id, whichever run sends them."""
    h = hashlib.sha256()
    for p in planned:
        topic, key, value, hdrs = p.out
        h.update(f"{p.seq}|{topic}|{key!r}|{hdrs!r}|".encode())
        h.update(hashlib.sha256(value).digest())
    return h.hexdigest()[:20]


def header_values(settings: Settings, topics: list[str], name: str, patience_s: float = 30.0) -> list[bytes]:
    """The values of header `name` on every record of the topics, read to their end as of now. A topic just
    created may have no partition leader yet: reading is tried again for `patience_s`."""
    from nhiguard.streams.topics import TopicReadError, read_to_end

    deadline = time.monotonic() + patience_s
    while True:
        try:
            return [
                v
                for topic in topics
                for msg in read_to_end(settings, topic, "read-back", missing_ok=True)
                for k, v in msg.headers() or []
                if k == name
            ]
        except TopicReadError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def already_sent(settings: Settings, rid: str) -> set[int]:
    """The sequence numbers of replay `rid` on the sandbox's input and dead-letter topics."""
    prefix = f"{rid}|".encode()
    topics = [*settings.topics.inputs, settings.topics.deadletter]
    return {
        int(v[len(prefix) :]) for v in header_values(settings, topics, REPLAY_HEADER) if v.startswith(prefix)
    }


def run_to_kafka(
    settings: Settings,
    files: list[str],
    fmt: str | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
    speed: float | None = None,
    window: tuple[int | None, int | None] = (None, None),
    progress: bool = True,
) -> int:
    """Replay the files into the sandbox's topics; 0 when every record is on them, 1 if some were not
    acknowledged, 2 for input or a configuration that cannot be used, 128 + the signal when interrupted."""
    if not settings.sandbox:
        print("nhiguard replay: --to-kafka writes history: give --sandbox PREFIX", file=sys.stderr)
        return 2
    from nhiguard.streams.topics import ensure_topics

    with _Stop() as stop:
        try:
            planned = plan(settings, files, fmt, headers, window)
            ensure_topics(settings)
            rid = replay_id(planned)
            sent = already_sent(settings, rid)
        # RuntimeError: topics that do not fit (ensure_topics), or that cannot be read back (TopicReadError)
        except (OSError, ValueError, RuntimeError) as exc:
            print(f"nhiguard replay: {exc}", file=sys.stderr)
            return 2
        except KafkaException as exc:
            print(f"nhiguard replay: Kafka: {exc.args[0].str() if exc.args else exc}", file=sys.stderr)
            return 2
        if stop.signum:
            print("nhiguard replay: interrupted before sending", file=sys.stderr)
            return 128 + stop.signum
        todo = [p for p in planned if p.seq not in sent]
        print(
            f"replay {rid}: {len(planned)} records, {len(planned) - len(todo)} already on {settings.sandbox}"
        )
        return _send_all(settings, rid, todo, _Pace(speed, stop), progress)


def _send_all(settings: Settings, rid: str, todo: list[Planned], pace: _Pace, progress: bool) -> int:
    writer = Writer(settings)
    with progress_bar(len(todo), f"replay {rid[:8]}", progress) as advance:
        for p in todo:
            pace.wait(writer.producer, p.time_ms)
            if pace.stop.signum:
                break
            topic, key, value, hdrs = p.out
            writer.send(topic, key, value, (*hdrs, (REPLAY_HEADER, f"{rid}|{p.seq}".encode())))
            advance()
    if pace.stop.signum:
        writer.producer.flush(10)
        n = sum(writer.counts.values())
        print(f"interrupted: {n} of {len(todo)} sent; the same command continues where this one stopped")
        return 128 + pace.stop.signum
    return writer.close("replay")


class _Stop:
    """SIGINT and SIGTERM ask the replay to stop between two records (a signal inside the producer's C code
    would not stop it cleanly): what was handed to the producer is delivered, and a later run continues."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def _set(self, signum: int, _frame: object) -> None:
        self.signum = signum

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._set)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Pace:
    """`--speed N`: the gap between two records' event times, N times faster; no waiting without it."""

    def __init__(self, speed: float | None, stop: _Stop) -> None:
        self.speed, self.stop = speed, stop
        self.start: tuple[float, int] | None = None  # (monotonic, event time) of the first timed record

    def wait(self, producer: Producer, time_ms: int | None) -> None:
        if not self.speed or time_ms is None:
            return
        if self.start is None:
            self.start = (time.monotonic(), time_ms)
        due = self.start[0] + (time_ms - self.start[1]) / 1000 / self.speed
        while (left := due - time.monotonic()) > 0 and not self.stop.signum:
            producer.poll(min(left, 0.2))  # deliveries are served while waiting
