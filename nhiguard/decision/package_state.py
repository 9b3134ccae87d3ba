"""Per-package facts: what the registry and releases established about one package, read by the events of
every identity that touches it.

Copies written from several partitions merge: sets unite, first-publish takes the minimum, the latest release
wins by event time, installers unite. So reading every copy gives one answer whatever the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Installers remembered per version (to revoke those who installed a version later found bad), and versions
# per package: enough for the incident window, bounded so a popular package cannot grow without limit.
MAX_INSTALLERS = 256
MAX_VERSIONS = 32


@dataclass(frozen=True, slots=True)
class LastRelease:
    version: str
    size: int
    unpacked_size: int
    repository: str = ""  # where the release ran (its gate request's GitHub context); "" before it was kept
    workflow: str = ""

    def record(self) -> dict[str, Any]:
        # Only what is known: a value written before the origin was kept reads (and writes) the same.
        where = {"repository": self.repository, "workflow": self.workflow} if self.repository else {}
        return {"version": self.version, "size": self.size, "unpacked_size": self.unpacked_size, **where}


@dataclass
class PackageFacts:
    last_release: LastRelease | None = None
    last_release_ms: int = -1
    created_ms: int | None = None
    denied: set[str] = field(default_factory=set)  # versions
    installs: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # version -> (who, when)

    def copy(self) -> PackageFacts:
        installs = {v: list(xs) for v, xs in self.installs.items()}
        release, at = self.last_release, self.last_release_ms
        return PackageFacts(release, at, self.created_ms, set(self.denied), installs)

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

    # -- changes (effects call these); each says whether anything changed ------------------------------
    def first_published(self, created_ms: int) -> bool:
        if self.created_ms is not None and created_ms >= self.created_ms:
            return False
        self.created_ms = created_ms
        return True

    def installed(self, version: str, who: str, at_ms: int) -> bool:
        xs = self.installs.setdefault(version, [])
        if (who, at_ms) not in xs:  # a redelivered record is not a second install
            xs.append((who, at_ms))
            del xs[:-MAX_INSTALLERS]
        while len(self.installs) > MAX_VERSIONS:
            del self.installs[next(iter(self.installs))]
        return True

    def released(self, release: LastRelease, at_ms: int) -> bool:
        if at_ms < self.last_release_ms:
            return False  # a later release is already the last
        self.last_release, self.last_release_ms = release, at_ms
        return True

    def deny(self, version: str) -> bool:
        self.denied.add(version)
        return True
