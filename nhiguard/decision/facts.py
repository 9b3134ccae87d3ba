"""Event facts: what an event establishes beyond who did what to which resource, one family per kind.

Each family is a frozen dataclass that owns what it knows, so no other module reads it by string key:
- `family`: its name — the canonical event's facts, the policy input key and the Avro field of AuditEvent
  (schemas/nhiguard.AuditEvent.avsc) all carry it;
- `record()`: its Avro record, and `policy_input()`: what the policies read (the same fields today);
- `target()`: what the event acts on (the behavioural model's target); `deny_target()`: what a DENY names;
- `reads()` / `writes()`: the state a *decision* about it changes and that later events read (a batch is cut
  into waves at such a dependency: see core.py);
- `context()`: the facts enrichment adds from state, read-only; `observed()`: the state changes the event
  causes whatever the decision; `decided()`: those its decision causes (given the findings behind it).

A new family: a class here (the registry's live in registry_facts.py), added to FAMILIES (families.py), with
its field in the AuditEvent schema.
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

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "asset", resource_id

    def context(self, view: StateView, actor: str, at_ms: int) -> Context:
        count = view.identity(actor).exposures_within(at_ms) + (1 if self.exposed_without_publish else 0)
        return Context({"exposures_10m": count}, {})

    def observed(self, actor: str, at_ms: int) -> tuple[Effect, ...]:
        return (Exposed(actor, at_ms),) if self.exposed_without_publish else ()


@dataclass(frozen=True, slots=True)
class PackedFile:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class ReleaseRequest(EventFacts):
    """A request to publish a package, asked of the gate before the publish (`npm pack` output)."""

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
        release = LastRelease(self.version, self.size, self.unpacked_size)
        return (ReleaseAllowed(self.package, release, at_ms),)
