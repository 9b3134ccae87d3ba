"""GitLab webhook deliveries (audit.ci): pipelines, jobs, deployments and the rest. See docs/sources.md.

Also the GitLab conventions the audit events share (gitlab_audit.py): accounts by user id, project and group
access tokens' bot users, GitLab's time format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nhiguard.decision.adapters.common import body_hash, iso_ms, long_field, need, text
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import EventFacts
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord
from nhiguard.decision.workflow_facts import WorkflowJob, WorkflowRun

SOURCE = "gitlab.webhook"
EVENT_HEADER = "X-Gitlab-Event"
DEFAULT_CI_CONFIG = ".gitlab-ci.yml"
# Project and group access tokens act through a bot user of their own (`project_42_bot_3f1a…`); service
# accounts are machine users too.
_BOT_USERNAME = re.compile(r"^((project|group)_\d+_bot|service_account)")
# `2016-08-12 15:23:28 UTC`, `2021-04-28 21:50:00 +0200`: how GitLab's hooks write most times.
_GITLAB_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) (UTC|[+-]\d\d:?\d\d)$")

Parts = tuple[Actor, EventFacts | None, str, tuple[str, str], int]


def gitlab_ms(value: Any, fallback: int) -> int:
    """Milliseconds since the epoch from a GitLab time (its hooks' `… UTC` / `… +0200` form, or ISO-8601 with
    a zone); the fallback when absent."""
    if not isinstance(value, str) or not value:
        return fallback
    m = _GITLAB_TIME.match(value)
    if m:
        zone = "+00:00" if m[3] == "UTC" else f"{m[3][:3]}:{m[3][-2:]}"
        value = f"{m[1]}T{m[2]}{zone}"
    return iso_ms(value, fallback)


def user_actor(user_id: Any, username: str, display: str) -> Actor:
    """A GitLab account by its user id (a username can be renamed): a bot user (an access token's, a service
    account) is non-human, a person is human."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise AdapterError("missing_identity", f"user id {str(user_id)[:20]!r} names no account")
    bot = bool(_BOT_USERNAME.match(username))
    kind = "bot" if bot else "user"
    name = username or display or str(user_id)
    return Actor(id=f"gitlab:{kind}/{user_id}", display=name, human=not bot, source_principal=name)


def _user(body: dict[str, Any], kind: str) -> Actor:
    user = body.get("user")
    if isinstance(user, dict) and "id" in user:
        return user_actor(user.get("id"), text(user, "username"), text(user, "name"))
    if "user_id" in body:  # push and tag hooks flatten the user
        return user_actor(body.get("user_id"), text(body, "user_username"), text(body, "user_name"))
    raise AdapterError("missing_identity", f"GitLab {kind} hook names no user (user.id or user_id)")


def ci_actor(body: dict[str, Any], path: str) -> Actor:
    """The project's CI configuration: the durable identity of its pipelines and jobs, not whoever pushed or
    pressed run (that is `triggered_by`), as a GitHub repository's workflow is."""
    config = text(body, "project", "ci_config_path") or DEFAULT_CI_CONFIG
    return Actor(
        id=f"gitlab:{path}/{config}", display=f"{path}:{config}", human=False, source_principal=config
    )


def _pipeline(body: dict[str, Any], path: str, rec: RawRecord) -> Parts:
    attrs = need(body, "object_attributes")
    run = WorkflowRun(
        run_id=long_field(attrs.get("id"), "object_attributes.id"),
        workflow=text(body, "project", "ci_config_path") or DEFAULT_CI_CONFIG,
        name=text(attrs, "name"),
        event=text(attrs, "source"),  # push, web, schedule, api, trigger, merge_request_event, …
        head_branch=text(attrs, "ref"),
        triggered_by=text(body, "user", "username"),
    )
    when = gitlab_ms(attrs.get("finished_at"), 0) or gitlab_ms(attrs.get("created_at"), rec.timestamp_ms)
    return ci_actor(body, path), run, text(attrs, "status"), ("gitlab.project", path), when


def _build(body: dict[str, Any], path: str, rec: RawRecord) -> Parts:
    runner = body.get("runner") if isinstance(body.get("runner"), dict) else {}
    tags = runner.get("tags")
    job = WorkflowJob(
        run_id=long_field(body.get("pipeline_id"), "pipeline_id"),
        workflow_name=text(body, "commit", "name"),  # the pipeline's name (workflow:name), when it has one
        job=text(body, "build_name"),
        head_branch=text(body, "ref"),
        runner=text(runner, "description"),
        runner_group=text(runner, "runner_type"),
        labels=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
    )
    stamps = ("build_finished_at", "build_started_at", "build_created_at")
    when = next((t for f in stamps if (t := gitlab_ms(body.get(f), 0))), rec.timestamp_ms)
    return ci_actor(body, path), job, text(body, "build_status"), ("gitlab.project", path), when


def _deployment(body: dict[str, Any], path: str, rec: RawRecord) -> Parts:
    # Run by a CI job (`deployable_id`): the project's CI; through the API, by whoever called it.
    actor = ci_actor(body, path) if body.get("deployable_id") else _user(body, "deployment")
    resource = ("gitlab.environment", f"{path}/{text(body, 'environment')}")
    return (
        actor,
        None,
        text(body, "status"),
        resource,
        gitlab_ms(body.get("status_changed_at"), rec.timestamp_ms),
    )


def _release(body: dict[str, Any], path: str, rec: RawRecord) -> Parts:
    raise AdapterError(
        "missing_identity", "GitLab release hooks name no user: who released is not in the payload"
    )


def _other(kind: str) -> Callable[[dict[str, Any], str, RawRecord], Parts]:
    def parts(body: dict[str, Any], path: str, rec: RawRecord) -> Parts:
        attrs = body.get("object_attributes") if isinstance(body.get("object_attributes"), dict) else {}
        verb = text(attrs, "action") or text(body, "action")
        when = gitlab_ms(attrs.get("updated_at"), 0) or gitlab_ms(attrs.get("created_at"), rec.timestamp_ms)
        return _user(body, kind), None, verb, ("gitlab.project", path), when

    return parts


_KINDS: dict[str, Callable[[dict[str, Any], str, RawRecord], Parts]] = {
    "pipeline": _pipeline,
    "build": _build,
    "deployment": _deployment,
    "release": _release,
}


@source(SOURCE, domains=("ci",), recognise=Recogniser(headers=(EVENT_HEADER,)))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    kind = text(body, "object_kind") or text(body, "event_name")  # system hooks name `event_name` only
    if not kind:
        raise AdapterError("unknown_shape", f"GitLab hook ({rec.header(EVENT_HEADER)}) without object_kind")
    path = text(body, "project", "path_with_namespace") or text(body, "group", "full_path") or "-"
    actor, facts, verb, (resource_type, resource_id), when = _KINDS.get(kind, _other(kind))(body, path, rec)
    return CanonicalEvent(
        event_id=rec.header("X-Gitlab-Event-UUID") or f"gitlab:{body_hash(rec.value)}",
        source=SOURCE,
        domain="ci",
        action=f"ci.gitlab.{kind}" + (f".{verb}" if verb else ""),
        occurred_at_ms=when,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        facts=facts,
    )
