"""Everyday CI: pushes and workflow runs (with the installs their jobs make through Verdaccio), deploys,
scheduled scans, dependency-update bots, nightly builds, internal publishes through Verdaccio, and the
benign class of identities seen from a new runner or address."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tools.corpus import clock
from tools.corpus.cast import Cast, Org, ProxyUser
from tools.corpus.classes import Draws, label
from tools.corpus.out import ORDINARY, Out
from tools.corpus.prs import gh_pull_request_event
from tools.scenarios._util import bump_patch, stable_hex
from tools.scenarios.emit import emit_push, emit_run, gh, new_run
from tools.scenarios.formats import GhAccount, GhRepo

_COMMITS = (
    "fix: handle empty config file",
    "feat: add retry with backoff",
    "docs: update README",
    "refactor: split request builder",
    "test: cover pagination edge cases",
    "fix: typo in error message",
    "perf: cache parsed manifests",
    "feat: support proxy settings",
    "chore: bump node to 22",
)
NEW_PLACE = label("new_runner_or_address")
RENOVATE = label("renovate_bot")


class CiActivity:
    def __init__(self, cast: Cast, out: Out, rng: random.Random) -> None:
        self.cast, self.out, self.rng = cast, out, rng
        # workflow identity -> (from, runner name prefix): jobs moved to new self-hosted runners.
        self.runner_moves: dict[str, tuple[datetime, str]] = {}

    # --------------------------------------------------------------------------------- a CI run
    def run(
        self,
        org: Org,
        repo: GhRepo,
        at: datetime,
        actor: GhAccount,
        *,
        lab: str = ORDINARY,
        branch: str = "main",
        messages: list[str] | None = None,
    ) -> datetime:
        rng = self.rng
        ci = org.workflow(repo, "ci")
        assert ci is not None
        moved = self.runner_moves.get(ci.identity)
        if moved is not None and at >= moved[0] and lab == ORDINARY:
            lab = NEW_PLACE
        messages = messages or [rng.choice(_COMMITS) for _ in range(rng.randint(1, 3))]
        event = "push" if branch == "main" else "pull_request"
        edit = runner_edit(moved[1]) if moved is not None and at >= moved[0] else None
        with self.out.captured(lab, edit) as sink:
            sha = emit_push(
                sink,
                rng,
                repo,
                ref=f"refs/heads/{branch}",
                pusher=actor,
                at=at,
                messages=messages,
                author=actor,
            )
            start = at + timedelta(seconds=rng.uniform(1, 4))
            run = new_run(
                rng,
                ci,
                actor=actor,
                author=actor,
                event=event,
                branch=branch,
                title=messages[-1],
                at=start,
                sha=sha,
            )
            end = emit_run(sink, rng, run, conclusion="failure" if rng.random() < 0.1 else "success")
            deploy = org.workflow(repo, "deploy")
            if deploy is not None and branch == "main":
                run = new_run(
                    rng,
                    deploy,
                    actor=actor,
                    author=actor,
                    event="push",
                    branch=branch,
                    title=messages[-1],
                    at=start,
                )
                end = max(end, emit_run(sink, rng, run))
        user = next((u for u in org.proxy_users if u.repo == repo.full_name), None)
        if user is not None and user.uses:
            self.install(org, user, start + timedelta(seconds=rng.uniform(25, 70)), lab)
        return end

    def install(self, org: Org, user: ProxyUser, at: datetime, lab: str = ORDINARY) -> datetime:
        k = min(len(user.uses), Draws(self.rng, "ordinary").int("packages_per_install"))
        return self.out.install(self.rng, org, user, self.rng.sample(user.uses, k), at, lab)

    # ------------------------------------------------------------------------------------ a day
    def day(self, org: Org, day: int, rates: dict[str, float]) -> None:
        rng, cast = self.rng, self.cast
        work = clock.is_workday(cast, day)
        for _ in range(clock.count(rng, rates["runs"] if work else rates["runs"] * 0.12)):
            at = clock.work_time(rng, cast, org, day)
            branch = "main" if rng.random() < 0.5 else f"feature/{stable_hex(at, n=6)}"
            self.run(org, rng.choice(org.repos), at, rng.choice(org.humans), branch=branch)
        for user in org.proxy_users:
            if user.nightly_hour is not None:
                self.install(
                    org, user, clock.at_local(cast, org, day, user.nightly_hour + rng.uniform(0, 0.3))
                )
        self.scan(org, clock.at_local(cast, org, day, rates["scan_hour"] + rng.uniform(0, 0.25)))
        for _ in range(clock.count(rng, 2)):
            self.sweep(org, clock.any_time(rng, cast, org, day))

    def bot_updates(self, org: Org, per_day: float) -> None:
        """Update bots work any day at any hour; the first org always has at least one."""
        n = max(int(org.index == 0), clock.count(self.rng, per_day * clock.days(self.cast)))
        for _ in range(n):
            day = self.rng.randrange(clock.days(self.cast))
            self.bot_update(org, clock.any_time(self.rng, self.cast, org, day))

    def first_after_moves(self) -> None:
        """The first activity from each new address or runner, soon after the move (later activity comes from
        the ordinary days)."""
        for org in self.cast.orgs:
            for user in org.proxy_users:
                moved = self.out.moved.get(user.name)
                if moved is not None:
                    self.install(org, user, moved[0] + timedelta(minutes=self.rng.uniform(1, 90)))
            for repo in org.repos:
                ci = org.workflow(repo, "ci")
                moved_runner = self.runner_moves.get(ci.identity) if ci else None
                if moved_runner is not None:
                    at = moved_runner[0] + timedelta(minutes=self.rng.uniform(1, 90))
                    self.run(org, repo, at, self.rng.choice(org.humans))

    def internal_publishes(self, org: Org, per_week: float) -> None:
        """Planned before the days' installs, so an install resolves whatever was published before it."""
        for day in range(clock.days(self.cast)):
            if clock.is_workday(self.cast, day) and self.rng.random() < per_week / 5:
                self.internal_publish(org, clock.work_time(self.rng, self.cast, org, day))

    def bot_update(self, org: Org, at: datetime) -> None:
        """A dependency-update bot pushes a branch, opens a pull request, and CI runs on it."""
        rng = self.rng
        repo = rng.choice([r for r in org.repos if r.language == "TypeScript"])
        dep = rng.choice(self.cast.deps)
        major = dep.version.split(".")[0]
        own = self.cast.renovate_apps.get(org.slug)
        if rng.random() < 0.65:
            bot = own or self.cast.bots["renovate[bot]"]
            branch, msg = (
                f"renovate/{dep.name}-{major}.x",
                f"chore(deps): update dependency {dep.name} to v{dep.version}",
            )
        else:
            bot = self.cast.bots["dependabot[bot]"]
            branch = f"dependabot/npm_and_yarn/{dep.name}-{dep.version}"
            msg = f"build(deps): bump {dep.name} to {dep.version}"
        end = self.run(org, repo, at, bot, lab=RENOVATE, branch=branch, messages=[msg])
        body = gh_pull_request_event(
            rng,
            repo,
            number=rng.randint(100, 4000),
            author=bot,
            head_ref=branch,
            head_sha=stable_hex(branch, at, n=40),
            title=msg,
            at=at + timedelta(seconds=5),
        )
        gh(self.out.sink, rng, "pull_request", repo, body, min(end, at + timedelta(seconds=6)), RENOVATE)

    def scan(self, org: Org, at: datetime) -> None:
        wf = next(w for w in org.workflows if w.path.endswith("codeql.yml"))
        with self.out.captured(ORDINARY) as sink:
            run = new_run(
                self.rng,
                wf,
                actor=org.humans[0],
                author=org.humans[0],
                event="schedule",
                branch="main",
                title="CodeQL",
                at=at,
            )
            emit_run(sink, self.rng, run)

    def sweep(self, org: Org, at: datetime) -> None:
        """The update bot's runner refreshes package metadata: GETs only, no installs."""
        user = org.sweeper
        pool = sorted({s.partition("#")[0] for u in org.proxy_users for s in u.uses})
        t = at
        for name in self.rng.sample(pool, min(len(pool), self.rng.randint(3, 6))):
            self.out.fetch(org, user, name, None, 12_000 + len(name) * 997, t, ORDINARY)
            t += timedelta(seconds=self.rng.uniform(0.1, 1.5))

    def internal_publish(self, org: Org, at: datetime) -> None:
        """An internal package published to the org's Verdaccio by its release bot, from its workflow."""
        rng, reg = self.rng, self.out.reg
        name = rng.choice(org.internal)
        found = reg.resolve(name, at)
        version = bump_patch(found[0]) if found else f"1.{rng.randint(0, 9)}.0"
        wf = next(w for w in org.workflows if w.path.endswith("publish-internal.yml"))
        human = rng.choice(org.humans)
        with self.out.captured(ORDINARY) as sink:
            run = new_run(
                rng,
                wf,
                actor=human,
                author=human,
                event="workflow_dispatch",
                branch="main",
                title=f"Publish {name}",
                at=at,
            )
            end = emit_run(sink, rng, run)
        size = rng.randint(3_000, 60_000)
        self.out.put(
            org, org.publisher.name, org.publisher.ip, name, size, end - timedelta(seconds=30), ORDINARY
        )
        reg.add(name, end, version, size)

    # -------------------------------------------------------------------- new runner or address
    def plan_moves(self) -> None:
        rng, cast = self.rng, self.cast
        d = Draws(rng, "new_runner_or_address")
        for _ in range(d.int("instances")):
            org = rng.choice(cast.orgs)
            at = cast.start + (cast.end - cast.start) * d.uniform("from_fraction")
            users = [u for u in org.proxy_users if u.name not in self.out.moved and u.uses]
            if users and rng.random() < 0.5:
                user = rng.choice(users)
                new_ip = f"10.{200 + org.index}.{rng.randint(0, 255)}.{rng.randint(2, 250)}"
                self.out.moved[user.name] = (at, new_ip)
            else:
                ci = org.workflow(rng.choice(org.repos), "ci")
                assert ci is not None
                self.runner_moves.setdefault(ci.identity, (at, f"{org.slug}-arc-{stable_hex(at, n=5)}"))


def runner_edit(prefix: str) -> Callable[[str, dict[str, Any]], None]:
    def edit(event: str, body: dict[str, Any]) -> None:
        job = body.get("workflow_job")
        if event == "workflow_job" and isinstance(job, dict):
            n = int(job["id"]) % 7
            job |= {
                "runner_id": 900 + n,
                "runner_name": f"{prefix}-{n}",
                "labels": ["self-hosted", "linux", "x64", prefix.rsplit("-", 1)[0]],
                "runner_group_id": 3,
                "runner_group_name": "arc-runners",
            }

    return edit
