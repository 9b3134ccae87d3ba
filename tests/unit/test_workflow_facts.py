"""GitHub workflow deliveries: their typed facts, what the behavioural model reads of them, and one identity
per workflow (a job's `workflow:<name>` id resolved through the inventory's aliases, offline and in the
worker's identities table)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from nhiguard.avro import AvroCodec
from nhiguard.decision.adapters import adapt
from nhiguard.decision.context import Identity, Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.decision.workflow_facts import WorkflowJob, WorkflowRun, branch_family
from nhiguard.models.anomaly import Baseline, group_surprise, source_of, target_of
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.identities import TableInventory, apply_identity, encode_identity
from tools import REPO_ROOT

SETTINGS = load_settings(env={})
CODEC = AvroCodec(SETTINGS.schemas_dir)
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources" / "github.webhook"
WORKFLOW = "github:acme/api/.github/workflows/deploy.yml"
JOBS = "github:acme/api/workflow:Deploy"


def _record(name: str, offset: int = 0) -> RawRecord:
    doc = json.loads((FIXTURES / f"{name}.json").read_text())
    headers = tuple((k, v.encode()) for k, v in doc["headers"].items())
    return RawRecord(doc["topic"], 0, offset, json.dumps(doc["body"]).encode(), None, headers, 0)


def _deploy() -> Identity:
    return Identity.from_dict(
        {
            "id": WORKFLOW,
            "kind": "ci_bot",
            "credential_ids": ["github-actions-token:acme/api"],
            "aliases": [JOBS],
        }
    )


def test_branch_families_group_a_workflows_everyday_branches():
    assert branch_family("main") == "main"
    assert branch_family("feature/add-login") == branch_family("feature/x") == "feature/*"
    assert branch_family("v1.2.3") == branch_family("v10.0.12") == "v#.#.#"  # a tag push's tag
    assert branch_family("tmp-3f9a2c") != branch_family("tmp-8e1b0d")


def test_runs_and_jobs_carry_what_the_model_reads():
    run = adapt(_record("workflow-run-dispatched"), "ci")
    assert isinstance(run.facts, WorkflowRun)
    assert (run.facts.event, run.facts.triggered_by, run.facts.run_id) == (
        "workflow_dispatch",
        "mkowalski",
        14088352761,
    )
    # What: how it was started; where: whose hands started it, for a run started by hand.
    assert target_of(run) == "trigger:workflow_dispatch"
    assert source_of(run) == "dispatched_by:mkowalski"
    pushed = adapt(_record("workflow-run-completed"), "ci")
    assert source_of(pushed) == ".github/workflows/build.yml"  # a push's author is no place
    job = adapt(_record("workflow-job-self-hosted"), "ci")
    assert isinstance(job.facts, WorkflowJob)
    assert target_of(job) == "branch:release-candidate"
    assert source_of(job) == "runner:build-pool"  # a numbered pool is one place
    queued = adapt(_record("workflow-job-queued"), "ci")
    assert queued.facts.runner == "" and source_of(queued) == "Deploy"
    assert job.facts.evidence()["runner"] == ["build-pool-07"]
    assert job.facts.deny_target(job.resource_id) == ("request", "workflow_run:acme/api/14088352761")


def test_an_alias_resolves_to_one_identity_and_is_refused_twice():
    inv = Inventory([_deploy()])
    assert inv.get(JOBS) == inv.get(WORKFLOW) == _deploy()
    other = Identity.from_dict(
        {"id": "github:acme/api/.github/workflows/other.yml", "kind": "ci_bot", "aliases": [JOBS]}
    )
    with pytest.raises(ValueError, match="claimed by"):
        Inventory([_deploy(), other])
    inv.remove(WORKFLOW)
    assert inv.get(JOBS) is None


def test_the_core_keys_routes_and_decides_a_job_under_its_workflow():
    core = DecisionCore(SETTINGS, load_bundle(SETTINGS.policies_dir), Inventory([_deploy()]))
    records = [_record("workflow-run-dispatched", 0), _record("workflow-job-self-hosted", 1)]
    routed, dead = core.route(records)
    assert not dead and [k for k, _ in routed] == [WORKFLOW, WORKFLOW]
    decisions = core.process(records).decisions
    assert [(d.event.actor.id, d.identity_known) for d in decisions] == [(WORKFLOW, True), (WORKFLOW, True)]
    # Not inventoried: a job keeps the id its delivery gives it.
    bare = DecisionCore(SETTINGS, load_bundle(SETTINGS.policies_dir), Inventory())
    assert bare.route(records[1:])[0][0][0] == JOBS


def test_the_identities_table_resolves_aliases_and_forgets_them_with_their_identity():
    table: dict[bytes, bytes] = {}
    apply_identity(table, CODEC, WORKFLOW.encode(), encode_identity(CODEC, _deploy()))
    view = TableInventory(table, CODEC)
    assert view.get(JOBS).id == WORKFLOW
    # An alias never shadows an identity's own record.
    own = Identity.from_dict({"id": JOBS, "kind": "service_account"})
    apply_identity(table, CODEC, JOBS.encode(), encode_identity(CODEC, own))
    apply_identity(table, CODEC, WORKFLOW.encode(), encode_identity(CODEC, _deploy()))
    assert view.get(JOBS).id == JOBS
    apply_identity(table, CODEC, JOBS.encode(), None)
    apply_identity(table, CODEC, WORKFLOW.encode(), encode_identity(CODEC, _deploy()))
    assert view.get(JOBS).id == WORKFLOW
    apply_identity(table, CODEC, WORKFLOW.encode(), None)  # a tombstone takes its aliases along
    assert table == {}


def _run(at: datetime, event: str, branch: str, who: str) -> WorkflowRun:
    return WorkflowRun(1, ".github/workflows/deploy.yml", "Deploy", event, branch, who)


def test_a_night_dispatch_on_a_new_branch_and_runner_breaks_three_habits_a_pull_request_does_not():
    from nhiguard.decision.records import Actor, CanonicalEvent

    def ev(at: datetime, facts: WorkflowRun | WorkflowJob) -> CanonicalEvent:
        kind = "workflow_run" if isinstance(facts, WorkflowRun) else "workflow_job"
        actor = Actor(WORKFLOW, "acme/api:deploy", False, ".github/workflows/deploy.yml")
        return CanonicalEvent(
            "e",
            "github.webhook",
            "ci",
            f"ci.github.{kind}.completed",
            int(at.timestamp() * 1000),
            actor,
            "github.repository",
            "acme/api",
            facts,
        )

    b = Baseline()
    start = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday
    for day in range(10):
        for hour in (10, 14, 16):
            at = start + timedelta(days=day % 5 + 7 * (day // 5), hours=hour - 10)
            for e in (
                ev(at, _run(at, "push", "main", "alice")),
                ev(
                    at,
                    WorkflowJob(
                        1, "Deploy", "deploy", "main", f"GitHub Actions {hour}", "GitHub Actions", ()
                    ),
                ),
            ):
                b.learn_one(e, b.score_one(e, 30), True)
    night = start + timedelta(days=12, hours=-8)  # Saturday 02:00
    dispatch = b.score_one(ev(night, _run(night, "workflow_dispatch", "tmp-3f9a2c", "mallory")), 30)
    job = b.score_one(
        ev(night, WorkflowJob(1, "Deploy", "deploy", "tmp-3f9a2c", "runner-7f3a-1", "arc", ())), 30
    )
    for s in (dispatch, job):
        assert s.warm and sum(v >= 0.75 for v in group_surprise(s.features).values()) == 3, s.features
    # A bot's first pull request at night: new to the workflow, but a change started it, no new hands.
    pr = b.score_one(ev(night, _run(night, "pull_request", "feature/x", "renovate[bot]")), 30)
    assert group_surprise(pr.features)["where"] == 0.0
