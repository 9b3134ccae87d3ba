"""Turning what happens in the scenario into source records (shared by ordinary activity and incidents)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tools.scenarios._util import dumps, sha40, stable_int, to_ms, uuid4, version_key
from tools.scenarios.formats import (
    CfPublished,
    GhAccount,
    GhRepo,
    GhRun,
    GhWorkflow,
    NpmVersion,
    cf_entity,
    cf_headers,
    gate_request,
    gh_headers,
    gh_push_event,
    gh_release_event,
    gh_workflow_job_event,
    gh_workflow_run_event,
    npm_hook,
    npm_pack,
    verdaccio_line,
    verdaccio_url,
)
from tools.scenarios.records import SourceRecord
from tools.scenarios.world import CmsActor, Release, World

CMS, CI, REGISTRY = "audit.cms", "audit.ci", "audit.registry"
ORDINARY = "ordinary"


class Sink:
    """Collects records in generation order and counts them per label."""

    def __init__(self) -> None:
        self.records: list[SourceRecord] = []
        self.counts: Counter[str] = Counter()

    def emit(
        self,
        topic: str,
        key: str,
        body: dict[str, Any],
        at: datetime,
        label: str,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        value = dumps(body)
        # The bridge produces a moment after the event; derived from the body so it needs no shared RNG.
        lag_ms = 40 + stable_int(value, digits=6) % 900
        self.records.append(SourceRecord(topic, key.encode(), value, headers, to_ms(at) + lag_ms, label))
        self.counts[label] += 1


# ------------------------------------------------------------------------------------------------- CMS


@dataclass
class CfDoc:
    """One Contentful asset or entry and its version history as webhooks would report it."""

    kind: str  # Asset | Entry
    id: str
    space: str
    environment: str
    tags: tuple[str, ...]
    fields: dict[str, Any]
    created_by: CmsActor
    created_at: datetime
    content_type: str | None = None
    version: int = 0
    updated_by: CmsActor | None = None
    updated_at: datetime | None = None
    published: CfPublished | None = None

    def apply(self, op: str, actor: CmsActor, at: datetime) -> tuple[str, dict[str, Any]]:
        if op == "create":
            self.version = 1
        elif op == "publish":
            first = self.published.first_at if self.published else at
            counter = self.published.counter + 1 if self.published else 1
            self.published = CfPublished(self.version, at, (actor.link_type, actor.id), first, counter)
            self.version += 1
        else:
            self.version += 1
        if op != "publish":
            self.updated_by, self.updated_at = actor, at
        updated_by = self.updated_by or actor
        body = cf_entity(
            kind=self.kind,
            entity_id=self.id,
            version=self.version,
            space=self.space,
            environment=self.environment,
            created_at=self.created_at,
            updated_at=at,
            created_by=(self.created_by.link_type, self.created_by.id),
            updated_by=(updated_by.link_type, updated_by.id),
            tags=self.tags,
            fields=self.fields,
            published=self.published,
            content_type=self.content_type,
        )
        return f"ContentManagement.{self.kind}.{op}", body


def cms(
    sink: Sink, world: World, doc: CfDoc, op: str, actor: CmsActor, at: datetime, label: str = ORDINARY
) -> None:
    topic, body = doc.apply(op, actor, at)
    sink.emit(CMS, world.space, body, at, label, cf_headers(topic))


# ------------------------------------------------------------------------------------------------ GitHub


def gh(
    sink: Sink,
    rng: random.Random,
    event: str,
    repo: GhRepo,
    body: dict[str, Any],
    at: datetime,
    label: str = ORDINARY,
) -> None:
    sink.emit(CI, repo.full_name, body, at, label, gh_headers(event, uuid4(rng), repo.org_id))


def new_run(
    rng: random.Random,
    wf: GhWorkflow,
    *,
    actor: GhAccount,
    author: GhAccount,
    event: str,
    branch: str,
    title: str,
    at: datetime,
    sha: str | None = None,
) -> GhRun:
    return GhRun(
        wf=wf,
        id=rng.randint(10_000_000_000, 19_999_999_999),
        run_number=rng.randint(200, 9000),
        event=event,
        head_branch=branch,
        head_sha=sha or sha40(rng),
        display_title=title,
        actor=actor,
        commit_author=author,
        created_at=at,
        check_suite_id=rng.randint(30_000_000_000, 39_999_999_999),
    )


def emit_run(
    sink: Sink,
    rng: random.Random,
    run: GhRun,
    *,
    conclusion: str = "success",
    anchor: tuple[str, datetime, Callable[[], None]] | None = None,
) -> datetime:
    """workflow_run requested → one workflow_job per job → workflow_run completed. Returns the end time.

    `anchor` = (job, at, callback): that job is running at `at`, and the callback (the publish gate's request)
    is emitted then, so a gate request keeps the exact time the scenario gives it.
    """
    repo = run.wf.repo
    gh(
        sink,
        rng,
        "workflow_run",
        repo,
        gh_workflow_run_event(run, "requested", run.created_at),
        run.created_at,
    )
    t = run.created_at + timedelta(seconds=rng.randint(8, 40))
    failed_job = rng.randrange(len(run.wf.jobs)) if conclusion == "failure" else -1
    for i, job in enumerate(run.wf.jobs):
        end = t + timedelta(seconds=rng.randint(40, 300))
        if anchor and anchor[0] == job:
            t = max(t, anchor[1] - timedelta(seconds=rng.randint(20, 60)))
            end = anchor[1] + timedelta(seconds=rng.randint(20, 90))
            anchor[2]()
        job_conclusion = "failure" if i == failed_job else "success"
        gh(
            sink,
            rng,
            "workflow_job",
            repo,
            gh_workflow_job_event(
                run, job, rng.randint(40_000_000_000, 49_999_999_999), t, end, job_conclusion
            ),
            end,
        )
        t = end + timedelta(seconds=rng.randint(2, 15))
        if i == failed_job:
            break
    gh(sink, rng, "workflow_run", repo, gh_workflow_run_event(run, "completed", t, conclusion=conclusion), t)
    return t


def emit_push(
    sink: Sink,
    rng: random.Random,
    repo: GhRepo,
    *,
    ref: str,
    pusher: GhAccount,
    at: datetime,
    messages: list[str],
    author: GhAccount,
) -> str:
    """A push of `messages` as commits (none for a tag); returns the head sha."""
    before, after = sha40(rng), sha40(rng)
    commits = []
    for i, msg in enumerate(messages):
        sha = after if i == len(messages) - 1 else sha40(rng)
        commits.append((sha, msg, author, at - timedelta(minutes=len(messages) - i)))
    gh(
        sink,
        rng,
        "push",
        repo,
        gh_push_event(
            repo,
            ref=ref,
            before=before if messages else "0" * 40,
            after=after,
            commits=commits,
            pusher=pusher,
            at=at,
        ),
        at,
    )
    return after


def emit_release(sink: Sink, world: World, rng: random.Random, rel: Release, actor: GhAccount) -> None:
    """A tag push, the release workflow (whose publish job asks the gate), and the GitHub release.

    Only the gate request carries the release's label: it is the act a policy decides on.
    """
    wf = rel.package.workflow
    tag = f"v{rel.version}"
    # Work back from the gate time so the gate request lands exactly at rel.at.
    t0 = rel.at - timedelta(minutes=7, seconds=rng.randint(0, 50))
    sha = emit_push(
        sink, rng, wf.repo, ref=f"refs/tags/{tag}", pusher=actor, at=t0, messages=[], author=actor
    )
    run = new_run(
        rng,
        wf,
        actor=actor,
        author=actor,
        event="push",
        branch=tag,
        title=f"chore(release): {tag}",
        at=t0 + timedelta(seconds=2),
        sha=sha,
    )
    pack = npm_pack(rel.package.name, rel.version, list(rel.files), rel.package.ratio)

    def gate() -> None:
        body = gate_request(request_id=uuid4(rng), at=rel.at, run=run, tag=tag, pack=pack)
        sink.emit(CI, wf.repo.full_name, body, rel.at, rel.label, (("Content-Type", b"application/json"),))

    end = emit_run(sink, rng, run, anchor=("publish", rel.at, gate))
    bot = world.bots["github-actions[bot]"]
    gh(
        sink,
        rng,
        "release",
        wf.repo,
        gh_release_event(
            wf.repo,
            tag=tag,
            release_id=rng.randint(200_000_000, 299_999_999),
            author=bot,
            created=end - timedelta(seconds=20),
            published=end - timedelta(seconds=5),
            body=f"## What's changed\n* Release {rel.version}",
        ),
        end - timedelta(seconds=5),
    )


# ---------------------------------------------------------------------------------------------- Registry


@dataclass
class Timeline:
    """Which package versions exist when: what an install at a given moment resolves to."""

    versions: dict[str, list[tuple[datetime, str, int]]] = field(default_factory=dict)

    def add(self, name: str, at: datetime, version: str, tarball_size: int) -> None:
        self.versions.setdefault(name, []).append((at, version, tarball_size))

    def resolve(self, name: str, at: datetime, legacy: bool = False) -> tuple[str, int] | None:
        """The newest version published by `at`; `legacy` picks the 0.x line of a package that has two."""
        known = [(version_key(v), v, s) for t, v, s in self.versions.get(name, ()) if t <= at]
        line = [c for c in known if (c[0][0] == 0) == legacy]
        candidates = line if (legacy or line) else known
        if not candidates:
            return None
        _, version, size = max(candidates)
        return version, size


def tarball_size(v: NpmVersion) -> int:
    return int(v.unpacked_size * 0.31)


def emit_hook(
    sink: Sink,
    world: World,
    versions: list[NpmVersion],
    published: NpmVersion,
    dist_tags: dict[str, str],
    created: datetime,
    label: str = ORDINARY,
) -> None:
    body = npm_hook(
        versions,
        just_published=published,
        dist_tags=dist_tags,
        hook_owner=world.hook_owner,
        created=created,
        at=published.published_at,
    )
    at = published.published_at + timedelta(seconds=3)  # npm delivers hooks a few seconds after the publish
    sink.emit(REGISTRY, published.package, body, at, label, (("Content-Type", b"application/json"),))


def emit_fetch(
    sink: Sink,
    world: World,
    user: str,
    package: str,
    version: str | None,
    size: int,
    at: datetime,
    label: str = ORDINARY,
    status: int = 200,
) -> None:
    """One Verdaccio access line: a tarball GET (an install) when version is given, else a metadata GET."""
    ip = next(u.ip for u in world.proxy_users if u.name == user)
    line = verdaccio_line(
        at=at,
        user=user,
        ip=ip,
        url=verdaccio_url(package, version),
        status=status,
        bytes_out=size if status == 200 else 0,
        pod=stable_int(user, digits=2) % 2,
    )
    sink.emit(REGISTRY, package, line, at, label)
