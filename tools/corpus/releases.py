"""Releases of the orgs' own packages through the publish gate: ordinary, on-call/weekend, first releases,
packages with example/type-map files, and the release attacks (source map, env file, fork or unexpected
workflow). Every release is a tag push (or the variant's trigger), the workflow run whose publish job asks
the gate, and, when it goes out, a GitHub release; only the gate request of an attack is the attack record.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tools.corpus import clock, names
from tools.corpus.cast import Cast, Org, OwnPackage, gh_human
from tools.corpus.classes import ATTACK, CLASSES, Draws, label
from tools.corpus.out import CI, CONTEXT, JSON_HEADERS, Out
from tools.corpus.prs import fork_repo_mini, gh_pull_request_event
from tools.corpus.registry import next_version
from tools.scenarios._util import sha40, stable_hex, uuid4
from tools.scenarios.emit import emit_push, emit_run, gh, new_run
from tools.scenarios.formats import GhAccount, GhWorkflow, gate_request, gh_release_event, npm_pack

_STAGES = ("production", "staging", "development", "test", "preview")
_UNEXPECTED = ("fork_pr", "branch", "workflow", "repository")


@dataclass
class Plan:
    org: Org
    pkg: OwnPackage
    at: datetime
    cls: str
    variant: str = ""  # attack variant: sourcemap | env | fork_pr | branch | workflow | repository
    version: str = ""


def plan_releases(cast: Cast, rng: random.Random) -> list[Plan]:
    span = cast.end - cast.start
    ordinary = Draws(rng, "ordinary")
    plans: list[Plan] = []
    for org in cast.orgs:
        for pkg in org.packages:
            cls = "example_and_typemap_files" if pkg.typemaps else "ordinary"
            if pkg.first_release is not None:
                t = pkg.first_release
                plans.append(Plan(org, pkg, t, "first_release_new_package"))
            else:
                t = _workday(rng, cast, org, cast.start + span * rng.uniform(0.02, 0.2))
                plans.append(Plan(org, pkg, t, cls))
            gap = ordinary.uniform("release_gap_days")
            while True:
                t = _workday(rng, cast, org, t + timedelta(days=gap * rng.uniform(0.5, 1.5)))
                if t >= cast.end:
                    break
                plans.append(Plan(org, pkg, t, cls))
    established = [(p.org, p.pkg) for p in plans if p.pkg.first_release is None]
    oncall = Draws(rng, "oncall_weekend_release")
    for _ in range(oncall.int("instances")):
        org, pkg = rng.choice(established)
        weekend = [d for d in range(clock.days(cast)) if not clock.is_workday(cast, d)]
        if weekend and rng.random() < 0.5:  # a weekend day, daytime; else any night
            at = clock.at_local(cast, org, rng.choice(weekend), rng.uniform(9, 20))
        else:
            day = rng.randrange(clock.days(cast))
            at = clock.at_local(cast, org, day, oncall.uniform("night_local_hour"))
        plans.append(Plan(org, pkg, at, "oncall_weekend_release"))
    for cls, variants in (
        ("sourcemap_release", ("sourcemap",)),
        ("env_file_release", ("env",)),
        ("fork_or_unexpected_workflow_release", _UNEXPECTED),
    ):
        shuffled = rng.sample(variants, len(variants))  # instances take different variants first
        for i in range(Draws(rng, cls).int("instances")):
            org, pkg = rng.choice(established)
            first = min(p.at for p in plans if p.pkg is pkg and CLASSES[p.cls].kind != ATTACK)
            lo = max(first + timedelta(hours=2), cast.start + span * 0.4)
            at = lo + (cast.start + span * 0.93 - lo) * rng.random()
            plans.append(Plan(org, pkg, at, cls, shuffled[i % len(shuffled)]))
    for name in sorted({p.pkg.name for p in plans}):
        version = ""
        for p in sorted((p for p in plans if p.pkg.name == name), key=lambda p: p.at):
            if p.pkg.first_release is not None and not version:
                version = rng.choice(("0.1.0", "1.0.0"))
            else:
                version = next_version(rng, version or p.pkg.base_version)
            p.version = version
    return sorted(plans, key=lambda p: p.at)


def _workday(rng: random.Random, cast: Cast, org: Org, at: datetime) -> datetime:
    day = clock.next_workday(cast, clock.day_of(cast, org, at))
    return clock.work_time(rng, cast, org, day)


def emit_release(out: Out, rng: random.Random, plan: Plan) -> None:
    org, pkg, at, variant = plan.org, plan.pkg, plan.at, plan.variant
    attack = CLASSES[plan.cls].kind == ATTACK
    gate_label = label(plan.cls)
    around = CONTEXT if attack else gate_label
    tag = f"v{plan.version}"
    drift = rng.uniform(0.97, 1.06)
    files = [(path, int(size * drift)) for path, size in pkg.files]
    if variant == "sourcemap":
        total = sum(s for _, s in files)
        factor = Draws(rng, "sourcemap_release").uniform("size_factor")
        files.append((f"{pkg.bundle}.map", int(total * (factor - 1))))
    elif variant == "env":
        for stage in rng.sample(_STAGES, Draws(rng, "env_file_release").int("env_files")):
            files.append(
                (f"{rng.choice(('', 'dist/', 'config/'))}.env.{stage}.local", rng.randint(180, 2_400))
            )
    wf, actor = _runner(rng, org, pkg, variant)
    event, branch, ref, number = "push", tag, f"refs/tags/{tag}", rng.randint(200, 5000)
    if variant == "branch":
        event = rng.choice(("workflow_dispatch", "push"))
        branch = rng.choice(("hotfix/", "tmp/", "test-", "dev/")) + stable_hex(at, n=5)
        ref = f"refs/heads/{branch}"
    elif variant == "fork_pr":
        event, ref = "pull_request", f"refs/pull/{number}/merge"
        branch = rng.choice(("patch-1", "fix-typo", "update-readme", "main"))
    edit_run = _fork_edit(fork_repo_mini(wf.repo, actor)) if variant == "fork_pr" else None
    t0 = at - timedelta(minutes=7, seconds=rng.randint(0, 50))
    pack = npm_pack(pkg.name, plan.version, files, pkg.ratio)
    with out.captured(around, edit_run) as sink:
        if variant == "fork_pr":
            sha = sha40(rng)
            body = gh_pull_request_event(
                rng,
                wf.repo,
                number=number,
                author=actor,
                head_ref=branch,
                head_sha=sha,
                title=rng.choice(("Fix typo in README", "Update docs", "chore: small cleanup")),
                at=t0,
                fork=True,
            )
            gh(sink, rng, "pull_request", wf.repo, body, t0)
        elif ref.startswith("refs/tags/") or event == "push":
            msgs = [] if ref.startswith("refs/tags/") else ["chore: try publish"]
            sha = emit_push(sink, rng, wf.repo, ref=ref, pusher=actor, at=t0, messages=msgs, author=actor)
        else:
            sha = sha40(rng)
        title = f"chore(release): {tag}" if ref.startswith("refs/tags/") else "publish"
        start = t0 + timedelta(seconds=2)
        run = new_run(
            rng, wf, actor=actor, author=actor, event=event, branch=branch, title=title, at=start, sha=sha
        )

        def gate() -> None:
            body = gate_request(request_id=uuid4(rng), at=at, run=run, tag=tag, pack=pack)
            _edit_context(body["github"], variant, ref, branch, number, wf, actor)
            out.emit(CI, wf.repo.full_name, body, at, gate_label, JSON_HEADERS)

        end = emit_run(sink, rng, run, anchor=("publish", at, gate))
        if ref.startswith("refs/tags/"):
            body = gh_release_event(
                wf.repo,
                tag=tag,
                release_id=rng.randint(200_000_000, 299_999_999),
                author=out.cast.bots["github-actions[bot]"],
                created=end - timedelta(seconds=20),
                published=end - timedelta(seconds=5),
                body=f"## What's changed\n* Release {plan.version}",
            )
            gh(sink, rng, "release", wf.repo, body, end - timedelta(seconds=5))
    if attack:
        return  # denied at the gate, or not: either way nothing here installs it
    new = plan.cls == "first_release_new_package"
    out.reg.add(
        pkg.name, at + timedelta(minutes=2), plan.version, pack["size"], label=gate_label if new else None
    )
    if new:
        _first_installs(out, rng, plan)


def _first_installs(out: Out, rng: random.Random, plan: Plan) -> None:
    """The org's CI bots start installing the new package in the days after its first release."""
    users = [u for u in plan.org.proxy_users if u.uses]
    for _ in range(Draws(rng, "first_release_new_package").int("installs")):
        at = plan.at + timedelta(hours=rng.uniform(0.2, 72))
        if at < out.cast.end:
            out.install(rng, plan.org, rng.choice(users), [plan.pkg.name], at)


