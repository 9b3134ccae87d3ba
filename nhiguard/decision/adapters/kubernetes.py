"""Kubernetes API server audit events (audit.runtime): as the API server's log or webhook backend writes them
(also EKS's control-plane log, which is the same JSON), and as AKS's diagnostic settings wrap them. See
docs/sources.md."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import body_hash, utc_ms
from nhiguard.decision.adapters.principals import k8s_actor, text
from nhiguard.decision.adapters.registry import Recogniser, parse_json, source
from nhiguard.decision.cluster_facts import K8sRequest, k8s_category
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

AUDIT_SOURCE = "k8s.audit"
AKS_SOURCE = "azure.aks_audit"
_AKS_CATEGORIES = ("kube-audit", "kube-audit-admin")
_AUDIT_KEYS = ("verb", "user", "requestURI", "auditID")


def http_status(value: Any) -> int:
    """An HTTP status code, 0 when the record has none (or something that is not one)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599
    return value if ok else 0


def k8s_request(body: dict[str, Any]) -> tuple[K8sRequest, str, str]:
    """The request's facts, its resource type and its resource id (`<namespace>/<resource>/<name>`, without
    the parts a cluster-scoped or collection request has not; a non-resource URL's path)."""
    ref = body.get("objectRef") if isinstance(body.get("objectRef"), dict) else {}
    verb, resource, sub = text(body, "verb"), text(ref, "resource"), text(ref, "subresource")
    ns, name = text(ref, "namespace"), text(ref, "name")
    ips = body.get("sourceIPs")
    facts = K8sRequest(
        verb=verb,
        resource=resource,
        subresource=sub,
        namespace=ns,
        name=name,
        api_group=text(ref, "apiGroup"),
        status=http_status(body.get("responseStatus", {}).get("code"))
        if isinstance(body.get("responseStatus"), dict)
        else 0,
        category=k8s_category(verb, resource, sub),
        client_address=ips[0] if isinstance(ips, list) and ips and isinstance(ips[0], str) else "",
        user_agent=text(body, "userAgent"),
    )
    if not resource:
        return facts, "k8s.url", text(body, "requestURI").split("?", 1)[0] or "-"
    return facts, f"k8s.{resource}", "/".join(p for p in (ns, resource, name) if p)


def action_of(facts: K8sRequest) -> str:
    kind = f"{facts.resource}.{facts.subresource}" if facts.subresource else facts.resource or "nonresource"
    return f"runtime.k8s.{kind}.{facts.verb or 'unknown'}"


def audit_event(rec: RawRecord, body: dict[str, Any], source_name: str) -> CanonicalEvent:
    """One audit.k8s.io Event. The actor is the authenticated user (`user.username`): with impersonation the
    credential used is still theirs (`impersonatedUser` is whom they acted as)."""
    username = text(body, "user", "username")
    if not username:
        raise AdapterError("missing_identity", "missing field user.username")
    facts, resource_type, resource_id = k8s_request(body)
    audit_id, stage = text(body, "auditID"), text(body, "stage")
    # One request is logged once per stage (RequestReceived, ResponseStarted, ResponseComplete, Panic).
    event_id = f"k8s:{audit_id}:{stage}" if audit_id else f"k8s:{body_hash(rec.value)}"
    when = body.get("stageTimestamp") or body.get("requestReceivedTimestamp") or body.get("timestamp")
    return CanonicalEvent(
        event_id=event_id,
        source=source_name,
        domain="runtime",
        action=action_of(facts),
        occurred_at_ms=utc_ms(when, rec.timestamp_ms),
        actor=k8s_actor(username, body.get("user", {}).get("extra")),
        resource_type=resource_type,
        resource_id=resource_id,
        facts=facts,
    )


@source(AUDIT_SOURCE, domains=("runtime",), recognise=Recogniser(values=(("kind", "Event"),)))
def adapt_audit(rec: RawRecord, body: Any) -> CanonicalEvent:
    if not any(k in body for k in _AUDIT_KEYS) and body.get("apiVersion") != "audit.k8s.io/v1":
        # `kind: Event` is also a core/v1 Event object (what `kubectl get events` lists), not an audit event.
        raise AdapterError("unknown_shape", "kind Event without verb, user or requestURI: not an audit event")
    return audit_event(rec, body, AUDIT_SOURCE)


@source(AKS_SOURCE, domains=("runtime",), recognise=Recogniser(keys=("category", "properties")))
def adapt_aks(rec: RawRecord, body: Any) -> CanonicalEvent:
    """An AKS diagnostic-log record: the audit event is the JSON string in `properties.log`."""
    category = text(body, "category")
    if category not in _AKS_CATEGORIES:
        raise AdapterError("unknown_shape", f"category {category[:40]!r} is not an AKS audit log")
    log = text(body, "properties", "log")
    if not log:
        raise AdapterError("unknown_shape", "missing field properties.log")
    inner = parse_json(log.encode())
    if not isinstance(inner, dict) or inner.get("kind") != "Event":
        raise AdapterError("unknown_shape", "properties.log is not an audit.k8s.io Event")
    return audit_event(rec, inner, AKS_SOURCE)
