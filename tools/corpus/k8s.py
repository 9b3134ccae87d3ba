"""Emitting Kubernetes API requests in the org's cluster's audit log format (EKS: the API server's JSON; AKS:
its diagnostic-log record; GKE: the Cloud Audit Log entry), and the controllers and administrators that make
them day to day (the k8s_controllers class)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.corpus import clock
from tools.corpus.classes import Draws, label
from tools.corpus.estate import Estate, ServiceAccount, k8s_suffix
from tools.corpus.out import Out
from tools.corpus.runtime_formats import K8sCall, aks_record, gke_entry, k8s_event
from tools.scenarios._util import stable_hex

RUNTIME = "audit.runtime"
CONTROLLERS = label("k8s_controllers")
KUBECTL = "kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47"


def emit_k8s(out: Out, rng: random.Random, est: Estate, call: K8sCall, at: datetime, lab: str) -> None:
    """One request, in the audit log format of the org's cluster."""
    event = k8s_event(rng, call, at)
    if est.flavor == "aks":
        body = aks_record(event, est.subscription, est.project, est.cluster)
    elif est.flavor == "gke":
        body = gke_entry(rng, call, at, est.project, est.cluster)
    else:
        body = event
    out.emit(RUNTIME, est.cluster, body, at, lab, ())


def pod_ip(rng: random.Random, est: Estate, at: datetime) -> str:
    """A controller pod's address: its node pool's pod range (a new pool's after a move)."""
    moved = est.pool_move
    prefix = moved[1] if moved is not None and at >= moved[0] else f"{est.pod_prefix}.{rng.randint(16, 31)}"
    return f"{prefix}.{rng.randint(2, 250)}"


def place_label(est: Estate, at: datetime, lab: str) -> str:
    """The class of a controller's request: a new node pool's first two days are cloud_new_address."""
    moved = est.pool_move
    if moved is not None and moved[0] <= at < moved[0] + timedelta(days=2):
        return label("cloud_new_address")
    return lab


class ClusterActivity:
    def __init__(self, out: Out, rng: random.Random) -> None:
        self.out, self.rng = out, rng

    def day(self, est: Estate, day: int, draws: Draws) -> None:
        cast, org, rng = self.out.cast, est.org, self.rng
        argocd, eso, certs, _ = est.controllers
        for _ in range(clock.count(rng, draws.uniform("argocd_syncs_per_day"))):
            at = clock.any_time(rng, cast, org, day)
            app = rng.choice(est.apps)
            ns, name = argocd.secrets[0].split("/")
            self._call(est, argocd, "get", "secrets", ns, name, at)
            self._call(
                est, argocd, "patch", "deployments", app, app, at + timedelta(seconds=rng.uniform(1, 9))
            )
        every = draws.uniform("eso_refresh_min")
        t = clock.local_midnight(cast, org, day) + timedelta(minutes=rng.uniform(0, every))
        while t < clock.local_midnight(cast, org, day + 1):
            ns, name = rng.choice(eso.secrets).split("/")
            self._call(est, eso, "update", "secrets", ns, name, t)
            t += timedelta(minutes=every * rng.uniform(0.8, 1.2))
        if rng.random() < 0.3:  # a certificate renewal
            ns, name = rng.choice(certs.secrets).split("/")
            at = clock.any_time(rng, cast, org, day)
            self._call(est, certs, "get", "secrets", ns, name, at)
            self._call(est, certs, "update", "secrets", ns, name, at + timedelta(seconds=rng.uniform(20, 90)))
        if clock.is_workday(cast, day):
            for _ in range(clock.count(rng, draws.uniform("admin_sessions_per_workday"))):
                self.admin(est, clock.work_time(rng, cast, org, day), draws.uniform("admin_exec_share"))

    def _call(
        self, est: Estate, sa: ServiceAccount, verb: str, resource: str, ns: str, name: str, at: datetime
    ) -> None:
        ip = pod_ip(self.rng, est, at)
        call = K8sCall(sa.username, verb, resource, ns, name, source_ip=ip, user_agent=sa.agent)
        emit_k8s(self.out, self.rng, est, call, at, place_label(est, at, CONTROLLERS))

    def admin(self, est: Estate, at: datetime, exec_share: float) -> None:
        """A person at kubectl: pods, logs, sometimes a shell in one, sometimes a restart."""
        rng = self.rng
        who = rng.choice(est.admins)
        username, extra = _admin_user(est, who)
        app = rng.choice(est.apps)
        pod = f"{app}-{k8s_suffix(rng, 10)}-{k8s_suffix(rng)}"
        ip = est.office[0]
        steps = [("list", "pods", ""), ("get", "pods", pod), ("get", "pods", pod, "log")]
        if rng.random() < exec_share:
            steps.append(("create", "pods", pod, "exec"))
        if rng.random() < 0.2:
            steps.append(("patch", "deployments", app))
        t = at
        for verb, resource, name, *sub in steps:
            status = 101 if sub == ["exec"] else 200  # an exec upgrades the connection
            part = sub[0] if sub else ""
            call = K8sCall(username, verb, resource, app, name, part, ip, KUBECTL, status, extra=extra)
            emit_k8s(self.out, rng, est, call, t, CONTROLLERS)
            t += timedelta(seconds=rng.uniform(3, 90))


def _admin_user(est: Estate, login: str) -> tuple[str, dict[str, list[str]] | None]:
    """How the cluster names a person: EKS maps the IAM Identity Center role in; GKE and AKS name the
    directory account."""
    if est.flavor == "eks":
        sso = f"AWSReservedSSO_AdministratorAccess_{stable_hex(est.account, n=16)}"
        role = f"arn:aws:iam::{est.account}:role/{sso}"
        arn = f"arn:aws:sts::{est.account}:assumed-role/{sso}/{login}"
        extra = {"arn": [arn], "canonicalArn": [role], "sessionName": [login]}
        return f"{login}", extra
    return f"{login}@{est.slug}.example", None
