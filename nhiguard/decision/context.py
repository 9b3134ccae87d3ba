"""Enrichment: the identity inventory and the context state the policies need.

Enrichment computes *facts* (how many assets this identity exposed in the last ten minutes, the previous
release's size, how old an added dependency is); the policies make the judgements.
"""

from __future__ import annotations

import bisect
import csv
import fnmatch
import io
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml

from nhiguard.decision.facts import CmsChange, Install, Publish, ReleaseRequest
from nhiguard.decision.records import CanonicalEvent, Decision, is_engine_failure

EXPOSURE_WINDOW_MS = 10 * 60 * 1000
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    kind: str
    owner: str = ""
    team: str = ""
    credential_ids: tuple[str, ...] = ()
    allowed_actions: tuple[str, ...] = ()
    trust_tier: int = 3
    expected_publisher: dict[str, Any] | None = None
    allowed_destinations: tuple[str, ...] = ()
    created_ms: int | None = None
    expires_ms: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Identity:
        """From a YAML/JSON mapping, a CSV row (lists separated by `;`) or a decoded Avro record."""
        if not d.get("id") or not d.get("kind"):
            raise ValueError(f"identity record needs id and kind: {d!r}")
        if str(d["kind"]) not in IDENTITY_KINDS:
            raise ValueError(f"identity {d['id']}: kind must be one of {', '.join(IDENTITY_KINDS)}")
        publisher = d.get("expected_publisher") or None
        if publisher is not None:
            if not isinstance(publisher, dict):
                raise ValueError(f"identity {d['id']}: expected_publisher must be a mapping")
            publisher = {k: str(publisher.get(k) or "") for k in ("mechanism", "repository", "workflow")}
        return cls(
            id=str(d["id"]),
            kind=str(d["kind"]),
            owner=str(d.get("owner") or ""),
            team=str(d.get("team") or ""),
            credential_ids=_strings(d.get("credential_ids")),
            allowed_actions=_strings(d.get("allowed_actions")),
            trust_tier=int(d["trust_tier"]) if d.get("trust_tier") not in (None, "") else 3,
            expected_publisher=publisher,
            allowed_destinations=_strings(d.get("allowed_destinations")),
            created_ms=_time_ms(d.get("created"), d.get("created_ms")),
            expires_ms=_time_ms(d.get("expires"), d.get("expires_ms")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as the Avro Identity schema (schemas/nhiguard.Identity.avsc) has it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "team": self.team,
            "credential_ids": list(self.credential_ids),
            "allowed_actions": list(self.allowed_actions),
            "trust_tier": self.trust_tier,
            "expected_publisher": self.expected_publisher,
            "allowed_destinations": list(self.allowed_destinations),
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
        }

    def allows(self, action: str) -> bool:
        """No allowed actions listed means no restriction; otherwise one of the globs must match."""
        return not self.allowed_actions or any(fnmatch.fnmatchcase(action, p) for p in self.allowed_actions)


IDENTITY_KINDS = (
    "service_account",
    "ci_bot",
    "package_publisher",
    "cms_integration",
    "ai_agent",
    "cloud_role",
    "k8s_service_account",
)


def _strings(v: Any) -> tuple[str, ...]:
    if not v:
        return ()
    return tuple(x.strip() for x in v.split(";") if x.strip()) if isinstance(v, str) else tuple(map(str, v))


def _time_ms(when: Any, ms: Any) -> int | None:
    if ms not in (None, ""):
        return int(ms)
    if when in (None, ""):
        return None
    if isinstance(when, (int, float)):
        return int(when * 1000)
    if isinstance(when, str):
        when = when.strip()
        # A bare date (as YAML would read it) means midnight UTC, in CSV and JSON too.
        when = (
            date.fromisoformat(when)
            if len(when) == 10
            else datetime.fromisoformat(when.replace("Z", "+00:00"))
        )
    if isinstance(when, date) and not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day, tzinfo=UTC)
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"identity times need a zone: {when!r}")
    return int(when.timestamp() * 1000)


