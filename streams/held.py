"""`nhiguard commands held | release`: the REVOKEs the circuit breaker held, and their release by an operator.

The held topic (`enforcement.held`, keyed by command id) is the ledger: the worker writes a command there with
status HELD instead of sending it to `enforcement.commands`; a release writes the same command with status
RELEASED (when, by whom) to `enforcement.commands` first, then to the held topic. The latest record of a
command id is its state. A release that fails between the two writes is simply repeated: the command id is
the same, so enforcement points apply it once.

Both writes are signed with the operator's NHIGUARD_SIGNING_KEY (README "Signed commands"). With
NHIGUARD_COMMAND_KEYS set, records on the held topic that are not validly signed by one of its keys are
ignored (and named on stderr): a forged HELD record cannot be laundered into a signed release.
"""

from __future__ import annotations

import getpass
import os
import sys
import time
from typing import Any

from confluent_kafka import KafkaError, Producer

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import Settings
from nhiguard.signing import Jwks, Signer, SigningError, command_signer, trusted_keys, verify_record
from nhiguard.streams import table
from nhiguard.streams.topics import TopicReadError, read_to_end


class ReleaseError(RuntimeError):
    """A release could not be written: nothing after the failed step was."""


def read_held(
    settings: Settings, codec: AvroCodec, timeout_s: float = 30.0, keys: Jwks | None = None
) -> dict[str, dict[str, Any]]:
    """Every command on the held topic by id, as its latest record says (status HELD or RELEASED), in the
    order they were first held. Reads each partition from the start to its end as of now. With keys, a
    record not validly signed by one of them is left out (and reported on stderr)."""
    topic = settings.topics.held
    latest: dict[str, dict[str, Any]] = {}
    try:
        # A held topic no worker has created yet: nothing was ever held.
        for msg in read_to_end(settings, topic, "commands", timeout_s, missing_ok=True):
            verdict = verify_record(msg.value(), msg.headers(), keys) if keys else None
            if verdict is not None and not verdict.ok:
                print(f"ignored {topic}[{msg.partition()}]@{msg.offset()}: {verdict.reason}", file=sys.stderr)
                continue
            rec = codec.decode(msg.value())
            latest[rec["command_id"]] = rec
    except TopicReadError as exc:
        raise ReleaseError(str(exc)) from exc
    return latest


def _deliver(settings: Settings, records: list[tuple[str, str, bytes]], signer: Signer | None) -> None:
    """Produce (topic, key, value) records, signed when there is a key, and wait until every one is
    acknowledged."""
    errors: list[str] = []
    producer = Producer(confluent_config(settings, **{"enable.idempotence": True, "acks": "all"}))

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for topic, key, value in records:
        headers = signer.headers(value) if signer else None
        producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
    if producer.flush(60) or errors:
        raise ReleaseError(f"not delivered: {errors[:3] or 'timed out'}")


def release(
    settings: Settings, codec: AvroCodec, ids: list[str], every: bool, by: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Release held commands (the given ids, or every one still held): each goes to the commands topic with
    status RELEASED, then the release is recorded on the held topic. Returns (released, already released).
    Raises KeyError naming ids that were never held, before anything is written; SigningError for a key or
    JWKS that is configured but unusable (or missing when signing is required)."""
    signer = command_signer(settings)
    held = read_held(
        settings, codec, keys=trusted_keys(settings.command_keys, "NHIGUARD_COMMAND_KEYS", settings)
    )
    unknown = [i for i in ids if i not in held]
    if unknown:
        raise KeyError(" ".join(unknown))
    chosen = [i for i, rec in held.items() if rec["status"] == "HELD"] if every else list(dict.fromkeys(ids))
    already = [i for i in chosen if held[i]["status"] != "HELD"]
    now = int(time.time() * 1000)
    stamp = {"status": "RELEASED", "released_at": now, "released_by": by}
    released = [{**held[i], **stamp} for i in chosen if i not in already]
    t = settings.topics
    encoded = [(r, codec.encode("EnforcementCommand", r)) for r in released]
    # The command first, then the record of its release: a failure in between leaves it HELD, and releasing
    # it again sends the same command id.
    _deliver(settings, [(t.commands, r["identity"], data) for r, data in encoded], signer)
    _deliver(settings, [(t.held, r["command_id"], data) for r, data in encoded], signer)
    return released, already


def operator() -> str:
    return os.environ.get("NHIGUARD_OPERATOR") or getpass.getuser()


def run_held(settings: Settings) -> int:
    codec = AvroCodec(settings.schemas_dir)
    try:
        held = read_held(
            settings, codec, keys=trusted_keys(settings.command_keys, "NHIGUARD_COMMAND_KEYS", settings)
        )
    except SigningError as exc:
        print(f"nhiguard commands held: {exc}", file=sys.stderr)
        return 2
    except ReleaseError as exc:
        print(f"nhiguard commands held: {exc}", file=sys.stderr)
        return 1
    waiting = [rec for rec in held.values() if rec["status"] == "HELD"]
    if waiting:
        print(table.header())
        for rec in waiting:
            print(table.row(rec))
    released = len(held) - len(waiting)
    print(
        f"\n{len(waiting)} held on {settings.topics.held} ({released} released before)"
        + ("; release: nhiguard commands release COMMAND_ID… | --all" if waiting else "")
    )
    return 0


def run_release(settings: Settings, ids: list[str], every: bool, by: str | None) -> int:
    if bool(ids) == every:
        print("nhiguard commands release: give command ids, or --all", file=sys.stderr)
        return 2
    codec = AvroCodec(settings.schemas_dir)
    try:
        released, already = release(settings, codec, ids, every, by or operator())
    except KeyError as exc:
        print(f"nhiguard commands release: never held, nothing released: {exc.args[0]}", file=sys.stderr)
        return 2
    except SigningError as exc:
        print(f"nhiguard commands release: nothing released: {exc}", file=sys.stderr)
        return 2
    except ReleaseError as exc:
        print(f"nhiguard commands release: {exc}", file=sys.stderr)
        return 1
    for rec in released:
        print(table.row(rec))
    for cid in already:
        print(f"{cid}: already released")
    print(f"released {len(released)} command(s) to {settings.topics.commands}")
    return 0
