"""Credentials used from outside the networks the inventory declares for them (identity.networks): a
Kubernetes service account's token (k8s_token_outside_networks) and an AWS access key
(cloud_key_outside_networks), the credentials an implant on a CI runner finds (the service account's token
in the pod, the artifact role's session credentials) or a leaked long-lived key. The install script's call
home itself is generated with the jobs it runs in (tools/corpus/runners.py)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.corpus import clock, names
from tools.corpus.classes import Draws, label
from tools.corpus.estate import ARC_NS, Estate
from tools.corpus.k8s import RUNTIME, emit_k8s
from tools.corpus.out import Out
from tools.corpus.runtime_formats import AwsCall, K8sCall, assumed_role, cloudtrail, iam_user
from tools.scenarios._util import stable_hex

K8S = label("k8s_token_outside_networks")
CLOUD = label("cloud_key_outside_networks")
_TOOLS = ("kubectl/v1.30.2 (linux/amd64) kubernetes/39683505", "python-requests/2.32.3", "curl/8.5.0")
_AWS_TOOLS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1016 exe/x86_64.ubuntu.22 prompt/off",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.8",
)


def emit_runtime_attacks(out: Out, estates: dict[str, Estate], rng: random.Random) -> None:
    cast = out.cast
    d = Draws(rng, "k8s_token_outside_networks")
    for _ in range(d.int("instances")):
        est = estates[rng.choice(cast.orgs).slug]
        _k8s_token(out, rng, est, clock.in_window(cast, 0.4, 0.93, rng), d.int("requests"))
    c = Draws(rng, "cloud_key_outside_networks")
    for _ in range(c.int("instances")):
        est = estates[rng.choice(cast.orgs).slug]
        _cloud_key(
            out, rng, est, clock.in_window(cast, 0.4, 0.93, rng), c.int("calls"), c.chance("role_share")
        )


def _k8s_token(out: Out, rng: random.Random, est: Estate, at: datetime, n: int) -> None:
    """A token taken from a pod (a runner's, or a controller's mounted token) replayed from the internet:
    what can it read, then secrets, a shell in a pod, a longer-lived token."""
    runners = sorted(est.scale_sets)
    if runners and rng.random() < 0.6:
        ns, name = ARC_NS, rng.choice(runners)
    else:
        sa = rng.choice(est.controllers[:3])
        ns, name = sa.ns, sa.name
    who = f"system:serviceaccount:{ns}:{name}"
    ip, agent = names.public_ip(rng), rng.choice(_TOOLS)
    app = rng.choice(est.apps)
    steps = [
        ("create", "selfsubjectrulesreviews", "", "", "", 201),
        ("list", "secrets", ns, "", "", 200),
        ("get", "secrets", ns, f"{name}-registry-token" if ns == ARC_NS else f"{name}-token", "", 200),
        ("list", "secrets", app, "", "", 403),
        ("create", "serviceaccounts", ns, name, "token", 201),
        ("create", "pods", app, f"{app}-{stable_hex(at, n=10)}-x8k2p", "exec", 403),
        ("list", "pods", "", "", "", 403),
        ("get", "configmaps", ns, "kube-root-ca.crt", "", 200),
    ]
    t = at
    for verb, resource, space, obj, sub, status in steps[:n]:
        call = K8sCall(who, verb, resource, space, obj, sub, ip, agent, status)
        emit_k8s(out, rng, est, call, t, K8S)
        t += timedelta(seconds=rng.uniform(1, 40))
    for _ in range(max(0, n - len(steps))):  # and more reads of what it can reach
        emit_k8s(out, rng, est, K8sCall(who, "get", "secrets", ns, "", "", ip, agent), t, K8S)
        t += timedelta(seconds=rng.uniform(1, 40))


def _cloud_key(out: Out, rng: random.Random, est: Estate, at: datetime, n: int, role: bool) -> None:
    """The artifact role's session credentials from a runner, or the backup user's access key, used from
    an address outside the networks declared for them: who am I, what is there, take it."""
    if role:
        session = f"botocore-session-{stable_hex(at, n=10)}"
        who = assumed_role(
            est.account, "ci-artifacts", session, "ASIA" + stable_hex("stolen", at, n=16).upper()
        )
    else:
        who = iam_user(est.account, "svc-backup-sync", "AKIA" + stable_hex(est.slug, "backup", n=16).upper())
    ip, agent = names.public_ip(rng), rng.choice(_AWS_TOOLS)
    calls = [
        AwsCall("sts.amazonaws.com", "GetCallerIdentity", True),
        AwsCall("s3.amazonaws.com", "ListBuckets", True),
        AwsCall(
            "iam.amazonaws.com", "ListAttachedRolePolicies" if role else "ListAttachedUserPolicies", True
        ),
        AwsCall("secretsmanager.amazonaws.com", "ListSecrets", True),
    ]
    bucket = f"{est.slug}-ci-cache" if role else f"{est.slug}-backups"
    while len(calls) < n:
        key = f"arn:aws:s3:::{bucket}/{stable_hex(at, len(calls), n=12)}.tar.zst"
        calls.append(AwsCall("s3.amazonaws.com", "GetObject", True, key, data_event=True))
    t = at
    for call in calls[:n]:
        body = cloudtrail(rng, call, t, who, est.account, est.aws_region, ip, agent)
        if call.source.startswith(("iam", "secretsmanager")):
            body["errorCode"] = "AccessDenied"
            body["errorMessage"] = f"User is not authorized to perform: {call.name}"
        out.emit(RUNTIME, est.account, body, t, CLOUD, ())
        t += timedelta(seconds=rng.uniform(1, 90))
