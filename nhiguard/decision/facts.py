"""Event facts: what an event establishes beyond who did what to which resource, one family per kind.

Each family is a frozen dataclass that owns what it knows, so no other module reads it by string key:
- `family`: its name — the canonical event's facts, the policy input key and the Avro field of AuditEvent
  (schemas/nhiguard.AuditEvent.avsc) all carry it;
- `record()`: its Avro record, and `policy_input()`: what the policies read (the same fields, and for a CMS
  change also its restricted tags and content type);
- `target()`: what the event acts on (the behavioural model's target); `deny_target()`: what a DENY names;
- `reads()` / `writes()`: the state a *decision* about it changes and that later events read (a batch is cut
  into waves at such a dependency: see core.py);
- `context()`: the facts enrichment adds from state, read-only; `observed()`: the state changes the event
  causes whatever the decision; `decided()`: those its decision causes;
- `evidence()`: the fields an analyst acts on, by name (decision/evidence.py; a list keeps the order of the
  policy input's list of the same name, so a finding can point at items by index).

A new family: a class here, added to FAMILIES, with its field in the AuditEvent schema.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nhiguard.decision.effects import (
    Effect,
    Exposed,
    Installed,
    PackageCreated,
    ReleaseAllowed,
    VersionDenied,
)
from nhiguard.decision.package_state import LastRelease

if TYPE_CHECKING:
    from nhiguard.decision.state import StateView

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Context:
    """What enrichment adds for one event: `facts` go to the policy input's `context`; `targets` name the
    identities a finding may revoke with `"targets": <name>` (policies return no input strings, so nhiguard
    resolves who they are)."""

    facts: dict[str, Any]
    targets: dict[str, tuple[str, ...]]


class EventFacts(ABC):
    """The base of every family (an event with no facts is decided on who, what and which alone)."""

    __slots__ = ()
    family: ClassVar[str]

    @abstractmethod
    def record(self) -> dict[str, Any]: ...

    def policy_input(self) -> dict[str, Any]:
        return self.record()

    def target(self, resource_id: str) -> str:
        return resource_id

    @abstractmethod
    def deny_target(self, resource_id: str) -> tuple[str, str]: ...

    def reads(self) -> str | None:
        return None

    def writes(self) -> str | None:
        return None

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        return Context({}, {})

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        return ()

    def decided(self, verdict: str, at_ms: int) -> tuple[Effect, ...]:
        return ()

    def evidence(self) -> dict[str, list[str]]:
        return {}


# Deny targets are typed by the entity: an entry is not an asset (the enforcement point unpublishes either).
_ENTITY_TARGETS = {"Asset": "asset", "Entry": "entry"}


@dataclass(frozen=True, slots=True)
class CmsChange(EventFacts):
    """A change to a CMS entity (an asset or an entry) and whether it made content reachable."""

    family: ClassVar[str] = "cms"
    entity_type: str
    operation: str
    tags: tuple[str, ...]
    published_before: bool
    publicly_reachable: bool
    via: str  # publish | upload | none
    exposed_without_publish: bool  # reachable without any publish, and not marked as meant to be public
    file_public_url: bool
    # The markers that say the content is not for the public (tags such as internal or embargoed): the source
    # adapter knows its source's conventions; policies, exposure windows and evidence all read this one list.
    restricted_tags: tuple[str, ...] = ()
    content_type: str = ""  # the file's MIME type (assets), "" if none

    @property
    def restricted_exposure(self) -> bool:
        """Restricted content publicly reachable after this change: what the identity's exposure windows
        count (by upload or by publish)."""
        return self.publicly_reachable and bool(self.restricted_tags)

    def record(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "operation": self.operation,
            "tags": list(self.tags),
            "published_before": self.published_before,
            "publicly_reachable": self.publicly_reachable,
            "via": self.via,
            "exposed_without_publish": self.exposed_without_publish,
            "file_public_url": self.file_public_url,
        }

    def policy_input(self) -> dict[str, Any]:
        extra = {"restricted_tags": list(self.restricted_tags), "content_type": self.content_type}
        return self.record() | extra

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return _ENTITY_TARGETS.get(self.entity_type, self.entity_type.lower() or "entity"), resource_id

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        me = view.identity(actor)
        recent = me.recent_exposures(at_ms)
        if self.restricted_exposure:  # this event is in its own windows
            recent = [(recent[0] if recent else 0) + 1, *recent[1:]]
        typical = me.typical_exposure_day(at_ms)
        return Context({"exposure_minutes": recent, "exposure_typical_day": typical}, {})

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        return (Exposed(actor, at_ms),) if self.restricted_exposure else ()

    def evidence(self) -> dict[str, list[str]]:
        return {
            "entity_type": [self.entity_type],
            "operation": [self.operation],
            "tags": list(self.tags),
            "via": [self.via],
            "exposed_without_publish": [str(self.exposed_without_publish).lower()],
        }


@dataclass(frozen=True, slots=True)
class PackedFile:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class ReleaseOrigin:
    """Where a release request runs, from the job's GitHub Actions context (its names, docs/sources.md): what
    the policies compare with the inventory's expected publisher."""

    event_name: str  # push | workflow_dispatch | pull_request | pull_request_target | …
    ref: str  # refs/tags/v1.2.3, refs/heads/main, refs/pull/12/merge
    repository: str  # owner/name of the repository whose workflow runs
    workflow: str  # the workflow file's path in that repository (from workflow_ref)
    head_ref: str = ""  # pull requests: the head branch
    base_ref: str = ""  # pull requests: the base branch
    head_repository: str = ""  # pull requests: owner/name of the head (a fork's, when it comes from one)
    fork: bool = False  # pull requests: the head repository is a fork

    def record(self) -> dict[str, Any]:
        return {
            "event_name": self.event_name,
            "ref": self.ref,
            "repository": self.repository,
            "workflow": self.workflow,
            "head_ref": self.head_ref,
            "base_ref": self.base_ref,
            "head_repository": self.head_repository,
            "fork": self.fork,
        }


