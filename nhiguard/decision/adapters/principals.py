"""Who acts in Kubernetes and cloud audit logs: the canonical identity of a principal as several sources name
it (a Kubernetes user as its audit log, GKE's audit log and EKS's name it; an AWS role as CloudTrail and EKS
name it), so one identity has one id whichever log its event came through. See docs/sources.md."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import get
from nhiguard.decision.process_facts import Workload, image_repository
from nhiguard.decision.records import Actor, AdapterError

# Kubernetes users that are the platform's own components: the control plane (`system:kube-scheduler`, …) and
# the managed offerings' agents (`eks:addon-manager`, …). Anything else that is not a service account, a node
# or anonymous is a person (a client certificate, an OIDC user, a cloud account mapped in).
_PLATFORM_PREFIXES = ("system:", "eks:", "aks:", "gke:")
# IAM Identity Center (SSO) hands a person a role named so: a person, not the role's workload.
_SSO_ROLE_PREFIX = "AWSReservedSSO_"


def text(obj: Any, *path: str) -> str:
    """A string field, "" when it is absent or not a string (a sensor's `<NA>` too)."""
    cur = obj
    for key in path:
        cur = cur.get(key) if isinstance(cur, dict) else None
    return cur if isinstance(cur, str) and cur != "<NA>" else ""


def k8s_actor(username: str, extra: Any = None) -> Actor:
    """The identity behind a Kubernetes user name (and, on EKS, the IAM role its `user.extra` names)."""
    if username.startswith("system:serviceaccount:"):
        parts = username.split(":")
        if len(parts) != 4 or not parts[2] or not parts[3]:
            raise AdapterError(
                "missing_identity", f"service account user without a namespace or name: {username[:80]!r}"
            )
        ns, name = parts[2], parts[3]
        return Actor(id=f"k8s:sa/{ns}/{name}", display=f"{ns}/{name}", human=False, source_principal=username)
    if username.startswith("system:node:"):
        node = username.removeprefix("system:node:")
        return Actor(id=f"k8s:node/{node}", display=node, human=False, source_principal=username)
    if username in ("system:anonymous", "system:unauthenticated"):
        # Not a person we can name, nor a credential: the request carried none. Kept apart from people so
        # that it is never waved through as human.
        return Actor(id="k8s:anonymous", display=username, human=False, source_principal=username)
    if username.startswith(_PLATFORM_PREFIXES):
        return Actor(id=f"k8s:system/{username}", display=username, human=False, source_principal=username)
    role = _eks_role(extra)
    if role:
        # EKS maps IAM principals in: the role is the identity, as CloudTrail names it (one id for both logs).
        return Actor(
            id=role, display=role.rsplit("/", 1)[-1], human=_sso_role(role), source_principal=username
        )
    return Actor(id=f"k8s:user/{username}", display=username, human=True, source_principal=username)


def _eks_role(extra: Any) -> str:
    arns = extra.get("canonicalArn") if isinstance(extra, dict) else None
    arn = arns[0] if isinstance(arns, list) and arns and isinstance(arns[0], str) else ""
    return arn if ":role/" in arn else ""


def _sso_role(arn: str) -> bool:
    return arn.rsplit("/", 1)[-1].startswith(_SSO_ROLE_PREFIX)


def gcp_actor(email: str) -> Actor:
    """The identity behind a Google Cloud audit log's principalEmail (GKE logs Kubernetes users there)."""
    if email.startswith("system:"):
        return k8s_actor(email)
    if email.endswith(".gserviceaccount.com"):
        return Actor(id=f"gcp:sa/{email}", display=email, human=False, source_principal=email)
    return Actor(id=f"gcp:user/{email}", display=email, human=True, source_principal=email)


def role_of_session(arn: str) -> str:
    """arn:aws:sts::<account>:assumed-role/<role>/<session> -> arn:aws:iam::<account>:role/<role> (a path the
    role may have is not in the session's ARN; the session issuer, when logged, has it)."""
    head, _, rest = arn.partition(":assumed-role/")
    role = rest.split("/", 1)[0]
    if not rest or not role or not head.startswith("arn:"):
        return ""
    return head.replace(":sts::", ":iam::", 1) + f":role/{role}"


Found = tuple[Actor, str] | None  # the actor and an assumed role's session name, or None: no principal


def _assumed_role(uid: dict[str, Any], console: bool, account: str) -> Found:
    # The role is the identity, not the session: sessions are per run, the role is what is inventoried.
    issuer = get(uid, "sessionContext", "sessionIssuer")
    arn = text(uid, "arn")
    role = (text(issuer, "arn") if text(issuer, "type") == "Role" else "") or role_of_session(arn)
    if not role and text(issuer, "type") == "Role" and text(issuer, "userName"):
        role = f"arn:aws:iam::{text(issuer, 'accountId') or account}:role/{text(issuer, 'userName')}"
    if not role or role.startswith("arn:aws:iam:::"):
        return None
    # The session name: the assumed-role ARN's last part, else the part of principalId after the role's id.
    session = (
        arn.rsplit("/", 1)[-1] if ":assumed-role/" in arn else text(uid, "principalId").partition(":")[2]
    )
    name = role.rsplit("/", 1)[-1]
    return Actor(role, name, console or _sso_role(role), arn or role), session


def _iam_user(uid: dict[str, Any], console: bool, account: str) -> Found:
    # An IAM user's access key used from code is a machine credential; a console session is a person's. A
    # federated user is the IAM user that issued its federation token; the root user is always a person.
    kind, arn, name = text(uid, "type"), text(uid, "arn"), text(uid, "userName")
    who = text(uid, "sessionContext", "sessionIssuer", "arn") if kind == "FederatedUser" else ""
    account = text(uid, "accountId") or account
    if not (who or arn) and account:
        # Some deliveries leave the ARN out; the account and the user's name make it.
        arn = (
            f"arn:aws:iam::{account}:root"
            if kind == "Root"
            else f"arn:aws:iam::{account}:user/{name}"
            if name
            else ""
        )
    who = who or arn
    if not who:
        return None
    return Actor(who, name or who.rsplit("/", 1)[-1], kind == "Root" or console, arn or who), ""


def _aws_service(uid: dict[str, Any], console: bool, account: str) -> Found:
    svc = text(uid, "invokedBy")
    return (
        (Actor(id=f"aws:service/{svc}", display=svc, human=False, source_principal=svc), "") if svc else None
    )


def _aws_account(uid: dict[str, Any], console: bool, account: str) -> Found:
    acct = text(uid, "accountId")
    if not acct:
        return None
    return Actor(f"aws:account/{acct}", acct, False, text(uid, "principalId") or acct), ""


def _web_identity(uid: dict[str, Any], console: bool, account: str) -> Found:
    # The token's subject (GitHub Actions: `repo:<owner>/<repo>:ref:<ref>`) before it assumed a role.
    provider, user = text(uid, "identityProvider"), text(uid, "userName")
    return (Actor(f"aws:web-identity/{provider}/{user}", user, False, user), "") if user else None


def _person(uid: dict[str, Any], console: bool, account: str) -> Found:
    who = text(uid, "userName") or text(uid, "principalId")
    return (Actor(id=f"aws:person/{who}", display=who, human=True, source_principal=who), "") if who else None


_AWS_KINDS = {
    "AssumedRole": _assumed_role,
    "IAMUser": _iam_user,
    "Root": _iam_user,
    "FederatedUser": _iam_user,
    "AWSService": _aws_service,
    "AWSAccount": _aws_account,
    "WebIdentityUser": _web_identity,
    "SAMLUser": _person,
    "IdentityCenterUser": _person,
}


# What a userIdentity of each type needs to name its principal (the dead letter says which is missing).
_NEEDS = {
    "AssumedRole": "no sessionIssuer.arn, no assumed-role arn, and no issuer userName with an account",
    "IAMUser": "no arn, and no userName with an accountId",
    "Root": "no arn and no accountId",
    "FederatedUser": "no arn and no sessionIssuer.arn",
    "AWSService": "no invokedBy",
    "AWSAccount": "no accountId",
    "WebIdentityUser": "no userName",
    "SAMLUser": "no userName or principalId",
    "IdentityCenterUser": "no userName or principalId",
    "Unknown": "CloudTrail could not tell who made the call",
}


def aws_actor(uid: Any, console: bool, account: str = "") -> tuple[Actor, str]:
    """The identity behind a CloudTrail userIdentity, and the session name of an assumed role ("" otherwise).
    `console`: the call came from a console session (a person at the console); `account`: the account the
    call was made in, for a userIdentity that names its principal without an ARN or account."""
    if not isinstance(uid, dict):
        raise AdapterError("missing_identity", "missing field userIdentity")
    kind = text(uid, "type")
    read = _AWS_KINDS.get(kind)
    found = read(uid, console, account) if read is not None else None
    if found is None:
        raise AdapterError(
            "missing_identity", f"userIdentity of type {kind or 'none'!r}: {_NEEDS.get(kind, 'unknown')}"
        )
    return found


def workload_actor(workload: Workload) -> Actor:
    """The actor of a runtime sensor's event (Falco, Tetragon): the workload, else the host; its principal the
    image repository the process ran from."""
    return Actor(
        id=workload.actor_id,
        display=workload.name or workload.node,
        human=False,
        source_principal=image_repository(workload.image) or workload.node,
    )
