"""The soak's count: what came out per input record, the command contents, and the committed offsets.

`Collector` reads the output topics while the soak runs; `CommitSampler` samples the worker group's committed
offsets; `account` reads the input and by-identity topics once the workers are stopped and counts (the rules
are in tools/soak.py's docstring); `print_table` prints the figures."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings

Key = tuple[str, int, int]  # an input record: topic, partition, offset
ORIGIN = "nhiguard-origin"  # the by-identity record's source (streams/agents.py)
NOT_CONTENT = ("released_at", "released_by")  # set by an operator's release, not by the worker


def _consumer(settings: Settings, **extra: Any) -> Consumer:
    conf = {
        "group.id": f"soak-reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "log_level": 0,
    }
    return Consumer(confluent_config(settings, **(conf | extra)))


def command_content(rec: dict[str, Any]) -> str:
    """A command's content for comparison: every field the worker sets (tools/soak.py's docstring)."""
    c = {k: v for k, v in rec.items() if k not in NOT_CONTENT}
    if c.get("status") == "RELEASED":
        c["status"] = "HELD"
    return json.dumps(c, sort_keys=True, default=str)


class Collector(threading.Thread):
    """Reads decisions, dead letters and commands (issued and held) from the start, while the soak runs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="soak-collector")
        self.settings = settings
        self.codec = AvroCodec(settings.schemas_dir)
        # input -> decision id -> [copies, first Kafka timestamp, verdict, command ids]
        self.decisions: dict[Key, dict[str, list[Any]]] = defaultdict(dict)
        self.deadletters: dict[Key, dict[str, list[Any]]] = defaultdict(dict)  # reason -> [copies, ts]
        self.commands: dict[str, dict[str, int]] = defaultdict(dict)  # command id -> content -> copies
        self.named: set[str] = set()  # command ids the decisions name
        self.seen: set[Key] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        t = self.settings.topics
        c = _consumer(self.settings)
        c.subscribe([t.decisions, t.deadletter, t.commands, t.held])
        try:
            while not self._halt.is_set():
                for m in c.consume(500, 0.5):
                    if not m.error():
                        self._take(m.topic(), self.codec.decode(m.value()), m.timestamp()[1])
        finally:
            c.close()

    def _take(self, topic: str, rec: dict[str, Any], ts: int) -> None:
        t = self.settings.topics
        if topic == t.decisions:
            i = rec["input"]
            key = (i["topic"], i["partition"], i["offset"])
            got = self.decisions[key].setdefault(
                rec["decision_id"], [0, ts, rec["verdict"], rec["command_ids"]]
            )
            got[0] += 1
            got[1] = min(got[1], ts)
            self.named.update(rec["command_ids"])
            self.seen.add(key)
        elif topic == t.deadletter:
            key = (rec["topic"], rec["partition"], rec["offset"])
            got = self.deadletters[key].setdefault(rec["reason"], [0, ts])
            got[0] += 1
            got[1] = min(got[1], ts)
            self.seen.add(key)
        else:
            content = command_content(rec)
            by = self.commands[rec["command_id"]]
            by[content] = by.get(content, 0) + 1

    def accounted(self) -> int:
        return len(self.seen)

    def wait_inputs(self, timeout: float) -> int:
        """Until every record on the input topics is accounted for (or `timeout` s); returns how many there
        are (the producer is idempotent and not transactional: every offset holds a record)."""
        c = _consumer(self.settings)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    want = {
                        (tp, o)
                        for tp in _partitions(self.settings, self.settings.topics.inputs)
                        for o in range(*c.get_watermark_offsets(TopicPartition(*tp), 30))
                    }
                except KafkaException:  # the broker is still taking its partitions back after a restart
                    time.sleep(2)
                    continue
                missing = sum((*tp, o) not in self.seen for tp, o in want)
                if not missing or time.monotonic() > deadline:
                    return len(want)
                time.sleep(2)
        finally:
            c.close()

    def wait_commands(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.named <= set(self.commands) and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def _partitions(settings: Settings, topics: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    return [(t, p) for t in topics for p in range(settings.input_partitions)]


class CommitSampler(threading.Thread):
    """The worker group's committed offsets, sampled every second: (wall ms after the answer, topic,
    partition, offset) each time one changes."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True, name="soak-commits")
        self.tps = _partitions(settings, [*settings.topics.inputs, settings.topics.by_identity])
        self.consumer = _consumer(settings, **{"group.id": settings.app_id})  # never subscribes or commits
        self.samples: list[tuple[int, str, int, int]] = []
        self.last: dict[tuple[str, int], int] = {}
        self.errors = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._halt.wait(1.0):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            try:
                got = self.consumer.committed([TopicPartition(t, p) for t, p in self.tps], timeout=10)
            except Exception:
                self.errors += 1  # the broker is restarting: the next sample will tell
                return
            now = int(time.time() * 1000)
            for tp in got:
                if (
                    tp.error is None
                    and tp.offset >= 0
                    and self.last.get((tp.topic, tp.partition)) != tp.offset
                ):
                    self.last[(tp.topic, tp.partition)] = tp.offset
                    self.samples.append((now, tp.topic, tp.partition, tp.offset))

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        self.consumer.close()


def read_log(settings: Settings, topics: list[str]) -> dict[tuple[str, int], list[Any]]:
    """Every record of the topics' partitions, low to high watermark: (offset, timestamp, headers) each."""
    c = _consumer(settings)
    out: dict[tuple[str, int], list[Any]] = {}
    try:
        for t, p in _partitions(settings, topics):
            low, high = c.get_watermark_offsets(TopicPartition(t, p), 30)
            rows: list[Any] = []
            c.assign([TopicPartition(t, p, low)])
            deadline = time.monotonic() + 300
            while low < high and (not rows or rows[-1][0] < high - 1) and time.monotonic() < deadline:
                for m in c.consume(1000, 1.0):
                    if not m.error():
                        rows.append((m.offset(), m.timestamp()[1], m.headers() or []))
            out[(t, p)] = rows
    finally:
        c.close()
    return out


def _committed_over(
    samples: list[tuple[int, str, int, int]], logs: dict[tuple[str, int], list[Any]], done_by: Any
) -> tuple[int, list[str]]:
    """Records a committed offset passed before they were processed: done_by(tp, row) is the Kafka time the
    record was processed at, or None."""
    bad, examples = 0, []
    for tp, rows in logs.items():
        passed, first = 0, {}
        for t_ms, topic, part, offset in sorted(samples):
            if (topic, part) == tp and offset > passed:
                for o in range(passed, offset):
                    first.setdefault(o, t_ms)
                passed = offset
        for row in rows:
            if row[0] in first:
                done = done_by(tp, row)
                if done is None or done > first[row[0]]:
                    bad += 1
                    if len(examples) < 10:
                        examples.append(f"{tp[0]}[{tp[1]}]@{row[0]}: committed {first[row[0]]}, done {done}")
    return bad, examples


def account(settings: Settings, col: Collector, commits: CommitSampler) -> dict[str, Any]:
    t = settings.topics
    inputs = read_log(settings, list(t.inputs))
    by_identity = read_log(settings, [t.by_identity])
    keys = [(tp[0], tp[1], row[0]) for tp, rows in inputs.items() for row in rows]
    r: dict[str, Any] = dict.fromkeys(("decided", "dead_lettered", "lost", "duplicated", "conflicting"), 0)
    r["records"] = len(keys)
    lost, conflicting = [], []
    for k in keys:
        d, x = col.decisions.get(k, {}), col.deadletters.get(k, {})
        if not d and not x:
            r["lost"] += 1
            lost.append(k)
        elif len(d) + len(x) > 1:
            r["conflicting"] += 1
            conflicting.append((k, sorted(d), sorted(x)))
        else:
            r["decided" if d else "dead_lettered"] += 1
            r["duplicated"] += max(v[0] for v in [*d.values(), *x.values()]) > 1
    r["unknown_inputs"] = len(col.seen - set(keys))
    r["commands"] = len(col.commands)
    r["commands_conflicting"] = sum(len(v) > 1 for v in col.commands.values())
    r["commands_duplicated"] = sum(sum(v.values()) > 1 for v in col.commands.values())
    r["commands_missing"] = len(col.named - set(col.commands))
    # When each record was processed, by the Kafka timestamps of what its processing produced.
    forwarded: dict[Key, int] = {}
    for (_, _), rows in by_identity.items():
        for _, ts, headers in rows:
            origin = dict(headers).get(ORIGIN)
            if origin:
                topic, part, off, _ = origin.decode().rsplit("|", 3)
                k = (topic, int(part), int(off))
                forwarded[k] = min(forwarded.get(k, ts), ts)

    def outcome_ts(k: Key) -> int | None:
        times = [v[1] for v in col.decisions.get(k, {}).values()]
        times += [v[1] for v in col.deadletters.get(k, {}).values()]
        return min(times) if times else None

    def input_done(tp: tuple[str, int], row: Any) -> int | None:
        k = (tp[0], tp[1], row[0])
        times = [x for x in (forwarded.get(k), outcome_ts(k)) if x is not None]
        return min(times) if times else None

    def by_identity_done(_tp: tuple[str, int], row: Any) -> int | None:
        origin = dict(row[2]).get(ORIGIN)
        if not origin:
            return None
        topic, part, off, _ = origin.decode().rsplit("|", 3)
        return outcome_ts((topic, int(part), int(off)))

    bad_in, ex_in = _committed_over(commits.samples, inputs, input_done)
    bad_bi, ex_bi = _committed_over(commits.samples, by_identity, by_identity_done)
    r["commit_samples"] = len(commits.samples)
    r["committed_over_unprocessed"] = bad_in + bad_bi
    high = {tp: (rows[-1][0] + 1 if rows else 0) for tp, rows in {**inputs, **by_identity}.items()}
    r["final_commit_lag"] = sum(max(0, high[tp] - commits.last.get(tp, 0)) for tp in high)
    r["by_identity_records"] = sum(len(v) for v in by_identity.values())
    r["examples"] = {
        "lost": [list(k) for k in lost[:10]],
        "conflicting": [[list(k), d, x] for k, d, x in conflicting[:10]],
        "commands_conflicting": [[cid, list(v)] for cid, v in col.commands.items() if len(v) > 1][:5],
        "committed_over": ex_in + ex_bi,
    }
    return r


FAILURES = ("lost", "conflicting", "unknown_inputs", "commands_conflicting", "commands_missing")


def print_table(r: dict[str, Any]) -> bool:
    """Prints the figures; True when nothing was lost, conflicting or committed over."""
    rows = [(f"faults: {k}", n) for k, n in r["faults"].items()]
    rows += [("faults: total", sum(r["faults"].values()))]
    rows += [
        ("input records", r["records"]),
        ("decided (one decision id)", r["decided"]),
        ("dead-lettered (one reason)", r["dead_lettered"]),
        ("lost (no decision, no dead letter)", r["lost"]),
        ("duplicated (same id, more than once)", r["duplicated"]),
        ("conflicting (two ids, or decision + dead letter)", r["conflicting"]),
        ("outputs naming no input record", r["unknown_inputs"]),
        ("command ids", r["commands"]),
        ("command ids delivered more than once", r["commands_duplicated"]),
        ("command ids with two contents", r["commands_conflicting"]),
        ("command ids named by a decision, never delivered", r["commands_missing"]),
        ("committed offsets sampled (changes)", r["commit_samples"]),
        ("records committed over before processed", r["committed_over_unprocessed"]),
        ("faults after which nothing progressed for --stuck s", r.get("stuck", 0)),
        ("worker starts", ", ".join(f"{k} {v}" for k, v in r["worker_starts"].items())),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print(f"| {'figure':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k:<{width}} | {v:,} |" if isinstance(v, int) else f"| {k:<{width}} | {v} |")
    ok = not any(r[k] for k in FAILURES) and not r["committed_over_unprocessed"] and r["records"] > 0
    if not ok:
        print("\nFAILED:", json.dumps(r["examples"], indent=1, default=str))
    print(f"\n{'PASS' if ok else 'FAIL'}: {r['records']:,} records in {r.get('seconds', '?')} s")
    return ok
