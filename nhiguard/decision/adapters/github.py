"""GitHub webhook deliveries (audit.ci; a package published to GitHub Packages is a registry event). See
docs/sources.md.

Also the GitHub conventions the other GitHub-shaped sources share (the publish gate, the audit log): a
repository's workflow by its file or by its name, an account by login, and GitHub's time fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nhiguard.decision.adapters.common import body_hash, get, iso_ms, long_field, need, text
from nhiguard.decision.adapters.npm import manifest_dependencies, manifest_scripts
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import EventFacts
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord
from nhiguard.decision.registry_facts import Publish, Publisher, Requirement
from nhiguard.decision.workflow_facts import WorkflowJob, WorkflowRun

WEBHOOK_SOURCE = "github.webhook"
# Deliveries that report a version published to GitHub Packages (the first is the current name).
PACKAGE_EVENTS = ("package", "registry_package")
SECONDS, MILLISECONDS = 1000, 1


def workflow_actor(repo: str, path: str) -> Actor:
    # The durable CI identity is the repository's workflow, not the generic bot account that ran it.
    return Actor(id=f"github:{repo}/{path}", display=f"{repo}:{path}", human=False, source_principal=path)


def workflow_name_actor(repo: str, name: str) -> Actor:
    """A workflow a delivery names by its name only (a job; a run or a deployment without the file's path):
    the inventory maps the name to the workflow's own id (an alias: README, Identity inventory)."""
    return Actor(
        id=f"github:{repo}/workflow:{name}", display=f"{repo}:{name}", human=False, source_principal=name
    )


def login_actor(login: str, bot: bool) -> Actor:
    """A GitHub account: a bot (`renovate[bot]`, an app) is non-human, a person is human."""
    kind = "bot" if bot else "user"
    return Actor(id=f"github:{kind}/{login}", display=login, human=not bot, source_principal=login)


def account_actor(user: dict[str, Any], where: str) -> Actor:
    login = need(user, "login", reason="missing_identity")
    if not isinstance(login, str) or not login:
        raise AdapterError("missing_identity", f"{where}.login is not a name")
    return login_actor(login, user.get("type", "User") != "User")


def stamp(value: Any, unit_ms: int, fallback: int) -> int:
    """Milliseconds since the epoch from a GitHub time: an epoch number in the field's unit (seconds in some
    payloads, milliseconds in others: the caller says which), or an ISO-8601 string; the fallback when absent
    or not after the epoch (a package version GitHub never dated says 0001-01-01)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        ms = long_field(value * unit_ms, "timestamp")
    else:
        ms = iso_ms(value, fallback) if isinstance(value, str) else fallback
    return ms if ms > 0 else fallback


def _run_facts(run: dict[str, Any], body: dict[str, Any], path: str) -> WorkflowRun:
    # Who started this run: `triggering_actor` (a re-run's is whoever re-ran it), else the run's `actor`.
    who = text(run, "triggering_actor", "login") or text(run, "actor", "login")
    return WorkflowRun(
        run_id=long_field(run.get("id"), "workflow_run.id"),
        workflow=path,
        name=text(run, "name") or text(body, "workflow", "name"),
        event=text(run, "event"),
        head_branch=text(run, "head_branch"),
        triggered_by=who,
    )


def _job_facts(job: dict[str, Any]) -> WorkflowJob:
    labels = job.get("labels")
    return WorkflowJob(
        run_id=long_field(job.get("run_id"), "workflow_job.run_id"),
        workflow_name=text(job, "workflow_name"),
        job=text(job, "name"),
        head_branch=text(job, "head_branch"),
        runner=text(job, "runner_name"),  # null until a runner takes the job
        runner_group=text(job, "runner_group_name"),
        labels=tuple(str(x) for x in labels if isinstance(x, str)) if isinstance(labels, list) else (),
    )


def _workflow(repo: str, *objs: Any) -> Actor | None:
    """The workflow a run (or the `workflow` it names) belongs to: by its file, else by its name."""
    path = next((p for o in objs if (p := text(o, "path"))), "")
    if path:
        return workflow_actor(repo, path.split("@")[0])
    name = next((n for o in objs if (n := text(o, "name"))), "")
    return workflow_name_actor(repo, name) if name else None


# Trimmed deliveries without `sender`: the object whose author is, by the event, the one who acted.
_AUTHORED = {
    ("issue_comment", "created"): "comment",
    ("commit_comment", "created"): "comment",
    ("pull_request_review_comment", "created"): "comment",
    ("pull_request_review", "submitted"): "review",
    ("pull_request", "opened"): "pull_request",
    ("issues", "opened"): "issue",
}
_WHAT_NAMES_IT = {
    "workflow_run": "workflow_run.path or name",
    "workflow_job": "workflow_job.workflow_name",
    "push": "pusher",
}


def _author(event: str, body: dict[str, Any]) -> Actor:
    sender = body.get("sender")
    if isinstance(sender, dict):
        return account_actor(sender, "sender")
    pusher = body.get("pusher") if event == "push" else None
    if isinstance(pusher, dict) and text(pusher, "name"):
        name = text(pusher, "name")
        return login_actor(name, name.endswith("[bot]"))
    what = _AUTHORED.get((event, str(body.get("action"))))
    user = get(body, what, "user") if what else None
    if isinstance(user, dict):
        return account_actor(user, f"{what}.user")
    also = f" and no {_WHAT_NAMES_IT[event]}" if event in _WHAT_NAMES_IT else ""
    raise AdapterError("missing_identity", f"{event} delivery names no sender{also}")


def _actor(event: str, body: dict[str, Any], repo: str) -> tuple[Actor, EventFacts | None]:
    run, job = body.get("workflow_run"), body.get("workflow_job")
    if event == "workflow_run" and isinstance(run, dict) and (actor := _workflow(repo, run)):
        return actor, _run_facts(run, body, text(run, "path").split("@")[0])
    if event == "workflow_job" and isinstance(job, dict) and job.get("workflow_name"):
        # A job's payload names its workflow but not the workflow file: still the repository's workflow,
        # not whoever triggered the run (that is `sender`, often a person or a generic bot).
        return workflow_name_actor(repo, str(job["workflow_name"])), _job_facts(job)
    if event in ("deployment", "deployment_status") and (actor := _workflow(repo, body.get("workflow"), run)):
        return actor, None  # a deployment a workflow run created is the workflow's doing, as its runs are
    return _author(event, body), None


_RESOURCES: dict[str, Callable[[dict[str, Any], str], tuple[str, str]]] = {
    "deployment": lambda b, r: ("github.environment", f"{r}/{text(b, 'deployment', 'environment')}"),
    "deployment_status": lambda b, r: ("github.environment", f"{r}/{text(b, 'deployment', 'environment')}"),
    "installation": lambda b, r: (
        "github.app_installation",
        f"{text(b, 'installation', 'account', 'login')}/"
        f"{text(b, 'installation', 'app_slug') or get(b, 'installation', 'app_id', default='')}",
    ),
    "deploy_key": lambda b, r: ("github.deploy_key", f"{r}/{get(b, 'key', 'id', default='')}"),
    "secret_scanning_alert": lambda b, r: (
        "github.secret_scanning_alert",
        f"{r}#{get(b, 'alert', 'number', default='')}",
    ),
    "github_app_authorization": lambda b, r: ("github.app_authorization", text(b, "sender", "login") or "-"),
}
# Where a delivery says when it happened: (path, unit of an epoch number), first present wins. Deliveries of
# the events not named here keep the order the first sources used (below); an event named here with none of
# its fields (a membership change names no time) takes the record's timestamp.
_TIMES: dict[str, tuple[tuple[tuple[str, ...], int], ...]] = {
    "deployment": ((("deployment", "updated_at"), SECONDS), (("deployment", "created_at"), SECONDS)),
    "deployment_status": ((("deployment_status", "updated_at"), SECONDS),),
    "deploy_key": ((("key", "created_at"), SECONDS),),
    "installation": ((("installation", "updated_at"), SECONDS), (("installation", "created_at"), SECONDS)),
    "secret_scanning_alert": ((("alert", "updated_at"), SECONDS), (("alert", "created_at"), SECONDS)),
    "member": (),
    "github_app_authorization": (),
}


def _when(event: str, body: dict[str, Any], rec: RawRecord) -> int:
    if event in _TIMES:
        found = (stamp(get(body, *path), unit, 0) for path, unit in _TIMES[event])
        return next((t for t in found if t), rec.timestamp_ms)
    run = body.get("workflow_run") if event == "workflow_run" else None
    when = (
        get(run or {}, "updated_at")
        or get(body, "release", "published_at")
        or get(body, "workflow_job", "started_at")
        or get(body, "head_commit", "timestamp")
        # push events: Unix seconds (a push that deletes a branch has no head_commit)
        or (pushed * 1000 if isinstance(pushed := get(body, "repository", "pushed_at"), int) else None)
    )
    return iso_ms(when, rec.timestamp_ms)


@source(WEBHOOK_SOURCE, domains=("ci",), recognise=Recogniser(headers=("X-GitHub-Event",)))
def adapt_webhook(rec: RawRecord, body: Any) -> CanonicalEvent:
    event = rec.header("X-GitHub-Event")
    if not event or not isinstance(body, dict):
        raise AdapterError("unknown_shape", "GitHub webhook without X-GitHub-Event header")
    # A name or "-": never a number a hostile delivery put there (ids, resources and Avro want strings).
    repo = text(body, "repository", "full_name") or "-"
    action = body.get("action")
    if event in PACKAGE_EVENTS and action == "published":
        return _package_publish(rec, event, body, repo)
    actor, facts = _actor(event, body, repo)
    resource_type, resource_id = _RESOURCES.get(event, lambda b, r: ("github.repository", r))(body, repo)
    return CanonicalEvent(
        event_id=rec.header("X-GitHub-Delivery") or f"gh:{body_hash(rec.value)}",
        source=WEBHOOK_SOURCE,
        domain="ci",
        action=f"ci.github.{event}" + (f".{action}" if action else ""),
        occurred_at_ms=_when(event, body, rec),
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        facts=facts,
    )


def _ecosystem(pkg: dict[str, Any]) -> str:
    # The registry's type says where the version went (a container image's `package_type` can still say npm).
    return (text(pkg, "registry", "type") or text(pkg, "package_type") or text(pkg, "ecosystem")).lower()


def _manifest(version: dict[str, Any]) -> dict[str, Any]:
    """An npm version's package.json, which GitHub sends as a JSON string ({} when absent or unreadable: the
    publish is still judged on who published it)."""
    raw = version.get("manifest")
    try:
        doc = json.loads(raw) if isinstance(raw, str) and raw else {}
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _package_publish(rec: RawRecord, event: str, body: dict[str, Any], repo: str) -> CanonicalEvent:
    """A version published to GitHub Packages: a registry publish, judged by the registry policies as an npm
    hook's is. The delivery names no earlier release: nothing is judged as added (Publish.history_known)."""
    pkg = need(body, event)
    ver = need(pkg, "package_version")
    ecosystem = _ecosystem(pkg) or "package"
    manifest = _manifest(ver) if ecosystem == "npm" else {}
    owner = text(pkg, "owner", "login").lower()
    if ecosystem == "npm":
        name = text(manifest, "name") or f"@{owner}/{text(pkg, 'name')}"
    else:
        name = f"{ecosystem}:{text(pkg, 'namespace') or owner + '/' + text(pkg, 'name')}"
    version = text(ver, "container_metadata", "tag", "name") or text(ver, "version")
    if not version or not text(pkg, "name"):
        raise AdapterError("unknown_shape", f"{event}.name or {event}.package_version.version missing")
    who = ver.get("author") if isinstance(ver.get("author"), dict) else body.get("sender")
    if not isinstance(who, dict):
        raise AdapterError("missing_identity", f"{event}.package_version.author and sender missing")
    actor = account_actor(who, "package_version.author")
    deps = manifest_dependencies(manifest)
    publish = Publish(
        package=name,
        version=version,
        # GitHub Packages takes token publishes only (a workflow's GITHUB_TOKEN or a personal token).
        publisher=Publisher(actor.source_principal, "", "token", False),
        previous=None,
        dependencies=tuple(sorted(deps)),
        added_dependencies=(),
        install_scripts=tuple(sorted(manifest_scripts(manifest))),
        added_install_scripts=(),
        package_created_ms=stamp(pkg.get("created_at"), SECONDS, 0),
        requirements=tuple(Requirement(k, v) for k, v in sorted(deps.items())),
        history_known=False,
    )
    when = stamp(ver.get("updated_at"), SECONDS, 0) or stamp(pkg.get("updated_at"), SECONDS, rec.timestamp_ms)
    return CanonicalEvent(
        event_id=rec.header("X-GitHub-Delivery") or f"gh:{body_hash(rec.value)}",
        source=WEBHOOK_SOURCE,
        domain="registry",  # the registry policies' domain, whatever topic carried it
        action="registry.package.publish",
        occurred_at_ms=when,
        actor=actor,
        resource_type=f"{ecosystem}.package_version",
        resource_id=f"{name}@{version}",
        facts=publish,
    )
