"""GitLab audit events (audit.ci): lines of `audit_json.log` and streamed audit events. See docs/sources.md.

Both shapes carry `author_id` and `entity_type`; a streamed event puts the rest under `details` (and repeats
some of it at the top level), a log line has it all at the top level.
"""

from __future__ import annotations

import re
from typing import Any

from nhiguard.decision.adapters.common import body_hash, iso_ms, text
from nhiguard.decision.adapters.gitlab_webhook import user_actor
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord

SOURCE = "gitlab.audit"
AUDIT = Recogniser(keys=("author_id", "entity_type"))
# GitLab's authors that are not users (Gitlab::Audit::*Author): a deploy token, a deploy key; -1 is an
# unauthenticated request, or a runner's registration or authentication token.
_DEPLOY_TOKEN, _DEPLOY_KEY, _UNAUTHENTICATED = -2, -3, -1
_RUNNER_TOKEN_NAMES = ("Registration token:", "Authentication token:")
# Event types GitLab names for what a project or group access token did (its bot user is the author).
_BY_TOKEN_BOT = ("_by_project_bot", "_by_group_bot")


def _field(body: dict[str, Any], details: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    return value if value not in (None, "") else details.get(name)


def _author_id(value: Any) -> int | None:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _author(body: dict[str, Any], details: dict[str, Any], event_type: str, path: str) -> Actor:
    author = _author_id(body.get("author_id"))
    name = str(_field(body, details, "author_name") or "")
    scope = path or "-"
    if author == _DEPLOY_TOKEN:
        ident = f"gitlab:deploy_token/{scope}/{name or '-'}"
        return Actor(id=ident, display=f"deploy token {name}", human=False, source_principal=name)
    if author == _DEPLOY_KEY:
        ident = f"gitlab:deploy_key/{scope}/{name or '-'}"
        return Actor(id=ident, display=f"deploy key {name}", human=False, source_principal=name)
    if author == _UNAUTHENTICATED and name.startswith(_RUNNER_TOKEN_NAMES):
        return Actor(id=f"gitlab:runner_token/{scope}", display=name, human=False, source_principal=name)
    if author == _UNAUTHENTICATED:
        # Nobody signed in (a failed sign-in, a public download): decided as such, never as a person.
        return Actor(id="gitlab:unauthenticated", display=name, human=False, source_principal=name)
    if author is None or author <= 0:
        named = str(body.get("author_id"))[:20]
        raise AdapterError("missing_identity", f"author_id {named!r} names no author")
    username = str(_field(body, details, "author_username") or "")
    actor = user_actor(author, username, name)
    if actor.human and event_type.endswith(_BY_TOKEN_BOT):
        return Actor(id=f"gitlab:bot/{author}", display=actor.display, human=False, source_principal=name)
    return actor


def _snake(name: str) -> str:
    """`PersonalAccessToken` -> `personal_access_token` (GitLab's class names as resource types)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _resource(body: dict[str, Any], details: dict[str, Any], event_type: str, path: str) -> tuple[str, str]:
    entity = str(body.get("entity_type") or "entity").lower()
    target_type = str(_field(body, details, "target_type") or "")
    target = str(_field(body, details, "target_details") or _field(body, details, "target_id") or "")
    scope = path or str(body.get("entity_id", "-"))
    if "job_token" in event_type:
        return "gitlab.ci_job_token", scope  # the project's CI job token settings
    if "token" in event_type or "key" in event_type or target_type.endswith(("Token", "Key")):
        # A token or key created, revoked or removed: the resource is the token, named in its project.
        kind = _snake(target_type) or ("deploy_key" if "key" in event_type else "token")
        return f"gitlab.{kind}", f"{scope}/{target}"
    return f"gitlab.{entity}", scope


@source(SOURCE, domains=("ci",), recognise=AUDIT)
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    path = str(_field(body, details, "entity_path") or "")
    event_type = str(body.get("event_type") or _field(body, details, "event_name") or "")
    change = _field(body, details, "change")
    # Older log lines name no event type: a change says what changed (`visibility`), else it is custom.
    what = event_type or (f"change.{change}" if isinstance(change, str) and change else "custom")
    resource_type, resource_id = _resource(body, details, event_type, path)
    ident = body.get("id")
    return CanonicalEvent(
        event_id=f"gitlab-audit:{ident if isinstance(ident, str | int) else body_hash(rec.value)}",
        source=SOURCE,
        domain="ci",
        action=f"ci.gitlab.audit.{what}",
        # Streamed events: `created_at`; log lines: `time` (both ISO-8601 with a zone).
        occurred_at_ms=iso_ms(text(body, "created_at") or text(body, "time"), rec.timestamp_ms),
        actor=_author(body, details, event_type, path),
        resource_type=resource_type,
        resource_id=resource_id,
    )