@dataclass(frozen=True, slots=True)
class ReleaseRequest(EventFacts):
    """A request to publish a package, asked of the gate before the publish (`npm pack` output), and where the
    request runs (`origin`: absent from gates that do not send their GitHub context)."""

    family: ClassVar[str] = "release"
    package: str
    version: str
    registry: str
    access: str
    tag: str
    size: int
    unpacked_size: int
    files: tuple[PackedFile, ...]
    request_id: str
    origin: ReleaseOrigin | None = None

    def record(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "registry": self.registry,
            "access": self.access,
            "tag": self.tag,
            "size": self.size,
            "unpacked_size": self.unpacked_size,
            "files": [{"path": f.path, "size": f.size} for f in self.files],
            "request_id": self.request_id,
            "origin": self.origin.record() if self.origin else None,
        }

    def target(self, resource_id: str) -> str:
        return self.package

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "request", self.request_id  # the gate answers this request

    def reads(self) -> str | None:
        return f"release:{self.package}"  # the previous allowed release

    def writes(self) -> str | None:
        return f"release:{self.package}"

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        prev = view.package(self.package).last_release
        return Context(
            {
                "previous_release": prev.record() if prev else None,
                "size_ratio": (self.size / prev.size) if prev and prev.size else None,
            },
            {},
        )

    def decided(self, verdict: str, at_ms: int) -> tuple[Effect, ...]:
        if verdict != "ALLOW":
            return ()
        # Where it came from: a later release of the package from another repository is judged against it.
        repo, workflow = (self.origin.repository, self.origin.workflow) if self.origin else ("", "")
        release = LastRelease(self.version, self.size, self.unpacked_size, repo, workflow)
        return (ReleaseAllowed(self.package, release, at_ms),)

    def evidence(self) -> dict[str, list[str]]:
        largest = sorted(self.files, key=lambda f: (-f.size, f.path))[:3]
        return {
            "package": [self.package],
            "version": [self.version],
            "tag": [self.tag],
            "access": [self.access],
            "registry": [self.registry],
            "size": [str(self.size)],
            "files": [f.path for f in self.files],
            "largest_files": [f"{f.path} ({f.size} bytes)" for f in largest],
            "request": [self.request_id],
        }


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
class Publish(EventFacts):
    """A package version the registry published, compared with the release before it."""

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

    def record(self) -> dict[str, Any]:
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

    def target(self, resource_id: str) -> str:
        return self.package

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "package_version", resource_id

    def writes(self) -> str | None:
        return f"version:{self.package}@{self.version}"  # denied or not: what its installs read

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        ages: dict[str, float | None] = {}
        for dep in self.added_dependencies:
            first = view.package(dep).created_ms
            ages[dep] = None if first is None else round((at_ms - first) / DAY_MS, 3)
        who = sorted({w for w, _ in view.package(self.package).installs.get(self.version, ())})
        installers = [{"id": w, "known": view.known(w)} for w in who]
        return Context(
            {"added_dependency_age_days": ages, "prior_installers": installers},
            {"prior_installers": tuple(i["id"] for i in installers if i["known"])},
        )

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        return (PackageCreated(self.package, self.package_created_ms or at_ms),)

    def decided(self, verdict: str, at_ms: int) -> tuple[Effect, ...]:
        return (VersionDenied(self.package, self.version),) if verdict != "ALLOW" else ()

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


@dataclass(frozen=True, slots=True)
class Install(EventFacts):
    """A package version fetched through the registry proxy."""

    family: ClassVar[str] = "install"
    package: str
    version: str
    client: str

    def record(self) -> dict[str, Any]:
        return {"package": self.package, "version": self.version, "client": self.client}

    def target(self, resource_id: str) -> str:
        return self.package

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "package_version", resource_id

    def reads(self) -> str | None:
        return f"version:{self.package}@{self.version}"  # denied or not

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        return Context({"version_denied": self.version in view.package(self.package).denied}, {})

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        return (Installed(self.package, self.version, actor, at_ms),)

    def evidence(self) -> dict[str, list[str]]:
        return {"package": [self.package], "version": [self.version], "client": [self.client]}


FAMILIES: tuple[type[EventFacts], ...] = (CmsChange, ReleaseRequest, Publish, Install)
