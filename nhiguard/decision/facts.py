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
  causes whatever the decision; `decided()`: those its decision causes (given the findings behind it);
- `evidence()`: the fields an analyst acts on, by name (decision/evidence.py; a list keeps the order of the
  policy input's list of the same name, so a finding can point at items by index);
- `used_from()`: the client address the source logged (enrichment judges it against the inventory's networks);
- `joins()`: other ids the actor may be inventoried under; `destination()`: where it connected to (enrichment
  judges it against the inventory's allowed destinations).

A new family: a class here (the registry's live in registry_facts.py, the runtime's in cluster_facts.py and
process_facts.py), added to FAMILIES (families.py), with its field in the AuditEvent schema (default null).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nhiguard.decision.effects import Effect, Exposed, ReleaseAllowed
from nhiguard.decision.package_state import LastRelease

if TYPE_CHECKING:
    from nhiguard.decision.records import Finding
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

    def decided(self, verdict: str, at_ms: int, findings: Sequence[Finding] = ()) -> tuple[Effect, ...]:
        return ()

    def evidence(self) -> dict[str, list[str]]:
        return {}

    def used_from(self) -> str:
        """The client address the credential was used from, as the source logged it ("" when it says none)."""
        return ""

    def joins(self) -> tuple[str, ...]:
        """Other ids the actor may be inventoried under, tried in order when its own id is not in the
        inventory (a workload's pod labels: an identity lists them as aliases)."""
        return ()

    def destination(self) -> tuple[str, str] | None:
        """Where the event connected to, (host name or "", IP address or ""); None when it connected nowhere.
        Enrichment judges it against the identity's `allowed_destinations`."""
        return None


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

    def decided(self, verdict: str, at_ms: int, findings: Sequence[Finding] = ()) -> tuple[Effect, ...]:
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
