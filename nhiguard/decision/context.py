"""Enrichment: the identity inventory and the context state the policies need.

Enrichment computes *facts* (how many assets this identity exposed in the last ten minutes, the previous
release's size, how old an added dependency is); the policies make the judgements. State here is in memory;
issue #5 makes it durable and partitioned by identity.
"""

from __future__ import annotations

import bisect
import csv
import fnmatch
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

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
            trust_tier=int(d.get("trust_tier") or 3),
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
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
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

    def put(self, identity: Identity) -> None:
        self._by_id[identity.id] = identity

    def remove(self, identity_id: str) -> None:
        self._by_id.pop(identity_id, None)

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class ContextState:
    """What earlier events and decisions established. Updated in event order."""

    exposures: dict[str, list[int]] = field(default_factory=dict)
    last_release: dict[str, dict[str, Any]] = field(default_factory=dict)
    package_created_ms: dict[str, int] = field(default_factory=dict)
    denied_versions: set[str] = field(default_factory=set)
    installs: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    revoked_until_ms: dict[str, int] = field(default_factory=dict)

    # -- facts, computed before evaluation, in event order ------------------------------------------------
    def observe(self, ev: CanonicalEvent) -> dict[str, Any]:
        """Record what the event itself establishes and return the context facts for its policy input."""
        ctx: dict[str, Any] = {}
        if ev.cms is not None:
            # Sorted times, so a late or redelivered webhook counts only exposures in its own window.
            times = self.exposures.setdefault(ev.actor.id, [])
            t = ev.occurred_at_ms
            if ev.cms["exposed_without_publish"]:
                bisect.insort(times, t)
            ctx["exposures_10m"] = bisect.bisect_right(times, t) - bisect.bisect_right(
                times, t - EXPOSURE_WINDOW_MS
            )
            # Forget what no event within a window of the newest can still count.
            del times[: bisect.bisect_right(times, times[-1] - 2 * EXPOSURE_WINDOW_MS) if times else 0]
        if ev.release is not None:
            prev = self.last_release.get(ev.release["package"])
            ctx["previous_release"] = prev
            ctx["size_ratio"] = (ev.release["size"] / prev["size"]) if prev and prev["size"] else None
        if ev.publish is not None:
            pkg = ev.publish["package"]
            created = ev.publish["package_created_ms"] or ev.occurred_at_ms
            self.package_created_ms[pkg] = min(self.package_created_ms.get(pkg, created), created)
            ages: dict[str, float | None] = {}
            for dep in ev.publish["added_dependencies"]:
                first = self.package_created_ms.get(dep)
                ages[dep] = None if first is None else round((ev.occurred_at_ms - first) / DAY_MS, 3)
            ctx["added_dependency_age_days"] = ages
        if ev.install is not None:
            ref = f"{ev.install['package']}@{ev.install['version']}"
            self.installs.setdefault(ref, []).append((ev.actor.id, ev.occurred_at_ms))
            ctx["version_denied"] = ref in self.denied_versions
        return ctx

    @staticmethod
    def reads(ev: CanonicalEvent) -> str | None:
        """The decision-dependent key this event's facts read (the wave is cut before a pending writer)."""
        if ev.release is not None:
            return f"release:{ev.release['package']}"
        if ev.install is not None:
            return f"version:{ev.install['package']}@{ev.install['version']}"
        return None

    @staticmethod
    def writes(ev: CanonicalEvent) -> str | None:
        """The decision-dependent key this event's *decision* may change."""
        if ev.release is not None:
            return f"release:{ev.release['package']}"
        if ev.publish is not None:
            return f"version:{ev.publish['package']}@{ev.publish['version']}"
        return None

    # -- after the decision ---------------------------------------------------------------------------------
    def record_decision(self, d: Decision) -> None:
        if any(is_engine_failure(f) for f in d.findings):
            return  # no policy judged this event: it must not become history (a denied version, a release)
        ev = d.event
        if ev.release is not None and d.verdict == "ALLOW":
            self.last_release[ev.release["package"]] = {
                "version": ev.release["version"],
                "size": ev.release["size"],
                "unpacked_size": ev.release["unpacked_size"],
            }
        if ev.publish is not None and d.verdict != "ALLOW":
            self.denied_versions.add(f"{ev.publish['package']}@{ev.publish['version']}")

    def installers(self, package_ref: str) -> list[tuple[str, int]]:
        return list(self.installs.get(package_ref, ()))

    def mark_revoked(self, identity: str, at_ms: int, until_ms: int) -> bool:
        """True when this is a new revocation, False while an earlier one is still in force."""
        if self.revoked_until_ms.get(identity, -1) > at_ms:
            return False
        self.revoked_until_ms[identity] = until_ms
        return True
