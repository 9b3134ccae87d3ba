"""Throughput and latency of nhiguard workers on a real broker, beside a bare Faust agent on the same bytes.

Every run consumes input topics filled once, before any timing starts; each run has its own consumer group
and its own output topics, created with LogAppendTime so a decision's timestamp is the moment the broker
appended it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings, Topics, load_settings
from nhiguard.streams.identities import load_identities
from nhiguard.streams.topics import internal_topics
from tools.demo import worker_env

_OUTPUTS = ("decisions", "commands", "alerts", "deadletter")
_OWN = ("identities", "by_identity")  # per run too; the worker creates them


def _conf(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """A client configuration for this broker with the environment's NHIGUARD_KAFKA_* credentials."""
    return confluent_config(replace(load_settings(), bootstrap=bootstrap), **extra)


def input_topics(prefix: str) -> Topics:
    return Topics(**{k: f"{prefix}.{v}" for k, v in vars(Topics()).items()})


def create_topics(bootstrap: str, names: list[str], partitions: int, log_append: bool = False) -> None:
    admin = AdminClient(_conf(bootstrap, log_level=3))
    config = (
        {"message.timestamp.type": "LogAppendTime", "max.message.bytes": str(4 * 2**20)} if log_append else {}
    )
    futures = admin.create_topics([NewTopic(n, partitions, 1, config=config) for n in names])
    for fut in futures.values():
        fut.result(30)


def produce(
    bootstrap: str,
    records: list,
    topics: Topics,
    rate: float | None = None,
    by_value: dict[bytes, int] | None = None,
) -> dict[tuple[str, int, int], int]:
    """Produce scenario records (paced at `rate`/s if given); returns input position -> CreateTime (ms), and
    fills `by_value` (if given) with record value -> CreateTime."""
    rename = {t: getattr(topics, f) for f, t in vars(Topics()).items()}
    created: dict[tuple[str, int, int], int] = {}
    p = Producer(_conf(bootstrap, **{"linger.ms": 5, "log_level": 3, "enable.idempotence": True}))

    def done(err: Any, msg: Any) -> None:
        if err is None:
            created[(msg.topic(), msg.partition(), msg.offset())] = msg.timestamp()[1]
            if by_value is not None:
                by_value.setdefault(msg.value(), msg.timestamp()[1])

    start = time.perf_counter()
    for i, r in enumerate(records):
        if rate:
            lag = start + i / rate - time.perf_counter()
            if lag > 0:
                time.sleep(lag)
        while True:
            try:
                p.produce(
                    rename[r.topic],
                    r.value,
                    r.key,
                    headers=list(r.headers),
                    on_delivery=done,
                    timestamp=int(time.time() * 1000),
                )
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if p.flush(120):
        raise RuntimeError("input not fully produced")
    return created


def passthrough(bootstrap: str, topics: Topics, n: int) -> float:
    """Events/s of a bare Faust agent that decodes and counts the n input records."""
    app_id = f"bench-passthrough-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        argv = [str(result_file), bootstrap, app_id, str(n), *topics.inputs]
        subprocess.run(
            [sys.executable, "-m", "bench.passthrough", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
            check=True,
        )
        result = json.loads(result_file.read_text())
    return (n - 1) / result["seconds"]


def two_hop(bootstrap: str, topics: Topics, n: int, timeout: float = 300) -> float:
    """Events/s of bench/two_hop.py (the worker's topology, no decision), from its output's append times."""
    run = uuid.uuid4().hex[:8]
    hop, out = f"bench-hop-{run}", f"bench-hop-{run}.out"
    create_topics(bootstrap, [hop], 1)
    create_topics(bootstrap, [out], 1, log_append=True)
    consumer = Consumer(
        _conf(bootstrap, **{"group.id": f"bench-hop-{run}-reader", "auto.offset.reset": "earliest"})
        | {"enable.auto.commit": False, "log_level": 3}
    )
    consumer.subscribe([out])
    argv = [bootstrap, f"bench-hop-{run}", hop, out, *topics.inputs]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.two_hop", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    appended: list[int] = []
    try:
        deadline = time.monotonic() + timeout
        while len(appended) < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"two-hop passthrough: {len(appended)} of {n} records out")
            appended += [m.timestamp()[1] for m in consumer.consume(1000, 0.5) if not m.error()]
    finally:
        proc.kill()
        proc.wait(10)
        consumer.close()
        admin = AdminClient(_conf(bootstrap, log_level=3))
        admin.delete_topics([hop, out, f"bench-hop-{run}-__assignor-__leader"])
    appended.sort()
    return (len(appended) - 1) / max((appended[-1] - appended[0]) / 1000, 1e-3)