def _runner(rng: random.Random, org: Org, pkg: OwnPackage, variant: str) -> tuple[GhWorkflow, GhAccount]:
    """The workflow that runs the publish, and who triggered it."""
    wf = pkg.workflow
    if variant == "fork_pr":
        return wf, gh_human(*names.person(rng))
    if variant == "workflow":
        ci = org.workflow(wf.repo, "ci")
        if ci is not None and rng.random() < 0.5:
            return GhWorkflow(ci.repo, ci.path, ci.name, (*ci.jobs, "publish")), rng.choice(org.humans)
        stem = rng.choice(("canary", "debug-publish", "manual-release", "preview"))
        return GhWorkflow(wf.repo, f".github/workflows/{stem}.yml", stem, ("publish",)), rng.choice(
            org.humans
        )
    if variant == "repository":
        others = [w for w in org.workflows if w.repo != wf.repo and _role_ok(w)]
        other = rng.choice(others) if others else org.workflow(org.repos[-1], "ci")
        assert other is not None
        jobs = other.jobs if "publish" in other.jobs else (*other.jobs, "publish")
        return GhWorkflow(other.repo, other.path, other.name, jobs), rng.choice(org.humans)
    return wf, rng.choice(org.humans)


def _fork_edit(fork: dict[str, Any]) -> Callable[[str, dict[str, Any]], None]:
    """A pull_request run from a fork: GitHub names the fork as the run's head repository."""

    def edit(event_name: str, body: dict[str, Any]) -> None:
        if event_name == "workflow_run":
            body["workflow_run"]["head_repository"] = fork

    return edit


def _role_ok(w: GhWorkflow) -> bool:
    return w.publishes is not None or w.path.endswith("ci.yml")


def _edit_context(
    ctx: dict[str, Any], variant: str, ref: str, branch: str, number: int, wf: GhWorkflow, actor: GhAccount
) -> None:
    """The GitHub Actions context of a run that was not started by a tag push."""
    if variant not in ("fork_pr", "branch"):
        return
    ctx |= {"ref": ref, "ref_type": "branch", "workflow_ref": f"{wf.repo.full_name}/{wf.path}@{ref}"}
    if variant == "fork_pr":
        fork = f"{actor.login}/{wf.repo.name}"
        ctx |= {"head_ref": branch, "base_ref": "main"}
        ctx["event"] = {
            "pull_request": {
                "number": number,
                "head": {"ref": branch, "repo": {"full_name": fork, "fork": True}},
                "base": {"ref": "main", "repo": {"full_name": wf.repo.full_name, "fork": False}},
            }
        }
