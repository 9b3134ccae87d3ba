"""Tetragon events (audit.runtime): one JSON export line per record (`process_exec`, `process_exit`,
`process_connect`, `process_kprobe`, …), as `tetra getevents -o json` or the export file writes them. See
docs/sources.md."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import body_hash, long_field, utc_ms
from nhiguard.decision.adapters.principals import text, workload_actor
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.process_facts import (
    MAX_ARGUMENTS,
    ProcessActivity,
    Workload,
    runs_install_script,
    workload_of_pod,
)
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

SOURCE = "tetragon.event"
# Kernel functions a TracingPolicy hooks to see outbound connections (open-source Tetragon reports them as
# process_kprobe events whose first argument is the socket).
CONNECT_FUNCTIONS = frozenset(
    {"tcp_connect", "__x64_sys_connect", "__arm64_sys_connect", "security_socket_connect"}
)


def workload_of(proc: dict[str, Any], node: str) -> Workload:
    pod = proc.get("pod") if isinstance(proc.get("pod"), dict) else {}
    container = pod.get("container") if isinstance(pod.get("container"), dict) else {}
    labels = pod.get("pod_labels") if isinstance(pod.get("pod_labels"), dict) else {}
    ns, name = text(pod, "namespace"), text(pod, "name")
    return Workload(
        node=node,
        namespace=ns,
        pod=name,
        name=(text(pod, "workload") or workload_of_pod(name)) if ns and name else "",
        labels=tuple(sorted(f"{k}={v}" for k, v in labels.items() if isinstance(v, str))),
        image=text(container, "image", "name"),
        container_id=text(container, "id") or text(proc, "docker"),
    )


def _socket(event: dict[str, Any]) -> dict[str, Any] | None:
    """The socket argument of a connect kprobe, None for any other kprobe."""
    if text(event, "function_name") not in CONNECT_FUNCTIONS or not isinstance(event.get("args"), list):
        return None
    socks = (a.get("sock_arg") for a in event["args"] if isinstance(a, dict))
    return next((s for s in socks if isinstance(s, dict)), None)


def _destination(kind: str, event: dict[str, Any]) -> tuple[str, str, int, str]:
    """(kind, IP, port, protocol): process_connect's destination, or a connect kprobe's socket."""
    if kind == "connect":
        port = long_field(event.get("destination_port"), "destination_port")
        return kind, text(event, "destination_ip"), port, text(event, "protocol")
    sock = _socket(event) if kind == "kprobe" else None
    if sock is None:
        return kind, "", 0, ""
    port = long_field(sock.get("dport"), "sock_arg.dport")
    return "connect", text(sock, "daddr"), port, text(sock, "protocol").removeprefix("IPPROTO_")


@source(SOURCE, domains=("runtime",), recognise=Recogniser(keys=("node_name",)))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    key = next((k for k, v in body.items() if k.startswith("process_") and isinstance(v, dict)), None)
    if key is None:
        raise AdapterError("unknown_shape", "no process_* event in this Tetragon record")
    event = body[key]
    proc = event.get("process")
    if not isinstance(proc, dict):
        raise AdapterError("missing_identity", f"missing field {key}.process")
    parent = event.get("parent") if isinstance(event.get("parent"), dict) else {}
    kind, ip, port, protocol = _destination(key.removeprefix("process_"), event)
    workload = workload_of(proc, text(body, "node_name"))
    if not workload.namespace and not workload.node:
        raise AdapterError("missing_identity", f"no {key}.process.pod and no node_name")
    facts = ProcessActivity(
        kind=kind,
        binary=text(proc, "binary"),
        arguments=text(proc, "arguments")[:MAX_ARGUMENTS],
        cwd=text(proc, "cwd"),
        pid=long_field(proc.get("pid"), "process.pid"),
        exec_id=text(proc, "exec_id"),
        parent_binary=text(parent, "binary"),
        parent_arguments=text(parent, "arguments")[:MAX_ARGUMENTS],
        install_script=runs_install_script(
            text(proc, "cwd"), text(parent, "cwd"), text(parent, "binary"), text(parent, "arguments")
        ),
        workload=workload,
        destination_ip=ip,
        destination_port=port,
        protocol=protocol,
    )
    connect = kind == "connect"
    resource = ("network.destination", f"{ip}:{port}") if connect else ("process.binary", facts.binary or "-")
    return CanonicalEvent(
        event_id=f"tetragon:{body_hash(rec.value)}",
        source=SOURCE,
        domain="runtime",
        action=f"runtime.process.{kind}",
        occurred_at_ms=utc_ms(body.get("time"), rec.timestamp_ms),
        actor=workload_actor(workload),
        resource_type=resource[0],
        resource_id=resource[1],
        facts=facts,
    )
