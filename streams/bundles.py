"""Policy bundles through Kafka: `nhiguard policy publish` writes a bundle to a compacted topic, and every
worker follows that topic and activates the newest bundle (trial run, then an atomic swap).

A record is the bundle's text files as JSON (`{"files": {path: text}}`), keyed by bundle name, so
compaction keeps the latest. Each worker reads the topic with a consumer of its own (not the worker group):
every worker must see every bundle.

Bundles are signed as OPA signs its bundles, with the signature carried beside the content: the publisher
given a key signs the record value (nhiguard/signing.py; headers `nhiguard-sig`, `nhiguard-kid`), and a
worker given NHIGUARD_BUNDLE_KEYS (a JWKS) activates only bundles validly signed by one of its keys; any other
is refused (the active bundle stays, the SOC is alerted).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from nhiguard.kafka_clients import confluent_config
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import Settings
from nhiguard.signing import Signer, trusted_keys, verify_record
from nhiguard.streams.reload import BundleReloader
from nhiguard.streams.topics import ensure_compacted_topic

log = logging.getLogger("nhiguard.bundles")
BUNDLE_FILES = ("*.rego", "*.cases.yaml", "data.yaml", "manifest.yaml", "waivers.yaml", "index.yaml")
KEY = b"default"


def pack_bundle(root: Path) -> bytes:
    """The bundle's files as one record value; refuses a directory that is not a loadable bundle."""
    load_bundle(root)  # a bundle that does not even load is not published
    files = {
        p.relative_to(root).as_posix(): p.read_text() for pat in BUNDLE_FILES for p in sorted(root.rglob(pat))
    }
    return json.dumps({"files": files}, sort_keys=True).encode()


def unpack_bundle(value: bytes, staging: Path) -> Path:
    """Write a bundle record's files to staging/<content hash>/ and return that directory."""
    try:
        files = json.loads(value)["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"not a bundle record: {exc}") from exc
    root = staging / hashlib.sha256(value).hexdigest()[:16]
    for rel, text in files.items():
        target = (root / rel).resolve()
        if not str(target).startswith(str(root.resolve()) + "/"):
            raise BundleError(f"bundle record names a path outside the bundle: {rel!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def ensure_bundle_topic(settings: Settings) -> None:
    ensure_compacted_topic(settings, settings.topics.bundles, 1)


def publish_bundle(settings: Settings, root: Path, signer: Signer | None = None) -> str:
    """Produce the bundle at root to the bundles topic (signed, given a signer); returns its revision."""
    value = pack_bundle(root)
    ensure_bundle_topic(settings)
    producer = Producer(
        confluent_config(
            settings, **{"enable.idempotence": True, "message.max.bytes": max(len(value) + 4096, 1_000_000)}
        )
    )
    headers = signer.headers(value) if signer else None
    producer.produce(settings.topics.bundles, key=KEY, value=value, headers=headers)
    if producer.flush(30):
        raise RuntimeError("bundle not delivered")
    return load_bundle(root).revision


class BundleFollower(threading.Thread):
    """Follows the bundles topic from the beginning and activates each newer bundle through the reloader."""

    def __init__(self, settings: Settings, reloader: BundleReloader) -> None:
        super().__init__(name="nhiguard-bundles", daemon=True)
        self.settings = settings
        self.reloader = reloader
        self.staging = settings.data_dir / "bundles"
        self._stop = threading.Event()
        # Unusable keys, or none while signing is required, stop the worker before it starts.
        self.keys = trusted_keys(settings.bundle_keys, "NHIGUARD_BUNDLE_KEYS", settings)
        if self.keys is None:
            log.warning(
                "no NHIGUARD_BUNDLE_KEYS: bundles from %s are activated unverified", settings.topics.bundles
            )

    def _verified(self, value: bytes, headers: list[tuple[str, bytes]] | None, offset: int) -> bool:
        if self.keys is None:
            return True
        verdict = verify_record(value, headers, self.keys)
        if not verdict.ok:
            digest = hashlib.sha256(value).hexdigest()[:16]
            self.reloader.refuse(f"{digest}@{offset}", f"bundle record at offset {offset}: {verdict.reason}")
        return verdict.ok

    def run(self) -> None:
        ensure_bundle_topic(self.settings)
        consumer = Consumer(
            confluent_config(
                self.settings,
                **{
                    # A group of its own: every worker must read every bundle.
                    "group.id": f"{self.settings.app_id}-bundles-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "log_level": 3,
                },
            )
        )
        consumer.subscribe([self.settings.topics.bundles])
        try:
            while not self._stop.is_set():
                msg = consumer.poll(1.0)
                if msg is None or msg.error() or msg.value() is None:
                    continue
                if not self._verified(msg.value(), msg.headers(), msg.offset()):
                    continue
                try:
                    root = unpack_bundle(msg.value(), self.staging)
                except (BundleError, OSError) as exc:
                    log.error("bundle record at offset %s refused: %s", msg.offset(), exc)
                    continue
                self.reloader.activate(root)
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