class Inventory:
    """Identity records by canonical id. Loaded from YAML, JSON or CSV (see README)."""

    def __init__(self, identities: list[Identity] | None = None) -> None:
        self._by_id = {i.id: i for i in identities or ()}

    @classmethod
    def load(cls, path: Path) -> Inventory:
        text = Path(path).read_text()
        if Path(path).suffix.lower() == ".csv":
            return cls([Identity.from_dict(r) for r in csv.DictReader(io.StringIO(text))])
        return cls.load_dict(
            json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
        )

    @classmethod
    def load_dict(cls, doc: dict[str, Any] | list[dict[str, Any]] | None) -> Inventory:
        """From `{"identities": [...]}` or a bare list of identity records."""
        rows = doc.get("identities", []) if isinstance(doc, dict) else (doc or [])
        return cls([Identity.from_dict(r) for r in rows])

    def get(self, identity_id: str) -> Identity | None:
        return self._by_id.get(identity_id)

    def all(self) -> list[Identity]:
        return list(self._by_id.values())

    def put(self, identity: Identity) -> None:
        self._by_id[identity.id] = identity

    def remove(self, identity_id: str) -> None:
        self._by_id.pop(identity_id, None)

    def __len__(self) -> int:
        return len(self._by_id)


class StateStore(Protocol):
    """Where state lives between batches and across restarts (the worker's Faust tables). The core reads
    through it on first use of a key; the worker writes back what the core's `snapshot()` returns."""

    def identity(self, identity_id: str) -> bytes | None: ...

    def package(self, name: str) -> list[bytes]: ...


@dataclass
class IdentityFacts:
    """What one identity's own events established (partitioned by identity)."""

    exposures: list[int] = field(default_factory=list)  # sorted exposure times within two windows
    revoked: dict[str, int] = field(default_factory=dict)  # revoke dedup key -> in force until (event ms)
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    events: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "x": self.exposures,
            "r": self.revoked,
            "f": self.first_seen_ms,
            "l": self.last_seen_ms,
            "n": self.events,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IdentityFacts:
        # Format 1 values also hold the worker's delivery facts ("a", "o"): the store layer reads those.
        return cls(list(d["x"]), dict(d["r"]), d["f"], d["l"], int(d["n"]))


