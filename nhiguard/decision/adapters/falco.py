"""Falco alerts (audit.runtime): Falco's JSON output (`json_output: true`), one alert per record, as Falco's
file, program or HTTP output or falcosidekick forward it. See docs/sources.md."""

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

SOURCE = "falco.alert"
_KINDS = {"connect": "connect", "execve": "exec", "execveat": "exec"}


def _field(fields: dict[str, Any], *names: str) -> str:
    """The first of these output fields that has a value, as text (Falco writes `<NA>` or null for none)."""
    for name in names:
        value = fields.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | str) and str(value) not in ("", "<NA>"):
            return str(value)
    return ""


def _tail(cmdline: str) -> str:
    """A command line without its first word (Falco's cmdline starts with the process name)."""
    return cmdline.partition(" ")[2]


def _labels(fields: dict[str, Any]) -> tuple[str, ...]:
    """`k8s.pod.labels` as `key=value`: Falco writes a list of `key:value`, or one string `[k:v, k:v]`."""
    raw = fields.get("k8s.pod.labels")
    items = raw if isinstance(raw, list) else raw.strip("[]").split(", ") if isinstance(raw, str) else []
    pairs = (str(i).partition(":") for i in items if isinstance(i, str) and ":" in i)
    return tuple(sorted(f"{k.strip()}={v.strip()}" for k, _, v in pairs if k.strip()))


def _workload(body: dict[str, Any], fields: dict[str, Any]) -> Workload:
    ns, pod = _field(fields, "k8s.ns.name"), _field(fields, "k8s.pod.name")
    image = _field(fields, "container.image.repository")
    tag = _field(fields, "container.image.tag")
    container = _field(fields, "container.id")
    return Workload(
        node=text(body, "hostname") or _field(fields, "evt.hostname"),
        namespace=ns if pod else "",
        pod=pod,
        name=workload_of_pod(pod) if ns and pod else "",
        labels=_labels(fields) if ns and pod else (),
        image=f"{image}:{tag}" if image and tag else image,
        container_id="" if container == "host" else container,
    )


def _destination(fields: dict[str, Any]) -> tuple[str, str, int]:
    """(IP, host name, port) of a connect: the server side, else the remote side, else `fd.name`'s right."""
    ip, port = _field(fields, "fd.sip", "fd.rip"), _field(fields, "fd.sport", "fd.rport")
    name = _field(fields, "fd.name")
    if not ip and "->" in name:
        ip, _, port = name.rpartition("->")[2].rpartition(":")
    number = long_field(int(port) if port.isdigit() else 0, "fd.sport")
    return ip.strip("[]"), _field(fields, "fd.sip.name", "fd.rip.name"), number


@source(SOURCE, domains=("runtime",), recognise=Recogniser(keys=("rule", "priority", "output_fields")))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    rule, fields = text(body, "rule"), body.get("output_fields")
    if not rule or not isinstance(fields, dict):
        raise AdapterError("unknown_shape", "Falco alert without rule or output_fields")
    origin = text(body, "source") or "syscall"
    if origin != "syscall":
        # Plugin sources (k8s_audit, aws_cloudtrail, …) alert on another log: read that log itself.
        raise AdapterError(
            "unknown_shape", f"Falco alert from source {origin[:40]!r}: only syscall alerts are read"
        )
    workload = _workload(body, fields)
    if not workload.namespace and not workload.node:
        raise AdapterError("missing_identity", "no k8s.ns.name/k8s.pod.name and no hostname")
    kind = _KINDS.get(_field(fields, "evt.type"), "alert")
    ip, host, port = _destination(fields) if kind == "connect" else ("", "", 0)
    parent_cmd = _field(fields, "proc.pcmdline")
    facts = ProcessActivity(
        kind=kind,
        binary=_field(fields, "proc.exepath", "proc.exe", "proc.name"),
        arguments=(_field(fields, "proc.args") or _tail(_field(fields, "proc.cmdline")))[:MAX_ARGUMENTS],
        cwd=_field(fields, "proc.cwd"),
        pid=long_field(int(pid) if (pid := _field(fields, "proc.pid")).isdigit() else 0, "proc.pid"),
        exec_id="",
        parent_binary=_field(fields, "proc.pexepath", "proc.pname"),
        parent_arguments=_tail(parent_cmd)[:MAX_ARGUMENTS],
        install_script=runs_install_script(
            _field(fields, "proc.cwd"), "", _field(fields, "proc.pexepath", "proc.pname"), _tail(parent_cmd)
        ),
        workload=workload,
        destination_ip=ip,
        destination_host=host,
        destination_port=port,
        protocol=_field(fields, "fd.l4proto"),
        rule=rule,
        priority=text(body, "priority"),
    )
    if kind == "connect":
        resource = ("network.destination", f"{host or ip}:{port}")
    else:
        resource = ("process.binary", facts.binary or "-") if kind == "exec" else ("falco.rule", rule)
    return CanonicalEvent(
        event_id=f"falco:{text(body, 'uuid') or body_hash(rec.value)}",
        source=SOURCE,
        domain="runtime",
        action=f"runtime.process.{kind}",
        occurred_at_ms=utc_ms(body.get("time"), rec.timestamp_ms),
        actor=workload_actor(workload),
        resource_type=resource[0],
        resource_id=resource[1],
        facts=facts,
    )