def _epoch_ms(value: datetime | int) -> int:
    """A timestamp-millis field as decoded (a datetime) in ms since the epoch."""
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


class Pipeline:
    """k nhiguard worker processes on the given input topics, with output topics of their own."""

    def __init__(
        self,
        base: Settings,
        inputs: Topics,
        identities: Path,
        workers: int = 1,
        timed: bool = False,
        **env: Any,
    ) -> None:
        run = uuid.uuid4().hex[:8]
        outputs = {k: f"bench-{run}.{getattr(Topics(), k)}" for k in _OUTPUTS}
        own = {k: f"bench-{run}.{getattr(Topics(), k)}" for k in _OWN}
        self.settings = replace(base, topics=replace(inputs, **outputs, **own), app_id=f"bench-{run}")
        create_topics(base.bootstrap, list(outputs.values()), 1, log_append=True)
        load_identities(self.settings, identities)
        self._tmp = tempfile.TemporaryDirectory(prefix="nhiguard-bench-")
        self.procs = []
        for i in range(workers):
            s = replace(self.settings, data_dir=Path(self._tmp.name) / f"w{i}")
            environ = worker_env(s) | {k: str(v) for k, v in env.items()}
            # timed: bench/timed_worker.py, the worker with per-stage time accumulators (the cost table)
            entry = "nhiguard.streams.cli"
            if timed:
                entry, environ["NHIGUARD_BENCH_STAGES"] = "bench.timed_worker", str(self.stages_file(i))
            log = open(Path(self._tmp.name) / f"w{i}.log", "wb")
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", entry, "worker"],
                    env=environ,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        self._consumer = Consumer(
            {
                **confluent_config(base),
                "group.id": f"{self.settings.app_id}-reader",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
        self._consumer.subscribe([self.settings.topics.decisions])
        self._codec = AvroCodec(base.schemas_dir)
        self.decided: dict[tuple[str, int, int], int] = {}  # input position -> decision LogAppendTime (ms)
        self.decided_at: dict[tuple[str, int, int], int] = {}  # and -> its decided_at (ms, worker's clock)

    def wait_for(self, n: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.decided) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.decided)} of {n} decided; logs in {self._tmp.name}")
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a worker exited; logs in {self._tmp.name}")
            for m in self._consumer.consume(1000, 0.5):
                if m.error():
                    continue
                decision = self._codec.decode(m.value())
                ref = decision["input"]
                key = (ref["topic"], ref["partition"], ref["offset"])
                self.decided.setdefault(key, m.timestamp()[1])
                self.decided_at.setdefault(key, _epoch_ms(decision["decided_at"]))

    def stages_file(self, worker: int) -> Path:
        return Path(self._tmp.name) / f"w{worker}.stages.json"

    def stage_seconds(self, settle_s: float = 2.0) -> dict[str, float]:
        """The first worker's stage totals (timed), once its last commit is in (commits run every second)."""
        time.sleep(settle_s)
        return json.loads(self.stages_file(0).read_text())["seconds"]

    def events_per_s(self) -> float:
        ts = sorted(self.decided.values())
        return (len(ts) - 1) / max((ts[-1] - ts[0]) / 1000, 1e-3)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(10)
        self._consumer.close()
        admin = AdminClient(confluent_config(self.settings, log_level=3))
        admin.delete_topics(
            [getattr(self.settings.topics, k) for k in (*_OUTPUTS, *_OWN)]
            + internal_topics(self.settings.app_id)
        )
        self._tmp.cleanup()


def pipeline_throughput(base: Settings, inputs: Topics, identities: Path, n: int, workers: int = 1) -> float:
    p = Pipeline(base, inputs, identities, workers)
    try:
        p.wait_for(n)
        return p.events_per_s()
    finally:
        p.close()


def timed_pipeline(
    base: Settings, inputs: Topics, identities: Path, n: int, rule_index: bool = True
) -> tuple[float, dict[str, float]]:
    """One worker with stage accumulators: events/s and the seconds spent in each stage (and without the
    rule index: its before)."""
    env = {} if rule_index else {"NHIGUARD_BENCH_NO_RULE_INDEX": "1"}
    p = Pipeline(base, inputs, identities, timed=True, **env)
    try:
        p.wait_for(n)
        return p.events_per_s(), p.stage_seconds()
    finally:
        p.close()
