"""The runtime sources' own JSON (docs/sources.md): Kubernetes audit events (as the API server writes them,
as AKS's diagnostic log wraps them, as GKE's Cloud Audit Log entry carries them), CloudTrail events, Tetragon
export lines and Falco alerts. Field sets follow the real formats (tests/fixtures/sources/), trimmed of
fields no reader needs."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tools.scenarios._util import iso_ms, stable_hex, stable_int, uuid4

_RBAC = 'RBAC: allowed by RoleBinding "{b}/{ns}" of Role "{r}" to ServiceAccount "{n}/{ns}"'
_CORE = {"secrets", "pods", "serviceaccounts", "configmaps", "events"}
_GROUPS = {"deployments": "apps", "selfsubjectrulesreviews": "authorization.k8s.io"}


def _rfc3339_us(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}Z"


@dataclass(frozen=True)
class K8sCall:
    """One Kubernetes API request: who, what, from where."""

    username: str
    verb: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    source_ip: str = ""
    user_agent: str = ""
    status: int = 200
    extra: dict[str, list[str]] | None = None  # EKS: the IAM principal mapped in (canonicalArn)

    @property
    def group(self) -> str:
        return "" if self.resource in _CORE else _GROUPS.get(self.resource, "argoproj.io")


def k8s_event(rng: random.Random, call: K8sCall, at: datetime) -> dict[str, Any]:
    """An audit.k8s.io/v1 Event at level Metadata, stage ResponseComplete."""
    base = f"/apis/{call.group}/v1" if call.group else "/api/v1"
    path = (
        f"{base}/namespaces/{call.namespace}/{call.resource}" if call.namespace else f"{base}/{call.resource}"
    )
    path += f"/{call.name}" if call.name else ""
    path += f"/{call.subresource}" if call.subresource else ""
    if call.subresource == "exec":
        path += "?command=sh&container=app&stdin=true&stdout=true&tty=true"
    user: dict[str, Any] = {"username": call.username, "uid": uuid4(rng), "groups": _groups(call.username)}
    if call.extra:
        user["extra"] = call.extra
    ref: dict[str, Any] = {"resource": call.resource, "apiVersion": "v1"}
    for key, value in (("namespace", call.namespace), ("name", call.name), ("subresource", call.subresource)):
        if value:
            ref[key] = value
    if call.group:
        ref["apiGroup"] = call.group
    received = at - timedelta(milliseconds=rng.randint(2, 40))
    sa = call.username.split(":")
    annotations = {"authorization.k8s.io/decision": "allow" if call.status < 400 else "forbid"}
    if len(sa) == 4 and call.status < 400:
        annotations["authorization.k8s.io/reason"] = _RBAC.format(
            b=f"{sa[3]}-binding", ns=sa[2], r=f"{sa[3]}-role", n=sa[3]
        )
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": uuid4(rng),
        "stage": "ResponseComplete",
        "requestURI": path,
        "verb": call.verb,
        "user": user,
        "sourceIPs": [call.source_ip],
        "userAgent": call.user_agent,
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": call.status},
        "requestReceivedTimestamp": _rfc3339_us(received),
        "stageTimestamp": _rfc3339_us(at),
        "annotations": annotations,
    }


def _groups(username: str) -> list[str]:
    parts = username.split(":")
    if len(parts) == 4 and parts[1] == "serviceaccount":
        return ["system:serviceaccounts", f"system:serviceaccounts:{parts[2]}", "system:authenticated"]
    return ["system:authenticated"]


def aks_record(event: dict[str, Any], subscription: str, group: str, cluster: str) -> dict[str, Any]:
    """Azure Monitor's diagnostic record of an AKS cluster's kube-audit category: the event as a string."""
    resource = (
        f"/SUBSCRIPTIONS/{subscription.upper()}/RESOURCEGROUPS/{group.upper()}/PROVIDERS/"
        f"MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/{cluster.upper()}"
    )
    return {
        "category": "kube-audit",
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "resourceId": resource,
        "time": event["stageTimestamp"].replace("Z", "0Z"),
        "properties": {
            "log": json.dumps(event, separators=(",", ":")),
            "stream": "stdout",
            "pod": f"kube-apiserver-{stable_hex(cluster, n=9)}-{stable_hex(event['auditID'], n=5)}",
        },
    }


def gke_entry(rng: random.Random, call: K8sCall, at: datetime, project: str, cluster: str) -> dict[str, Any]:
    """GKE's Cloud Audit Log entry for a Kubernetes request (serviceName k8s.io)."""
    group, version = (call.group or "core"), "v1"
    kind = f"{call.resource}.{call.subresource}" if call.subresource else call.resource
    path = f"{group}/{version}/namespaces/{call.namespace}/{call.resource}" if call.namespace else ""
    path = path or f"{group}/{version}/{call.resource}"
    path += f"/{call.name}" if call.name else ""
    path += f"/{call.subresource}" if call.subresource else ""
    method = f"io.k8s.{group}.{version}.{kind}.{call.verb}"
    log = "activity" if call.verb not in ("get", "list", "watch") else "data_access"
    return {
        "insertId": uuid4(rng),
        "logName": f"projects/{project}/logs/cloudaudit.googleapis.com%2F{log}",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": call.username},
            "authorizationInfo": [{"granted": call.status < 400, "permission": method, "resource": path}],
            "methodName": method,
            "requestMetadata": {"callerIp": call.source_ip, "callerSuppliedUserAgent": call.user_agent},
            "resourceName": path,
            "serviceName": "k8s.io",
        },
        "receiveTimestamp": _rfc3339_us(at + timedelta(milliseconds=rng.randint(200, 900))),
        "resource": {
            "labels": {"cluster_name": cluster, "location": "europe-west1", "project_id": project},
            "type": "k8s_cluster",
        },
        "severity": "NOTICE",
        "timestamp": _rfc3339_us(at),
    }


