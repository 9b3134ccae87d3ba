"""The registry's event facts (facts.py says what a family owns): a version the public registry published
(npm hook), and a version installed through the registry proxy (publishes and other requests through the
proxy: proxy_facts.py).

Their decisions meet in package state (package_state.py): a denied version with the grade of its denial, the
dependencies a denied version added, the publishes the proxy allowed. What the stream did not say (the
registry document of a new dependency, of an installed version) the fetch step (nhiguard/lookup.py) puts into
the facts before the core runs, as `LookedUp` evidence (looked_up.py), so a replay of the event reproduces
the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from nhiguard.decision.effects import (
    AddedByDenied,
    DependencyVouched,
    Effect,
    Installed,
    PackageCreated,
    PublishedBy,
    VersionDenied,
)
from nhiguard.decision.facts import Context, EventFacts
from nhiguard.decision.looked_up import LookedUp, NeedsDocuments, days_between
from nhiguard.decision.package_state import AddedBy, PackageFacts, stronger
from nhiguard.decision.semver import satisfies, version_key

if TYPE_CHECKING:
    from nhiguard.decision.records import Finding
    from nhiguard.decision.state import StateView

# A publish decision (hook or proxy) changes what later installs and publishes of *other* packages read (a
# denied version, the dependencies it added, an allowed proxy publish): one state key for all, so an event
# after a pending publish starts a new wave. Publishes are rare next to installs: one extra wave per publish.
REGISTRY_VERDICTS = "registry:verdicts"
HISTORY = 32  # earlier releases a publish carries (the most recent): enough to know a package's publishers
NEW_WITHIN = 3  # a dependency absent from any of the last this many releases is new (its document is fetched)


def registry_grade(findings: Sequence[Finding]) -> str:
    """The strongest evidence among the registry policies' enforced denials: what installs of the version
    inherit (package_state.GRADES). A version denied by no registry finding (another stage's) is hygiene."""
    grade = "hygiene"
    for f in findings:
        if f.mode == "enforce" and f.effect in ("deny", "revoke") and f.policy.startswith("registry."):
            grade = stronger(f.grade or "compromise", grade)  # a denial that says no evidence: compromise
    return grade


@dataclass(frozen=True, slots=True)
class Publisher:
    name: str
    email: str
    mechanism: str  # trusted_publishing | token
    provenance: bool

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.email,
            "mechanism": self.mechanism,
            "provenance": self.provenance,
        }


@dataclass(frozen=True, slots=True)
class PreviousRelease:
    """The release before a publish: the greatest version below it, and who published it."""

    version: str
    publisher: Publisher


@dataclass(frozen=True, slots=True)
class PastRelease:
    """One earlier release from the package document: the publisher history a publish is judged against."""

    version: str
    published_ms: int
    publisher: Publisher
    dependencies: tuple[str, ...]
    install_scripts: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "published_ms": self.published_ms,
            **self.publisher.record(),
            "dependencies": list(self.dependencies),
            "install_scripts": list(self.install_scripts),
        }


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    spec: str  # the range the manifest asks for ("^4.2.1")


