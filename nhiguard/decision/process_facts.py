"""Runtime process facts (audit.runtime; facts.py says what a family owns): what a process did in a workload,
as a runtime sensor saw it (Tetragon's process events, Falco's alerts), and the workload it ran in.

A workload is joined to the identity the inventory maps it to: the event's actor is the workload
(`k8s:workload/<namespace>/<workload>`, or `host:<node>` outside Kubernetes), and when that id is not in the
inventory its pod labels are tried, in order, as `k8s:pod-label/<namespace>/<key>=<value>` (an identity lists
these as `aliases`: a CI runner's pods labelled `workflow=release` belong to the release workflow).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from nhiguard.decision.facts import EventFacts

MAX_ARGUMENTS = 1024  # characters of a command line kept (the evidence; the sensor's record has the rest)
# Kubernetes names a pod after its workload plus generated suffixes, in its own alphabet (no vowels, no 0, 1,
# 3): a Deployment's `<name>-<pod-template-hash>-<5>`, a Job's or DaemonSet's `<name>-<5>`, a CronJob's
# `<name>-<minutes>-<5>`. A StatefulSet's `<name>-<ordinal>` is kept: each ordinal is a stable member.
_GENERATED = re.compile(
    r"(?:-[bcdfghjklmnpqrstvwxz2456789]{6,10}|-\d{8,10})?-[bcdfghjklmnpqrstvwxz2456789]{5}$"
)
# Package managers that run a dependency's lifecycle scripts (preinstall, install, postinstall) on install.
_PACKAGE_MANAGERS = frozenset({"npm", "npx", "yarn", "pnpm", "bun", "npm-cli.js", "yarn.js", "pnpm.cjs"})
# npm install and its aliases, npm ci, yarn/pnpm/bun add, rebuild (runs install scripts again).
_INSTALL_COMMANDS = frozenset(
    {"install", "i", "in", "ins", "inst", "insta", "instal", "isnt", "isnta", "isntal", "isntall", "add"}
    | {"ci", "clean-install", "install-clean", "rebuild", "rb"}
)


def workload_of_pod(pod: str) -> str:
    """The workload a pod belongs to, from its name (Tetragon's `pod.workload` is preferred when present)."""
    return _GENERATED.sub("", pod) or pod


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def runs_install_script(cwd: str, parent_cwd: str, parent_binary: str, parent_arguments: str) -> bool:
    """Whether a process is a dependency's install script or one it started: package managers run lifecycle
    scripts with the package's own directory (under node_modules/) as working directory, which the script's
    children inherit; a root package's own install script is a child of the package manager's install."""
    if "/node_modules/" in f"{cwd}/" or "/node_modules/" in f"{parent_cwd}/":
        return True
    words = parent_arguments.split()
    manager = _basename(parent_binary) in _PACKAGE_MANAGERS or any(
        _basename(w) in _PACKAGE_MANAGERS for w in words[:2]
    )
    return manager and any(w in _INSTALL_COMMANDS for w in words[:3])


@dataclass(frozen=True, slots=True)
class Workload:
    """Where a process ran: a Kubernetes pod (namespace, pod, its workload and labels) or a host."""

    node: str  # the node or host name the sensor runs on
    namespace: str = ""  # "" outside Kubernetes
    pod: str = ""
    name: str = ""  # the workload (Deployment, Job, …) the pod belongs to
    labels: tuple[str, ...] = ()  # the pod's labels as `key=value`, sorted
    image: str = ""  # the container's image
    container_id: str = ""

    @property
    def actor_id(self) -> str:
        if self.namespace and self.name:
            return f"k8s:workload/{self.namespace}/{self.name}"
        return f"host:{self.node or '-'}"

    def joins(self) -> tuple[str, ...]:
        return tuple(f"k8s:pod-label/{self.namespace}/{label}" for label in self.labels if self.namespace)

    def record(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "namespace": self.namespace,
            "pod": self.pod,
            "name": self.name,
            "labels": list(self.labels),
            "image": self.image,
            "container_id": self.container_id,
        }


@dataclass(frozen=True, slots=True)
class ProcessActivity(EventFacts):
    """A process started, ended, connected out, listened, or tripped a sensor's rule, in a workload."""

    family: ClassVar[str] = "process"
    kind: (
        str  # exec | exit | connect | close | listen | kprobe | … | alert (a Falco rule about anything else)
    )
    binary: str
    arguments: str  # at most MAX_ARGUMENTS characters
    cwd: str
    pid: int
    exec_id: str  # the sensor's id of this execution ("" when it gives none)
    parent_binary: str
    parent_arguments: str
    install_script: bool  # runs_install_script(): a dependency's install script or its child
    workload: Workload
    destination_ip: str = ""  # connect: where to
    destination_host: str = ""  # connect: the host name, when the sensor resolved one
    destination_port: int = 0
    protocol: str = ""
    rule: str = ""  # Falco: the rule that fired
    priority: str = ""  # Falco: its priority (Emergency … Debug)

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "binary": self.binary,
            "arguments": self.arguments,
            "cwd": self.cwd,
            "pid": self.pid,
            "exec_id": self.exec_id,
            "parent_binary": self.parent_binary,
            "parent_arguments": self.parent_arguments,
            "install_script": self.install_script,
            "destination_ip": self.destination_ip,
            "destination_host": self.destination_host,
            "destination_port": self.destination_port,
            "protocol": self.protocol,
            "rule": self.rule,
            "priority": self.priority,
            "workload": self.workload.record(),
        }

    def target(self, resource_id: str) -> str:
        # What a connection acts on, as a habit: where to, not the address. A provider answers one name from
        # many addresses of its ranges (npm's registry from Cloudflare's /12, Google storage from a /15,
        # GitHub's /20 and /22): as an address, every download of a build would be a new target.
        if self.kind != "connect":
            return resource_id
        place = destination_place(self.destination_host, self.destination_ip)
        return place if place == "loopback" else f"{place}:{self.destination_port}"

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        # The process, as a request named `process:<node>/<exec id>` (the command schema's target types are
        # request, credential, package_version and asset): an enforcement point on the node stops it.
        where = self.workload.node or "-"
        if self.exec_id:
            return "request", f"process:{where}/{self.exec_id}"
        return "request", f"process:{where}/{self.workload.container_id or 'host'}/{self.pid}"

    def joins(self) -> tuple[str, ...]:
        return self.workload.joins()

    def destination(self) -> tuple[str, str] | None:
        if self.kind != "connect" or not (self.destination_ip or self.destination_host):
            return None
        return self.destination_host, self.destination_ip

    def evidence(self) -> dict[str, list[str]]:
        dest = self.destination_host or self.destination_ip
        return {
            "process": [self.kind],
            "binary": [self.binary],
            "arguments": [self.arguments],
            "cwd": [self.cwd],
            "parent": [f"{self.parent_binary} {self.parent_arguments}".strip()],
            "install_script": [str(self.install_script).lower()],
            "destination": [f"{dest}:{self.destination_port}" if dest else ""],
            "destination_ip": [self.destination_ip if self.destination_host else ""],
            "workload": [self.workload.actor_id],
            "pod": [self.workload.pod],
            "image": [self.workload.image],
            "rule": [self.rule],
            "priority": [self.priority],
        }


def destination_place(host: str, ip: str) -> str:
    """Where a connection went, for the behavioural model: the host name the sensor resolved, else the
    address's network (an IPv4 /16, an IPv6 /48: within one provider's published ranges); loopback, whatever
    the address, never leaves the workload."""
    if host:
        return host.lower().rstrip(".")
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return ip
    if addr.is_loopback:
        return "loopback"
    return str(ipaddress.ip_network(f"{addr}/{16 if addr.version == 4 else 48}", strict=False))


def image_repository(image: str) -> str:
    """An image without its tag or digest (`quay.io/acme/api:1.2` -> `quay.io/acme/api`): what stays the same
    across a workload's deployments."""
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name
