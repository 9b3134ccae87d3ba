"""GitHub webhook deliveries and npm publish gate requests (audit.ci). See docs/sources.md."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import body_hash, get, iso_ms, long_field, need
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import EventFacts, PackedFile, ReleaseOrigin, ReleaseRequest
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord
from nhiguard.decision.workflow_facts import WorkflowJob, WorkflowRun

WEBHOOK_SOURCE = "github.webhook"
GATE_SOURCE = "npm.publish_gate"


def _workflow_actor(repo: str, path: str) -> Actor:
    # The durable CI identity is the repository's workflow, not the generic bot account that ran it.
    return Actor(id=f"github:{repo}/{path}", display=f"{repo}:{path}", human=False, source_principal=path)


def _sender_actor(sender: dict[str, Any]) -> Actor:
    login = str(need(sender, "login", reason="missing_identity"))
    human = sender.get("type", "User") == "User"
    kind = "user" if human else "bot"
    return Actor(id=f"github:{kind}/{login}", display=login, human=human, source_principal=login)


def _run_facts(run: dict[str, Any], body: dict[str, Any], path: str) -> WorkflowRun:
    # Who started this run: `triggering_actor` (a re-run's is whoever re-ran it), else the run's `actor`.
    who = _text(run, "triggering_actor", "login") or _text(run, "actor", "login")
    return WorkflowRun(
        run_id=long_field(run.get("id"), "workflow_run.id"),
        workflow=path,
        name=_text(run, "name") or _text(body, "workflow", "name"),
        event=_text(run, "event"),
        head_branch=_text(run, "head_branch"),
        triggered_by=who,
    )


def _job_facts(job: dict[str, Any]) -> WorkflowJob:
    labels = job.get("labels")
    return WorkflowJob(
        run_id=long_field(job.get("run_id"), "workflow_job.run_id"),
        workflow_name=_text(job, "workflow_name"),
        job=_text(job, "name"),
        head_branch=_text(job, "head_branch"),
        runner=_text(job, "runner_name"),  # null until a runner takes the job
        runner_group=_text(job, "runner_group_name"),
        labels=tuple(str(x) for x in labels if isinstance(x, str)) if isinstance(labels, list) else (),
    )


@source(WEBHOOK_SOURCE, domains=("ci",), recognise=Recogniser(headers=("X-GitHub-Event",)))
def adapt_webhook(rec: RawRecord, body: Any) -> CanonicalEvent:
    event = rec.header("X-GitHub-Event")
    if not event or not isinstance(body, dict):
        raise AdapterError("unknown_shape", "GitHub webhook without X-GitHub-Event header")
    repo = get(body, "repository", "full_name", default="-")
    run = body.get("workflow_run") if event == "workflow_run" else None
    job = body.get("workflow_job") if event == "workflow_job" else None
    facts: EventFacts | None = None
    if isinstance(run, dict) and run.get("path"):
        path = str(run["path"]).split("@")[0]
        actor, facts = _workflow_actor(repo, path), _run_facts(run, body, path)
    elif isinstance(job, dict) and job.get("workflow_name"):
        # A job's payload names its workflow but not the workflow file: still the repository's workflow,
        # not whoever triggered the run (that is `sender`, often a person or a generic bot). The inventory
        # maps this name to the workflow's own identity (an alias: README, Identity inventory).
        name = str(job["workflow_name"])
        actor = Actor(
            id=f"github:{repo}/workflow:{name}", display=f"{repo}:{name}", human=False, source_principal=name
        )
        facts = _job_facts(job)
    elif isinstance(body.get("sender"), dict):
        actor = _sender_actor(body["sender"])
    else:
        raise AdapterError("missing_identity", "no workflow path and no sender")
    action = body.get("action")
    when = (
        get(run or {}, "updated_at")
        or get(body, "release", "published_at")
        or get(body, "workflow_job", "started_at")
        or get(body, "head_commit", "timestamp")
        # push events: Unix seconds (a push that deletes a branch has no head_commit)
        or (pushed * 1000 if isinstance(pushed := get(body, "repository", "pushed_at"), int) else None)
    )
    return CanonicalEvent(
        event_id=rec.header("X-GitHub-Delivery") or f"gh:{body_hash(rec.value)}",
        source=WEBHOOK_SOURCE,
        domain="ci",
        action=f"ci.github.{event}" + (f".{action}" if action else ""),
        occurred_at_ms=iso_ms(when, rec.timestamp_ms),
        actor=actor,
        resource_type="github.repository",
        resource_id=repo,
        facts=facts,
    )


def _text(obj: Any, *path: str) -> str:
    value = get(obj, *path, default="")
    return value if isinstance(value, str) else ""


def _origin(gh: dict[str, Any], repo: str, wref: str) -> ReleaseOrigin:
    """Where the job runs, from its `github` context (the names GitHub Actions gives them)."""
    # workflow_ref is "<owner>/<repo>/<path>@<ref>": the path without the ref names the workflow.
    path, _, wref_ref = wref.partition("@")
    head = get(gh, "event", "pull_request", "head", "repo", default={})
    return ReleaseOrigin(
        event_name=_text(gh, "event_name"),
        ref=_text(gh, "ref") or wref_ref,
        repository=repo,
        workflow=path.removeprefix(repo + "/"),
        head_ref=_text(gh, "head_ref"),
        base_ref=_text(gh, "base_ref"),
        head_repository=_text(head, "full_name"),
        fork=get(head, "fork") is True,
    )


def _packed_files(pack: dict[str, Any]) -> tuple[PackedFile, ...]:
    files = pack.get("files") or []
    if not isinstance(files, list):
        raise AdapterError("unknown_shape", "pack.files is not a list")
    return tuple(
        PackedFile(str(f.get("path", "")), long_field(f.get("size"), "pack.files.size"))
        for f in files
        if isinstance(f, dict)
    )


@source(GATE_SOURCE, domains=("ci",), recognise=Recogniser(values=(("gate", "npm-publish"),)))
def adapt_gate(rec: RawRecord, body: Any) -> CanonicalEvent:
    request_id = str(need(body, "request_id"))
    gh = need(body, "github", reason="missing_identity")
    repo = str(need(gh, "repository", reason="missing_identity"))
    origin = _origin(gh, repo, str(need(gh, "workflow_ref", reason="missing_identity")))
    pack = need(body, "pack")
    release = ReleaseRequest(
        package=str(need(pack, "name")),
        version=str(need(pack, "version")),
        registry=str(body.get("registry") or "https://registry.npmjs.org/"),
        access=str(body.get("access") or "public"),
        tag=str(body.get("tag") or "latest"),
        size=long_field(pack.get("size"), "pack.size"),
        unpacked_size=long_field(pack.get("unpackedSize"), "pack.unpackedSize"),
        files=_packed_files(pack),
        request_id=request_id,
        origin=origin,
    )
    return CanonicalEvent(
        event_id=f"gate:{request_id}",
        source=GATE_SOURCE,
        domain="ci",
        action="ci.release.publish_request",
        occurred_at_ms=iso_ms(body.get("requested_at"), rec.timestamp_ms),
        actor=_workflow_actor(repo, origin.workflow),
        resource_type="npm.package",
        resource_id=f"{release.package}@{release.version}",
        facts=release,
    )
