"""The registry proxy's event facts (facts.py says what a family owns): a publish through the proxy, and any
other request it answered, each with the client address the credential was used from (a feature for the
behavioural model: `client_address`, as on an install)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nhiguard.decision.effects import Effect, ProxyPublished
from nhiguard.decision.facts import EventFacts
from nhiguard.decision.registry_facts import REGISTRY_VERDICTS

if TYPE_CHECKING:
    from nhiguard.decision.records import Finding


@dataclass(frozen=True, slots=True)
class ProxyPublish(EventFacts):
    """A publish through the registry proxy (Verdaccio `PUT /<package>` with the package document, or a
    dist-tag moved): tried, or accepted. The proxy's log does not say which version."""

    family: ClassVar[str] = "proxy_publish"
    package: str
    # publish | dist_tag | dist_tag_rm | update (a change to the package document: owners, deprecation) |
    # unpublish (the package, or a version's tarball)
    operation: str
    tag: str  # the dist-tag moved ("" for a publish)
    status: int
    accepted: bool  # the proxy answered 2xx
    bytes_in: int
    client_address: str

    def record(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "operation": self.operation,
            "tag": self.tag,
            "status": self.status,
            "accepted": self.accepted,
            "bytes_in": self.bytes_in,
            "client_address": self.client_address,
        }

    def target(self, resource_id: str) -> str:
        return self.package

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "package", self.package  # the proxy withdraws what this publish put there

    def writes(self) -> str | None:
        return REGISTRY_VERDICTS  # an allowed publish vouches for the next new version installs see

    def decided(self, verdict: str, at_ms: int, findings: Sequence[Finding] = ()) -> tuple[Effect, ...]:
        if verdict == "ALLOW" and self.accepted and self.operation == "publish":
            return (ProxyPublished(self.package, at_ms),)
        return ()

    def used_from(self) -> str:
        return self.client_address

    def evidence(self) -> dict[str, list[str]]:
        return {
            "package": [self.package],
            "operation": [self.operation],
            "tag": [self.tag],
            "client_address": [self.client_address],
        }


@dataclass(frozen=True, slots=True)
class ProxyRequest(EventFacts):
    """Any other request the registry proxy answered (package documents, searches, logins), with where the
    credential was used from."""

    family: ClassVar[str] = "proxy_request"
    package: str  # "" when the request names none
    method: str
    status: int
    client_address: str

    def record(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "method": self.method,
            "status": self.status,
            "client_address": self.client_address,
        }

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "request", resource_id

    def used_from(self) -> str:
        return self.client_address

    def evidence(self) -> dict[str, list[str]]:
        return {"package": [self.package], "client_address": [self.client_address]}
