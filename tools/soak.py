"""Exact accounting under faults: a steady input stream while workers and the broker are hurt, then a count.

python -m tools.soak                       # `make soak`: 50,000 records, every fault kind several times
python -m tools.soak --records 1500 --rate 20 --rounds 1 ...  # the short one (tests/integration/test_soak.py)

A local broker of its own (it is restarted), topics and a consumer group of its own. A producer thread writes
scenario records (the demo stream and renamed variants of it, tools/scenarios) at a steady rate; workers run
as `nhiguard worker` processes under a supervisor that starts them again whenever they exit, as compose's
`restart: unless-stopped` does (exit 70 included), each with its own data dir. Meanwhile faults, round by
round, each kind once a round (the order in FAULTS):

- sigkill: SIGKILL a worker's process group (the engine children too, as a container kill does);
- wipe: SIGKILL a worker and delete its data dir (local RocksDB state) before it is started again;
- add / remove: start a second worker (a rebalance), later stop it with SIGTERM (another rebalance);
- stall: SIGSTOP a worker's process group past its consumer session timeout, then SIGCONT;
- sigterm: SIGTERM a worker (a graceful shutdown, then the supervisor starts it again);
- broker: stop the broker (controlled shutdown), then start it on the same port and data dir.

Between two faults it waits for the pipeline to have decided more records (so faults hit a working pipeline,
not one still starting). When the input has all been produced, it waits until every input record is accounted
for (or the drain timeout), stops the workers, and counts, per input record (topic, partition, offset):

- decided: exactly one decision id, no dead letter; dead-lettered: one dead-letter reason, no decision;
- duplicated: decided (or dead-lettered) more than once with the SAME id (at least once: fine);
- lost: neither; conflicting: two decision ids, two dead-letter reasons, or a decision and a dead letter;
- commands: no command id with two contents. Compared: the whole decoded EnforcementCommand except
  `released_at` / `released_by` (set by an operator's release, not by the worker); `status` is compared with
  RELEASED read as HELD for the same reason. A command a decision names that never appeared is lost too;
- commits: the worker group's committed offsets are sampled every second; no sampled offset may pass a record
  that had not been processed before the sample (an input record: forwarded to the by-identity topic or
  dead-lettered; a by-identity record: its source record decided or dead-lettered), judged by the Kafka
  timestamps of those outputs, which the worker produces before it commits.

Exit 1 if anything was lost, conflicting or committed over; 0 otherwise. The run's directory (worker logs,
the broker log, `report.json`) is kept under --keep.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings, Topics, load_settings
from nhiguard.streams.identities import load_identities
from nhiguard.streams.topics import ensure_topics
from tools import REPO_ROOT
from tools.broker import LocalBroker, _free_ports, default_cache_dir
from tools.scenarios import default_params, generate, inventory, variant_params
from tools.soak_count import Collector, CommitSampler, account, print_table
from tools.soak_workers import Slot

FAULTS = ("sigkill", "add", "stall", "sigterm", "wipe", "remove", "broker")


def stream(n: int) -> tuple[list[Any], dict[str, Any]]:
    """n scenario records (the demo stream, then renamed variants of it) and the inventory of them all."""
    params = [default_params()]
    records: list[Any] = []
    while True:
        records += generate(params[-1], ordinary=1000)
        if len(records) >= n:
            break
        params.append(variant_params(len(params)))
    identities = [i for p in params for i in inventory(p)["identities"]]
    return records[:n], {"identities": identities}


class Producer(threading.Thread):
    """Writes the records at a steady rate; idempotent, and patient enough to outlast a broker restart."""

    def __init__(self, settings: Settings, records: list[Any], rate: float) -> None:
        super().__init__(daemon=True, name="soak-producer")
        from confluent_kafka import Producer as KafkaProducer

        self.records, self.rate = records, rate
        self.rename = {t: getattr(settings.topics, f) for f, t in vars(Topics()).items()}
        conf = {"enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 900_000, "log_level": 0}
        self.producer = KafkaProducer(confluent_config(settings, **conf))
        self.sent = 0
        self.errors: list[str] = []

    def run(self) -> None:
        t0 = time.monotonic()
        for i, r in enumerate(self.records):
            wait = t0 + i / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            while True:
                try:
                    self.producer.produce(
                        self.rename.get(r.topic, r.topic),
                        value=r.value,
                        key=r.key,
                        headers=list(r.headers),
                        on_delivery=self._delivered,
                    )
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.sent += 1
            self.producer.poll(0)
        if self.producer.flush(900):
            self.errors.append("records still undelivered after 900 s")

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))


class Soak:
    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        self.args, self.dir = args, run_dir
        self.rng = random.Random(args.seed)
        self.faults: Counter[str] = Counter()
        self.stuck = 0  # times the pipeline made no progress within --stuck seconds after a fault
        self.events: list[str] = []
        self.t0 = time.monotonic()

    def note(self, what: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {what}"
        self.events.append(line)
        print(line, flush=True)

    def run(self) -> dict[str, Any]:
        a = self.args
        records, inv = stream(a.records)
        port = _free_ports(1)[0]
        self.broker = LocalBroker(default_cache_dir(), data_dir=self.dir / "broker", port=port)
        bootstrap = self.broker.start()
        run = uuid.uuid4().hex[:8]
        topics = Topics(**{k: f"soak{run}.{v}" for k, v in vars(Topics()).items()})
        settings = replace(
            load_settings(env={}),
            bootstrap=bootstrap,
            topics=topics,
            app_id=f"nhiguard-soak-{run}",
            sandbox=f"soak{run}",  # generated history: a sandbox (decided on the events' own times)
            input_partitions=a.partitions,
            session_timeout_s=a.session_timeout,
        )
        ensure_topics(settings)
        inv_path = self.dir / "identities.yaml"
        inv_path.write_text(yaml.safe_dump(inv, sort_keys=False))
        load_identities(settings, inv_path)
        self.settings = settings
        env = {"NHIGUARD_SESSION_TIMEOUT_S": str(a.session_timeout), "NHIGUARD_BATCH_MAX": str(a.batch_max)}
        self.slots = [Slot(f"w{i}", settings, self.dir, env, self.note) for i in range(2)]
        collector = Collector(settings)
        sampler = CommitSampler(settings)
        producer = Producer(settings, records, a.rate)
        try:
            collector.start()
            sampler.start()
            self.slots[0].start()
            self.note(f"{len(records)} records at {a.rate:g}/s to {settings.topics.inputs}")
            producer.start()
            self._inject(producer, collector)
            producer.join()
            self.note(f"input done: {producer.sent} records produced, errors {producer.errors[:3]}")
            if self.slots[0].stopped.is_set() or not self.slots[0].alive():
                self.slots[0].start()
            expected = collector.wait_inputs(self.args.drain_timeout)
            self.note(f"drained: {collector.accounted()} of {expected} input records accounted for")
            collector.wait_commands(60)
        finally:
            for s in self.slots:
                s.stop()
            self.note("workers stopped")
            sampler.sample()  # the committed offsets the workers' final commits left
            sampler.stop()
            collector.stop()
        result = account(settings, collector, sampler)
        result["faults"] = {k: self.faults[k] for k in FAULTS}
        result["stuck"] = self.stuck
        result["produced"] = producer.sent
        result["producer_errors"] = producer.errors[:10]
        result["worker_starts"] = {s.name: s.starts for s in self.slots}
        result["worker_exits"] = {s.name: dict(s.exits) for s in self.slots}
        self.broker.stop()
        return result

    def _inject(self, producer: Producer, collector: Collector) -> None:
        """Every fault kind once per round, while the input lasts (and at least `rounds` rounds)."""
        rounds = 0
        while (producer.is_alive() or rounds < self.args.rounds) and rounds < self.args.max_rounds:
            for kind in FAULTS:
                self._settle(producer, collector)
                t = time.monotonic()
                getattr(self, f"_fault_{kind}")()
                self.faults[kind] += 1
                if time.monotonic() - t > 30:
                    self.note(f"{kind} took {time.monotonic() - t:.0f}s")
            rounds += 1

    def _settle(self, producer: Producer, collector: Collector) -> None:
        """Wait `interval` s, and until the pipeline has accounted for more records, as many as there are
        left (or `stuck` s: the fault comes anyway, and the soak notes it)."""
        before = collector.accounted()
        time.sleep(self.args.interval)
        deadline = time.monotonic() + self.args.stuck
        while collector.accounted() < min(before + self.args.progress, producer.sent):
            if time.monotonic() > deadline:
                self.stuck += 1
                self.note(f"no progress for {self.args.stuck:g}s: {collector.accounted()} accounted for")
                return
            time.sleep(0.5)

    def _victim(self) -> Slot:
        alive = [s for s in self.slots if not s.stopped.is_set()]
        return self.rng.choice(alive)

    def _fault_sigkill(self) -> None:
        s = self._victim()
        self.note(f"sigkill {s.name}: {s.signal(signal.SIGKILL, group=True)}")

    def _fault_sigterm(self) -> None:
        s = self._victim()
        self.note(f"sigterm {s.name}: {s.signal(signal.SIGTERM, group=False)}")

    def _fault_wipe(self) -> None:
        s = self._victim()
        self.note(f"wipe {s.name}: SIGKILL, delete {s.data_dir}, start again")
        s.restart_without_state()

    def _fault_add(self) -> None:
        self.note("add w1 (a rebalance)")
        self.slots[1].start()

    def _fault_remove(self) -> None:
        self.note("remove w1 (SIGTERM, not restarted: a rebalance)")
        self.slots[1].stop()

    def _fault_stall(self) -> None:
        s = self._victim()
        pause = self.args.session_timeout + 5
        self.note(f"stall {s.name}: SIGSTOP for {pause:g}s (session timeout {self.args.session_timeout:g}s)")
        s.signal(signal.SIGSTOP, group=True)
        time.sleep(pause)
        s.signal(signal.SIGCONT, group=True)
        self.note(f"stall {s.name}: SIGCONT")

    def _fault_broker(self) -> None:
        self.note("broker: stop")
        self.broker.restart(down_s=self.args.broker_down)
        self.note(f"broker: started again on {self.broker.bootstrap} (down {self.args.broker_down:g}s+)")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=120.0, help="records per second")
    ap.add_argument("--rounds", type=int, default=3, help="at least this many rounds of every fault kind")
    ap.add_argument("--max-rounds", type=int, default=1000, help="and at most this many")
    ap.add_argument("--interval", type=float, default=8.0, help="seconds between faults, at least")
    ap.add_argument("--progress", type=int, default=200, help="records accounted for between faults")
    ap.add_argument("--stuck", type=float, default=120.0, help="give up waiting for that progress after")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--session-timeout", type=float, default=10.0, help="the workers' consumer session")
    ap.add_argument("--batch-max", type=int, default=100)
    ap.add_argument("--broker-down", type=float, default=3.0, help="seconds the broker stays down")
    ap.add_argument("--drain-timeout", type=float, default=900.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", type=Path, default=REPO_ROOT / ".cache" / "soak", help="runs are kept here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.keep.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=args.keep))
    soak = Soak(args, run_dir)
    try:
        result = soak.run()
    finally:
        for s in getattr(soak, "slots", []):
            s.stop()
        if getattr(soak, "broker", None) is not None:
            soak.broker.stop()
    result["command"] = "python -m tools.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    result["seconds"] = round(time.monotonic() - soak.t0)
    (run_dir / "report.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    (run_dir / "events.log").write_text("\n".join(soak.events) + "\n")
    ok = print_table(result)
    print(f"run kept in {run_dir}")
    if ok:  # the logs and the report stay; the broker's and the workers' data are large and not needed
        for data in (run_dir / "broker", *run_dir.glob("w*-data")):
            shutil.rmtree(data, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
