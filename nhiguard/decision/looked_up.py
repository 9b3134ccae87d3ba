"""What the fetch step before the core (nhiguard/lookup.py) found in a registry document, as evidence in an
event's facts, and the families that want documents (registry_facts.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nhiguard.decision.facts import DAY_MS

if TYPE_CHECKING:
    from nhiguard.decision.facts import EventFacts


def days_between(at_ms: int, since_ms: int | None) -> float | None:
    return None if not since_ms else round((at_ms - since_ms) / DAY_MS, 3)


@dataclass(frozen=True, slots=True)
class LookedUp:
    """A package's registry document as the fetch step found it: `status` found | not_found | unavailable (no
    answer within the deadline, an error, or no registry configured for a lookup that was wanted)."""

    name: str
    status: str
    version: str = ""  # the version judged: the one installed, or the one a range resolved to then
    version_published_ms: int = 0  # its time[version] (0: unknown)
    package_created_ms: int = 0  # time.created (0: unknown)
    install_scripts: tuple[str, ...] = ()  # of that version
    publisher: str = ""  # its _npmUser.name

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "version": self.version,
            "version_published_ms": self.version_published_ms,
            "package_created_ms": self.package_created_ms,
            "install_scripts": list(self.install_scripts),
            "publisher": self.publisher,
        }

    def judged(self, at_ms: int) -> dict[str, Any]:
        """What a policy reads: ages at the event's time and how many install scripts (no input strings)."""
        found = self.status == "found"
        return {
            "status": self.status,
            "package_age_days": days_between(at_ms, self.package_created_ms) if found else None,
            "version_age_days": days_between(at_ms, self.version_published_ms) if found else None,
            "install_scripts": len(self.install_scripts) if found else 0,
        }


class NeedsDocuments:
    """A family whose judgement wants registry documents the stream may not carry (the fetch step asks)."""

    __slots__ = ()

    def wanted(self) -> tuple[tuple[str, str], ...]:
        """(package, version or range) to look up."""
        return ()

    def with_lookups(self, found: tuple[LookedUp, ...]) -> EventFacts:
        raise NotImplementedError
