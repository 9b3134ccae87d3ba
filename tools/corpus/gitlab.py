"""A self-managed GitLab's infrastructure projects (the gitlab_pipelines class): pushes by people and the
pipelines they start (validate, plan, apply with a deployment), nightly scheduled pipelines, a project access
token's bot merging dependency updates, and the GitOps controller cloning with a deploy token."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from tools.corpus import clock
from tools.corpus.classes import label
from tools.corpus.estate import Estate
from tools.corpus.out import CI, Out
from tools.corpus.platform_formats import (
    gl_audit,
    gl_deployment,
    gl_headers,
    gl_job,
    gl_pipeline,
    gl_project,
    gl_push,
    gl_user,
)
from tools.scenarios._util import stable_int

GITLAB = label("gitlab_pipelines")


class GitlabActivity:
    def __init__(self, out: Out, rng: random.Random) -> None:
        self.out, self.rng = out, rng

    def day(self, est: Estate, day: int, rates: dict[str, Any]) -> None:
        rng, cast, org = self.rng, self.out.cast, est.org
        if clock.is_workday(cast, day):
            for _ in range(clock.count(rng, rates["pushes"])):
                person = rng.choice(org.humans)
                user = gl_user(stable_int("gl-user", person.login, digits=4), person.login, person.name)
                self.pipeline(
                    est, rng.choice(est.gitlab_projects), user, "push", clock.work_time(rng, cast, org, day)
                )
            if rng.random() < 0.25:  # the project bot merges a dependency update
                bot_id, bot_name = est.gitlab_bot
                self.pipeline(
                    est,
                    est.gitlab_projects[0],
                    gl_user(bot_id, bot_name, f"{est.slug}-deps-bot"),
                    "push",
                    clock.any_time(rng, cast, org, day),
                    merged=True,
                )
        owner = org.humans[0]
        user = gl_user(stable_int("gl-user", owner.login, digits=4), owner.login, owner.name)
        for project in est.gitlab_projects:
            at = clock.at_local(cast, org, day, rates["schedule"] + rng.uniform(0, 0.2))
            self.pipeline(est, project, user, "schedule", at)
        pid, path = est.gitlab_projects[0]
        t = clock.local_midnight(cast, org, day) + timedelta(minutes=rng.uniform(0, rates["token"]))
        while t < clock.local_midnight(cast, org, day + 1):
            token = (-2, f"gitlab+deploy-token-{pid % 50 + 3}")
            message = {"protocol": "http", "action": "git-upload-pack"}
            body = gl_audit(
                t,
                "repository_git_operation",
                token,
                path,
                pid,
                ("Project", path),
                est.nat_at(rng, t),
                message,
            )
            self.out.emit(
                CI, path, body, t, GITLAB, (("X-Gitlab-Audit-Event-Type", b"repository_git_operation"),)
            )
            t += timedelta(minutes=rates["token"] * rng.uniform(0.7, 1.3))

    def pipeline(
        self,
        est: Estate,
        project: tuple[int, str],
        user: dict[str, Any],
        source: str,
        at: datetime,
        merged: bool = False,
    ) -> None:
        rng = self.rng
        pid, path = project
        proj = gl_project(pid, path, est.gitlab_host)
        if merged:
            body = gl_audit(
                at,
                "merge_request_merged_by_project_bot",
                (user["id"], user["name"]),
                path,
                pid,
                ("MergeRequest", "chore(deps): update terraform providers"),
                est.nat_at(rng, at),
                "Merged merge request chore(deps): update terraform providers",
            )
            self.out.emit(CI, path, body, at, GITLAB, ())
        if source == "push":
            self.out.emit(CI, path, gl_push(rng, proj, user), at, GITLAB, gl_headers("Push", rng))
        pipeline = rng.randint(100_000, 999_999)
        stages = [("validate", "validate"), ("plan", "plan")]
        if source == "push":
            stages.append(("apply", "apply"))
        t = at + timedelta(seconds=rng.uniform(2, 10))
        for name, stage in stages:
            end = t + timedelta(seconds=rng.uniform(20, 240))
            runner = (40 + rng.randint(1, 4), f"shared-runner-{rng.randint(1, 4)}", ["docker", "linux"])
            job = rng.randint(10_000_000, 99_999_999)
            body = gl_job(proj, pipeline, job, name, stage, user, runner, t, end)
            self.out.emit(CI, path, body, end, GITLAB, gl_headers("Job", rng))
            if stage == "apply":
                self.out.emit(
                    CI, path, gl_deployment(proj, job, user, end), end, GITLAB, gl_headers("Deployment", rng)
                )
            t = end + timedelta(seconds=rng.uniform(2, 20))
        body = gl_pipeline(rng, proj, pipeline, user, source, at, t)
        self.out.emit(CI, path, body, t, GITLAB, gl_headers("Pipeline", rng))
