"""Per-package facts: what the registry and releases established about one package, read by the events of
every identity that touches it.

Copies written from several partitions merge: sets unite, first-publish and first-install take the minimum,
the latest release wins by event time, installers unite (each at its latest install), a denied version keeps
its strongest grade, counters take the larger copy (each partition's copy already holds what it read from the
others). So reading every copy gives one answer whatever the partitioning.

Every collection is bounded (README "Bounded state"), its eviction a total order on what the merged copies
hold (a key's rank only rises as copies merge): trimming after each change or merge gives the same value in
whatever order the copies merge.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field
from typing import Any

from nhiguard.decision.semver import version_key

# Installs remembered, as (version, installer) pairs at the installer's latest install of the version: the
# MAX_INSTALLS latest pairs, whatever their versions (to revoke those who installed a version later found bad:
# the versions still to be judged are the recently installed ones). One total, not per version: a bound on
# each of two nested levels would make merged copies depend on the order they merge in. At ~40 bytes a pair
# (an identity id and a time), a package's value stays well under a Kafka record.
MAX_INSTALLS = 2048
MAX_UNVOUCHED = 16  # the highest kept: an unvouched version lower than 16 others is not what installs get
# Denied versions: the strongest grades kept, then the highest versions (what a range resolves to). Forgetting
# one takes a flood of denied publishes of one package, each of which is itself denied (and, for harm,
# revokes its publisher).
MAX_DENIED = 128
# Who published each version, as a notification named them (a Verdaccio keeps no publisher in its documents):
# the highest versions' (a publish is judged against its 32 most recent releases).
MAX_PUBLISHERS = 64

# How strong the evidence behind a denial is (the convention's evidence grades), weakest first: installs of a
# version denied for hygiene alert, for compromise deny, and for harm (install scripts, a malicious new
# dependency) also revoke the installer.
GRADES = ("hygiene", "compromise", "harm")


_RANK = {g: i for i, g in enumerate(GRADES)}


def stronger(a: str, b: str) -> str:
    """The stronger of two grades (an unknown grade counts as hygiene)."""
    return a if _RANK.get(a, 0) >= _RANK.get(b, 0) else b


def installers(*lists: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Installers of a version, each once at its latest install, oldest first."""
    last: dict[str, int] = {}
    for xs in lists:
        for who, at in xs:
            last[who] = max(at, last.get(who, at))
    return sorted(last.items(), key=_by_time)


def _by_time(x: tuple[str, int]) -> tuple[int, str]:
    return x[1], x[0]


def _evict_installs(installs: dict[str, list[tuple[str, int]]]) -> None:
    """Drop the oldest (version, installer) pairs beyond MAX_INSTALLS (ties: by version, then installer)."""
    excess = sum(len(xs) for xs in installs.values()) - MAX_INSTALLS
    if excess <= 0:
        return
    for at, version, who in heapq.nsmallest(excess, ((t, v, w) for v, xs in installs.items() for w, t in xs)):
        installs[version].remove((who, at))
        if not installs[version]:
            del installs[version]


def _evict(keys: dict[str, Any] | set[str], limit: int, rank: Any) -> None:
    """Drop the lowest-ranked keys beyond `limit` (rank: a total order, so the survivors are one answer)."""
    for k in sorted(keys, key=rank)[: max(0, len(keys) - limit)]:
        if isinstance(keys, dict):
            del keys[k]
        else:
            keys.remove(k)


def _by_version(v: str) -> tuple[Any, str]:
    return version_key(v), v


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
    # version -> (who, latest install), oldest first (`installers`)
    installs: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    added_by: AddedBy | None = None
    vouched_ms: int = -1  # the latest allowed publish that depends on this package
    # Through the registry proxy: publishes it allowed (each can bring one new version), the highest version
    # installed that a publish accounts for, how many times a higher one appeared after the first seen, and
    # the higher versions no allowed publish accounts for.
    proxy_publishes: int = 0
    top: str | None = None
    new_tops: int = 0
    unvouched: set[str] = field(default_factory=set)
    first_installed_ms: int | None = None  # the first install seen, kept when its version is evicted
    publishers: dict[str, str] = field(default_factory=dict)  # version -> the account a notification named

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
            self.first_installed_ms,
            dict(self.publishers),
        )

    def merge(self, other: PackageFacts) -> None:
        if other.last_release_ms > self.last_release_ms:
            self.last_release, self.last_release_ms = other.last_release, other.last_release_ms
        if other.created_ms is not None:
            self.created_ms = min(self.created_ms or other.created_ms, other.created_ms)
        for version, grade in other.denied.items():
            self.deny(version, grade)
        for version, xs in other.installs.items():
            self.installs[version] = installers(self.installs.get(version, []), xs)
        _evict_installs(self.installs)
        self.first_installed_ms = _earliest(self.first_installed_ms, other.first_installed_ms)
        if other.added_by is not None:
            self.add_by(other.added_by)
        self.vouched_ms = max(self.vouched_ms, other.vouched_ms)
        self.proxy_publishes = max(self.proxy_publishes, other.proxy_publishes)
        self.new_tops = max(self.new_tops, other.new_tops)
        if other.top is not None and (self.top is None or version_key(other.top) > version_key(self.top)):
            self.top = other.top
        self.unvouched |= other.unvouched
        _evict(self.unvouched, MAX_UNVOUCHED, _by_version)
        for version, who in other.publishers.items():
            self.published_by(version, who)

    # -- questions (enrichment asks them) ----------------------------------------------------------------
    def first_install_ms(self) -> int | None:
        remembered = min((t for xs in self.installs.values() for _, t in xs), default=None)
        return _earliest(self.first_installed_ms, remembered)

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
        last = next((t for w, t in xs if w == who), None)
        if last is None or at_ms > last:  # a redelivered (or older) install changes nothing here
            if last is not None:
                xs.remove((who, last))
            bisect.insort(xs, (who, at_ms), key=_by_time)
            _evict_installs(self.installs)
        self.first_installed_ms = _earliest(self.first_installed_ms, at_ms)
        if self._beyond_credit(version):
            # Remembered, and not the new top: versions a publish does account for are still judged after it.
            self.unvouched.add(version)
            _evict(self.unvouched, MAX_UNVOUCHED, _by_version)
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
        _evict(self.denied, MAX_DENIED, lambda v: (_RANK.get(self.denied[v], 0), *_by_version(v)))
        return self.denied.get(version) != before

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

    def published_by(self, version: str, who: str) -> bool:
        """Remember who published a version (two names for one version, which a registry never gives: the
        smaller, so copies merge to one answer)."""
        before = self.publishers.get(version)
        self.publishers[version] = who if before is None else min(before, who)
        _evict(self.publishers, MAX_PUBLISHERS, _by_version)
        return self.publishers.get(version) != before

    def proxy_published(self) -> bool:
        self.proxy_publishes += 1
        return True


def _earliest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
