"""`make demo`: the whole pipeline on a real broker, with the March 2026 incident stream.

Starts a local Kafka broker unless KAFKA_BOOTSTRAP names one, creates the topics, produces ordinary activity
plus the three incidents in their vendor formats, starts `nhiguard worker` as a separate process, and reads
the enforcement commands back with its own consumer, decoding the Avro, until every input record has a
decision or a dead letter. Then it stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

from confluent_kafka import Consumer, Producer

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import KafkaSecurity, Settings, Topics, load_settings
from nhiguard.streams import table
from nhiguard.streams.identities import load_identities
from nhiguard.streams.topics import delete_groups, delete_topics, ensure_topics, internal_topics
from tools.broker import LocalBroker
from tools.scenarios import default_params, generate, write_inventory


def kafka_env(settings: Settings) -> dict[str, str]:
    """The variables that point an nhiguard command at this broker and these topic names, with these
    credentials."""
    env = {"KAFKA_BOOTSTRAP": settings.bootstrap, **security_env(settings.kafka)}
    env["NHIGUARD_REPLICATION_FACTOR"] = str(settings.replication_factor)
    if settings.min_insync_replicas is not None:
        env["NHIGUARD_MIN_INSYNC_REPLICAS"] = str(settings.min_insync_replicas)
    env.update({f"NHIGUARD_TOPIC_{k.upper()}": v for k, v in vars(settings.topics).items()})
    if settings.sandbox:
        env["NHIGUARD_SANDBOX"] = settings.sandbox
    return env


def security_env(sec: KafkaSecurity) -> dict[str, str]:
    """KafkaSecurity as the NHIGUARD_KAFKA_* variables load_settings reads back."""
    env = {
        "NHIGUARD_KAFKA_SECURITY_PROTOCOL": sec.protocol,
        "NHIGUARD_KAFKA_SSL_CHECK_HOSTNAME": str(sec.check_hostname).lower(),
        "NHIGUARD_KAFKA_SASL_MECHANISM": sec.sasl_mechanism,
    }
    optional = {
        "NHIGUARD_KAFKA_SSL_CA_FILE": sec.ca_file,
        "NHIGUARD_KAFKA_SSL_CERT_FILE": sec.cert_file,
        "NHIGUARD_KAFKA_SSL_KEY_FILE": sec.key_file,
        "NHIGUARD_KAFKA_SSL_KEY_PASSWORD": sec.key_password,
        "NHIGUARD_KAFKA_SASL_USERNAME": sec.username,
        "NHIGUARD_KAFKA_SASL_PASSWORD": sec.password,
    }
    return env | {k: str(v) for k, v in optional.items() if v is not None}


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment that points a `nhiguard worker` process at these settings."""
    # The settings' own credentials and topic settings, not the caller's.
    ours = ("NHIGUARD_IDENTITIES_FILE", "NHIGUARD_KAFKA_", "NHIGUARD_MIN_INSYNC_REPLICAS", "NHIGUARD_SANDBOX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return {
        **env,
        **kafka_env(settings),
        "NHIGUARD_APP_ID": settings.app_id,
        "NHIGUARD_DATA_DIR": str(settings.data_dir),
        "NHIGUARD_INPUT_PARTITIONS": str(settings.input_partitions),
    }


def produce_records(
    bootstrap: str, records: list, topics: Topics, security: KafkaSecurity | None = None
) -> dict[tuple[str, int, int], str]:
    """Produce scenario records in order; returns (topic, partition, offset) -> label.

    Records get the current time as their Kafka timestamp, not their event time: a replay of March events
    stamped with March times would fall under the topics' time-based retention and be deleted by the broker
    within minutes. The event time is in each body, where the adapters read it.
    """
    rename = {t: getattr(topics, f) for f, t in vars(Topics()).items()}
    labels: dict[tuple[str, int, int], str] = {}
    errors: list[str] = []
    # log_level 3: a new broker answers "coordinator load in progress" once; librdkafka retries quietly.
    target = Settings(bootstrap=bootstrap, kafka=security or KafkaSecurity())
    producer = Producer(
        confluent_config(target, **{"enable.idempotence": True, "linger.ms": 20, "log_level": 3})
    )

    def on_delivery(err: object, msg: object, label: str) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            labels[(msg.topic(), msg.partition(), msg.offset())] = label  # type: ignore[attr-defined]

    for r in records:
        while True:
            try:
                producer.produce(
                    rename.get(r.topic, r.topic),
                    value=r.value,
                    key=r.key,
                    headers=list(r.headers),
                    on_delivery=lambda err, msg, label=r.label: on_delivery(err, msg, label),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60) or errors:
        raise RuntimeError(f"could not produce the demo stream: {errors[:3]}")
    return labels


