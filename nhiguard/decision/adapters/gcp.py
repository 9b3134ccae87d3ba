"""Google Cloud audit log entries (audit.runtime): GKE's Kubernetes audit log (`serviceName: k8s.io`) and
every other service's calls, as Cloud Logging exports a LogEntry with an AuditLog `protoPayload`. See
docs/sources.md."""

from __future__ import annotations

import re
from typing import Any

from nhiguard.decision.adapters.common import body_hash, get, utc_ms
from nhiguard.decision.adapters.kubernetes import action_of
from nhiguard.decision.adapters.principals import gcp_actor, text
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.cluster_facts import CloudCall, K8sRequest, k8s_category
from nhiguard.decision.facts import EventFacts
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

SOURCE = "gcp.audit_log"
K8S_METHOD = "io.k8s."
_VERSION = re.compile(r"^v\d+((alpha|beta)\d+)?$")


def _k8s(pp: dict[str, Any], caller: str, agent: str) -> tuple[K8sRequest, str, str]:
    """GKE names a request by method (`io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>`) and
    resource (`<group>/<version>/namespaces/<ns>/<resource>/<name>[/<subresource>]`)."""
    words = text(pp, "methodName").removeprefix(K8S_METHOD).split(".")
    at = next((i for i, w in enumerate(words) if _VERSION.match(w)), None)
    rest = words[at + 1 :] if at is not None else []
    resource, verb = (rest[0], rest[-1]) if len(rest) >= 2 else ("", "")
    sub = rest[1] if len(rest) == 3 else ""
    path = text(pp, "resourceName").split("/")
    ns = path[path.index("namespaces") + 1] if "namespaces" in path[:-1] and resource != "namespaces" else ""
    name = path[path.index(resource) + 1] if resource in path[:-1] else ""
    facts = K8sRequest(
        verb=verb,
        resource=resource,
        subresource=sub,
        namespace=ns,
        name=name,
        api_group="" if words[:at] == ["core"] else ".".join(words[:at]) if at else "",  # core: "" as in k8s
        status=0,  # the entry's status is a gRPC code, not the HTTP status the audit event would give
        category=k8s_category(verb, resource, sub),
        client_address=caller,
        user_agent=agent,
    )
    if not resource:
        return facts, "k8s.url", text(pp, "methodName") or "-"
    return facts, f"k8s.{resource}", "/".join(p for p in (ns, resource, name) if p)


def _cloud(body: dict[str, Any], pp: dict[str, Any], caller: str, agent: str) -> tuple[CloudCall, str, str]:
    labels = get(body, "resource", "labels", default={})
    service = text(pp, "serviceName")
    facts = CloudCall(
        provider="gcp",
        service=service,
        operation=text(pp, "methodName"),
        region=text(labels, "location") or text(labels, "region") or text(labels, "zone"),
        account=text(labels, "project_id"),
        credential=text(pp, "authenticationInfo", "serviceAccountKeyName"),
        session="",
        read_only="data_access" in text(body, "logName"),
        error=text(pp, "status", "message"),
        client_address=caller,
        user_agent=agent,
    )
    prefix = service.split(".", 1)[0] or "unknown"
    return facts, f"gcp.{prefix}", text(pp, "resourceName") or f"{service}/{facts.account}"


def operation_name(service: str, method: str) -> str:
    """A method without its package and version, the action's last part: `v1.compute.instances.insert` ->
    `instances.insert`, `google.iam.admin.v1.CreateServiceAccountKey` -> `CreateServiceAccountKey`."""
    words = method.split(".")
    at = max((i for i, w in enumerate(words) if _VERSION.match(w)), default=-1)
    rest = words[at + 1 :] or words
    prefix = service.split(".", 1)[0]
    return ".".join(rest[1:] if len(rest) > 1 and rest[0] == prefix else rest)


@source(SOURCE, domains=("runtime",), recognise=Recogniser(keys=("protoPayload",)))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    pp = body.get("protoPayload")
    if not isinstance(pp, dict):
        raise AdapterError("unknown_shape", "protoPayload is not an object")
    email = text(pp, "authenticationInfo", "principalEmail")
    if not email:
        raise AdapterError("missing_identity", "missing field protoPayload.authenticationInfo.principalEmail")
    meta = pp.get("requestMetadata") if isinstance(pp.get("requestMetadata"), dict) else {}
    caller = text(meta, "callerIp") or text(meta, "callerIP")
    agent = text(meta, "callerSuppliedUserAgent")
    facts: EventFacts
    if text(pp, "serviceName") == "k8s.io" or text(pp, "methodName").startswith(K8S_METHOD):
        request, resource_type, resource_id = _k8s(pp, caller, agent)
        facts, action = request, action_of(request)
    else:
        call, resource_type, resource_id = _cloud(body, pp, caller, agent)
        short = operation_name(call.service, call.operation) or "unknown"
        facts, action = call, f"runtime.{resource_type}.{short}"
    insert_id = text(body, "insertId")
    return CanonicalEvent(
        event_id=f"gcp:{insert_id}" if insert_id else f"gcp:{body_hash(rec.value)}",
        source=SOURCE,
        domain="runtime",
        action=action,
        occurred_at_ms=utc_ms(body.get("timestamp") or body.get("receiveTimestamp"), rec.timestamp_ms),
        actor=gcp_actor(email),
        resource_type=resource_type,
        resource_id=resource_id,
        facts=facts,
    )
