"""GitHub Actions workflow deliveries' event facts (facts.py says what a family owns): a workflow run, and one
of its jobs. What the behavioural model reads of them serves the class "a workflow started by someone, or from
somewhere, it never is":
- what (`target()`): how a run was started (its trigger: a deploy that only ever runs on pushes, dispatched by
  hand), and which code a job runs (its branch's family). The branch is learned from the jobs alone, so a new
  branch under a known trigger (a newcomer's pull request, an update bot's first branch) breaks the habit on
  the jobs, not twice over on the run, where the newcomer is already the new hands;
- where (`runner` on a job: the machine it runs on, a numbered pool as one place, see models/anomaly.py;
  `dispatched_by` on a run started by hand: whose hands started it). A run that a push or a pull request
  starts names its change's author, and a workflow meets new authors as a matter of course: that is no place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from nhiguard.decision.facts import EventFacts

_DIGITS = re.compile(r"\d+")
# Triggers by which someone (or some token) chose to start the workflow, rather than a change starting it:
# GitHub's dispatches, a GitLab pipeline's sources `web` (the UI), `api`, `trigger` (a trigger token), `chat`.
MANUAL_TRIGGERS = frozenset(("workflow_dispatch", "repository_dispatch", "web", "api", "trigger", "chat"))


def branch_family(branch: str) -> str:
    """The kind of branch: its first path segment (`feature/*`, `renovate/*`: one family however many branches
    a workflow meets), or for a name without one the name with its numbers as `#` (`v#.#.#` for every release
    tag: GitHub names a tag push's tag as the run's head_branch)."""
    head, sep, _ = branch.partition("/")
    return f"{head}/*" if sep else _DIGITS.sub("#", branch)


@dataclass(frozen=True, slots=True)
class WorkflowRun(EventFacts):
    """A workflow run requested or completed (`workflow_run` delivery)."""

    family: ClassVar[str] = "workflow_run"
    run_id: int
    workflow: str  # the workflow file's path in the repository
    name: str  # the workflow's name (what a job's delivery calls it)
    event: str  # the trigger: push | pull_request | schedule | workflow_dispatch | …
    head_branch: str  # the branch, or the tag of a tag push
    triggered_by: str  # the login that started this run (a re-run's, else the run's actor)

    def record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "name": self.name,
            "event": self.event,
            "head_branch": self.head_branch,
            "triggered_by": self.triggered_by,
        }

    @property
    def dispatched_by(self) -> str:
        """Who started it by hand ("" for a run a change started): a place for the behavioural model."""
        return self.triggered_by if self.event in MANUAL_TRIGGERS else ""

    def target(self, resource_id: str) -> str:
        return f"trigger:{self.event}"

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "request", f"workflow_run:{resource_id}/{self.run_id}"

    def evidence(self) -> dict[str, list[str]]:
        return {
            "workflow": [self.workflow],
            "trigger": [self.event],
            "branch": [self.head_branch],
            "triggered_by": [self.triggered_by],
            "run_id": [str(self.run_id)],
        }


@dataclass(frozen=True, slots=True)
class WorkflowJob(EventFacts):
    """A job of a workflow run queued, started or completed (`workflow_job` delivery). The delivery names the
    workflow, not its file: the inventory maps the name to the workflow (README, Identity inventory)."""

    family: ClassVar[str] = "workflow_job"
    run_id: int
    workflow_name: str
    job: str  # the job's name
    head_branch: str
    runner: str  # the runner's name; "" until one is assigned (queued, waiting)
    runner_group: str
    labels: tuple[str, ...]  # the labels the job asked for (`runs-on`)

    def record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow_name": self.workflow_name,
            "job": self.job,
            "head_branch": self.head_branch,
            "runner": self.runner,
            "runner_group": self.runner_group,
            "labels": list(self.labels),
        }

    def target(self, resource_id: str) -> str:
        return f"branch:{branch_family(self.head_branch)}"

    def deny_target(self, resource_id: str) -> tuple[str, str]:
        return "request", f"workflow_run:{resource_id}/{self.run_id}"

    def evidence(self) -> dict[str, list[str]]:
        return {
            "workflow": [self.workflow_name],
            "job": [self.job],
            "branch": [self.head_branch],
            "runner": [self.runner],
            "runner_group": [self.runner_group],
            "labels": list(self.labels),
            "run_id": [str(self.run_id)],
        }
