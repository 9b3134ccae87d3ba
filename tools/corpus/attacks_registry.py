"""Registry attacks: the hijacked publisher and the malicious dependency it adds (the axios pattern), CI
installs of the bad versions, a publish through Verdaccio by an unexpected user, and a known CI identity far
outside its habits (a stolen registry token, or a workflow dispatched at night on a new runner)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from tools.corpus import clock, names
from tools.corpus.cast import Cast, Org, gh_human
from tools.corpus.ci import runner_edit
from tools.corpus.classes import Draws, label
from tools.corpus.out import CI, CONTEXT, Out
from tools.corpus.registry import Registry, dep_version
from tools.scenarios._util import bump_patch, stable_hex
from tools.scenarios.emit import emit_run, new_run
from tools.scenarios.formats import GhWorkflow, NpmVersion

BAD_INSTALL = label("installs_of_bad_version")
BAD_DEP = label("malicious_new_dependency")
_SCRIPTS = ("node setup.js", "node ./lib/install.cjs", "node scripts/postinstall.js", "node index.js --init")


@dataclass
class Hijack:
    at: datetime
    removed: datetime
    bad: list[NpmVersion]  # latest line first, then legacy
    phantom: list[NpmVersion]  # (decoy,) bad
    publish_seen: bool


def plan_hijack(cast: Cast, reg: Registry, rng: random.Random, at: datetime) -> Hijack:
    """Versions of the established package by another account or e-mail, and the dependency they add.
    Registered with their removal time, so installs in the window resolve to them."""
    dep = next(d for d in cast.deps if d.role == "hijack")
    h, m = Draws(rng, "hijacked_publisher"), Draws(rng, "malicious_new_dependency")
    removed = at + timedelta(hours=h.uniform("exposure_h"))
    # The dependency: created minutes to days before, by an account nobody knows; its last version installs
    # a dropper.
    taken = {d.name for d in cast.deps}
    phantom = names.pick_unique(lambda: names.phantom_name(rng), taken)
    login, _ = names.person(rng)
    owner = (f"{login}-dev", names.throwaway_email(rng, login))
    created = at - timedelta(minutes=m.uniform("age_min"))
    base = NpmVersion(
        phantom,
        f"{rng.randint(1, 5)}.{rng.randint(0, 9)}.0",
        created,
        owner[0],
        owner[1],
        False,
        (),
        (("test", 'echo "Error: no test specified" && exit 1'),),
        rng.randint(90_000, 600_000),
        rng.randint(20, 140),
        f"JavaScript library of {phantom.split('-')[1]} standards.",
        (owner,),
        "",
    )
    bad_dep = replace(
        base,
        version=bump_patch(base.version),
        published_at=created + (at - created) * rng.uniform(0.3, 0.9) if m.chance("decoy") else created,
        scripts=(*base.scripts, ("postinstall", rng.choice(_SCRIPTS))),
    )
    phantom_versions = [base, bad_dep] if bad_dep.published_at > created else [bad_dep]
    reg.created[phantom] = created
    for v in phantom_versions:
        reg.add_doc(v, removed=removed if v is bad_dep else None, label=BAD_DEP if v is bad_dep else None)
    # The hijacked versions: token, no provenance, one new dependency.
    maint = dep.maintainers[0]
    account = (maint[0], names.throwaway_email(rng, maint[0]))
    if not h.chance("same_account"):
        login = names.person(rng)[0]
        account = (login, names.throwaway_email(rng, login))
    adds = (*dep.deps, (phantom, f"^{bad_dep.version}"))
    docs = reg.docs[dep.name]
    bad = []
    for i in range(h.int("bad_versions")):
        line = [d for d in docs if d.version.startswith("0.") == (i == 1)]
        latest = max(line, key=lambda d: tuple(int(x) for x in d.version.split(".")))
        when = at + timedelta(minutes=h.uniform("legacy_delay_min")) if i else at
        v = dep_version(dep, bump_patch(latest.version), when, publisher=account, trusted=False, deps=adds)
        v = replace(v, maintainers=(account,) if account[0] == maint[0] else (*dep.maintainers, account))
        bad.append(v)
    for v in bad:
        reg.add_doc(v, removed=removed, label=BAD_INSTALL)
        reg.pulls[(v.package, v.version)] = (phantom, bad_dep.version)
    return Hijack(at, removed, bad, phantom_versions, m.chance("publish_seen"))


def emit_hijack(cast: Cast, out: Out, rng: random.Random, hj: Hijack) -> None:
    if hj.publish_seen:  # some seeds: a hook subscription that happens to cover the new package
        for v in hj.phantom:
            out.hook(v, BAD_DEP if v is hj.phantom[-1] else CONTEXT)
    for v in hj.bad:
        docs = out.reg.visible(v.package, v.published_at)
        tags = {"latest": hj.bad[0].version}
        legacy = [d for d in docs if d.version.startswith("0.")]
        if legacy:
            tags["legacy"] = max(legacy, key=lambda d: d.published_at).version
        out.hook(v, label("hijacked_publisher"), tags)
    # Pipelines that install while the versions are up (more than the ordinary CI runs that happen to), on
    # a line that has a bad version (a pipeline pinned to the legacy line is safe when only latest is bad).
    name = hj.bad[0].package
    lines = {"legacy" if v.version.startswith("0.") else "" for v in hj.bad}
    users = [
        (org, u, s)
        for org in cast.orgs
        for u in org.proxy_users
        for s in u.uses
        if s.partition("#")[0] == name and s.partition("#")[2] in lines
    ] or [(org, u, name) for org in cast.orgs for u in org.proxy_users if u.uses]
    for _ in range(Draws(rng, "installs_of_bad_version").int("forced_sessions")):
        org, user, spec = rng.choice(users)
        legacy = spec.partition("#")[2] == "legacy"
        up = next((v.published_at for v in hj.bad if v.version.startswith("0.") == legacy), hj.at)
        t = up + timedelta(seconds=89) + (hj.removed - up - timedelta(minutes=6)) * rng.random()
        out.install(rng, org, user, [spec], t)


def emit_proxy_publishes(cast: Cast, out: Out, rng: random.Random) -> None:
    d = Draws(rng, "proxy_publish")
    for _ in range(d.int("instances")):
        org = rng.choice(cast.orgs)
        at = clock.in_window(cast, 0.4, 0.93, rng)
        target = rng.choice(org.internal)
        found = out.reg.resolve(target, at)
        version = bump_patch(found[0]) if found else "1.0.1"
        if d.chance("unknown_user"):
            user, ip = rng.choice(("admin", "npm", "deploy", "test", "ci")), names.public_ip(rng)
        else:
            u = rng.choice(org.proxy_users)
            user, ip = u.name, u.ip
        out.put(org, user, ip, target, rng.randint(3_000, 90_000) + len(version), at, label("proxy_publish"))


def emit_anomalous(cast: Cast, out: Out, rng: random.Random) -> None:
    d = Draws(rng, "anomalous_workflow_activity")
    lab = label("anomalous_workflow_activity")
    for _ in range(d.int("instances")):
        org = rng.choice(cast.orgs)
        day = clock.day_of(cast, org, clock.in_window(cast, 0.45, 0.92, rng))
        while clock.is_workday(cast, day):
            day += 1  # the next weekend day
        hour = d.uniform("night_local_hour")
        token = d.chance("registry_token")
        target = None if token else _dispatch_target(cast, out, rng, org, day, hour)
        if target is None:  # the token variant, or no workflow with habits to be far outside of
            _stolen_token(cast, out, rng, org, clock.at_local(cast, org, day, hour), d.int("packages"), lab)
        else:
            _night_dispatch(out, rng, org, *target, lab)


def _runs_before(out: Out, at: datetime) -> dict[tuple[str, str], list[datetime]]:
    """When each workflow (repository, path) was run before `at` (its `requested` deliveries)."""
    cutoff = int(at.timestamp() * 1000)
    runs: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for r in out.records:
        event = dict(r.headers).get("X-GitHub-Event")
        if r.topic == CI and r.timestamp_ms < cutoff and event == b"workflow_run":
            body = json.loads(r.value)
            if body.get("action") != "requested":
                continue  # one run, several deliveries
            path = str((body.get("workflow_run") or {}).get("path", "")).split("@")[0]
            key = (str((body.get("repository") or {}).get("full_name")), path)
            runs[key].append(datetime.fromtimestamp(r.timestamp_ms / 1000, UTC))
    return runs


def _stolen_token(cast: Cast, out: Out, rng: random.Random, org: Org, at: datetime, n: int, lab: str) -> None:
    """A CI bot's Verdaccio token used from outside: many packages it never installs, at night."""
    quiet = [u for u in org.proxy_users if u.nightly_hour is None] or org.proxy_users
    user = rng.choice(quiet)
    own = {s.partition("#")[0] for s in user.uses}
    pool = [p.name for o in cast.orgs for p in o.packages] + org.internal + [d.name for d in cast.deps]
    targets = [p for p in dict.fromkeys(pool) if p not in own]
    out.install(rng, org, user, rng.sample(targets, min(n, len(targets))), at, lab, ip=names.public_ip(rng))


