"""A small log shipper: follow a Verdaccio log file (JSON lines) and produce each line that shows a finished
client request (a `request` field: what the `verdaccio.log` adapter reads) to an input topic, as a log
shipper (Vector's kafka sink, Fluent Bit's kafka output) would. Each record is the line itself, unchanged,
keyed by the package its URL names (docs/sources.md). Lines without `request` (startup, the request-received
line, uplink chatter) are not shipped: they name nobody.

KAFKA_BOOTSTRAP=127.0.0.1:9092 python -m tools.ship_log /path/to/verdaccio.log   # to the registry topic

The broker, its security settings and the topic come from the environment as for every nhiguard command
(KAFKA_BOOTSTRAP, NHIGUARD_KAFKA_*, NHIGUARD_TOPIC_REGISTRY, NHIGUARD_SANDBOX).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

from confluent_kafka import Producer

from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import load_settings


def shipped(line: bytes) -> tuple[bytes | None, bytes] | None:
    """(key, value) of a log line worth shipping, else None."""
    try:
        body = json.loads(line)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
        return None
    url = str(body["request"].get("url") or "")
    first = url.split("?", 1)[0].lstrip("/").split("/", 1)[0]
    key = unquote(first).encode() if first and first != "-" else None
    return key, line.rstrip(b"\r\n")


def follow(path: Path, producer: Producer, topic: str, stop: threading.Event, poll_s: float = 0.1) -> int:
    """Ship every complete line of `path` from its start, and the lines appended to it, until `stop` is set;
    the number of records produced (each acknowledged before it returns)."""
    sent = 0
    while not path.exists() and not stop.is_set():
        time.sleep(poll_s)
    with path.open("rb") as f:
        pending = b""
        while True:
            chunk = f.readline()
            if not chunk:
                if stop.is_set():
                    break
                time.sleep(poll_s)
                continue
            pending += chunk
            if not pending.endswith(b"\n"):
                continue  # a line still being written
            record, pending = shipped(pending), b""
            if record is not None:
                producer.produce(topic, value=record[1], key=record[0])
                producer.poll(0)
                sent += 1
    if producer.flush(30):
        raise RuntimeError(f"{path}: records not acknowledged by Kafka")
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.ship_log", description=__doc__.split("\n\n")[0])
    p.add_argument("path", type=Path)
    args = p.parse_args(argv)
    settings = load_settings()
    producer = Producer(confluent_config(settings, **{"enable.idempotence": True, "acks": "all"}))
    topic = settings.topics.registry
    stop = threading.Event()
    worker = threading.Thread(target=follow, args=(args.path, producer, topic, stop), daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        stop.set()  # what was read is still acknowledged before it stops
        worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
