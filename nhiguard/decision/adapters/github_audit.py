"""GitHub organisation and enterprise audit log events, as GitHub streams them (audit.ci). See
docs/sources.md.

The identity is what acted: the token, GitHub App or deploy key when the event says one was used
(`programmatic_access_type`), not the person who owns it; an account otherwise (a bot, or a person: human).
"""

from __future__ import annotations

import re
from typing import Any

from nhiguard.decision.access_facts import PlatformAccess
from nhiguard.decision.adapters.common import body_hash, long_field, text
from nhiguard.decision.adapters.github import (
    MILLISECONDS,
    login_actor,
    stamp,
    workflow_name_actor,
)
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord
from nhiguard.decision.workflow_facts import WorkflowRun

SOURCE = "github.audit"
_ZONED = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
# Every audit event names its action and who acted; webhooks name neither at the top level.
AUDIT = Recogniser(keys=("action", "actor"))

# `programmatic_access_type` as GitHub words it (and as exports re-case it), by what it names.
_TOKEN_WORDS = (
    ("deploy key", "deploy_key"),
    ("server-to-server", "app"),
    ("user-to-server", "app_user_token"),
    ("oauth", "oauth_token"),
    ("personal", "pat"),
    ("app", "app"),
)
# The resource an action acts on, by its prefix: (type, fields naming it, first present wins).
_RESOURCES = (
    ("integration_installation", "github.app_installation", ("integration", "name")),
    ("integration", "github.app", ("integration", "name")),
    ("personal_access_token", "github.personal_access_token", ("token_id", "user", "actor")),
    ("oauth_application", "github.oauth_app", ("oauth_application_id", "name")),
    ("org.update_actions_secret", "github.actions_secret", ("name",)),
    ("org.create_actions_secret", "github.actions_secret", ("name",)),
    ("org.remove_actions_secret", "github.actions_secret", ("name",)),
    ("repo.create_actions_secret", "github.actions_secret", ("name",)),
    ("repo.update_actions_secret", "github.actions_secret", ("name",)),
    ("repo.remove_actions_secret", "github.actions_secret", ("name",)),
    ("deploy_key", "github.deploy_key", ("fingerprint", "title")),
    ("public_key", "github.deploy_key", ("fingerprint", "title")),
)


def _token_kind(body: dict[str, Any], login: str) -> str:
    words = text(body, "programmatic_access_type").lower().replace("_", " ")
    kind = next((k for w, k in _TOKEN_WORDS if w in words), "token" if words else "")
    # An app acting as itself has a `[bot]` login; an app token with a person's login acts for that person.
    return "app_user_token" if kind == "app" and not login.endswith("[bot]") else kind


def _token_key(body: dict[str, Any]) -> str:
    for field in ("token_id", "hashed_token"):
        value = body.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return ""


def _actor(body: dict[str, Any]) -> Actor:
    login = body.get("actor")
    if not isinstance(login, str) or not login:
        raise AdapterError("missing_identity", "actor is empty: the audit event names no actor")
    kind = _token_kind(body, login)
    repo = text(body, "repo") or text(body, "repository")
    if not kind:
        bot = (
            body.get("actor_is_bot") is True or body.get("actor_is_agent") is True or login.endswith("[bot]")
        )
        return login_actor(login, bot)
    if kind == "app":
        return login_actor(login, True)  # the app's own `<slug>[bot]` account, as webhooks name it
    key = _token_key(body)
    if kind == "deploy_key":
        # A deploy key belongs to one repository; the log names the key when it can.
        ident = f"github:deploy_key/{repo or '-'}" + (f"/{key}" if key else "")
        return Actor(id=ident, display=f"deploy key of {repo or login}", human=False, source_principal=login)
    # A person's token: the token when the log names it, else that person's tokens of this kind.
    ident = f"github:{kind}/{key}" if key else f"github:{kind}/user:{login}"
    return Actor(id=ident, display=f"{kind} of {login}", human=False, source_principal=login)


def _resource(action: str, body: dict[str, Any], login: str) -> tuple[str, str]:
    repo = text(body, "repo") or text(body, "repository")
    scope = repo or text(body, "org") or text(body, "business") or login
    for prefix, kind, fields in _RESOURCES:
        if action.startswith(prefix):
            name = next(
                (str(body[f]) for f in fields if isinstance(body.get(f), str | int) and body[f] != ""), ""
            )
            return kind, f"{scope}/{name}" if name else scope
    if repo:
        return "github.repository", repo
    if text(body, "org"):
        return "github.organization", text(body, "org")
    if text(body, "business"):
        return "github.enterprise", text(body, "business")
    return "github.account", text(body, "user") or login


def _number(value: Any) -> Any:
    # An id exported as a digit string (copies of the log stringify ids) is still that id.
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def _workflow_run(action: str, body: dict[str, Any], repo: str) -> tuple[Actor, WorkflowRun] | None:
    """`workflows.*_workflow_run`: the workflow's doing (by its name, as its jobs' deliveries name it), with
    the run's facts; whoever triggered it is `triggered_by`."""
    name = text(body, "name")
    if not action.startswith("workflows.") or not action.endswith("_workflow_run") or not (name and repo):
        return None
    return workflow_name_actor(repo, name), WorkflowRun(
        run_id=long_field(_number(body.get("workflow_run_id")), "workflow_run_id"),
        workflow="",  # the audit log names the workflow, not its file
        name=name,
        event=text(body, "event"),
        head_branch=text(body, "head_branch"),
        triggered_by=text(body, "actor"),
    )


def _access(action: str, body: dict[str, Any], repo: str) -> PlatformAccess | None:
    """Where the credential was used from, when the log names it (`actor_ip`: GitHub includes it for an
    enterprise that enables IP disclosure, and in every git event's copy to a stream)."""
    address = text(body, "actor_ip")
    if not address:
        return None
    transport = text(body, "transport_protocol_name")
    return PlatformAccess("github", action, repo, transport, address, text(body, "user_agent"))


def _event_time(body: dict[str, Any]) -> Any:
    """`@timestamp` (Unix milliseconds in GitHub's stream), else `created_at` (the same, or ISO-8601).
    Panther's copy of the log renames `@timestamp` to `at_sign_timestamp` and writes it in UTC without a zone
    (its data lake's form, `2022-12-11 22:40:20.268`): the name says whose rendering it is, so the zone is
    known. A `created_at` without a zone is not placed in time (iso_ms refuses it)."""
    if body.get("@timestamp") is not None:
        return body["@timestamp"]
    panther = body.get("at_sign_timestamp")
    if isinstance(panther, str) and panther and not _ZONED.search(panther):
        return panther + "+00:00"
    return panther if panther is not None else body.get("created_at")


@source(SOURCE, domains=("ci",), recognise=AUDIT)
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise AdapterError("unknown_shape", "action is not a name")
    repo = text(body, "repo") or text(body, "repository")
    run = _workflow_run(action, body, repo)
    actor = run[0] if run else _actor(body)
    resource_type, resource_id = _resource(action, body, text(body, "actor"))
    when = stamp(_event_time(body), MILLISECONDS, rec.timestamp_ms)
    document = body.get("_document_id")  # GitHub's own id of the event
    return CanonicalEvent(
        event_id=f"gh-audit:{document if isinstance(document, str) and document else body_hash(rec.value)}",
        source=SOURCE,
        domain="ci",
        action=f"ci.github.audit.{action}",
        occurred_at_ms=when,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        facts=run[1] if run else _access(action, body, repo),
    )
