"""Control-plane audit facts (audit.runtime; facts.py says what a family owns): a Kubernetes API request and a
cloud API call. Each carries the client address the credential was used from (`client_address`: a place for
the behavioural model, and what enrichment judges against the identity's inventory `networks`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar

from nhiguard.decision.facts import EventFacts


def ip_or_empty(address: str) -> str:
    """The address when it is an IP address, else "": CloudTrail logs a service's name (`ec2.amazonaws.com`)
    or `AWS Internal` for calls AWS makes, which no network allow-list can hold against the credential."""
    try:
        ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    return address.strip()


# What a request does, for the policies, the model and the analyst: the kinds of Kubernetes API request that
# reach credentials or code execution in a cluster (README, runtime sources).
RBAC_RESOURCES = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection", "escalate", "bind"})


def k8s_category(verb: str, resource: str, subresource: str) -> str:
    """secret_read | exec | token_request | rbac_change | "" (any other request)."""
    if resource == "secrets" and verb in ("get", "list", "watch"):
        return "secret_read"
    if resource == "pods" and subresource in ("exec", "attach", "portforward"):
        return "exec"
    if resource == "serviceaccounts" and subresource == "token" and verb == "create":
        return "token_request"
    if resource in RBAC_RESOURCES and verb in WRITE_VERBS:
        return "rbac_change"
    return ""


@dataclass(frozen=True, slots=True)
class K8sRequest(EventFacts):
    """One request to a Kubernetes API server, as its audit log records it."""

    family: ClassVar[str] = "k8s_request"
    verb: str  # get | list | watch | create | update | patch | delete | …
    resource: str  # pods, secrets, serviceaccounts, clusterrolebindings, … ("" for a non-resource URL)
    subresource: str  # exec, attach, token, log, status, … ("" for none)
    namespace: str  # "" for a cluster-scoped resource
    name: str  # the object's name ("" for a list)
    api_group: str  # "" for the core group
    status: int  # the HTTP status answered (0 when the stage logged none)
    category: str  # k8s_category(): secret_read | exec | token_request | rbac_change | ""
    client_address: str  # the first of sourceIPs
    user_agent: str

    def record(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
            "api_group": self.api_group,
            "status": self.status,
            "category": self.category,
            "client_address": self.client_address,
            "user_agent": self.user_agent,
        }

    def target(self, resource_id: str) -> str:
        # The kind of object in its namespace, not the object: pods come and go, a habit is the kind.
        kind = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.namespace or '-'}/{kind}"

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        # A request, named as the workflow facts name theirs (`<kind>:<what>`): the command schema's target
        # types are request, credential, package_version and asset.
        return "request", f"k8s:{resource_id}"

    def evidence(self) -> dict[str, list[str]]:
        return {
            "verb": [self.verb],
            "k8s_resource": [self.resource + (f"/{self.subresource}" if self.subresource else "")],
            "namespace": [self.namespace],
            "name": [self.name],
            "category": [self.category],
            "status": [str(self.status) if self.status else ""],
            "client_address": [self.client_address],
        }

    def used_from(self) -> str:
        return ip_or_empty(self.client_address)


@dataclass(frozen=True, slots=True)
class CloudCall(EventFacts):
    """One call to a cloud provider's API, as its audit log records it (CloudTrail, Cloud Audit Logs)."""

    family: ClassVar[str] = "cloud_call"
    provider: str  # aws | gcp
    service: str  # iam.amazonaws.com, compute.googleapis.com, …
    operation: str  # CloudTrail eventName, Cloud Audit methodName
    region: str
    account: str  # the AWS account or Google Cloud project the call was made in
    credential: str  # the access key id the call was signed with ("" when the log names none)
    session: str  # an assumed role's session name ("" otherwise): who or what assumed it
    read_only: bool
    error: str  # CloudTrail errorCode / the audit log's status message ("" for a call that succeeded)
    client_address: str  # sourceIPAddress / callerIp, as logged
    user_agent: str

    def record(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "account": self.account,
            "credential": self.credential,
            "session": self.session,
            "read_only": self.read_only,
            "error": self.error,
            "client_address": self.client_address,
            "user_agent": self.user_agent,
        }

    def target(self, resource_id: str) -> str:
        return f"{self.service}:{self.operation}"

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "request", f"{self.provider}:{resource_id}"

    def evidence(self) -> dict[str, list[str]]:
        return {
            "service": [self.service],
            "operation": [self.operation],
            "account": [self.account],
            "region": [self.region],
            "credential": [self.credential],
            "session": [self.session],
            "error": [self.error],
            "client_address": [self.client_address],
        }

    def used_from(self) -> str:
        return ip_or_empty(self.client_address)
