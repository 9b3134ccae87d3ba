"""A credential's use on a code platform, as the platform's audit log records it (facts.py says what a family
owns): a clone, a fetch or an API call by a token, an app or a deploy key, with the address it came from.

The class it serves: a credential whose inventory declares its `networks` (an organisation's IP allow list,
the office a mirror job runs in) used from outside them. The address is also a place for the behavioural
model (`client_address`, pooled by /24 as every source's is, see models/anomaly.py); what the event acts on
stays the resource the adapter names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nhiguard.decision.cluster_facts import ip_or_empty
from nhiguard.decision.facts import EventFacts


@dataclass(frozen=True, slots=True)
class PlatformAccess(EventFacts):
    """One audit event of a code platform that names the client address (GitHub: `actor_ip`)."""

    family: ClassVar[str] = "platform_access"
    platform: str  # github
    operation: str  # the audit action: git.clone, repo.download_zip, org.update_actions_secret, …
    repository: str  # "" for an event of no repository
    transport: str  # transport_protocol_name: http | ssh ("" for an API call)
    client_address: str  # actor_ip, as logged
    user_agent: str

    def record(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "operation": self.operation,
            "repository": self.repository,
            "transport": self.transport,
            "client_address": self.client_address,
            "user_agent": self.user_agent,
        }

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "request", f"{self.platform}:{resource_id}"

    def evidence(self) -> dict[str, list[str]]:
        return {
            "operation": [self.operation],
            "repository": [self.repository],
            "transport": [self.transport],
            "client_address": [self.client_address],
            "user_agent": [self.user_agent],
        }

    def used_from(self) -> str:
        return ip_or_empty(self.client_address)
