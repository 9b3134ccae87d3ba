"""Latency at a paced input rate: the worker's, split into the segments of its path, and the bare two-hop
Faust topology's (bench/two_hop.py, no decision) on the same records, as the floor the worker sits on.

Segments of the worker's path, per event (ms; p50 and p99 of each, so they do not add up at p99):
- `input_to_forward`: the input's CreateTime to the by-identity record's CreateTime (the producer's linger
  and the append, the fetch, route's batch window and work);
- `forward_to_decided`: to the decision's `decided_at`, when the sink took it (the by-identity append and
  fetch, decide's batch window, waiting for the batch before, the batch's decision work);
- `decided_to_append`: to the decision's LogAppendTime (the sink's linger and the append).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from bench import kafka
from nhiguard.settings import Settings
from nhiguard.streams.agents import ORIGIN


def percentiles(values: list[int]) -> dict[str, int]:
    s = sorted(values)
    if not s:
        return {}  # nothing matched (a reader timed out): the run's other figures still stand
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))]}


def _reader(base: Settings, topic: str) -> Consumer:
    conf = kafka._conf(base.bootstrap, **{"group.id": f"bench-lat-{uuid.uuid4().hex[:8]}", "log_level": 3})
    consumer = Consumer(conf | {"auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    return consumer


def _forwarded(base: Settings, topic: str, n: int, timeout: float = 60) -> dict[tuple[str, int, int], int]:
    """Input position -> the CreateTime of its by-identity record (when route produced it)."""
    consumer, out = _reader(base, topic), {}
    try:
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                origin = dict(m.headers() or []).get(ORIGIN) if not m.error() else None
                if origin:
                    t, p, o, _ = origin.decode().rsplit("|", 3)
                    out.setdefault((t, int(p), int(o)), m.timestamp()[1])
    finally:
        consumer.close()
    return out


def worker(base: Settings, records: list, identities: Path, rate: float, warmup: list) -> dict[str, Any]:
    """p50/p99 ms from an input's CreateTime to its decision's append time, producing at `rate`/s, and the
    segments of the module docstring."""
    inputs = kafka.input_topics(f"bench-lat-{uuid.uuid4().hex[:8]}")
    kafka.create_topics(base.bootstrap, list(inputs.inputs), 1)
    p = kafka.Pipeline(base, inputs, identities)
    try:
        kafka.produce(base.bootstrap, warmup, inputs)  # the worker has joined and compiled before timing
        p.wait_for(len(warmup))
        warm = set(p.decided)
        created = kafka.produce(base.bootstrap, records, inputs, rate=rate)
        p.wait_for(len(warm) + len(records))
        keys = [k for k in created if k in p.decided and k not in warm]
        out: dict[str, Any] = percentiles([p.decided[k] - created[k] for k in keys])
        out |= {"events": len(keys), "rate": rate}
        forwarded = _forwarded(base, p.settings.topics.by_identity, len(warm) + len(records))
        seg = [k for k in keys if k in forwarded and k in p.decided_at]
        out["segments_ms"] = {
            "input_to_forward": percentiles([forwarded[k] - created[k] for k in seg]),
            "forward_to_decided": percentiles([p.decided_at[k] - forwarded[k] for k in seg]),
            "decided_to_append": percentiles([p.decided[k] - p.decided_at[k] for k in seg]),
        }
        return out
    finally:
        p.close()


def two_hop(base: Settings, records: list, rate: float, warmup: list, timeout: float = 120) -> dict[str, Any]:
    """The same measure for bench/two_hop.py: its output records carry the input's bytes, so they are matched
    to their input by value."""
    run = uuid.uuid4().hex[:8]
    inputs = kafka.input_topics(f"bench-lat2-{run}")
    hop, out_topic = f"bench-hop-{run}", f"bench-hop-{run}.out"
    kafka.create_topics(base.bootstrap, [*inputs.inputs, hop], 1)
    kafka.create_topics(base.bootstrap, [out_topic], 1, log_append=True)
    consumer = _reader(base, out_topic)
    argv = [base.bootstrap, f"bench-hop-{run}", hop, out_topic, *inputs.inputs]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.two_hop", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    appended: dict[bytes, int] = {}

    def read_until(n: int) -> None:
        deadline = time.monotonic() + timeout
        while len(appended) < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"two-hop latency: {len(appended)} of {n} records out")
            for m in consumer.consume(1000, 0.2):
                if not m.error():
                    appended.setdefault(m.value(), m.timestamp()[1])

    try:
        kafka.produce(base.bootstrap, warmup, inputs)
        read_until(len({r.value for r in warmup}))
        warm = set(appended)
        created: dict[bytes, int] = {}
        kafka.produce(base.bootstrap, records, inputs, rate=rate, by_value=created)
        read_until(len(warm | set(created)))
        keys = [v for v in created if v in appended and v not in warm]
        return percentiles([appended[v] - created[v] for v in keys]) | {"events": len(keys), "rate": rate}
    finally:
        proc.kill()
        proc.wait(10)
        consumer.close()
        admin = AdminClient(kafka._conf(base.bootstrap, log_level=3))
        admin.delete_topics([*inputs.inputs, hop, out_topic, f"bench-hop-{run}-__assignor-__leader"])