@dataclass(frozen=True)
class AwsCall:
    source: str  # eventSource, e.g. s3.amazonaws.com
    name: str  # eventName
    read_only: bool
    resource: str = ""  # the ARN it acted on ("" when CloudTrail names none)
    data_event: bool = False


def cloudtrail(
    rng: random.Random,
    call: AwsCall,
    at: datetime,
    identity: dict[str, Any],
    account: str,
    region: str,
    ip: str,
    agent: str,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": call.source,
        "eventName": call.name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": None,
        "responseElements": None,
        "requestID": uuid4(rng),
        "eventID": uuid4(rng),
        "readOnly": call.read_only,
        "eventType": "AwsApiCall",
        "managementEvent": not call.data_event,
        "recipientAccountId": account,
        "eventCategory": "Data" if call.data_event else "Management",
    }
    if call.resource:
        body["resources"] = [{"ARN": call.resource, "accountId": account}]
    return body


def assumed_role(account: str, role: str, session: str, key: str, web_identity: str = "") -> dict[str, Any]:
    principal = f"AROA{stable_int('role', account, role, digits=16):016d}"
    context: dict[str, Any] = {
        "sessionIssuer": {
            "type": "Role",
            "principalId": principal,
            "arn": f"arn:aws:iam::{account}:role/{role}",
            "accountId": account,
            "userName": role.rsplit("/", 1)[-1],
        },
        "attributes": {"mfaAuthenticated": "false"},
    }
    if web_identity:
        context["webIdFederationData"] = {"federatedProvider": web_identity, "attributes": {}}
    return {
        "type": "AssumedRole",
        "principalId": f"{principal}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": context,
    }


def iam_user(account: str, name: str, key: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": f"AIDA{stable_int('user', account, name, digits=16):016d}",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": key,
        "userName": name,
    }


def web_identity_user(provider: str, subject: str) -> dict[str, Any]:
    return {
        "type": "WebIdentityUser",
        "principalId": f"{provider}:sts.amazonaws.com:{subject}",
        "userName": subject,
        "identityProvider": provider,
    }


# ------------------------------------------------------------------------------------------ runtime sensors
@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    ip: str
    node: str
    image: str
    container: str  # container id (64 hex)