@dataclass(frozen=True, slots=True)
class Publish(NeedsDocuments, EventFacts):
    """A package version the registry published, with the package's earlier releases to judge it by."""

    family: ClassVar[str] = "publish"
    package: str
    version: str
    publisher: Publisher
    previous: PreviousRelease | None
    dependencies: tuple[str, ...]
    added_dependencies: tuple[str, ...]
    install_scripts: tuple[str, ...]
    added_install_scripts: tuple[str, ...]
    package_created_ms: int  # the registry's own first-publish time of the package (0: not given)
    requirements: tuple[Requirement, ...] = ()  # every dependency with its range
    history: tuple[PastRelease, ...] = ()  # releases published before this one, oldest first
    lookups: tuple[LookedUp, ...] = ()  # documents of new dependencies (the fetch step)
    # False when the source names no earlier release (a GitHub Packages webhook): what this version added is
    # unknown, so nothing is judged as added (not everything, which would make every release a first one).
    history_known: bool = True
    # True when a notification named who published which version and nothing more (a Verdaccio's): the fetch
    # step completes the rest from the package's document, and the publisher is remembered (package state),
    # since such a registry's documents name none. Not part of the record: what was completed is.
    notified: bool = False

    def policy_input(self) -> dict[str, Any]:
        # The history and the documents reach the policies as facts of the context (below), not as lists.
        previous = self.previous
        return {
            "package": self.package,
            "version": self.version,
            "publisher": self.publisher.record(),
            "previous": None
            if previous is None
            else {"version": previous.version, **previous.publisher.record()},
            "dependencies": list(self.dependencies),
            "added_dependencies": list(self.added_dependencies),
            "install_scripts": list(self.install_scripts),
            "added_install_scripts": list(self.added_install_scripts),
            "package_created_ms": self.package_created_ms,
        }

    def record(self) -> dict[str, Any]:
        return {
            **self.policy_input(),
            "requirements": [{"name": r.name, "spec": r.spec} for r in self.requirements],
            "history": [r.record() for r in self.history],
            "lookups": [x.record() for x in self.lookups],
            "history_known": self.history_known,
        }

    def target(self, resource_id: str) -> str:
        return self.package

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "package_version", resource_id

    def reads(self) -> str | None:
        return REGISTRY_VERDICTS  # denied earlier versions, denied versions of its dependencies

    def writes(self) -> str | None:
        return REGISTRY_VERDICTS  # denied or not: what installs and later publishes read

    def new_dependencies(self) -> tuple[str, ...]:
        """Dependencies absent from one of the last few releases (all of them for a first release)."""
        if not self.history_known:
            return ()
        recent = self.history[-NEW_WITHIN:]
        return tuple(
            d for d in self.dependencies if not recent or any(d not in r.dependencies for r in recent)
        )

    def wanted(self) -> tuple[tuple[str, str], ...]:
        specs = {r.name: r.spec for r in self.requirements}
        return tuple((d, specs.get(d, "")) for d in self.new_dependencies())

    def with_lookups(self, found: tuple[LookedUp, ...]) -> EventFacts:
        return replace(self, lookups=found)

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        pkg = view.package(self.package)
        # Established: the earlier releases not denied (a hijacker's earlier versions are no history), each
        # with its publisher (from a notification remembered, where the document names none).
        established = [_named(r, pkg.publishers) for r in self.history if r.version not in pkg.denied]
        below = [r for r in established if version_key(r.version) < version_key(self.version)]
        prev = max(below, key=lambda r: version_key(r.version)) if below else None
        added = sorted(set(self.dependencies) - set(prev.dependencies)) if prev else list(self.dependencies)
        if not self.history_known:
            added = []
        specs = {r.name: r.spec for r in self.requirements}
        looked = {x.name: x for x in self.lookups}
        deps = [_dependency(view.package(d), looked.get(d), specs.get(d, ""), at_ms) for d in added]
        scripts = sorted(set(self.install_scripts) - set(prev.install_scripts if prev else []))
        scripts = scripts if self.history_known else []
        who = sorted({w for w, _ in view.package(self.package).installs.get(self.version, ())})
        installers = [{"id": w, "known": view.known(w)} for w in who]
        return Context(
            {
                "publisher_history": _history(self.publisher, established, prev),
                "added_dependencies": deps,
                "added_install_scripts": scripts,
                "prior_installers": installers,
            },
            {"prior_installers": tuple(i["id"] for i in installers if i["known"])},
        )

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        created = PackageCreated(self.package, self.package_created_ms or at_ms)
        if self.notified and self.publisher.name:
            return created, PublishedBy(self.package, self.version, self.publisher.name)
        return (created,)

    def decided(self, verdict: str, at_ms: int, findings: Sequence[Finding] = ()) -> tuple[Effect, ...]:
        if verdict == "ALLOW":
            return tuple(DependencyVouched(d, at_ms) for d in self.new_dependencies())
        grade = registry_grade(findings)
        out: list[Effect] = [VersionDenied(self.package, self.version, grade)]
        if grade != "hygiene":
            # Its new dependencies arrive only through it: their installs are its doing.
            by = AddedBy(f"{self.package}@{self.version}", grade, at_ms)
            out += [AddedByDenied(d, by) for d in self.new_dependencies()]
        return tuple(out)

    def evidence(self) -> dict[str, list[str]]:
        prev = self.previous
        p = self.publisher
        return {
            "package": [self.package],
            "version": [self.version],
            "publisher": [p.name],
            "publisher_email": [p.email],
            "mechanism": [p.mechanism],
            "provenance": [str(p.provenance).lower()],
            "previous_version": [prev.version] if prev else [],
            "previous_email": [prev.publisher.email] if prev else [],
            "previous_mechanism": [prev.publisher.mechanism] if prev else [],
            "added_dependencies": list(self.added_dependencies),
            "added_install_scripts": list(self.added_install_scripts),
        }


