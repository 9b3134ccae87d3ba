"""Per-package facts: what the registry and releases established about one package, read by the events of
every identity that touches it.

Copies written from several partitions merge: sets unite, first-publish takes the minimum, the latest release
wins by event time, installers unite, a denied version keeps its strongest grade, counters take the larger
copy (each partition's copy already holds what it read from the others). So reading every copy gives one
answer whatever the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nhiguard.decision.semver import version_key

# Installers remembered per version (to revoke those who installed a version later found bad), and versions
# per package: enough for the incident window, bounded so a popular package cannot grow without limit.
MAX_INSTALLERS = 256
MAX_VERSIONS = 32
MAX_UNVOUCHED = 16

# How strong the evidence behind a denial is (the convention's evidence grades), weakest first: installs of a
# version denied for hygiene alert, for compromise deny, and for harm (install scripts, a malicious new
# dependency) also revoke the installer.
GRADES = ("hygiene", "compromise", "harm")


def stronger(a: str, b: str) -> str:
    """The stronger of two grades (an unknown grade counts as hygiene)."""
    rank = {g: i for i, g in enumerate(GRADES)}
    return a if rank.get(a, 0) >= rank.get(b, 0) else b


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


@dataclass(frozen=True, slots=True)
class AddedBy:
    """A denied version that added this package as a dependency: its installs after the denial are that
    version's doing (nobody here asked for the package before)."""

    version: str  # "<package>@<version>" of the denied version
    grade: str
    at_ms: int


@dataclass
class PackageFacts:
    last_release: LastRelease | None = None
    last_release_ms: int = -1
    created_ms: int | None = None
    denied: dict[str, str] = field(default_factory=dict)  # version -> grade of the denial
    installs: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # version -> (who, when)
    added_by: AddedBy | None = None
    vouched_ms: int = -1  # the latest allowed publish that depends on this package
    # Through the registry proxy: publishes it allowed (each can bring one new version), the highest version
    # installed that a publish accounts for, how many times a higher one appeared after the first seen, and
    # the higher versions no allowed publish accounts for.
    proxy_publishes: int = 0
    top: str | None = None
    new_tops: int = 0
    unvouched: set[str] = field(default_factory=set)

    def copy(self) -> PackageFacts:
        installs = {v: list(xs) for v, xs in self.installs.items()}
        release, at = self.last_release, self.last_release_ms
        return PackageFacts(
            release,
            at,
            self.created_ms,
            dict(self.denied),
            installs,
            self.added_by,
            self.vouched_ms,
            self.proxy_publishes,
            self.top,
            self.new_tops,
            set(self.unvouched),
        )

    def merge(self, other: PackageFacts) -> None:
        if other.last_release_ms > self.last_release_ms:
            self.last_release, self.last_release_ms = other.last_release, other.last_release_ms
        if other.created_ms is not None:
            self.created_ms = min(self.created_ms or other.created_ms, other.created_ms)
        for version, grade in other.denied.items():
            self.deny(version, grade)
        for version, xs in other.installs.items():
            self.installs[version] = sorted(
                set(self.installs.get(version, [])) | set(xs), key=lambda x: x[1]
            )[-MAX_INSTALLERS:]
        if other.added_by is not None:
            self.add_by(other.added_by)
        self.vouched_ms = max(self.vouched_ms, other.vouched_ms)
        self.proxy_publishes = max(self.proxy_publishes, other.proxy_publishes)
        self.new_tops = max(self.new_tops, other.new_tops)
        if other.top is not None and (self.top is None or version_key(other.top) > version_key(self.top)):
            self.top = other.top
        self.unvouched |= other.unvouched

    # -- questions (enrichment asks them) ----------------------------------------------------------------
    def first_install_ms(self) -> int | None:
        return min((t for xs in self.installs.values() for _, t in xs), default=None)

    def brought_by_denied(self) -> str:
        """The grade of the denied version that added this package, while its installs are that version's
        doing: nobody here installed the package before that version was published, and no allowed publish
        has depended on it since ("" otherwise)."""
        by, first = self.added_by, self.first_install_ms()
        if by is None or by.at_ms <= self.vouched_ms or (first is not None and first < by.at_ms):
            return ""
        return by.grade

    def is_unvouched(self, version: str) -> bool:
        """A version of a package published through our proxy, higher than any before it, that no publish the
        proxy allowed accounts for (each allowed publish brings at most one new version; the first version
        seen does not count, it may predate what nhiguard saw): a dependency-confusion upload served from the
        public registry, or the version a denied publish put there. Judged when the version first appears;
        later installs of it find it remembered."""
        return version in self.unvouched or self._beyond_credit(version)

    def _beyond_credit(self, version: str) -> bool:
        if self.proxy_publishes == 0 or self.top is None:
            return False
        return version_key(version) > version_key(self.top) and self.new_tops + 1 > self.proxy_publishes

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
        if self._beyond_credit(version):
            # Remembered, and not the new top: versions a publish does account for are still judged after it.
            self.unvouched.add(version)
            while len(self.unvouched) > MAX_UNVOUCHED:
                self.unvouched.remove(min(self.unvouched, key=version_key))
        elif self.top is None:
            self.top = version
        elif version_key(version) > version_key(self.top):
            self.top, self.new_tops = version, self.new_tops + 1
        return True

    def released(self, release: LastRelease, at_ms: int) -> bool:
        if at_ms < self.last_release_ms:
            return False  # a later release is already the last
        self.last_release, self.last_release_ms = release, at_ms
        return True

    def deny(self, version: str, grade: str) -> bool:
        before = self.denied.get(version)
        self.denied[version] = grade if before is None else stronger(before, grade)
        return self.denied[version] != before

    def add_by(self, added: AddedBy) -> bool:
        """Remember the strongest (then the earliest) denied version that added this package."""
        now = self.added_by
        if (
            now is not None
            and (stronger(now.grade, added.grade) == now.grade)
            and (now.grade != added.grade or now.at_ms <= added.at_ms)
        ):
            return False
        self.added_by = added
        return True

    def vouch(self, at_ms: int) -> bool:
        if at_ms <= self.vouched_ms:
            return False
        self.vouched_ms = at_ms
        return True

    def proxy_published(self) -> bool:
        self.proxy_publishes += 1
        return True