@dataclass(frozen=True)
class Proc:
    binary: str
    arguments: str
    cwd: str
    pid: int
    exec_id: str
    start: datetime


def exec_id(rng: random.Random, node: str) -> str:
    return base64.b64encode(
        f"{node}:{rng.randint(10**11, 10**12)}:{rng.randint(100, 99999)}".encode()
    ).decode()


def _tetragon_proc(p: Proc, pod: Pod, parent_id: str) -> dict[str, Any]:
    return {
        "exec_id": p.exec_id,
        "pid": p.pid,
        "uid": 1001,
        "cwd": p.cwd,
        "binary": p.binary,
        "arguments": p.arguments,
        "flags": "execve clone",
        "start_time": iso_ms(p.start),
        "auid": 4294967295,
        "pod": {
            "namespace": pod.namespace,
            "name": pod.name,
            "container": {
                "id": f"containerd://{pod.container}",
                "name": "runner",
                "image": {"id": f"{pod.image}@sha256:{pod.container}", "name": pod.image},
                "pid": 47,
            },
            "pod_labels": pod.labels,
            "workload_kind": "Pod",
        },
        "parent_exec_id": parent_id,
        "refcnt": 1,
    }


def tetragon(
    kind: str, pod: Pod, proc: Proc, parent: Proc, at: datetime, dest: tuple[str, int] | None = None
) -> dict[str, Any]:
    """A Tetragon export line: process_exec, or process_connect with a destination (Isovalent's network
    event; open-source Tetragon's connect kprobe carries the same)."""
    event: dict[str, Any] = {
        "process": _tetragon_proc(proc, pod, parent.exec_id),
        "parent": _tetragon_proc(parent, pod, ""),
    }
    if dest is not None:
        event |= {"source_ip": pod.ip, "source_port": 32768 + proc.pid % 28000}
        event |= {"destination_ip": dest[0], "destination_port": dest[1], "protocol": "TCP"}
    return {f"process_{kind}": event, "node_name": pod.node, "time": iso_ms(at)}


def falco(
    rule: str,
    priority: str,
    pod: Pod,
    proc: Proc,
    parent: Proc,
    at: datetime,
    dest: tuple[str, int, str] | None = None,
) -> dict[str, Any]:
    """A Falco alert (json_output) on an execve, or on a connect with the server side (and the name Falco
    resolved, "" when none)."""
    name = proc.binary.rsplit("/", 1)[-1]
    cmdline = f"{name} {proc.arguments}".strip()
    pcmd = f"{parent.binary.rsplit('/', 1)[-1]} {parent.arguments}".strip()
    fields: dict[str, Any] = {
        "container.id": pod.container[:12],
        "container.image.repository": pod.image.rsplit(":", 1)[0],
        "container.image.tag": pod.image.rsplit(":", 1)[-1],
        "evt.type": "connect" if dest else "execve",
        "k8s.ns.name": pod.namespace,
        "k8s.pod.name": pod.name,
        "k8s.pod.labels": "[" + ", ".join(f"{k}:{v}" for k, v in pod.labels.items()) + "]",
        "proc.cmdline": cmdline,
        "proc.cwd": proc.cwd,
        "proc.exepath": proc.binary,
        "proc.name": name,
        "proc.pcmdline": pcmd,
        "proc.pexepath": parent.binary,
        "proc.pid": proc.pid,
        "proc.pname": parent.binary.rsplit("/", 1)[-1],
        "user.name": "runner",
    }
    what = f"process={name} command={cmdline}"
    if dest:
        ip, port, host = dest
        fields |= {"fd.name": f"{pod.ip}:{40000 + proc.pid % 20000}->{ip}:{port}"}
        fields |= {"fd.sip": ip, "fd.sport": port, "fd.l4proto": "tcp", "fd.sip.name": host or "<NA>"}
        what = f"connection={ip}:{port} " + what
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}000"
    return {
        "hostname": pod.node,
        "output": f"{stamp}+0000: {priority} {rule} ({what} container_id={pod.container[:12]})",
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "tags": ["container", "network"] if dest else ["container", "process"],
        "time": stamp + "Z",
        "output_fields": fields,
    }
