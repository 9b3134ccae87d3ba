"""`make bench-scale`: a million identities through one real worker, its resident memory, and its decisions
against an all-in-memory run on a sample.

The input is compact Verdaccio access lines (tarball installs, the `verdaccio.log` source), one identity
each (`verdaccio:svc-NNNNNNN`), keyed by identity, on a single partition so that a record's offset is its
place in the stream. After the first pass over every identity, a revisit pass returns to every `stride`-th
identity long after the worker's in-memory LRU (NHIGUARD_STATE_CACHE identities) has evicted it: its state
comes back from RocksDB. The sample (every `sample_every`-th identity) installs packages no other identity
touches, so its decisions depend on its own records only; they are decided again offline by a DecisionCore
without a store (everything in memory) and compared field by field with what the worker published.

The worker's RSS (VmRSS of its process, and of the process with its children: the policy engine runs in
child processes) is sampled every second; the maximum over the run is reported. The figures are merged into
bench/results/latest.json (other keys kept). Tests never assert these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench import kafka
from nhiguard.avro import AvroCodec, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import Settings, Topics, load_settings
from nhiguard.streams.sink import INPUT_HEADER
from tools import REPO_ROOT
from tools.broker import LocalBroker

RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"
# This command's own figures, merged into latest.json again after `make bench` rewrites it.
SCALE_RESULTS = REPO_ROOT / "bench" / "results" / "scale.json"
MSG = (
    "@{status}, user: @{user}(@{remoteIP}), "
    "req: '@{request.method} @{request.url}', bytes: @{bytes.in}/@{bytes.out}"
)
STEP_MS = 20  # between two records' body times


def line(user: str, package: str, version: str, at_ms: int, ip: str) -> bytes:
    """One Verdaccio 'finished request' line for a tarball GET that sent bytes: an install."""
    body = {
        "level": 30,
        "time": at_ms,
        "hostname": "verdaccio-0",
        "sub": "out",
        "request": {"method": "GET", "url": f"/{package}/-/{package}-{version}.tgz"},
        "user": user,
        "remoteIP": ip,
        "status": 200,
        "error": None,
        "bytes": {"in": 0, "out": 4096},
        "msg": MSG,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def plan(identities: int, revisits: int) -> Iterator[tuple[int, int]]:
    """(identity index, visit) in stream order: every identity once, then every stride-th again."""
    for i in range(identities):
        yield i, 0
    stride = max(1, identities // max(revisits, 1))
    for k in range(revisits):
        yield (k * stride) % identities, 1


def records(
    identities: int, revisits: int, sample_every: int, base_ms: int, packages: int = 50_000
) -> Iterator[tuple[bytes, bytes, int]]:
    """(key, value, body time ms) of each record, in stream order."""
    for seq, (i, visit) in enumerate(plan(identities, revisits)):
        user = f"svc-{i:07d}"
        package = f"scale-sample-{i % 50}" if i % sample_every == 0 else f"scale-{i % packages}"
        ip = f"10.{visit}.{(i >> 8) & 255}.{i & 255}"
        at = base_ms + seq * STEP_MS
        yield user.encode(), line(user, package, f"1.0.{visit}", at, ip), at


def produce(bootstrap: str, topic: str, recs: Iterator[tuple[bytes, bytes, int]]) -> int:
    """Produce the records with their body time as broker time; returns how many. Idempotent: a retried
    batch (a topic just created may refuse the first ones) must not land after later ones, since the sample
    is matched by offset; a run without it found its first 10,000 records reordered."""
    conf = {"linger.ms": 20, "log_level": 3, "compression.type": "lz4", "enable.idempotence": True}
    p = Producer(kafka._conf(bootstrap, **conf))
    n = 0
    for key, value, at in recs:
        while True:
            try:
                p.produce(topic, value, key, timestamp=at)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 10_000 == 0:
            p.poll(0)
    if p.flush(300):
        raise RuntimeError("input not fully produced")
    return n


class RssSampler(threading.Thread):
    """The max VmRSS (MB) of a process, and of it with its children, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.max_mb = self.max_tree_mb = 0.0
        self.timeline: list[tuple[float, float]] = []  # (seconds since start, MB of the process)
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.wait(self.every):
            mine = rss_mb(self.pid)
            if mine is None:
                return
            tree = mine + sum(rss_mb(c) or 0.0 for c in children(self.pid))
            self.max_mb, self.max_tree_mb = max(self.max_mb, mine), max(self.max_tree_mb, tree)
            self.timeline.append((round(time.monotonic() - t0, 1), round(mine, 1)))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:")), "0")
    return int(kb) / 1024


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for c in kids:
            out += [c, *children(c)]
    return out


def comparable(rec: dict[str, Any]) -> dict[str, Any]:
    """A decision record without the moment it was published."""
    return {k: v for k, v in rec.items() if k != "decided_at"}


def offline(settings: Settings, topics: Topics, sample: list[RawRecord]) -> dict[int, dict[str, Any]]:
    """The sample decided by a core with no store: every identity's state in memory, none evicted."""
    core = DecisionCore(replace(settings, topics=topics), load_bundle(settings.policies_dir), Inventory())
    codec = AvroCodec(settings.schemas_dir)  # through Avro and back, as the worker's records are read
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(sample), 500):
        for d in core.process(sample[start : start + 500]).decisions:
            out[d.offset] = comparable(codec.decode(codec.encode("Decision", decision_record(d, 0))))
    return out