@dataclass
class PackageFacts:
    """What the registry and releases established about one package (read by every identity's events).

    Copies written from several partitions merge: sets unite, first-publish takes the minimum, the latest
    release wins by event time. So reading every copy gives one answer whatever the partitioning."""

    last_release: dict[str, Any] | None = None
    last_release_ms: int = -1
    created_ms: int | None = None
    denied: set[str] = field(default_factory=set)  # versions
    installs: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # version -> (who, when)

    def to_json(self) -> dict[str, Any]:
        return {
            "r": self.last_release,
            "rt": self.last_release_ms,
            "c": self.created_ms,
            "d": sorted(self.denied),
            "i": {v: [list(x) for x in xs] for v, xs in self.installs.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PackageFacts:
        installs = {v: [(str(w), int(t)) for w, t in xs] for v, xs in d["i"].items()}
        return cls(d["r"], int(d["rt"]), d["c"], set(d["d"]), installs)

    def merge(self, other: PackageFacts) -> None:
        if other.last_release_ms > self.last_release_ms:
            self.last_release, self.last_release_ms = other.last_release, other.last_release_ms
        if other.created_ms is not None:
            self.created_ms = min(self.created_ms or other.created_ms, other.created_ms)
        self.denied |= other.denied
        for version, xs in other.installs.items():
            self.installs[version] = sorted(
                set(self.installs.get(version, [])) | set(xs), key=lambda x: x[1]
            )[-MAX_INSTALLERS:]


# Installers remembered per version (to revoke those who installed a version later found bad), and versions
# per package: enough for the incident window, bounded so a popular package cannot grow without limit.
MAX_INSTALLERS = 256
MAX_VERSIONS = 32


class ContextState:
    """What earlier events and decisions established, per identity and per package. Updated in event order.

    Without a store, everything stays in memory (tests, replays). With one (the worker), a key is read from
    it on first use, the keys a batch changed are returned by `snapshot()` for the worker to write, and the
    least recently used identities and packages beyond the cache size are dropped from memory.
    """

    def __init__(self, store: StateStore | None = None, max_cached: int = 200_000) -> None:
        self.store = store
        self.max_cached = max_cached
        self.identities: dict[str, IdentityFacts] = {}
        self.packages: dict[str, PackageFacts] = {}
        self.dirty_identities: set[str] = set()
        self.dirty_packages: set[str] = set()
        self.on_identity_load: Any = None  # (identity, model bytes | None) -> None: the anomaly model part

    # -- keys ------------------------------------------------------------------------------------------------
    def identity(self, identity_id: str) -> IdentityFacts:
        facts = self.identities.get(identity_id)
        if facts is None:
            facts = IdentityFacts()
            blob = self.store.identity(identity_id) if self.store is not None else None
            model = None
            if blob is not None:
                facts, model = decode_identity_state(blob)
            if self.on_identity_load is not None:
                self.on_identity_load(identity_id, model)
            self.identities[identity_id] = facts
        else:  # most recently used last
            self.identities[identity_id] = self.identities.pop(identity_id)
        return facts

    def package(self, name: str) -> PackageFacts:
        facts = self.packages.get(name)
        if facts is None:
            facts = PackageFacts()
            for blob in self.store.package(name) if self.store is not None else ():
                facts.merge(decode_package_state(blob))
            self.packages[name] = facts
        else:
            self.packages[name] = self.packages.pop(name)
        return facts

    # -- facts, computed before evaluation, in event order ------------------------------------------------
    def observe(self, ev: CanonicalEvent) -> dict[str, Any]:
        """Record what the event itself establishes and return the context facts for its policy input."""
        me = self.identity(ev.actor.id)
        self.dirty_identities.add(ev.actor.id)
        t = ev.occurred_at_ms
        ctx: dict[str, Any] = {
            "first_seen_ms": me.first_seen_ms if me.first_seen_ms is not None else t,
            "events_before": me.events,
        }
        me.first_seen_ms = t if me.first_seen_ms is None else min(me.first_seen_ms, t)
        me.last_seen_ms = t if me.last_seen_ms is None else max(me.last_seen_ms, t)
        me.events += 1
        facts = ev.facts
        if isinstance(facts, CmsChange):
            # Sorted times, so a late or redelivered webhook counts only exposures in its own window.
            times = me.exposures
            if facts.exposed_without_publish:
                bisect.insort(times, t)
            ctx["exposures_10m"] = bisect.bisect_right(times, t) - bisect.bisect_right(
                times, t - EXPOSURE_WINDOW_MS
            )
            # Forget what no event within a window of the newest can still count.
            del times[: bisect.bisect_right(times, times[-1] - 2 * EXPOSURE_WINDOW_MS) if times else 0]
        if isinstance(facts, ReleaseRequest):
            prev = self.package(facts.package).last_release
            ctx["previous_release"] = prev
            ctx["size_ratio"] = (facts.size / prev["size"]) if prev and prev["size"] else None
        if isinstance(facts, Publish):
            pkg = self.package(facts.package)
            created = facts.package_created_ms or t
            if pkg.created_ms is None or created < pkg.created_ms:
                pkg.created_ms = created
                self.dirty_packages.add(facts.package)
            ages: dict[str, float | None] = {}
            for dep in facts.added_dependencies:
                first = self.package(dep).created_ms
                ages[dep] = None if first is None else round((t - first) / DAY_MS, 3)
            ctx["added_dependency_age_days"] = ages
        if isinstance(facts, Install):
            pkg = self.package(facts.package)
            version = facts.version
            xs = pkg.installs.setdefault(version, [])
            if (ev.actor.id, t) not in xs:  # a redelivered record is not a second install
                xs.append((ev.actor.id, t))
                del xs[:-MAX_INSTALLERS]
            while len(pkg.installs) > MAX_VERSIONS:
                del pkg.installs[next(iter(pkg.installs))]
            self.dirty_packages.add(facts.package)
            ctx["version_denied"] = version in pkg.denied
        return ctx

    @staticmethod
    def reads(ev: CanonicalEvent) -> str | None:
        """The decision-dependent key this event's facts read (the wave is cut before a pending writer)."""
        return None if ev.facts is None else ev.facts.reads()

    @staticmethod
    def writes(ev: CanonicalEvent) -> str | None:
        """The decision-dependent key this event's *decision* may change."""
        return None if ev.facts is None else ev.facts.writes()

    # -- after the decision ---------------------------------------------------------------------------------
    def record_decision(self, d: Decision) -> None:
        if any(is_engine_failure(f) for f in d.findings):
            return  # no policy judged this event: it must not become history (a denied version, a release)
        ev, facts = d.event, d.event.facts
        if isinstance(facts, ReleaseRequest) and d.verdict == "ALLOW":
            pkg = self.package(facts.package)
            if ev.occurred_at_ms >= pkg.last_release_ms:
                pkg.last_release = {
                    "version": facts.version,
                    "size": facts.size,
                    "unpacked_size": facts.unpacked_size,
                }
                pkg.last_release_ms = ev.occurred_at_ms
                self.dirty_packages.add(facts.package)
        if isinstance(facts, Publish) and d.verdict != "ALLOW":
            self.package(facts.package).denied.add(facts.version)
            self.dirty_packages.add(facts.package)

    def installers(self, package: str, version: str) -> list[tuple[str, int]]:
        return list(self.package(package).installs.get(version, ()))

    def mark_revoked(self, actor: str, key: str, at_ms: int, until_ms: int) -> bool:
        """True when this is a new revocation, False while an earlier one is still in force. Remembered with
        the acting identity's state (the event that caused it is partitioned by that identity)."""
        revoked = self.identity(actor).revoked
        if revoked.get(key, -1) > at_ms:
            return False
        for k in [k for k, until in revoked.items() if until <= at_ms]:
            del revoked[k]  # expired: forget it
        revoked[key] = until_ms
        self.dirty_identities.add(actor)
        return True

    # -- durability ------------------------------------------------------------------------------------------
    def take_dirty(self) -> tuple[set[str], dict[str, bytes]]:
        """(identities whose state changed, changed packages as stored) since the last call."""
        ids, pkgs = self.dirty_identities, self.dirty_packages
        self.dirty_identities, self.dirty_packages = set(), set()
        return ids, {name: encode_package_state(self.packages[name]) for name in pkgs}

    def evict(self) -> list[str]:
        """Drop the least recently used keys beyond the cache size; returns the identities dropped (the caller
        drops their models). Only for a store-backed state: without a store, memory is all there is."""
        if self.store is None:
            return []
        dropped = []
        while len(self.identities) > self.max_cached:
            dropped.append(next(iter(self.identities)))
            del self.identities[dropped[-1]]
        while len(self.packages) > self.max_cached:
            del self.packages[next(iter(self.packages))]
        return dropped


class StateFormatError(ValueError):
    """A stored value in a format this version does not read."""


_STATE_HEAD = struct.Struct("<BI")  # format, length of the model part
IDENTITY_FORMAT = 1
PACKAGE_FORMAT = 2


def encode_identity_state(facts: IdentityFacts, model: bytes | None) -> bytes:
    """One identity's state, the core's part of its table value: its facts and its behavioural model, written
    together so a restart never pairs a model with facts from another point in the stream.

    Format 1: [u8 1][u32 n][model, n bytes][facts as JSON]. (The first round stored this alone as the table
    value, with the worker's delivery facts inside the JSON; the store layer now keeps those beside it.)"""
    m = model or b""
    head = _STATE_HEAD.pack(IDENTITY_FORMAT, len(m))
    return head + m + json.dumps(facts.to_json(), separators=(",", ":")).encode()


def decode_identity_state(blob: bytes) -> tuple[IdentityFacts, bytes | None]:
    version, n = _STATE_HEAD.unpack_from(blob)
    if version != IDENTITY_FORMAT:
        raise StateFormatError(f"identity state format {version}; this version reads {IDENTITY_FORMAT}")
    start = _STATE_HEAD.size
    model = blob[start : start + n] or None
    return IdentityFacts.from_json(json.loads(blob[start + n :])), model


def encode_package_state(facts: PackageFacts) -> bytes:
    """Format 2: [u8 2][facts as JSON]. Format 1 was the JSON alone."""
    return bytes((PACKAGE_FORMAT,)) + json.dumps(facts.to_json()).encode()


def decode_package_state(blob: bytes) -> PackageFacts:
    if blob[:1] == b"{":  # format 1
        return PackageFacts.from_json(json.loads(blob))
    if blob[:1] == bytes((PACKAGE_FORMAT,)):
        return PackageFacts.from_json(json.loads(blob[1:]))
    found = blob[0] if blob else "empty"
    raise StateFormatError(f"package state format {found}; this version reads 1 and {PACKAGE_FORMAT}")
