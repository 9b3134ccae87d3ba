"""Enrichment: the identity inventory and the context state the policies need.

Enrichment computes *facts* (how many assets this identity exposed in the last ten minutes, the previous
release's size, how old an added dependency is); the policies make the judgements. State here is in memory;
issue #5 makes it durable and partitioned by identity.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
from dataclasses import dataclass, field
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Identity:
        if not d.get("id") or not d.get("kind"):
            raise ValueError(f"identity record needs id and kind: {d!r}")
        creds = d.get("credential_ids") or ()
        actions = d.get("allowed_actions") or ()
        return cls(
            id=str(d["id"]),
            kind=str(d["kind"]),
            owner=str(d.get("owner") or ""),
            team=str(d.get("team") or ""),
            credential_ids=tuple(creds.split(";") if isinstance(creds, str) else map(str, creds)),
            allowed_actions=tuple(actions.split(";") if isinstance(actions, str) else map(str, actions)),
            trust_tier=int(d.get("trust_tier") or 3),
            expected_publisher=d.get("expected_publisher") or None,
        )


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