def collect(
    p: kafka.Pipeline, n: int, sample: set[int], timeout: float
) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """Every decision's append time, and the sample's decision records by input offset (read from the
    decision's input header, so that only the sample's records are decoded here, beside the worker)."""
    times: list[int] = []
    picked: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(times) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(times)} of {n} decided within {timeout:.0f} s")
        if any(w.poll() is not None for w in p.procs):
            raise RuntimeError("the worker exited")
        for m in p._consumer.consume(2000, 0.5):
            if m.error():
                continue
            times.append(m.timestamp()[1])
            ref = dict(m.headers() or []).get(INPUT_HEADER, b"||-1")
            offset = int(ref.rsplit(b"|", 1)[1])
            if offset in sample:
                picked[offset] = comparable(p._codec.decode(m.value()))
    return times, picked


def first_difference(worker: dict[str, Any], in_memory: dict[str, Any]) -> dict[str, Any]:
    return {k: {"worker": worker.get(k), "in_memory": v} for k, v in in_memory.items() if worker.get(k) != v}


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    cache = args.cache or settings.state_cache_identities
    base_ms = int(time.time() * 1000) - 86_400_000  # within retention; each body time is its broker time
    inputs = kafka.input_topics(f"bench-scale-{uuid.uuid4().hex[:8]}")
    stream = records(args.identities, args.revisits, args.sample_every, base_ms, args.packages)
    sample_recs = [
        RawRecord(inputs.registry, 0, seq, value, key, (), at)
        for seq, (key, value, at) in enumerate(stream)
        if int(key[4:]) % args.sample_every == 0
    ]
    print(f"deciding the sample offline ({len(sample_recs)} records, all in memory) …", flush=True)
    expected = offline(settings, inputs, sample_recs)
    external = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None if external else LocalBroker(settings.cache_dir)
    try:
        bootstrap = external or broker.start()  # type: ignore[union-attr]
        settings = replace(settings, bootstrap=bootstrap)
        kafka.create_topics(bootstrap, list(inputs.inputs), 1)
        t = time.monotonic()
        stream = records(args.identities, args.revisits, args.sample_every, base_ms, args.packages)
        n = produce(bootstrap, inputs.registry, stream)
        produce_s = time.monotonic() - t
        print(
            f"produced {n:,} records in {produce_s:.0f} s; the worker (state cache {cache:,}) …", flush=True
        )
        with tempfile.TemporaryDirectory() as tmp:
            identities = Path(tmp) / "identities.json"
            identities.write_text(json.dumps({"identities": []}))
            p = kafka.Pipeline(settings, inputs, identities, 1, NHIGUARD_STATE_CACHE=cache)
            sampler = RssSampler(p.procs[0].pid)
            sampler.start()
            t = time.monotonic()
            try:
                times, got = collect(p, n, set(expected), args.timeout)
            finally:
                p.close()  # first: the worker must not outlive the run
                sampler.stop()
            wall_s = time.monotonic() - t
    finally:
        if broker is not None:
            broker.stop()
    mismatched = sorted(o for o in expected if got.get(o) != expected[o])
    times.sort()
    return {
        "rss_mb_at_1m_identities": round(sampler.max_mb, 1),
        "scale_detail": {
            "events": n,
            "identities": args.identities,
            "packages": args.packages,
            "revisits_read_back_from_rocksdb": args.revisits,
            "state_cache_identities": cache,
            "events_per_s": round((len(times) - 1) / max((times[-1] - times[0]) / 1000, 1e-3), 1),
            "worker_wall_s": round(wall_s, 1),
            "produce_s": round(produce_s, 1),
            "rss_mb_worker_with_children_max": round(sampler.max_tree_mb, 1),
            "rss_mb_timeline": sampler.timeline[:: max(1, len(sampler.timeline) // 40)],
            "sample_records": len(expected),
            "sample_identical": not mismatched,
            "sample_mismatched": len(mismatched),
            "sample_mismatched_offsets": mismatched[:20],
            "sample_first_difference": (
                first_difference(got.get(mismatched[0], {}), expected[mismatched[0]]) if mismatched else {}
            ),
            "bytes_per_event": len(sample_recs[0].value),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


def merge(res: dict[str, Any]) -> None:
    """Put this command's keys into latest.json, keeping the others."""
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(merged | res, indent=2, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument(
        "--revisits", type=int, default=50_000, help="records that come back to an evicted identity"
    )
    parser.add_argument(
        "--packages",
        type=int,
        default=50_000,
        help="distinct packages the others install (each package's facts cost O(its installs) per event)",
    )
    parser.add_argument("--sample-every", type=int, default=500, help="every n-th identity is in the sample")
    parser.add_argument("--cache", type=int, default=0, help="NHIGUARD_STATE_CACHE (default: the setting's)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument(
        "--merge-only", action="store_true", help="merge the last run's figures into latest.json, run nothing"
    )
    args = parser.parse_args()
    if args.merge_only:
        if SCALE_RESULTS.exists():
            merge(json.loads(SCALE_RESULTS.read_text()))
        return
    res = run(args)
    SCALE_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    SCALE_RESULTS.write_text(json.dumps(res, indent=2, default=str))
    merge(res)
    d = res["scale_detail"]
    print(
        f"\n{d['events']:,} events over {d['identities']:,} identities at {d['events_per_s']:,.0f} events/s "
        f"({d['worker_wall_s']:.0f} s): worker RSS max {res['rss_mb_at_1m_identities']:.0f} MB "
        f"(with its children {d['rss_mb_worker_with_children_max']:.0f} MB; target <= 1,024); sample of "
        f"{d['sample_records']} records identical to an all-in-memory run: {d['sample_identical']}"
    )
    print(f"merged into {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