# A workflow with habits: at least this many runs before (three or more deliveries each).
HABIT_RUNS = 10


def _dispatch_target(
    cast: Cast, out: Out, rng: random.Random, org: Org, day: int, hour: float
) -> tuple[GhWorkflow, datetime] | None:
    """The deploy workflow and the night time of a night dispatch, or None when the org has none that fits
    the class: a known identity far outside its habits needs habits (a deploy workflow run at least
    HABIT_RUNS times before; one run a handful of times in two weeks has none) and an hour it never runs at
    (within an hour either side). CI workflows do not fit: pushes by people and update bots run them at
    every hour."""
    runs = _runs_before(out, clock.at_local(cast, org, day, hour))
    history = {w: runs.get((w.repo.full_name, w.path), []) for w in org.workflows}
    deploys = [(w, t) for w, t in history.items() if w.path.endswith("deploy.yml") and len(t) >= HABIT_RUNS]
    if not deploys:
        return None
    wf, times = max(deploys, key=lambda wt: (len(wt[1]), rng.random()))
    used = {(t + timedelta(hours=org.offset_h)).hour for t in times}
    free = [h for h in range(6) if not {(h - 1) % 24, h, h + 1} & used]
    if not free:
        return None
    if int(hour) not in free:
        hour = rng.choice(free) + rng.random()
    return wf, clock.at_local(cast, org, day, hour)


def _night_dispatch(out: Out, rng: random.Random, org: Org, wf: GhWorkflow, at: datetime, lab: str) -> None:
    """A deploy workflow dispatched at night by someone who never runs it, on a new branch and a new
    self-hosted runner."""
    actor = gh_human(*names.person(rng))
    branch = f"tmp-{stable_hex(at, n=6)}"
    with out.captured(lab, runner_edit(f"runner-{stable_hex(org.slug, at, n=4)}")) as sink:
        run = new_run(
            rng, wf, actor=actor, author=actor, event="workflow_dispatch", branch=branch, title=wf.name, at=at
        )
        emit_run(sink, rng, run)