def _history(pub: Publisher, established: list[PastRelease], prev: PastRelease | None) -> dict[str, Any]:
    """Whether this publisher has published the package before, by account and by e-mail, over every
    established release whose publisher is known (maintainers who take turns are no change; a release nobody
    named, published before a registry's notifications were followed, is no evidence either way); the
    mechanism and provenance of the release before it."""
    known = [r for r in established if r.publisher.name or r.publisher.email]
    return {
        "releases": len(known),
        "name_published": any(r.publisher.name == pub.name for r in known),
        "email_published": bool(pub.email) and any(r.publisher.email == pub.email for r in known),
        "previous": None
        if prev is None
        else {"mechanism": prev.publisher.mechanism, "provenance": prev.publisher.provenance},
    }


def _named(release: PastRelease, publishers: dict[str, str]) -> PastRelease:
    if release.publisher.name or release.version not in publishers:
        return release
    return replace(release, publisher=replace(release.publisher, name=publishers[release.version]))


def _dependency(dep: PackageFacts, looked: LookedUp | None, spec: str, at_ms: int) -> dict[str, Any]:
    """An added dependency: its age (from a hook the stream carried, else its looked-up document), its
    install scripts, and the strongest denial among its versions the range admits."""
    judged = looked.judged(at_ms) if looked is not None else None
    age = days_between(at_ms, dep.created_ms) if dep.created_ms is not None else None
    if age is None and judged is not None:
        age = judged["package_age_days"]
    grade = ""
    for version, g in dep.denied.items():
        if not spec or satisfies(version, spec):
            grade = stronger(g, grade) if grade else g
    return {
        "age_days": age,
        "version_age_days": judged["version_age_days"] if judged else None,
        "install_scripts": judged["install_scripts"] if judged else 0,
        "denied_grade": grade,
        "lookup": looked.status if looked is not None else "none",
    }


@dataclass(frozen=True, slots=True)
class Install(NeedsDocuments, EventFacts):
    """A package version fetched through the registry proxy, from a client address."""

    family: ClassVar[str] = "install"
    package: str
    version: str
    client: str
    client_address: str = ""  # the proxy's remoteIP: where the credential was used from
    lookup: LookedUp | None = None  # the version's registry document (the fetch step), if one was wanted

    def record(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "client": self.client,
            "client_address": self.client_address,
            "lookup": None if self.lookup is None else self.lookup.record(),
        }

    def policy_input(self) -> dict[str, Any]:
        return {"package": self.package, "version": self.version, "client": self.client}

    def target(self, resource_id: str) -> str:
        return self.package

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "package_version", resource_id

    def reads(self) -> str | None:
        return REGISTRY_VERDICTS  # denied or not; added by a denied version; vouched for by a proxy publish

    def wanted(self) -> tuple[tuple[str, str], ...]:
        return ((self.package, self.version),)

    def with_lookups(self, found: tuple[LookedUp, ...]) -> EventFacts:
        return replace(self, lookup=found[0] if found else None)

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        pkg = view.package(self.package)
        return Context(
            {
                "version_denied": self.version in pkg.denied,
                "denied_grade": pkg.denied.get(self.version, ""),
                "added_by_denied": pkg.brought_by_denied(),
                "unvouched_version": pkg.is_unvouched(self.version),
                "lookup": None if self.lookup is None else self.lookup.judged(at_ms),
            },
            {},
        )

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        return (Installed(self.package, self.version, actor, at_ms),)

    # An install's decision changes no package state: what makes a later install of the same version suspect
    # is observed (unvouched versions) or decided by a publish, never by an earlier install of the same wave.

    def evidence(self) -> dict[str, list[str]]:
        return {
            "package": [self.package],
            "version": [self.version],
            "client": [self.client],
            "client_address": [self.client_address] if self.client_address else [],
        }

    def used_from(self) -> str:
        return self.client_address
