"""Effects: the state changes one event causes, as values.

Enrichment returns what an event *observed* (its time, an exposure, an install, a first publish: true
whatever the decision); `decide` returns what its *decision* wants (revocations to remember, a denied version,
a release to record, and what the behavioural model may learn). `State.apply` writes them, in event order, and
nothing else writes state. Each effect names the one key it changes and says whether it changed anything
(only a changed key is written back to the store).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nhiguard.decision.identity_state import IdentityState
from nhiguard.decision.package_state import AddedBy, LastRelease, PackageFacts
from nhiguard.models.anomaly import Baseline, Score

if TYPE_CHECKING:
    from nhiguard.decision.records import CanonicalEvent


class IdentityEffect(ABC):
    __slots__ = ()
    identity: str

    @abstractmethod
    def apply(self, state: IdentityState) -> bool: ...


class PackageEffect(ABC):
    __slots__ = ()
    package: str

    @abstractmethod
    def apply(self, facts: PackageFacts) -> bool: ...


Effect = IdentityEffect | PackageEffect


@dataclass(frozen=True, slots=True)
class Seen(IdentityEffect):
    identity: str
    at_ms: int

    def apply(self, state: IdentityState) -> bool:
        state.facts.seen(self.at_ms)
        return True


@dataclass(frozen=True, slots=True)
class Exposed(IdentityEffect):
    """Restricted content made publicly reachable, by upload or by publish (counted per identity per minute,
    then per day: identity_state.py)."""

    identity: str
    at_ms: int

    def apply(self, state: IdentityState) -> bool:
        state.facts.expose(self.at_ms)
        return True


@dataclass(frozen=True, slots=True)
class Revoked(IdentityEffect):
    """Revocations issued, remembered with the acting identity so a burst revokes once."""

    identity: str
    keys: tuple[str, ...]
    at_ms: int
    until_ms: int

    def apply(self, state: IdentityState) -> bool:
        state.facts.revoke(self.keys, self.at_ms, self.until_ms, own=self.identity + "|")
        return True


@dataclass(frozen=True, slots=True)
class Learned(IdentityEffect):
    """The scored event, offered to the identity's baseline: the baseline itself refuses what it must not
    learn (denied, or anomalous)."""

    identity: str
    event: CanonicalEvent
    score: Score
    allowed: bool

    def apply(self, state: IdentityState) -> bool:
        if state.model is None:
            state.model = Baseline()  # a scored identity has a baseline, learned from or not
        state.model.learn_one(self.event, self.score, self.allowed)
        return True


@dataclass(frozen=True, slots=True)
class PackageCreated(PackageEffect):
    package: str
    created_ms: int

    def apply(self, facts: PackageFacts) -> bool:
        return facts.first_published(self.created_ms)


@dataclass(frozen=True, slots=True)
class Installed(PackageEffect):
    package: str
    version: str
    who: str
    at_ms: int

    def apply(self, facts: PackageFacts) -> bool:
        return facts.installed(self.version, self.who, self.at_ms)


@dataclass(frozen=True, slots=True)
class ReleaseAllowed(PackageEffect):
    package: str
    release: LastRelease
    at_ms: int

    def apply(self, facts: PackageFacts) -> bool:
        return facts.released(self.release, self.at_ms)


@dataclass(frozen=True, slots=True)
class VersionDenied(PackageEffect):
    """A denied version, with the grade of the evidence behind the denial (package_state.GRADES)."""

    package: str
    version: str
    grade: str = "compromise"

    def apply(self, facts: PackageFacts) -> bool:
        return facts.deny(self.version, self.grade)


@dataclass(frozen=True, slots=True)
class AddedByDenied(PackageEffect):
    """`package` is a dependency that a denied version added."""

    package: str
    added_by: AddedBy

    def apply(self, facts: PackageFacts) -> bool:
        return facts.add_by(self.added_by)


@dataclass(frozen=True, slots=True)
class DependencyVouched(PackageEffect):
    """An allowed publish depends on `package`: a denied version that added it no longer explains its
    installs."""

    package: str
    at_ms: int

    def apply(self, facts: PackageFacts) -> bool:
        return facts.vouch(self.at_ms)


@dataclass(frozen=True, slots=True)
class ProxyPublished(PackageEffect):
    """A publish through the registry proxy that was allowed: it accounts for one new version."""

    package: str
    at_ms: int

    def apply(self, facts: PackageFacts) -> bool:
        return facts.proxy_published()


@dataclass(frozen=True, slots=True)
class PublishedBy(PackageEffect):
    """Who published a version, as a notification named them: what later publishes of the package are judged
    against when its registry's document names no publisher (a Verdaccio's)."""

    package: str
    version: str
    publisher: str

    def apply(self, facts: PackageFacts) -> bool:
        return facts.published_by(self.version, self.publisher)