def run_demo(settings: Settings, ordinary: int = 1000, timeout_s: float = 300.0) -> int:
    external = bool(os.environ.get("KAFKA_BOOTSTRAP"))
    run_id = uuid.uuid4().hex[:8]
    broker: LocalBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="nhiguard-demo-") as tmp:
        try:
            if not external:
                print("starting a local Kafka broker (first run resolves Apache Kafka from Maven Central) …")
                broker = LocalBroker(settings.cache_dir)
                settings = replace(settings, bootstrap=broker.start())
            # The demo replays March's incidents: history, so a sandbox (settings.py): its own topics and
            # consumer group (removed afterwards on somebody else's broker), decided on the events' own times.
            sandbox = f"nhiguard-demo-{run_id}"
            settings = replace(settings, sandbox=sandbox, app_id="nhiguard", data_dir=Path(tmp) / "worker")
            print(f"broker: {settings.bootstrap}, sandbox {sandbox} (topics {sandbox}.*)")
            ensure_topics(settings)

            params = default_params()
            records = generate(params, ordinary=ordinary)
            identities = Path(tmp) / "identities.yaml"
            write_inventory(params, identities)
            loaded, _ = load_identities(settings, identities)
            print(f"loaded {loaded} identities to {settings.topics.identities} (nhiguard identities load)")
            labels = produce_records(settings.bootstrap, records, settings.topics, settings.kafka)
            print(f"produced {len(records)} records: {dict(Counter(r.label for r in records))}")

            log_path = settings.cache_dir / "demo-worker.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "nhiguard.streams.cli", "worker"],
                    env=worker_env(settings),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            print(f"worker started (pid {worker.pid}, log {log_path})\n")
            ok = _watch(settings, labels, worker, timeout_s)
            return 0 if ok else 1
        finally:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(30)
                if worker.poll() is None:
                    worker.kill()
            if external:
                # Ours, including Faust's internal assignor topic, and the consumer groups.
                ours = [
                    *settings.topics.inputs,
                    *settings.topics.outputs,
                    settings.topics.identities,
                    settings.topics.by_identity,
                    *internal_topics(settings.app_id),
                ]
                delete_topics(settings, ours)
                delete_groups(settings, [settings.app_id, f"{settings.app_id}-watch"])
            if broker is not None:
                broker.stop()


def _watch(
    settings: Settings,
    labels: dict[tuple[str, int, int], str],
    worker: subprocess.Popen[bytes],
    timeout_s: float,
) -> bool:
    codec = AvroCodec(settings.schemas_dir)
    t = settings.topics
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": f"{settings.app_id}-watch",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    # Held REVOKEs (the circuit breaker's) are commands too: they wait on their own topic for an operator.
    consumer.subscribe([t.commands, t.held, t.decisions, t.deadletter])
    decided: dict[tuple[str, int, int], str] = {}  # input record -> verdict or dead-letter reason
    command_labels: dict[str, str] = {}
    commands: dict[str, dict] = {}
    started = time.monotonic()
    print(table.header())
    try:
        # Done when every input has a decision or dead letter and every command a decision names has arrived.
        while len(decided) < len(labels) or not set(command_labels) <= set(commands):
            if time.monotonic() - started > timeout_s:
                print(
                    f"\ntimed out: {len(decided)} of {len(labels)} records decided, "
                    f"{len(commands)} of {len(command_labels)} commands read",
                    file=sys.stderr,
                )
                return False
            if worker.poll() is not None:
                print(f"\nthe worker exited with {worker.returncode}", file=sys.stderr)
                return False
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            rec = codec.decode(msg.value())
            if msg.topic() in (t.commands, t.held):
                if rec["command_id"] not in commands:
                    commands[rec["command_id"]] = rec
                    print(table.row(rec), flush=True)
            elif msg.topic() == t.decisions:
                ref = (rec["input"]["topic"], rec["input"]["partition"], rec["input"]["offset"])
                decided[ref] = rec["verdict"]
                for cid in rec["command_ids"]:
                    command_labels[cid] = labels.get(ref, "?")
            else:
                decided[(rec["topic"], rec["partition"], rec["offset"])] = f"deadletter:{rec['reason']}"
    finally:
        consumer.close()
    return _summary(labels, decided, commands, command_labels, time.monotonic() - started)


def _summary(
    labels: dict[tuple[str, int, int], str],
    decided: dict[tuple[str, int, int], str],
    commands: dict[str, dict],
    command_labels: dict[str, str],
    elapsed: float,
) -> bool:
    print(f"\n{len(decided)} records decided in {elapsed:.1f}s: {dict(Counter(decided.values()))}")
    by_label = Counter(
        (command_labels.get(cid, "?"), c["kind"] + (" (held)" if c.get("status") == "HELD" else ""))
        for cid, c in commands.items()
    )
    print("commands by stream part:")
    for (label, kind), n in sorted(by_label.items()):
        print(f"  {label:<20} {kind:<14} {n}")
    ok = True
    for incident in ("incident:cms", "incident:ci", "incident:registry"):
        if not any(lbl == incident for lbl, _ in by_label):
            print(f"MISSED: no command for {incident}", file=sys.stderr)
            ok = False
    stray = sum(n for (lbl, _), n in by_label.items() if not lbl.startswith("incident:"))
    if stray:
        print(f"FALSE POSITIVES: {stray} commands for ordinary activity or harmless twins", file=sys.stderr)
        ok = False
    print("all three incidents stopped, no command for ordinary activity" if ok else "demo FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    p.add_argument("--ordinary", type=int, default=1000, help="ordinary events besides the incidents")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for all decisions")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_demo(load_settings(), ordinary=args.ordinary, timeout_s=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
