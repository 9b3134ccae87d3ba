#!/usr/bin/env python3
# ruff: noqa: E501, E731, E741, RUF005
"""Write the frozen labelled slice: stream.ndjson (replay format) and identities.yaml.

Written from the class descriptions of issue #10, docs/sources.md and the README's format sections only, without
reading any policy, decision code or the project's own scenario generator. Kept for provenance: re-running it
with the same seed gives byte-identical files. Stdlib + PyYAML only; it imports nothing from the project.

    python tests/corpus/frozen/make_frozen.py [--out-dir tests/corpus/frozen]

How it works: a small discrete-event simulation of three organisations over 19 days (2026-04-06 .. 2026-04-24
UTC). Callbacks run in time order from a heap, so the registry state (which versions exist, which are latest,
what each repository's lockfile pins) is always the state at that moment; each callback writes the records a
real webhook/hook/log line would carry, with its label. The records are then sorted by event time.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import heapq
import itertools
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

SEED = 20260505
rng = random.Random(SEED)

START = datetime(2026, 4, 6, tzinfo=UTC)  # a Monday
DAYS = 19  # .. Friday 2026-04-24
END_MS = int((START + timedelta(days=DAYS)).timestamp() * 1000)
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


def T(day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    """ms of START + day days, hh:mm:ss UTC. day 0 = Mon 2026-04-06."""
    return int((START + timedelta(days=day, hours=hh, minutes=mm, seconds=ss)).timestamp() * 1000)


def D(year: int, month: int, dd: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    return int(datetime(year, month, dd, hh, mm, ss, tzinfo=UTC).timestamp() * 1000)


def iso_z(ms: int, frac: bool = False) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    if frac:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def weekday(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, UTC).weekday()


# ----------------------------------------------------------------------------------------------- id helpers
_B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def cf_id(n: int = 22) -> str:
    return "".join(rng.choice(_B62) for _ in range(n))


def hexs(n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def uid() -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def b64(n: int) -> str:
    return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(n))).decode()


def node_id(prefix: str) -> str:
    return prefix + base64.b64encode(bytes(rng.getrandbits(8) for _ in range(12))).decode().rstrip("=")


_ids = itertools.count(24_118_000_000)


def gh_num() -> int:
    return next(_ids) + rng.randint(1, 9000)


# ----------------------------------------------------------------------------------------------- scheduler
_heap: list = []
_seq = itertools.count()
RECORDS: list[tuple[int, int, dict]] = []


def at(ts: int, fn, *a, **kw) -> None:
    heapq.heappush(_heap, (ts, next(_seq), fn, a, kw))


def emit(ts: int, topic: str, key: str, headers: dict, value: dict, label: str) -> None:
    assert label.split(":")[0] in ("benign", "attack"), label
    RECORDS.append(
        (
            ts,
            next(_seq),
            {
                "topic": topic,
                "key": key,
                "headers": headers,
                "value": value,
                "timestamp_ms": ts,
                "label": label,
            },
        )
    )


def run_all() -> None:
    while _heap:
        ts, _, fn, a, kw = heapq.heappop(_heap)
        fn(ts, *a, **kw)


# ----------------------------------------------------------------------------------------------- organisations
class Org:
    def __init__(self, key, login, space, hook_owner, vd_host, vd_pid, people, tz_work):
        self.key, self.login, self.space, self.hook_owner = key, login, space, hook_owner
        self.id = rng.randint(40_000_000, 190_000_000)
        self.node = node_id("O_kgDO")
        self.hook_id = rng.randint(400_000_000, 520_000_000)
        self.vd_host, self.vd_pid = vd_host, vd_pid
        self.people = {p: rng.randint(1_000_000, 160_000_000) for p in people}
        self.work = tz_work  # (first UTC hour, last UTC hour) of the working day
        self.cf_users = {p: cf_id() for p in people}


ORGS = {
    "nw": Org(
        "nw",
        "northwind-labs",
        "nw4q8z1m0tke",
        "northwind-secops",
        "verdaccio-0",
        7,
        ["lena-okafor", "tmarchetti", "devraj-s", "ines-wagner"],
        (6, 17),
    ),
    "hd": Org(
        "hd",
        "heliodyne",
        "hd7c2r9x5bq0",
        "heliodyne-appsec",
        "npm-proxy-1",
        1,
        ["kpetrov", "ana-lucia-m", "bwhitfield"],
        (13, 23),
    ),
    "qw": Org(
        "qw",
        "quarryworks",
        "qw3m8v1d6hz5",
        "quarryworks-maint",
        "verdaccio",
        12,
        ["jkowalski", "mae-tanaka", "ferris-o"],
        (7, 21),
    ),
}
BOTS = {"renovate[bot]": 29139614, "dependabot[bot]": 49699333, "github-actions[bot]": 41898282}
EXTERNAL_PEOPLE = {
    "sunil-dev": 88123401,
    "pkrause": 61022114,
    "aya-nakamura-dev": 93011200,
    "e-vostrikov": 171220931,
    "hbrandt-oss": 45511290,
}


def gh_user(login: str) -> dict:
    if login in BOTS:
        return {"login": login, "id": BOTS[login], "type": "Bot"}
    uid_ = EXTERNAL_PEOPLE.get(login)
    if uid_ is None:
        for o in ORGS.values():
            if login in o.people:
                uid_ = o.people[login]
    return {"login": login, "id": uid_, "type": "User"}


def email_of(login: str) -> str:
    if login in BOTS:
        return f"{BOTS[login]}+{login}@users.noreply.github.com"
    return f"{login}@users.noreply.github.com"


# ----------------------------------------------------------------------------------------------- packages
SLSA = "https://slsa.dev/provenance/v1"
TRUSTED = "trusted"


def tp_user() -> dict:
    return {
        "name": "GitHub Actions",
        "email": "npm-oidc-no-reply@github.com",
        "trustedPublisher": {"id": "github", "oidcConfigId": f"oidc:{uid()}"},
    }


class Pkg:
    """One package as the public registry (or the internal proxy) holds it."""

    def __init__(
        self, name, desc, maintainers, hook=None, hook_type="package", private=False, base_size=50_000
    ):
        self.name, self.desc, self.maintainers = name, desc, maintainers  # maintainers: [(name, email)]
        self.hook, self.hook_type, self.private = hook, hook_type, private  # hook: Org or None
        self.versions: dict[str, dict] = {}
        self.time: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.removed: set[str] = set()
        self.created_ms: int | None = None
        self.size = base_size  # tarball bytes of the current line
        self.rev = 1

    @property
    def base(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def tarball_path(self, version: str) -> str:
        enc = self.name.replace("/", "%2f")
        return f"/{enc}/-/{self.base}-{version}.tgz"

    def add(self, ms, version, npm_user, provenance, deps=None, scripts=None, unpacked=None, tag="latest"):
        if self.created_ms is None:
            self.created_ms = ms
            self.time["created"] = iso_z(ms, True)
        unpacked = unpacked or int(self.size * rng.uniform(3.2, 3.6))
        dist = {
            "integrity": "sha512-" + b64(48),
            "shasum": hexs(40),
            "tarball": f"https://registry.npmjs.org/{self.name}/-/{self.base}-{version}.tgz",
            "fileCount": rng.randint(8, 60),
            "unpackedSize": unpacked,
        }
        if provenance:
            dist["attestations"] = {
                "url": f"https://registry.npmjs.org/-/npm/v1/attestations/{self.name}@{version}",
                "provenance": {"predicateType": SLSA},
            }
        m = {
            "name": self.name,
            "version": version,
            "_id": f"{self.name}@{version}",
            "dependencies": dict(deps or {}),
            "scripts": dict(scripts or {"test": "node --test"}),
            "_npmUser": npm_user,
            "_npmVersion": rng.choice(["10.8.2", "10.9.0", "11.2.0"]),
            "dist": dist,
        }
        self.versions[version] = m
        self.time[version] = iso_z(ms, True)
        self.time["modified"] = iso_z(ms, True)
        self.tags[tag] = version
        self.rev += 1
        return m

    def remove(self, ms, version):
        """npm security takedown of one version: gone from versions, its publish time kept."""
        self.versions.pop(version, None)
        self.removed.add(version)
        self.time["modified"] = iso_z(ms, True)
        for tag, v in list(self.tags.items()):
            if v == version:
                same = [x for x in self.versions if major(x) == major(version) and not prerelease(x)]
                rest = [x for x in self.versions if not prerelease(x)] or list(self.versions)
                if same or rest:
                    self.tags[tag] = max(same or rest, key=vkey)
                else:
                    del self.tags[tag]

    def packument(self) -> dict:
        return {
            "_id": self.name,
            "_rev": f"{self.rev}-{hexs(32)}",
            "name": self.name,
            "description": self.desc,
            "dist-tags": dict(self.tags),
            "versions": {
                v: copy.deepcopy(self.versions[v]) for v in sorted(self.versions, key=lambda v: self.time[v])
            },
            "time": dict(self.time),
            "maintainers": [{"name": n, "email": e} for n, e in self.maintainers],
            "license": "MIT",
            "readmeFilename": "README.md",
        }

    def best(self, maj: int | None) -> str | None:
        """What `npm install name@^maj` (or latest) resolves to now."""
        if maj is None:
            return self.tags.get("latest")
        cands = [v for v in self.versions if major(v) == maj and not prerelease(v)]
        return max(cands, key=vkey) if cands else None


def vkey(v: str):
    core, _, pre = v.partition("-")
    nums = tuple(int(x) for x in core.split("."))
    return nums, (0 if pre else 1), pre


def major(v: str) -> int:
    return int(v.split(".")[0])


def prerelease(v: str) -> bool:
    return "-" in v


PKGS: dict[str, Pkg] = {}


def pkg(name, *a, **kw) -> Pkg:
    p = Pkg(name, *a, **kw)
    PKGS[name] = p
    return p


def born(p: Pkg, ms: int) -> None:
    """The package's first publish (older than the versions its document still lists)."""
    p.created_ms = ms
    p.time["created"] = iso_z(ms, True)


def history(p: Pkg, versions, start_ms, end_ms, publisher_fn, provenance_fn=lambda v, i: False, deps=None):
    """Pre-window releases at spread-out times."""
    n = len(versions)
    for i, v in enumerate(versions):
        ms = start_ms + (end_ms - start_ms) * i // max(1, n - 1) + rng.randint(0, 6 * HOUR)
        p.add(ms, v, publisher_fn(v, i), provenance_fn(v, i), deps=deps)


# label of an install of a given package version (special versions only)
VERSION_LABEL: dict[tuple[str, str], str] = {}


# ----------------------------------------------------------------------------------------------- output builders
def hook_publish(ms: int, p: Pkg, version: str, label: str) -> None:
    if p.hook is None:
        return
    body = {
        "event": "package:publish",
        "name": p.name,
        "type": p.hook_type,
        "version": version,
        "hookOwner": {"username": p.hook.hook_owner},
        "payload": p.packument(),
        "change": {"version": version},
        "time": ms,
    }
    sig = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    emit(
        ms + rng.randint(800, 6000),
        "audit.registry",
        p.name,
        {"x-npm-signature": f"sha256={sig}", "Content-Type": "application/json"},
        body,
        label,
    )


def vd_line(
    ms, org: Org, user, ip, method, url, status, out_bytes, in_bytes=0, key=None, label="benign:ordinary"
):
    err = (
        None
        if status < 400
        else {
            404: "not found",
            409: "this package is already present",
            403: "user is not allowed to publish package",
        }.get(status, "error")
    )
    msg = "@{status}, user: @{user}(@{remoteIP}), req: '@{request.method} @{request.url}', " + (
        "error: @{!error}" if err else "bytes: @{bytes.in}/@{bytes.out}"
    )
    body = {
        "level": 30 if status < 400 else 40,
        "time": ms,
        "pid": org.vd_pid,
        "hostname": org.vd_host,
        "sub": "out",
        "request": {"method": method, "url": url},
        "user": user,
        "remoteIP": ip,
        "status": status,
        "error": err,
        "bytes": {"in": in_bytes, "out": out_bytes},
        "msg": msg,
    }
    emit(ms, "audit.registry", key or url, {}, body, label)


def gh_repo_obj(r: Repo, push: bool = False, at_ms: int | None = None) -> dict:
    o = r.org
    pushed = at_ms or r.pushed_ms
    return {
        "id": r.rid,
        "name": r.name,
        "full_name": r.full,
        "private": r.private,
        "owner": {"login": o.login, "id": o.id, "type": "Organization"},
        "html_url": f"https://github.com/{r.full}",
        "fork": False,
        "pushed_at": pushed // 1000 if push else iso_z(pushed),
        "default_branch": "main",
        "visibility": "private" if r.private else "public",
    }


def gh_org_obj(o: Org) -> dict:
    return {"login": o.login, "id": o.id}


def gh_emit(ms: int, r: Repo, event: str, body: dict, label: str) -> None:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": uid(), "X-GitHub-Hook-ID": str(r.org.hook_id)}
    emit(ms, "audit.ci", r.full, headers, body, label)


# ----------------------------------------------------------------------------------------------- repositories
class Repo:
    def __init__(
        self,
        org,
        name,
        desc,
        deps,
        package=None,
        lock=True,
        private=False,
        release_wf=None,
        release_name="Release",
        jobs=("test",),
        runners="hosted",
        push_rate=1.5,
        from_day=0,
        deploy=False,
        nightly=None,
    ):
        self.org, self.name, self.desc, self.deps = ORGS[org], name, desc, deps  # deps: [(pkg, major|None)]
        self.full = f"{self.org.login}/{name}"
        self.rid = rng.randint(600_000_000, 980_000_000)
        self.node = node_id("R_kgDO")
        self.package, self.lock, self.private = package, lock, private
        self.release_wf, self.release_name = release_wf, release_name
        self.jobs, self.runners, self.push_rate = list(jobs), runners, push_rate
        self.from_day, self.deploy, self.nightly = from_day, deploy, nightly
        self.ci_wf_id = rng.randint(60_000_000, 99_000_000)
        self.rel_wf_id = rng.randint(60_000_000, 99_000_000)
        self.run_number = rng.randint(300, 4000)
        self.pr_number = rng.randint(120, 900)
        self.head = hexs(40)
        self.pushed_ms = T(0)
        self.locks: dict[str, str] = {}
        self.open_prs: dict[str, int] = {}

    def next_pr(self) -> int:
        self.pr_number += 1
        return self.pr_number


# ----------------------------------------------------------------------------------------------- Verdaccio users
class VdUser:
    def __init__(self, org, user, subnet, new_subnet=None, switch_ms=None):
        self.org, self.user, self.subnet = ORGS[org], user, subnet
        self.new_subnet, self.switch_ms = new_subnet, switch_ms

    def ip(self, ms: int) -> tuple[str, bool]:
        """Client address at ms, and whether it is the new address within its first 48 h."""
        if self.switch_ms is not None and ms >= self.switch_ms:
            return f"{self.new_subnet}.{rng.randint(10, 250)}", ms < self.switch_ms + 2 * DAY
        return f"{self.subnet}.{rng.randint(10, 60)}", False


VD = {
    "nw": VdUser("nw", "ci-northwind", "10.0.3", "10.42.17", T(9, 8, 0)),  # ARC runner pool from Wed 15 Apr
    "hd": VdUser("hd", "ci-heliodyne", "10.8.1"),
    "hd-deploy": VdUser("hd", "deploy-heliodyne", "10.8.2"),
    "qw": VdUser("qw", "ci-quarry", "172.16.5", "172.31.64", T(14, 6, 0)),  # new runner VPC from Mon 20 Apr
}
CI_USER = {"nw": VD["nw"], "hd": VD["hd"], "qw": VD["qw"]}


def install_label(p: Pkg, version: str, new_addr: bool, ms: int) -> str:
    special = VERSION_LABEL.get((p.name, version))
    if special and special.startswith("attack:"):
        return special
    if new_addr:
        return "benign:new_runner_or_address"
    if special == "benign:first_release_new_package":
        # a brand-new package's first day of installs
        return special if ms - p.created_ms < DAY else "benign:ordinary"
    return special or "benign:ordinary"


def install_tree(
    ms: int, vu: VdUser, p: Pkg, version: str, seen: set, packument_first: bool, addr=None
) -> int:
    """One `npm install` of p@version through the proxy (and what it pulls in); returns the time after it.
    `addr` is the (ip, new) of the machine running the install: one runner per install."""
    if (p.name, version) in seen or version not in p.versions:
        return ms
    seen.add((p.name, version))
    ip, new_addr = addr or vu.ip(ms)
    if packument_first and rng.random() < 0.35:  # otherwise npm's own cache answered (no proxy request)
        vd_line(
            ms,
            vu.org,
            vu.user,
            ip,
            "GET",
            "/" + p.name.replace("/", "%2f"),
            200,
            rng.randint(9_000, 90_000),
            key=p.name,
            label="benign:new_runner_or_address" if new_addr else "benign:ordinary",
        )
        ms += rng.randint(40, 400)
    size = p.versions[version]["dist"]["unpackedSize"] // 3
    vd_line(
        ms,
        vu.org,
        vu.user,
        ip,
        "GET",
        p.tarball_path(version),
        200,
        size,
        key=p.name,
        label=install_label(p, version, new_addr, ms),
    )
    ms += rng.randint(30, 500)
    for dep in sorted(p.versions[version]["dependencies"]):
        dp = PKGS.get(dep)
        if dp is None:
            continue
        rng_major = p.versions[version]["dependencies"][dep].lstrip("^~")
        dv = dp.best(major(rng_major)) or dp.best(None)
        if dv:
            ms = install_tree(ms, vu, dp, dv, seen, packument_first, (ip, new_addr))
    return ms


def resolve(r: Repo, name: str, maj: int | None, update: bool = False) -> str | None:
    p = PKGS[name]
    cur = p.best(maj)
    if not r.lock or update:
        return cur
    locked = r.locks.get(name)
    if locked is None or (locked in p.removed and cur):
        r.locks[name] = cur
        locked = cur
    return locked


def ci_install(ms: int, r: Repo, vu: VdUser, override: dict | None = None, update_all: bool = False) -> None:
    seen: set = set()
    t = ms
    addr = vu.ip(ms)
    for name, maj in r.deps:
        p = PKGS[name]
        if p.created_ms is None or p.created_ms > ms:
            continue
        v = (override or {}).get(name) or resolve(r, name, maj, update=update_all)
        if v is None or v not in p.versions:
            continue
        t = install_tree(t, vu, p, v, seen, packument_first=not r.lock, addr=addr)
        if update_all and r.lock:
            r.locks[name] = v


# ----------------------------------------------------------------------------------------------- GitHub runs
def runner_for(r: Repo, ms: int) -> tuple[str, list, int, str, bool]:
    """runner_name, labels, runner_group_id, runner_group_name, new (first 48 h of a new pool)."""
    if r.runners == "hd-selfhosted":
        if ms >= T(14, 14, 0):  # Heliodyne moves CI to a new arm64 self-hosted pool on Mon 20 Apr
            return (
                f"hd-arm64-runner-{rng.randint(1, 6):02d}",
                ["self-hosted", "linux", "ARM64"],
                4,
                "arm64-pool",
                ms < T(14, 14, 0) + 2 * DAY,
            )
        return (
            f"hd-x64-runner-{rng.randint(1, 4):02d}",
            ["self-hosted", "linux", "X64"],
            3,
            "x64-pool",
            False,
        )
    return (f"GitHub Actions {rng.randint(2, 1000)}", ["ubuntu-latest"], 2, "GitHub Actions", False)


def wf_run(
    ms,
    r: Repo,
    *,
    path,
    wname,
    wf_id,
    event,
    branch,
    actor,
    label,
    jobs=None,
    sha=None,
    install=True,
    install_override=None,
    update_all=False,
    conclusion="success",
    vu=None,
    fork_repo=None,
    title=None,
    pr=None,
    job_label=None,
    gate=None,
) -> int:
    """A GitHub Actions run: workflow_run completed, and workflow_job completed per job.
    Returns the completion time. `gate` (a callable) is called at the time the publish job reaches the gate."""
    r.run_number += 1
    run_id = gh_num()
    sha = sha or hexs(40)
    jobs = jobs or r.jobs
    t0 = ms
    head_repo = fork_repo or {"id": r.rid, "full_name": r.full, "name": r.name, "fork": False}
    run = {
        "id": run_id,
        "name": wname,
        "head_branch": branch,
        "head_sha": sha,
        "path": path,
        "display_title": title or f"{wname} #{r.run_number}",
        "run_number": r.run_number,
        "event": event,
        "status": "queued",
        "conclusion": None,
        "workflow_id": wf_id,
        "html_url": f"https://github.com/{r.full}/actions/runs/{run_id}",
        "pull_requests": (
            [{"number": pr, "head": {"ref": branch}, "base": {"ref": "main"}}] if pr and not fork_repo else []
        ),
        "created_at": iso_z(t0),
        "updated_at": iso_z(t0),
        "run_attempt": 1,
        "run_started_at": iso_z(t0),
        "actor": gh_user(actor),
        "triggering_actor": gh_user(actor),
        "head_commit": {
            "id": sha,
            "message": title or "chore: update",
            "timestamp": iso_z(t0 - rng.randint(5, 300) * 1000),
            "author": {"name": actor, "email": email_of(actor)},
        },
        "repository": {"id": r.rid, "full_name": r.full, "name": r.name},
        "head_repository": head_repo,
    }
    common = {"repository": gh_repo_obj(r), "organization": gh_org_obj(r.org), "sender": gh_user(actor)}
    # (the webhook bridge forwards the `completed` deliveries of workflow_run and workflow_job only)
    t = t0 + rng.randint(4, 25) * 1000
    for i, jname in enumerate(jobs):
        rname, labels, gid, gname, new_runner = runner_for(r, t)
        jl = (
            "benign:new_runner_or_address"
            if new_runner and label == "benign:ordinary"
            else (job_label or label)
        )
        job_id = gh_num()
        start = t + rng.randint(2, 40) * 1000
        dur = rng.randint(40, 420) * 1000
        job = {
            "id": job_id,
            "run_id": run_id,
            "run_attempt": 1,
            "node_id": node_id("CR_kwDO"),
            "head_sha": sha,
            "head_branch": branch,
            "workflow_name": wname,
            "name": jname,
            "status": "in_progress",
            "conclusion": None,
            "created_at": iso_z(t),
            "started_at": iso_z(start),
            "completed_at": None,
            "labels": labels,
            "runner_id": rng.randint(1, 900),
            "runner_name": rname,
            "runner_group_id": gid,
            "runner_group_name": gname,
            "steps": [
                {
                    "name": "Set up job",
                    "status": "completed",
                    "conclusion": "success",
                    "number": 1,
                    "started_at": iso_z(start),
                    "completed_at": iso_z(start + 2000),
                }
            ],
        }
        cache_miss = not r.lock or install_override or update_all or rng.random() < 0.25
        if i == 0 and install and vu is not None and cache_miss:
            at(
                start + rng.randint(8, 30) * 1000,
                lambda ts, r=r, vu=vu, o=install_override, u=update_all: ci_install(ts, r, vu, o, u),
            )
        if gate is not None and i == len(jobs) - 1:
            at(start + rng.randint(35, 90) * 1000, gate, run_id, sha)
        end = start + dur
        job.update({"status": "completed", "conclusion": conclusion, "completed_at": iso_z(end)})
        job["steps"] = [
            {
                "name": "Run " + jname,
                "status": "completed",
                "conclusion": conclusion,
                "number": 2,
                "started_at": iso_z(start + 2000),
                "completed_at": iso_z(end - 1000),
            }
        ]
        gh_emit(
            end + rng.randint(200, 1500),
            r,
            "workflow_job",
            {"action": "completed", "workflow_job": job, **common},
            jl,
        )
        t = end if path.endswith(("release.yml", "publish.yml")) else t + rng.randint(1, 5) * 1000
    t_end = max(t, t0 + 60_000) + rng.randint(2, 20) * 1000
    run.update({"status": "completed", "conclusion": conclusion, "updated_at": iso_z(t_end)})
    gh_emit(
        t_end + rng.randint(200, 2000),
        r,
        "workflow_run",
        {
            "action": "completed",
            "workflow_run": run,
            "workflow": {"id": wf_id, "name": wname, "path": path, "state": "active"},
            **common,
        },
        label,
    )
    return t_end


def push_event(ms, r: Repo, *, ref, actor, message, label, sha=None, created=False):
    before, sha = r.head, sha or hexs(40)
    if ref == "refs/heads/main":
        r.head = sha
    r.pushed_ms = ms
    commit = {
        "id": sha,
        "distinct": True,
        "message": message,
        "timestamp": iso_z(ms - 4000),
        "author": {"name": actor, "email": email_of(actor), "username": actor},
        "added": [],
        "removed": [],
        "modified": [
            rng.choice(
                [
                    "src/index.ts",
                    "package.json",
                    "package-lock.json",
                    "src/client.ts",
                    "README.md",
                    "test/app.test.ts",
                ]
            )
        ],
    }
    body = {
        "ref": ref,
        "before": "0" * 40 if created else before,
        "after": sha,
        "created": created,
        "deleted": False,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{r.full}/compare/{before[:12]}...{sha[:12]}",
        "commits": [commit],
        "head_commit": commit,
        "repository": gh_repo_obj(r, push=True, at_ms=ms),
        "pusher": {"name": actor, "email": email_of(actor)},
        "organization": gh_org_obj(r.org),
        "sender": gh_user(actor),
    }
    gh_emit(ms + rng.randint(300, 1500), r, "push", body, label)
    return sha


def pr_event(
    ms, r: Repo, *, action, number, actor, title, branch, label, fork_owner=None, merged=False, sha=None
):
    head_full = f"{fork_owner}/{r.name}" if fork_owner else r.full
    prb = {
        "url": f"https://api.github.com/repos/{r.full}/pulls/{number}",
        "id": gh_num(),
        "node_id": node_id("PR_kwDO"),
        "html_url": f"https://github.com/{r.full}/pull/{number}",
        "number": number,
        "state": "closed" if action == "closed" else "open",
        "locked": False,
        "title": title,
        "user": gh_user(actor),
        "body": None if actor in BOTS else "",
        "created_at": iso_z(ms),
        "updated_at": iso_z(ms),
        "closed_at": iso_z(ms) if action == "closed" else None,
        "merged_at": iso_z(ms) if merged else None,
        "draft": False,
        "merged": merged,
        "head": {
            "label": f"{(fork_owner or r.org.login)}:{branch}",
            "ref": branch,
            "sha": sha or hexs(40),
            "repo": {"id": gh_num(), "full_name": head_full, "name": r.name, "fork": bool(fork_owner)},
        },
        "base": {
            "label": f"{r.org.login}:main",
            "ref": "main",
            "sha": r.head,
            "repo": {"id": r.rid, "full_name": r.full, "name": r.name, "fork": False},
        },
        "labels": [{"name": "dependencies"}] if actor in BOTS else [],
        "author_association": "CONTRIBUTOR" if fork_owner else ("NONE" if actor in BOTS else "MEMBER"),
    }
    body = {
        "action": action,
        "number": number,
        "pull_request": prb,
        "repository": gh_repo_obj(r),
        "organization": gh_org_obj(r.org),
        "sender": gh_user(actor),
    }
    gh_emit(ms + rng.randint(300, 1500), r, "pull_request", body, label)


def release_event(ms, r: Repo, tag, label, actor="github-actions[bot]", prerelease_=False):
    rid = gh_num()
    body = {
        "action": "published",
        "release": {
            "url": f"https://api.github.com/repos/{r.full}/releases/{rid}",
            "id": rid,
            "node_id": node_id("RE_kwDO"),
            "html_url": f"https://github.com/{r.full}/releases/tag/{tag}",
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "draft": False,
            "prerelease": prerelease_,
            "created_at": iso_z(ms - 30_000),
            "published_at": iso_z(ms),
            "author": gh_user(actor),
            "assets": [],
            "body": f"Release {tag}",
        },
        "repository": gh_repo_obj(r),
        "organization": gh_org_obj(r.org),
        "sender": gh_user(actor),
    }
    gh_emit(ms + rng.randint(300, 1500), r, "release", body, label)


# ----------------------------------------------------------------------------------------------- packs and the gate
def npm_filename(name: str, version: str) -> str:
    return name.lstrip("@").replace("/", "-") + f"-{version}.tgz"


def pack(name, version, files) -> dict:
    unpacked = sum(s for _, s in files)
    ratio = 0.0
    for path, s in files:
        ratio += s * (0.22 if path.endswith(".map") else 0.05 if path.endswith((".png", ".woff2")) else 0.30)
    return {
        "id": f"{name}@{version}",
        "name": name,
        "version": version,
        "size": int(ratio) + 512,
        "unpackedSize": unpacked,
        "shasum": hexs(40),
        "integrity": "sha512-" + b64(64),
        "filename": npm_filename(name, version),
        "files": [{"path": p, "size": s, "mode": 493 if p.startswith("bin/") else 420} for p, s in files],
        "entryCount": len(files),
        "bundled": [],
    }


WORKFLOW_NAMES = {
    "ci.yml": "CI",
    "release.yml": "Release",
    "publish.yml": "Publish",
    "preview.yml": "Preview",
}


def gate_request(
    ms,
    *,
    repository,
    workflow_path,
    ref,
    event_name,
    actor,
    pk: dict,
    run_id,
    sha,
    label,
    tag="latest",
    run_attempt=1,
    head_ref="",
    base_ref="",
    extra=None,
):
    owner = repository.split("/")[0]
    gh = {
        "repository": repository,
        "repository_owner": owner,
        "workflow": WORKFLOW_NAMES.get(workflow_path.rsplit("/", 1)[-1], "Release"),
        "workflow_ref": f"{repository}/{workflow_path}@{ref}",
        "job": "publish",
        "run_id": str(run_id),
        "run_number": str(rng.randint(40, 900)),
        "run_attempt": str(run_attempt),
        "actor": actor,
        "triggering_actor": actor,
        "event_name": event_name,
        "ref": ref,
        "ref_name": ref.split("/", 2)[-1],
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch",
        "head_ref": head_ref,
        "base_ref": base_ref,
        "sha": sha,
        "server_url": "https://github.com",
    }
    gh.update(extra or {})
    body = {
        "gate": "npm-publish",
        "request_id": uid(),
        "requested_at": iso_z(ms),
        "registry": "https://registry.npmjs.org/",
        "tag": tag,
        "access": "public",
        "github": gh,
        "pack": pk,
    }
    emit(
        ms,
        "audit.ci",
        repository,
        {"Content-Type": "application/json", "User-Agent": "npm-publish-gate-action/1.4.2"},
        body,
        label,
    )


# The normal file list of each of our packages, parameterised by a size factor.
def files_cli(f=1.0):
    return [
        ("package.json", 1912),
        ("README.md", 14220),
        ("LICENSE", 1089),
        ("bin/nw.js", 312),
        ("dist/cli.js", int(3_050_000 * f)),
        ("dist/vendor/worker.js", int(410_000 * f)),
        ("dist/vendor/yoga.wasm", 88_140),
    ]


def files_sdk(f=1.0):
    return [
        ("package.json", 2411),
        ("README.md", 22104),
        ("LICENSE", 1089),
        ("dist/index.js", int(182_000 * f)),
        ("dist/index.mjs", int(176_500 * f)),
        ("dist/index.d.ts", int(61_200 * f)),
        ("dist/index.d.ts.map", int(18_400 * f)),
        ("dist/resources/orders.d.ts", 8_812),
        ("dist/resources/orders.d.ts.map", 2_301),
        ("examples/.env.example", 214),
        ("examples/server/index.mjs", 1_980),
    ]


def files_storefront(f=1.0):
    return [
        ("package.json", 3020),
        ("README.md", 9_800),
        ("LICENSE", 1071),
        ("dist/storefront.es.js", int(905_000 * f)),
        ("dist/storefront.umd.js", int(612_000 * f)),
        ("dist/style.css", int(121_000 * f)),
        ("dist/index.d.ts", int(47_900 * f)),
    ]


def files_checkout(f=1.0):
    return [
        ("package.json", 2210),
        ("README.md", 11_300),
        ("LICENSE", 1071),
        ("dist/cjs/index.js", int(96_000 * f)),
        ("dist/esm/index.js", int(94_500 * f)),
        ("dist/types/index.d.ts", int(22_100 * f)),
        ("dist/types/index.d.ts.map", int(6_900 * f)),
        ("dist/types/payment.d.ts", 5_410),
        ("dist/types/payment.d.ts.map", 1_720),
        (".env.example", 388),
    ]


def files_quarry(f=1.0):
    fl = [
        ("package.json", 1650),
        ("README.md", 18_900),
        ("LICENSE", 1064),
        ("bin/quarry.js", 418),
        (".env.example", 302),
    ]
    fl += [
        (f"lib/{n}.js", int(rng.randint(2_000, 21_000) * f))
        for n in ("index", "config", "walk", "report", "rules", "cache", "fix", "format", "cli", "plugins")
    ]
    return fl


def files_lint(f=1.0):
    return [
        ("package.json", 1210),
        ("README.md", 6_400),
        ("LICENSE", 1064),
        ("index.js", 3_210),
        ("rules/base.js", int(9_800 * f)),
        ("rules/typescript.js", int(7_700 * f)),
        ("rules/react.js", 5_120),
    ]


def files_icons(f=1.0, n=48):
    return [
        ("package.json", 1402),
        ("README.md", 3_100),
        ("LICENSE", 1089),
        ("dist/icons.js", int(380_000 * f)),
        ("dist/icons.d.ts", 21_000),
    ] + [
        (f"svg/{w}.svg", rng.randint(300, 1900))
        for w in (
            "arrow-left",
            "arrow-right",
            "check",
            "close",
            "cloud",
            "download",
            "edit",
            "filter",
            "home",
            "info",
            "lock",
            "menu",
            "search",
            "star",
            "trash",
            "upload",
            "user",
            "warning",
        )[: n // 3]
    ]


def files_telemetry(f=1.0, maps=False):
    return [
        ("package.json", 1180),
        ("README.md", 4_120),
        ("LICENSE", 1064),
        ("dist/index.js", int(24_000 * f)),
        ("dist/index.mjs", int(23_400 * f)),
        ("dist/index.d.ts", 3_900),
    ] + ([("dist/index.d.ts.map", 1_310)] if maps else [])


def files_analytics(f=1.0, maps=False):
    return [
        ("package.json", 1340),
        ("README.md", 5_020),
        ("LICENSE", 1071),
        ("dist/index.js", int(102_000 * f)),
        ("dist/index.d.ts", 7_800),
    ] + ([("dist/index.d.ts.map", 2_950)] if maps else [])


def has_example_files(files) -> bool:
    return any(p.endswith((".d.ts.map", ".env.example")) for p, _ in files)


# ----------------------------------------------------------------------------------------------- the world
def build_world() -> dict[str, Repo]:
    nw, hd, qw = ORGS["nw"], ORGS["hd"], ORGS["qw"]

    # Third-party packages we depend on, each with a package hook of one organisation.
    k = pkg(
        "kestrel-http",
        "Promise based HTTP client for the browser and node.js",
        [("rvance", "r.vance@kestrel-http.dev"), ("mhollis", "mhollis@fastmail.com")],
        hook=nw,
        base_size=480_000,
    )
    hist2 = [
        f"2.{m}.{p}"
        for m, p in [(5, 0), (5, 1), (6, 0), (6, 1), (6, 2), (7, 0), (7, 1), (8, 0), (8, 1), (8, 2)]
    ]
    hist1 = ["1.19.2", "1.19.3", "1.19.4", "1.19.5"]
    history(
        k,
        hist1,
        D(2025, 6, 2),
        D(2026, 2, 10),
        lambda v, i: tp_user() if i >= 1 else {"name": "rvance", "email": "r.vance@kestrel-http.dev"},
        lambda v, i: i >= 1,
        deps={"follow-redirects": "^1.15.6"},
    )
    history(
        k,
        hist2,
        D(2025, 4, 14),
        D(2026, 3, 19),
        lambda v, i: tp_user() if i >= 3 else {"name": "rvance", "email": "r.vance@kestrel-http.dev"},
        lambda v, i: i >= 3,
        deps={"follow-redirects": "^1.15.6", "form-data": "^4.0.0", "proxy-from-env": "^1.1.0"},
    )
    born(k, D(2016, 8, 29, 14, 2, 11))
    k.tags["legacy"] = "1.19.5"
    k.tags["latest"] = "2.8.2"

    y = pkg(
        "yamlette",
        "A fast YAML 1.2 parser and stringifier",
        [("okonkwo", "chidi@okonkwo.dev"), ("mlindqvist", "m.lindqvist@fastmail.se")],
        hook=hd,
        base_size=96_000,
    )
    ypub = {
        "okonkwo": {"name": "okonkwo", "email": "chidi@okonkwo.dev"},
        "mlindqvist": {"name": "mlindqvist", "email": "m.lindqvist@fastmail.se"},
    }
    yh = ["3.0.0", "3.0.1", "3.1.0", "3.1.1", "3.2.0", "3.2.1", "3.2.2", "3.3.0", "3.3.1"]
    history(
        y,
        yh,
        D(2024, 9, 2),
        D(2026, 3, 25),
        lambda v, i: (
            ypub[("okonkwo", "mlindqvist")[(i + rng.randint(0, 1)) % 2]]
            if i % 3 == 2
            else ypub[("okonkwo", "mlindqvist")[i % 2]]
        ),
    )
    born(y, D(2019, 2, 11, 9, 30))

    c = pkg(
        "@pixelsmith/colorparse",
        "Parse and convert CSS colours",
        [("tanvir.r", "tanvir@pixelsmith.dev"), ("jo-ellis", "jo@ellis.works")],
        hook=qw,
        base_size=31_000,
    )
    cpub = {
        "tanvir.r": {"name": "tanvir.r", "email": "tanvir@pixelsmith.dev"},
        "jo-ellis": {"name": "jo-ellis", "email": "jo@ellis.works"},
    }
    history(
        c,
        ["2.0.0", "2.0.1", "2.0.2", "2.1.0", "2.1.1", "2.1.2"],
        D(2025, 1, 20),
        D(2026, 3, 28),
        lambda v, i: cpub[("jo-ellis", "tanvir.r")[i % 2]],
    )
    born(c, D(2021, 6, 3, 16, 0))

    td = pkg(
        "tempo-datefmt",
        "Tiny date formatting with locale support",
        [("aurelie.b", "aurelie@tempo-js.org")],
        hook=hd,
        hook_type="owner",
        base_size=58_000,
    )
    history(
        td,
        ["4.1.0", "4.1.1", "4.2.0", "4.2.1", "4.2.2", "4.3.0"],
        D(2025, 2, 3),
        D(2026, 3, 20),
        lambda v, i: {"name": "aurelie.b", "email": "aurelie@tempo-js.org"},
    )
    born(td, D(2018, 4, 19, 10, 12))
    pkg(
        "tempo-locale-data",
        "Locale tables for tempo",
        [("aurelie.b", "aurelie.b@tutamail.com")],
        hook=hd,
        hook_type="owner",
        base_size=19_000,
    )

    sp = pkg(
        "strpad-utils",
        "String padding, truncation and alignment helpers",
        [("kjetil.h", "kjetil@hagen.no")],
        hook=qw,
        base_size=12_000,
    )
    history(
        sp,
        ["2.3.0", "2.3.1", "3.0.0", "3.0.1", "3.0.2", "3.0.3"],
        D(2023, 5, 1),
        D(2026, 2, 12),
        lambda v, i: {"name": "kjetil.h", "email": "kjetil@hagen.no"},
    )
    born(sp, D(2017, 1, 8, 20, 40))

    gw = pkg(
        "globwalk-fast",
        "Fast recursive glob matching",
        [("m-ostergaard", "mo@ostergaard.io")],
        hook=nw,
        base_size=27_000,
    )
    history(
        gw,
        ["4.9.0", "5.0.0", "5.0.1", "5.0.2"],
        D(2025, 3, 3),
        D(2026, 3, 11),
        lambda v, i: {"name": "m-ostergaard", "email": "mo@ostergaard.io"},
    )
    ut = pkg("uuid-tiny", "RFC 9562 UUIDs, small", [("sbk", "sbk@uuid-tiny.org")], hook=nw, base_size=14_000)
    history(
        ut,
        ["9.0.0", "9.0.1", "9.0.2"],
        D(2025, 5, 5),
        D(2026, 1, 30),
        lambda v, i: tp_user(),
        lambda v, i: True,
    )
    lr = pkg(
        "lru-memo", "Memoisation with an LRU cache", [("ivan-p", "ivan@petrov.sh")], hook=hd, base_size=22_000
    )
    history(
        lr,
        ["11.0.0", "11.0.1", "11.1.0", "11.1.1"],
        D(2025, 1, 9),
        D(2026, 3, 2),
        lambda v, i: tp_user(),
        lambda v, i: True,
    )
    dp = pkg(
        "dotprop-safe",
        "Get and set nested properties safely",
        [("wyatt.c", "wyatt@cole.codes")],
        hook=hd,
        base_size=9_000,
    )
    history(
        dp,
        ["2.0.4", "2.0.5", "2.0.6", "2.0.7"],
        D(2024, 8, 1),
        D(2026, 2, 26),
        lambda v, i: {"name": "wyatt.c", "email": "wyatt@cole.codes"},
    )
    md = pkg(
        "mdast-slugify",
        "GitHub-style heading slugs for mdast",
        [("remarkable-ops", "ops@remarkable.dev")],
        hook=qw,
        base_size=11_000,
    )
    history(md, ["5.2.0", "6.0.0"], D(2025, 7, 7), D(2026, 2, 2), lambda v, i: tp_user(), lambda v, i: True)
    for p_, when in (
        (gw, D(2019, 10, 2, 8)),
        (ut, D(2017, 3, 14, 12)),
        (lr, D(2015, 11, 30, 22)),
        (dp, D(2020, 7, 1, 9)),
        (md, D(2021, 1, 18, 17)),
    ):
        born(p_, when)
    # The attacker's packages (never hooked) and the dependency-confusion twin of an internal name.
    pkg(
        "hashify-crypto-js",
        "Hashing helpers compatible with crypto-js",
        [("hashify-dev", "hashify.dev@onionmail.org")],
        base_size=33_000,
    )
    pkg(
        "strpad-compat",
        "Compatibility shims for strpad",
        [("pad-maint", "padmaint.ops@gmail.com")],
        base_size=8_000,
    )

    # Our own public packages (scope hooks) and internal, proxy-only packages.
    pkg(
        "@northwind/cli",
        "Northwind command line",
        [("northwind-bot", "npm@northwind.dev")],
        hook=nw,
        hook_type="scope",
        base_size=1_000_000,
    )
    pkg(
        "@northwind/sdk",
        "Northwind API SDK",
        [("northwind-bot", "npm@northwind.dev")],
        hook=nw,
        hook_type="scope",
    )
    pkg(
        "@northwind/icons",
        "Northwind icon set",
        [("northwind-bot", "npm@northwind.dev")],
        hook=nw,
        hook_type="scope",
    )
    pkg(
        "@northwind/build-utils",
        "internal build helpers",
        [("nw-internal-release", "platform@northwind.dev")],
        private=True,
    )
    pkg(
        "@heliodyne/storefront-ui",
        "Heliodyne storefront components",
        [("heliodyne-npm", "npm@heliodyne.com")],
        hook=hd,
        hook_type="scope",
    )
    pkg(
        "@heliodyne/checkout-sdk",
        "Heliodyne checkout SDK",
        [("heliodyne-npm", "npm@heliodyne.com")],
        hook=hd,
        hook_type="scope",
    )
    pkg(
        "@heliodyne/analytics-bridge",
        "Bridge storefront events to analytics",
        [("heliodyne-npm", "npm@heliodyne.com")],
        hook=hd,
        hook_type="scope",
    )
    pkg(
        "hd-pricing-rules", "internal pricing rules", [("hd-release", "platform@heliodyne.com")], private=True
    )
    pkg(
        "quarry-cli",
        "Quarry: a linter runner for monorepos",
        [("quarry-release-bot", "release@quarryworks.org")],
        hook=qw,
        base_size=70_000,
    )
    pkg(
        "@quarryworks/lint-config",
        "Shared lint presets",
        [("quarry-release-bot", "release@quarryworks.org")],
        hook=qw,
        hook_type="scope",
    )
    pkg(
        "@quarryworks/telemetry-lite",
        "Opt-in, anonymous usage counters",
        [("quarry-release-bot", "release@quarryworks.org")],
        hook=qw,
        hook_type="scope",
    )

    # Our packages' pre-window history.
    def ours(name, versions, start, end, trusted=True, user=None):
        p = PKGS[name]
        history(
            p,
            versions,
            start,
            end,
            (lambda v, i: tp_user()) if trusted else (lambda v, i: user),
            (lambda v, i: True) if trusted else (lambda v, i: False),
        )

    ours("@northwind/cli", ["3.4.0", "3.5.0", "3.5.1", "3.6.0"], D(2025, 11, 3), D(2026, 3, 30))
    ours("@northwind/sdk", ["4.9.0", "4.10.0", "4.10.1"], D(2025, 12, 1), D(2026, 3, 26))
    ours("@heliodyne/storefront-ui", ["5.0.0", "5.1.0", "5.1.1", "5.1.2"], D(2025, 10, 6), D(2026, 3, 31))
    ours("@heliodyne/checkout-sdk", ["7.2.0", "7.3.0", "7.3.1"], D(2025, 9, 1), D(2026, 3, 24))
    qbot = {"name": "quarry-release-bot", "email": "release@quarryworks.org"}
    ours(
        "quarry-cli",
        ["1.7.0", "1.8.0", "1.8.4", "1.8.5"],
        D(2025, 8, 1),
        D(2026, 3, 29),
        trusted=False,
        user=qbot,
    )
    ours("@quarryworks/lint-config", ["2.3.0", "2.3.1", "2.4.0"], D(2025, 9, 15), D(2026, 3, 17))
    for name, when in (
        ("@northwind/cli", D(2023, 5, 9, 13)),
        ("@northwind/sdk", D(2022, 10, 3, 9)),
        ("@heliodyne/storefront-ui", D(2023, 2, 20, 15)),
        ("@heliodyne/checkout-sdk", D(2022, 6, 6, 16)),
        ("quarry-cli", D(2021, 9, 12, 19)),
        ("@quarryworks/lint-config", D(2022, 3, 1, 18)),
    ):
        born(PKGS[name], when)
    bu = PKGS["@northwind/build-utils"]
    for v, ms in (("1.7.0", D(2026, 1, 12, 10)), ("1.8.0", D(2026, 3, 2, 11))):
        bu.add(ms, v, {"name": "nw-internal-release", "email": "platform@northwind.dev"}, False)
    pr = PKGS["hd-pricing-rules"]
    for v, ms in (("2.2.0", D(2026, 2, 2, 15)), ("2.3.0", D(2026, 3, 9, 16)), ("2.3.1", D(2026, 3, 30, 14))):
        pr.add(ms, v, {"name": "hd-release", "email": "platform@heliodyne.com"}, False)

    repos = {
        "nw-cli": Repo(
            "nw",
            "nw-cli",
            "Northwind CLI",
            [
                ("kestrel-http", 2),
                ("globwalk-fast", 5),
                ("uuid-tiny", 9),
                ("strpad-utils", 3),
                ("@northwind/build-utils", 1),
            ],
            package="@northwind/cli",
            release_wf=".github/workflows/release.yml",
            jobs=("lint", "test (20.x)"),
            push_rate=1.4,
        ),
        "nw-sdk": Repo(
            "nw",
            "nw-sdk",
            "Northwind API SDK",
            [("kestrel-http", 2), ("lru-memo", 11), ("dotprop-safe", 2), ("@northwind/build-utils", 1)],
            package="@northwind/sdk",
            release_wf=".github/workflows/publish.yml",
            release_name="Publish",
            jobs=("test",),
            push_rate=1.0,
        ),
        "nw-web": Repo(
            "nw",
            "nw-web",
            "northwind.dev website",
            [
                ("@northwind/sdk", 4),
                ("kestrel-http", 2),
                ("mdast-slugify", 6),
                ("yamlette", 3),
                ("tempo-datefmt", 4),
                ("@northwind/icons", 1),
            ],
            private=True,
            jobs=("build",),
            push_rate=1.3,
        ),
        "nw-icons": Repo(
            "nw",
            "nw-icons",
            "Northwind icon set",
            [("globwalk-fast", 5)],
            package="@northwind/icons",
            release_wf=".github/workflows/release.yml",
            jobs=("build",),
            push_rate=0.8,
            from_day=5,
        ),
        "storefront-ui": Repo(
            "hd",
            "storefront-ui",
            "Storefront components",
            [
                ("tempo-datefmt", 4),
                ("@pixelsmith/colorparse", 2),
                ("lru-memo", 11),
                ("kestrel-http", 1),
                ("yamlette", 3),
            ],
            package="@heliodyne/storefront-ui",
            release_wf=".github/workflows/release.yml",
            jobs=("unit",),
            runners="hd-selfhosted",
            push_rate=1.3,
        ),
        "checkout-sdk": Repo(
            "hd",
            "checkout-sdk",
            "Checkout SDK",
            [("kestrel-http", 1), ("uuid-tiny", 9), ("dotprop-safe", 2), ("hd-pricing-rules", 2)],
            package="@heliodyne/checkout-sdk",
            release_wf=".github/workflows/release.yml",
            jobs=("test",),
            runners="hd-selfhosted",
            push_rate=0.8,
        ),
        "hd-platform": Repo(
            "hd",
            "hd-platform",
            "Platform services",
            [
                ("@heliodyne/checkout-sdk", 7),
                ("@heliodyne/storefront-ui", 5),
                ("tempo-datefmt", 4),
                ("yamlette", 3),
                ("hd-pricing-rules", 2),
                ("@heliodyne/analytics-bridge", 1),
            ],
            private=True,
            jobs=("test",),
            runners="hd-selfhosted",
            push_rate=1.6,
            deploy=True,
        ),
        "analytics-bridge": Repo(
            "hd",
            "analytics-bridge",
            "Analytics bridge",
            [("lru-memo", 11), ("uuid-tiny", 9)],
            package="@heliodyne/analytics-bridge",
            release_wf=".github/workflows/release.yml",
            jobs=("test",),
            runners="hd-selfhosted",
            push_rate=0.7,
            from_day=8,
        ),
        "quarry-cli": Repo(
            "qw",
            "quarry-cli",
            "Quarry CLI",
            [
                ("strpad-utils", 3),
                ("yamlette", 3),
                ("globwalk-fast", 5),
                ("@pixelsmith/colorparse", 2),
                ("kestrel-http", 1),
                ("tempo-datefmt", 4),
            ],
            package="quarry-cli",
            lock=False,
            release_wf=".github/workflows/release.yml",
            jobs=("test (node 22)",),
            push_rate=1.1,
            nightly=(2, 30),
        ),
        "lint-config": Repo(
            "qw",
            "lint-config",
            "Shared lint presets",
            [("strpad-utils", 3), ("mdast-slugify", 6)],
            package="@quarryworks/lint-config",
            lock=False,
            release_wf=".github/workflows/release.yml",
            jobs=("test",),
            push_rate=0.9,
        ),
        "telemetry-lite": Repo(
            "qw",
            "telemetry-lite",
            "Opt-in usage counters",
            [("uuid-tiny", 9), ("kestrel-http", 2)],
            package="@quarryworks/telemetry-lite",
            lock=False,
            release_wf=".github/workflows/release.yml",
            jobs=("test",),
            push_rate=0.6,
            from_day=9,
        ),
    }
    return repos


# ----------------------------------------------------------------------------------------------- activity: CI
def ci_path(r):
    return ".github/workflows/ci.yml"


def human_push(ms, r: Repo, actor: str, label="benign:ordinary"):
    msg = rng.choice(
        [
            "fix: handle empty config",
            "feat: add retry option",
            "refactor: split client module",
            "docs: update usage",
            "test: cover edge cases",
            "chore: bump dev dependencies",
            "fix: trailing slash in base URL",
            "perf: cache parsed manifest",
        ]
    )
    update = rng.random() < 0.07
    sha = push_event(ms, r, ref="refs/heads/main", actor=actor, message=msg, label=label)
    end = wf_run(
        ms + rng.randint(2, 6) * 1000,
        r,
        path=ci_path(r),
        wname="CI",
        wf_id=r.ci_wf_id,
        event="push",
        branch="main",
        actor=actor,
        label=label,
        sha=sha,
        vu=CI_USER[r.org.key],
        update_all=update,
        title=msg,
    )
    if r.deploy:
        deploy_run(end + rng.randint(20, 90) * 1000, r, actor, sha)


def deploy_run(ms, r: Repo, actor, sha):
    def tools_install(ts):
        vu = VD["hd-deploy"]
        seen: set = set()
        t = ts
        addr = vu.ip(ts)
        for name, maj in (("hd-pricing-rules", None), ("yamlette", 3), ("@heliodyne/checkout-sdk", 7)):
            p = PKGS[name]
            v = p.best(maj)
            if v:
                t = install_tree(t, vu, p, v, seen, packument_first=True, addr=addr)

    wf_run(
        ms,
        r,
        path=".github/workflows/deploy.yml",
        wname="Deploy",
        wf_id=r.rel_wf_id + 1,
        event="workflow_run",
        branch="main",
        actor=actor,
        label="benign:ordinary",
        jobs=["deploy (production)"],
        sha=sha,
        install=False,
    )
    at(ms + rng.randint(30, 70) * 1000, tools_install)


def human_pr(ms, r: Repo, actor: str, fork_owner=None):
    n = r.next_pr()
    title = rng.choice(
        [
            "Fix typo in README",
            "Add --json output",
            "Support Node 22",
            "Handle 429 with backoff",
            "Improve error message for missing config",
            "Add tests for parser",
        ]
    )
    branch = rng.choice(["fix-typo", "json-output", "node22", "backoff", "errors", "parser-tests"])
    pr_event(
        ms,
        r,
        action="opened",
        number=n,
        actor=actor,
        title=title,
        branch=branch,
        label="benign:ordinary",
        fork_owner=fork_owner,
    )
    fork = (
        {"id": gh_num(), "full_name": f"{fork_owner}/{r.name}", "name": r.name, "fork": True}
        if fork_owner
        else None
    )
    wf_run(
        ms + rng.randint(3, 9) * 1000,
        r,
        path=ci_path(r),
        wname="CI",
        wf_id=r.ci_wf_id,
        event="pull_request",
        branch=branch,
        actor=actor,
        label="benign:ordinary",
        vu=CI_USER[r.org.key],
        fork_repo=fork,
        title=title,
        pr=n,
    )


def schedule_ci(repos: dict[str, Repo]):
    for r in repos.values():
        o = r.org
        for day in range(r.from_day, DAYS):
            wd = weekday(T(day))
            rate = 0.45 * r.push_rate * (1.0 if wd < 5 else (0.35 if o.key == "qw" else 0.05))
            n = sum(1 for _ in range(8) if rng.random() < rate / 8 * 1.3)
            for _ in range(n):
                h0, h1 = o.work if wd < 5 else (10, 20)
                ms = T(day, rng.randint(h0, h1 - 1), rng.randint(0, 59), rng.randint(0, 59))
                actor = rng.choice(list(o.people))
                if rng.random() < 0.35:
                    fork_owner = None
                    if o.key == "qw" and rng.random() < 0.6:
                        actor = rng.choice(["sunil-dev", "pkrause", "aya-nakamura-dev", "hbrandt-oss"])
                        fork_owner = actor
                    at(ms, lambda ts, r=r, a=actor, f=fork_owner: human_pr(ts, r, a, f))
                else:
                    at(ms, lambda ts, r=r, a=actor: human_push(ts, r, a))
            if r.org.key == "qw" and day == 16 and r.name in ("quarry-cli", "lint-config"):
                # a contributors' hack afternoon: a few extra PR runs (they install without a lockfile)
                for hh, mm in ((14, 25), (15, 10), (16, 2), (16, 48)):
                    who = rng.choice(["sunil-dev", "pkrause", "aya-nakamura-dev"])
                    at(T(day, hh, mm + rng.randint(0, 9)), lambda ts, r=r, a=who: human_pr(ts, r, a, a))
            if r.nightly:
                hh, mm = r.nightly
                ms = T(day, hh, mm, rng.randint(0, 40))
                actor = sorted(o.people)[0]
                at(
                    ms,
                    lambda ts, r=r, a=actor: wf_run(
                        ts,
                        r,
                        path=".github/workflows/nightly.yml",
                        wname="Nightly",
                        wf_id=r.ci_wf_id + 7,
                        event="schedule",
                        branch="main",
                        actor=a,
                        label="benign:ordinary",
                        jobs=["e2e"],
                        vu=CI_USER[r.org.key],
                        sha=r.head,
                        title="Nightly",
                    ),
                )


# ----------------------------------------------------------------------------------------------- renovate / dependabot
def renovate_tick(ms, org_key: str, repos: dict[str, Repo], bot: str, max_prs: int = 3):
    for r in repos.values():
        if r.org.key != org_key or not r.lock or ms < T(r.from_day):
            continue
        opened = 0
        for name, maj in r.deps:
            p = PKGS[name]
            if p.created_ms is None or p.created_ms > ms:
                continue
            cur, locked = p.best(maj), r.locks.get(name)
            if locked is None:
                r.locks[name] = cur
                continue
            if cur is None or cur == locked or vkey(cur) < vkey(locked) or r.open_prs.get(name) == cur:
                continue
            if opened >= max_prs:
                break
            opened += 1
            r.open_prs[name] = cur
            t = ms + opened * rng.randint(20, 90) * 1000
            renovate_pr(t, r, bot, name, cur)


def renovate_pr(ms, r: Repo, bot, name, version):
    label = "benign:renovate_bot"
    slug = name.replace("@", "").replace("/", "-")
    branch = (
        f"renovate/{slug}-{major(version)}.x"
        if bot == "renovate[bot]"
        else f"dependabot/npm_and_yarn/{slug}-{version}"
    )
    title = (
        f"fix(deps): update dependency {name} to v{version}"
        if bot == "renovate[bot]"
        else f"Bump {name} from {r.locks.get(name) or 'x'} to {version}"
    )
    sha = push_event(ms, r, ref=f"refs/heads/{branch}", actor=bot, message=title, label=label, created=True)
    n = r.next_pr()
    pr_event(
        ms + 4000, r, action="opened", number=n, actor=bot, title=title, branch=branch, label=label, sha=sha
    )
    end = wf_run(
        ms + rng.randint(6, 15) * 1000,
        r,
        path=ci_path(r),
        wname="CI",
        wf_id=r.ci_wf_id,
        event="pull_request",
        branch=branch,
        actor=bot,
        label=label,
        vu=CI_USER[r.org.key],
        install_override={name: version},
        sha=sha,
        title=title,
        pr=n,
    )
    if bot == "renovate[bot]":
        # automerge once green (the branch is rebased first when main moved)
        t = end + rng.randint(8, 40) * MIN

        def merge(ts, r=r, n=n, name=name, version=version, branch=branch, title=title):
            if (
                PKGS[name].best(major(version)) != version
            ):  # the version disappeared meanwhile: renovate closes it
                pr_event(ts, r, action="closed", number=n, actor=bot, title=title, branch=branch, label=label)
                r.open_prs.pop(name, None)
                return
            if rng.random() < 0.2:
                s2 = push_event(ts, r, ref=f"refs/heads/{branch}", actor=bot, message=title, label=label)
                pr_event(
                    ts + 3000,
                    r,
                    action="synchronize",
                    number=n,
                    actor=bot,
                    title=title,
                    branch=branch,
                    label=label,
                    sha=s2,
                )
                ts = (
                    wf_run(
                        ts + 9000,
                        r,
                        path=ci_path(r),
                        wname="CI",
                        wf_id=r.ci_wf_id,
                        event="pull_request",
                        branch=branch,
                        actor=bot,
                        label=label,
                        vu=CI_USER[r.org.key],
                        install_override={name: version},
                        sha=s2,
                        title=title,
                        pr=n,
                    )
                    + 60_000
                )
            pr_event(
                ts,
                r,
                action="closed",
                number=n,
                actor=bot,
                title=title,
                branch=branch,
                label=label,
                merged=True,
            )
            r.locks[name] = version
            r.open_prs.pop(name, None)
            s3 = push_event(
                ts + 2000, r, ref="refs/heads/main", actor=bot, message=f"{title} (#{n})", label=label
            )
            wf_run(
                ts + 6000,
                r,
                path=ci_path(r),
                wname="CI",
                wf_id=r.ci_wf_id,
                event="push",
                branch="main",
                actor=bot,
                label=label,
                vu=CI_USER[r.org.key],
                sha=s3,
                title=title,
            )

        at(t, merge)


def schedule_bots(repos):
    for day in range(DAYS):
        # Northwind: renovate at night, every night (schedule "at 2am")
        for hh in (2,):
            d = day + 1
            if d < DAYS:
                at(
                    T(d, hh, rng.randint(0, 10), rng.randint(0, 59)),
                    renovate_tick,
                    "nw",
                    repos,
                    "renovate[bot]",
                    2,
                )
        # Heliodyne: renovate on Saturday mornings, and a weekday 06:00 run capped at one PR per repo
        if weekday(T(day)) == 5:
            for hh in (6, 9):
                at(T(day, hh, rng.randint(0, 15)), renovate_tick, "hd", repos, "renovate[bot]", 2)
        elif weekday(T(day)) == 1:
            at(T(day, 6, rng.randint(0, 10)), renovate_tick, "hd", repos, "renovate[bot]", 1)
    # Quarryworks: dependabot, Mondays 05:00, on its package.json ranges (no lockfile): bumps of the range floor
    for day in (0, 7, 14):
        for r in repos.values():
            if r.org.key != "qw" or day < r.from_day:
                continue
            at(T(day, 5, rng.randint(0, 20), rng.randint(0, 59)), dependabot_run, r)


def dependabot_run(ms, r: Repo):
    """Dependabot bumps the floor of package.json ranges (no lockfile): one PR per dependency with a newer release."""
    n = 0
    for name, maj in r.deps:
        p = PKGS[name]
        v = p.best(maj) if p.created_ms is not None and p.created_ms <= ms else None
        if v and v != r.locks.get(name):
            renovate_pr(ms + n * rng.randint(30, 120) * 1000, r, "dependabot[bot]", name, v)
            r.locks[name] = v  # merged by a maintainer later in the week
            n += 1


# ----------------------------------------------------------------------------------------------- releases
def publish_ours(ms, p: Pkg, version, pk, trusted=True, deps=None, label="benign:ordinary", tag="latest"):
    user = tp_user() if trusted else {"name": "quarry-release-bot", "email": "release@quarryworks.org"}
    deps = deps if deps is not None else {}
    p.add(ms, version, user, trusted, deps=deps, unpacked=pk["unpackedSize"], tag=tag)
    p.versions[version]["dist"]["fileCount"] = pk["entryCount"]
    hook_publish(ms, p, version, label)


def release(
    ms,
    r: Repo,
    version,
    files,
    *,
    actor,
    label="benign:ordinary",
    gate_label=None,
    hook_label=None,
    tag="latest",
    publish=True,
    deps=None,
):
    """A tag push -> the release workflow -> the gate request -> npm publish -> the publish hook -> a GitHub release."""
    p = PKGS[r.package]
    ref = f"refs/tags/v{version}"
    sha = push_event(
        ms, r, ref=ref, actor=actor, message=f"chore(release): v{version}", label=label, created=True
    )
    pk = pack(p.name, version, files)

    def gate(ts, run_id, sha_, r=r, pk=pk):
        gate_request(
            ts,
            repository=r.full,
            workflow_path=r.release_wf,
            ref=ref,
            event_name="push",
            actor=actor,
            pk=pk,
            run_id=run_id,
            sha=sha_,
            label=gate_label or label,
            tag=tag,
        )
        if publish:
            at(
                ts + rng.randint(20, 70) * 1000,
                lambda t2: (
                    publish_ours(
                        t2,
                        p,
                        version,
                        pk,
                        trusted=r.package != "quarry-cli",
                        label=hook_label or label,
                        tag=tag,
                        deps={
                            n: f"^{PKGS[n].best(m) or '1.0.0'}"
                            for n, m in r.deps
                            if not PKGS[n].private and PKGS[n].created_ms
                        },
                    ),
                    release_event(
                        t2 + rng.randint(5, 30) * 1000, r, f"v{version}", label, prerelease_=tag != "latest"
                    ),
                ),
            )

    wf_run(
        ms + rng.randint(3, 8) * 1000,
        r,
        path=r.release_wf,
        wname=r.release_name,
        wf_id=r.rel_wf_id,
        event="push",
        branch=f"v{version}",
        actor=actor,
        label=label,
        jobs=["build", "publish"],
        sha=sha,
        install=True,
        vu=CI_USER[r.org.key],
        gate=gate,
        title=f"chore(release): v{version}",
    )


def bad_gate(
    ms,
    r: Repo,
    version,
    files,
    label,
    *,
    repository=None,
    workflow_path=None,
    ref=None,
    event_name="push",
    actor=None,
    tag="latest",
    run_attempt=1,
    head_ref="",
    base_ref="",
    extra=None,
):
    """A gate request that is itself the attack (no publish follows: the request is what is judged)."""
    p = PKGS[r.package]
    gate_request(
        ms,
        repository=repository or r.full,
        workflow_path=workflow_path or r.release_wf,
        ref=ref or f"refs/tags/v{version}",
        event_name=event_name,
        actor=actor or sorted(r.org.people)[0],
        pk=pack(p.name, version, files),
        run_id=gh_num(),
        sha=hexs(40),
        label=label,
        tag=tag,
        run_attempt=run_attempt,
        head_ref=head_ref,
        base_ref=base_ref,
        extra=extra,
    )


def schedule_releases(repos):
    R = repos
    nwp, hdp, qwp = list(ORGS["nw"].people), list(ORGS["hd"].people), list(ORGS["qw"].people)
    OC = "benign:oncall_weekend_release"
    EX = "benign:example_and_typemap_files"
    FR = "benign:first_release_new_package"

    def rel(ms, repo, version, files, actor, **kw):
        at(ms, lambda ts: release(ts, R[repo], version, files, actor=actor, **kw))

    # --- @northwind/cli
    rel(T(1, 13, 10), "nw-cli", "3.6.1", files_cli(1.00), nwp[0])
    rel(T(3, 9, 40), "nw-cli", "3.6.2", files_cli(1.01), nwp[1])
    rel(
        T(4, 5, 20), "nw-cli", "3.6.3", files_cli(1.01), nwp[2], label=OC
    )  # night hotfix after the kestrel advisory
    at(
        T(8, 14, 22),
        lambda ts: bad_gate(
            ts,
            R["nw-cli"],
            "3.7.0",
            files_cli(1.04) + [("dist/cli.js.map", 46_210_554)],
            "attack:sourcemap_release",
            actor=nwp[1],
        ),
    )
    at(
        T(8, 14, 31),
        lambda ts: bad_gate(
            ts,
            R["nw-cli"],
            "3.7.0",
            files_cli(1.04) + [("dist/cli.js.map", 46_210_554)],
            "attack:sourcemap_release",
            actor=nwp[1],
            run_attempt=2,
        ),
    )
    rel(T(8, 15, 5), "nw-cli", "3.7.0", files_cli(1.04), nwp[1])
    rel(T(12, 21, 40), "nw-cli", "3.7.1", files_cli(1.04), nwp[3], label=OC)  # Saturday evening
    at(
        T(16, 8, 15),
        lambda ts: bad_gate(
            ts,
            R["nw-cli"],
            "3.7.2",
            files_cli(1.05) + [("dist/.env.prod.local", 731)],
            "attack:env_file_release",
            actor=nwp[0],
        ),
    )
    rel(T(16, 9, 2), "nw-cli", "3.7.2", files_cli(1.05), nwp[0])
    # --- @northwind/sdk (ships .env.example and .d.ts.map in every release)
    rel(T(0, 12, 0), "nw-sdk", "4.11.0", files_sdk(1.0), nwp[2], gate_label=EX)
    rel(T(3, 14, 20), "nw-sdk", "4.11.1", files_sdk(1.01), nwp[1], gate_label=EX)
    rel(T(7, 11, 0), "nw-sdk", "4.11.2", files_sdk(1.01), nwp[2], gate_label=EX)
    at(
        T(10, 9, 5),
        lambda ts: bad_gate(
            ts,
            R["nw-sdk"],
            "4.12.0",
            files_sdk(1.03) + [("examples/server/.env.development.local", 512)],
            "attack:env_file_release",
            actor=nwp[3],
        ),
    )
    rel(T(10, 9, 50), "nw-sdk", "4.12.0", files_sdk(1.03), nwp[3], gate_label=EX)
    rel(T(14, 12, 30), "nw-sdk", "4.12.1", files_sdk(1.03), nwp[2], gate_label=EX)
    rel(T(15, 13, 0), "nw-sdk", "4.12.2", files_sdk(1.04), nwp[3], gate_label=EX)
    rel(
        T(18, 9, 30),
        "nw-sdk",
        "4.13.1",
        files_sdk(1.06) + [("examples/edge/.env.local.example", 160)],
        nwp[2],
        gate_label=EX,
    )
    rel(
        T(17, 10, 10),
        "nw-sdk",
        "4.13.0",
        files_sdk(1.06) + [("examples/edge/.env.local.example", 160)],
        nwp[1],
        gate_label=EX,
    )
    # --- @northwind/icons: a new package (first release), then ordinary, then a map slips in
    rel(T(7, 8, 30), "nw-icons", "1.0.0", files_icons(1.0), nwp[3], label=FR)
    rel(T(9, 13, 45), "nw-icons", "1.0.1", files_icons(1.0), nwp[3])
    rel(T(13, 20, 10), "nw-icons", "1.0.2", files_icons(1.01), nwp[0], label=OC)  # Sunday
    at(
        T(15, 10, 2),
        lambda ts: bad_gate(
            ts,
            R["nw-icons"],
            "1.1.0",
            files_icons(1.1) + [("dist/icons.js.map", 9_480_112)],
            "attack:sourcemap_release",
            actor=nwp[3],
        ),
    )
    rel(T(15, 10, 40), "nw-icons", "1.1.0", files_icons(1.1), nwp[3])

    # --- @heliodyne/storefront-ui
    rel(T(1, 15, 0), "storefront-ui", "5.1.3", files_storefront(1.0), hdp[0])
    rel(T(3, 19, 0), "storefront-ui", "5.1.4", files_storefront(1.01), hdp[1])
    rel(T(6, 3, 5), "storefront-ui", "5.1.5", files_storefront(1.01), hdp[2], label=OC)  # Sunday 03:05
    at(
        T(9, 14, 40),
        lambda ts: bad_gate(
            ts,
            R["storefront-ui"],
            "5.2.0",
            files_storefront(1.06)
            + [("dist/storefront.umd.js.map", 14_204_331), ("dist/storefront.es.js.map", 15_811_906)],
            "attack:sourcemap_release",
            actor=hdp[0],
        ),
    )
    rel(T(9, 15, 25), "storefront-ui", "5.2.0", files_storefront(1.06), hdp[0])
    rel(
        T(15, 2, 40), "storefront-ui", "5.2.1", files_storefront(1.06), hdp[1], label=OC
    )  # night hotfix (tempo)
    at(
        T(17, 16, 0),
        lambda ts: bad_gate(
            ts,
            R["storefront-ui"],
            "5.2.2",
            files_storefront(1.07) + [(".env.staging.local", 488)],
            "attack:env_file_release",
            actor=hdp[2],
        ),
    )
    rel(T(17, 16, 45), "storefront-ui", "5.2.2", files_storefront(1.07), hdp[2])
    # --- @heliodyne/checkout-sdk (.d.ts.map and .env.example in every release)
    rel(T(2, 17, 30), "checkout-sdk", "7.4.0", files_checkout(1.0), hdp[1], gate_label=EX)
    rel(T(8, 15, 0), "checkout-sdk", "7.4.1", files_checkout(1.01), hdp[0], gate_label=EX)
    at(
        T(14, 14, 10),
        lambda ts: bad_gate(
            ts,
            R["checkout-sdk"],
            "7.5.0",
            files_checkout(1.04) + [(".env.production.local", 612)],
            "attack:env_file_release",
            actor=hdp[1],
        ),
    )
    rel(T(14, 14, 55), "checkout-sdk", "7.5.0", files_checkout(1.04), hdp[1], gate_label=EX)
    rel(T(17, 18, 20), "checkout-sdk", "7.5.1", files_checkout(1.04), hdp[0], gate_label=EX)
    # --- @heliodyne/analytics-bridge: new package
    rel(T(10, 19, 0), "analytics-bridge", "1.0.0", files_analytics(1.0), hdp[2], label=FR)
    at(
        T(16, 17, 12),
        lambda ts: bad_gate(
            ts,
            R["analytics-bridge"],
            "1.0.1",
            files_analytics(1.02) + [("dist/index.js.map", 5_530_870)],
            "attack:sourcemap_release",
            actor=hdp[2],
        ),
    )
    rel(T(16, 17, 50), "analytics-bridge", "1.0.1", files_analytics(1.02, maps=True), hdp[2], gate_label=EX)
    rel(T(18, 15, 30), "analytics-bridge", "1.0.2", files_analytics(1.03, maps=True), hdp[0], gate_label=EX)

    # --- quarry-cli (token publisher)
    rel(T(1, 19, 0), "quarry-cli", "1.8.6", files_quarry(1.0), qwp[0], gate_label=EX)
    rel(T(5, 20, 15), "quarry-cli", "1.8.7", files_quarry(1.0), qwp[1], label=OC)  # Saturday night
    at(
        T(7, 18, 30),
        lambda ts: bad_gate(
            ts,
            R["quarry-cli"],
            "1.9.0-beta.0",
            files_quarry(1.1) + [(".env.local", 377)],
            "attack:env_file_release",
            actor=qwp[0],
            tag="next",
        ),
    )
    rel(T(7, 19, 5), "quarry-cli", "1.9.0-beta.0", files_quarry(1.1), qwp[0], tag="next", gate_label=EX)
    at(
        T(10, 20, 10),
        lambda ts: bad_gate(
            ts,
            R["quarry-cli"],
            "1.9.0-beta.1",
            [(p, s) for p, s in files_quarry(1.1) if not p.startswith("lib/")]
            + [("dist/main.cjs", 1_310_442), ("dist/main.cjs.map", 21_077_090)],
            "attack:sourcemap_release",
            actor=qwp[2],
            tag="next",
        ),
    )
    rel(T(10, 20, 40), "quarry-cli", "1.9.0-beta.1", files_quarry(1.1), qwp[2], tag="next", gate_label=EX)
    rel(T(16, 21, 30), "quarry-cli", "1.8.8", files_quarry(1.0), qwp[1], label=OC)  # night hotfix (strpad)
    rel(T(17, 17, 0), "quarry-cli", "1.9.0", files_quarry(1.12), qwp[0], gate_label=EX)
    # --- @quarryworks/lint-config
    rel(T(3, 16, 0), "lint-config", "2.4.1", files_lint(1.0), qwp[2])
    rel(T(13, 11, 0), "lint-config", "2.4.2", files_lint(1.0), qwp[1], label=OC)  # Sunday
    at(
        T(15, 18, 45),
        lambda ts: bad_gate(
            ts,
            R["lint-config"],
            "2.5.0",
            files_lint(1.05) + [(".env.production", 905)],
            "attack:env_file_release",
            actor=qwp[2],
        ),
    )
    rel(T(15, 19, 20), "lint-config", "2.5.0", files_lint(1.05), qwp[2])
    # --- @quarryworks/telemetry-lite: new package, its release workflow never registered in the inventory
    rel(T(9, 16, 20), "telemetry-lite", "0.1.0", files_telemetry(1.0), qwp[1], label=FR)
    rel(T(11, 15, 0), "telemetry-lite", "0.1.1", files_telemetry(1.02, maps=True), qwp[1], gate_label=EX)

    VERSION_LABEL[("@northwind/icons", "1.0.0")] = FR
    VERSION_LABEL[("@heliodyne/analytics-bridge", "1.0.0")] = FR
    VERSION_LABEL[("@quarryworks/telemetry-lite", "0.1.0")] = FR

    # --- fork / unexpected workflow / repository / branch (gate requests that are the attack)
    FU = "attack:fork_or_unexpected_workflow_release"
    at(
        T(11, 13, 44),
        lambda ts: bad_gate(
            ts,
            R["nw-sdk"],
            "4.12.1",
            files_sdk(1.03),
            FU,
            workflow_path=".github/workflows/ci.yml",
            ref="refs/pull/413/merge",
            event_name="pull_request",
            actor="e-vostrikov",
            head_ref="docs-typo",
            base_ref="main",
        ),
    )
    at(
        T(12, 3, 12),
        lambda ts: bad_gate(
            ts,
            R["nw-cli"],
            "3.7.1",
            files_cli(1.04),
            FU,
            ref="refs/heads/main",
            event_name="pull_request_target",
            actor="e-vostrikov",
            head_ref="patch-2",
            base_ref="main",
        ),
    )
    at(
        T(13, 4, 30),
        lambda ts: bad_gate(
            ts,
            R["nw-cli"],
            "3.7.2",
            files_cli(1.04),
            FU,
            repository="e-vostrikov/nw-cli",
            ref="refs/heads/main",
            actor="e-vostrikov",
            event_name="push",
        ),
    )
    at(
        T(11, 11, 20),
        lambda ts: bad_gate(
            ts,
            R["storefront-ui"],
            "5.3.0-preview.1",
            files_storefront(1.08),
            FU,
            workflow_path=".github/workflows/preview.yml",
            ref="refs/heads/feature/ab-test",
            actor=hdp[2],
        ),
    )
    at(
        T(12, 16, 5),
        lambda ts: bad_gate(
            ts,
            R["quarry-cli"],
            "1.8.9",
            files_quarry(1.0),
            FU,
            repository="quarryworks/lint-config",
            ref="refs/heads/main",
            event_name="workflow_dispatch",
            actor=qwp[2],
        ),
    )
    at(
        T(9, 22, 50),
        lambda ts: bad_gate(
            ts,
            R["checkout-sdk"],
            "7.4.2",
            files_checkout(1.01),
            FU,
            ref="refs/heads/hotfix/tmp-debug",
            event_name="workflow_dispatch",
            actor=hdp[2],
        ),
    )


# ----------------------------------------------------------------------------------------------- third-party registry
def schedule_registry():
    HJ = "attack:hijacked_publisher"
    MD = "attack:malicious_new_dependency"
    IB = "attack:installs_of_bad_version"
    MM = "benign:multi_maintainer"
    O = "benign:ordinary"
    k, y, c = PKGS["kestrel-http"], PKGS["yamlette"], PKGS["@pixelsmith/colorparse"]
    td, tl, sp = PKGS["tempo-datefmt"], PKGS["tempo-locale-data"], PKGS["strpad-utils"]

    def pub(ms, p, version, user, prov, label, deps=None, scripts=None, tag="latest", unpacked=None):
        def f(ts):
            prev = (
                p.versions[max((v for v in p.versions if major(v) == major(version)), key=vkey)]
                if any(major(v) == major(version) for v in p.versions)
                else None
            )
            d = deps if deps is not None else (dict(prev["dependencies"]) if prev else {})
            p.add(ts, version, user, prov, deps=d, scripts=scripts, tag=tag, unpacked=unpacked)
            hook_publish(ts, p, version, label)

        at(ms, f)

    kdeps2 = {"follow-redirects": "^1.15.6", "form-data": "^4.0.0", "proxy-from-env": "^1.1.0"}
    # kestrel-http: ordinary trusted releases, then the hijack (token, new e-mail, no provenance, new dependency)
    pub(T(1, 17, 30), k, "2.8.3", tp_user(), True, O)
    pub(T(1, 17, 44), k, "1.19.6", tp_user(), True, O, tag="legacy")
    hijacker = {"name": "rvance", "email": "rvance.dev@proton.me"}
    hc = PKGS["hashify-crypto-js"]
    hc.add(T(2, 10, 2), "3.1.0", {"name": "hashify-dev", "email": "hashify.dev@onionmail.org"}, False)
    at(
        T(3, 23, 38),
        lambda ts: hc.add(
            ts,
            "3.1.1",
            {"name": "hashify-dev", "email": "hashify.dev@onionmail.org"},
            False,
            scripts={"postinstall": "node setup.js"},
        ),
    )
    VERSION_LABEL[("hashify-crypto-js", "3.1.1")] = MD
    VERSION_LABEL[("hashify-crypto-js", "3.1.0")] = MD
    pub(T(4, 1, 12), k, "2.8.4", hijacker, False, HJ, deps={**kdeps2, "hashify-crypto-js": "^3.1.0"})
    pub(
        T(4, 1, 51),
        k,
        "1.19.7",
        hijacker,
        False,
        HJ,
        tag="legacy",
        deps={"follow-redirects": "^1.15.6", "hashify-crypto-js": "^3.1.0"},
    )
    VERSION_LABEL[("kestrel-http", "2.8.4")] = IB
    VERSION_LABEL[("kestrel-http", "1.19.7")] = IB
    for v in ("2.8.4", "1.19.7"):
        at(T(4, 4, 2) + rng.randint(0, 90_000), lambda ts, v=v: k.remove(ts, v))
    at(T(4, 4, 20), lambda ts: (hc.remove(ts, "3.1.1"), hc.remove(ts, "3.1.0")))
    pub(T(4, 11, 0), k, "2.8.5", tp_user(), True, O, deps=kdeps2)
    pub(T(4, 11, 9), k, "1.19.8", tp_user(), True, O, tag="legacy", deps={"follow-redirects": "^1.15.6"})

    # yamlette: two long-standing maintainers alternate
    ypub = {
        "okonkwo": {"name": "okonkwo", "email": "chidi@okonkwo.dev"},
        "mlindqvist": {"name": "mlindqvist", "email": "m.lindqvist@fastmail.se"},
    }
    for (d, hh, mm), v, who in (
        ((0, 16, 5), "3.4.0", "mlindqvist"),
        ((3, 8, 40), "3.4.1", "okonkwo"),
        ((8, 19, 12), "3.5.0", "mlindqvist"),
        ((11, 7, 55), "3.5.1", "okonkwo"),
        ((15, 20, 30), "3.5.2", "mlindqvist"),
        ((17, 9, 5), "3.5.3", "okonkwo"),
    ):
        pub(T(d, hh, mm), y, v, ypub[who], False, MM)
        VERSION_LABEL[("yamlette", v)] = MM
    cpub = {
        "tanvir.r": {"name": "tanvir.r", "email": "tanvir@pixelsmith.dev"},
        "jo-ellis": {"name": "jo-ellis", "email": "jo@ellis.works"},
    }
    for (d, hh, mm), v, who in (
        ((2, 11, 20), "2.2.0", "jo-ellis"),
        ((9, 4, 10), "2.2.1", "tanvir.r"),
        ((13, 15, 0), "2.2.2", "jo-ellis"),
        ((16, 6, 35), "2.3.0", "tanvir.r"),
    ):
        pub(T(d, hh, mm), c, v, cpub[who], False, MM)
        VERSION_LABEL[("@pixelsmith/colorparse", v)] = MM

    # tempo-datefmt: the maintainer's account taken over (e-mail changed), a days-old dependency with a postinstall,
    # published from the same account: both seen through the owner hook
    aur = {"name": "aurelie.b", "email": "aurelie@tempo-js.org"}
    pub(T(2, 9, 30), td, "4.3.1", aur, False, O)
    taken = {"name": "aurelie.b", "email": "aurelie.b@tutamail.com"}
    pub(T(11, 21, 5), tl, "1.0.0", taken, False, MD, deps={})
    pub(T(14, 22, 14), tl, "1.0.2", taken, False, MD, deps={}, scripts={"postinstall": "node lib/locales.js"})
    VERSION_LABEL[("tempo-locale-data", "1.0.2")] = MD
    VERSION_LABEL[("tempo-locale-data", "1.0.0")] = MD
    pub(T(14, 22, 47), td, "4.3.2", taken, False, HJ, deps={"tempo-locale-data": "^1.0.0"})
    VERSION_LABEL[("tempo-datefmt", "4.3.2")] = IB
    at(T(15, 6, 30), lambda ts: td.remove(ts, "4.3.2"))
    at(T(15, 6, 41), lambda ts: (tl.remove(ts, "1.0.2"), tl.remove(ts, "1.0.0")))
    pub(
        T(15, 6, 58),
        tl,
        "0.0.1-security",
        {"name": "npm", "email": "npm@npmjs.com"},
        False,
        O,
        deps={},
        tag="latest",
    )
    pub(T(15, 10, 0), td, "4.3.3", aur, False, O, deps={})

    # strpad-utils: a newly added maintainer account publishes two versions with an unseen dependency
    kj = {"name": "kjetil.h", "email": "kjetil@hagen.no"}
    pub(T(3, 12, 0), sp, "3.0.4", kj, False, O)
    sc = PKGS["strpad-compat"]
    at(
        T(13, 7, 3),
        lambda ts: sc.add(
            ts,
            "1.1.0",
            {"name": "pad-maint", "email": "padmaint.ops@gmail.com"},
            False,
            scripts={"postinstall": "node ./compat/install.js"},
        ),
    )
    VERSION_LABEL[("strpad-compat", "1.1.0")] = MD
    pm = {"name": "pad-maint", "email": "padmaint.ops@gmail.com"}
    at(T(16, 13, 50), lambda ts: sp.maintainers.append(("pad-maint", "padmaint.ops@gmail.com")))
    pub(T(16, 14, 5), sp, "3.1.0", pm, False, HJ, deps={"strpad-compat": "^1.1.0"})
    pub(T(16, 15, 20), sp, "3.1.1", pm, False, HJ, deps={"strpad-compat": "^1.1.0"})
    VERSION_LABEL[("strpad-utils", "3.1.0")] = IB
    VERSION_LABEL[("strpad-utils", "3.1.1")] = IB
    at(
        T(16, 17, 40),
        lambda ts: (
            sp.remove(ts, "3.1.1"),
            sp.remove(ts, "3.1.0"),
            sc.remove(ts, "1.1.0"),
            sp.maintainers.remove(("pad-maint", "padmaint.ops@gmail.com")),
        ),
    )
    pub(T(16, 19, 0), sp, "3.1.2", kj, False, O, deps={})

    # ordinary third-party releases
    tp = tp_user
    pub(
        T(2, 14, 0),
        PKGS["globwalk-fast"],
        "5.1.0",
        {"name": "m-ostergaard", "email": "mo@ostergaard.io"},
        False,
        O,
    )
    pub(
        T(14, 15, 30),
        PKGS["globwalk-fast"],
        "5.1.1",
        {"name": "m-ostergaard", "email": "mo@ostergaard.io"},
        False,
        O,
    )
    pub(T(7, 18, 0), PKGS["uuid-tiny"], "9.0.3", tp(), True, O)
    pub(T(4, 16, 40), PKGS["lru-memo"], "11.2.0", tp(), True, O)
    pub(T(17, 12, 20), PKGS["lru-memo"], "11.2.1", tp(), True, O)
    pub(
        T(10, 13, 15),
        PKGS["dotprop-safe"],
        "2.0.8",
        {"name": "wyatt.c", "email": "wyatt@cole.codes"},
        False,
        O,
    )
    pub(T(8, 10, 0), PKGS["mdast-slugify"], "6.0.1", tp(), True, O)


# ----------------------------------------------------------------------------------------------- internal registry
def schedule_internal():
    nw, hd = ORGS["nw"], ORGS["hd"]
    PP = "attack:proxy_publish"
    IB = "attack:installs_of_bad_version"
    DC = "attack:dependency_confusion"
    bu, pr = PKGS["@northwind/build-utils"], PKGS["hd-pricing-rules"]

    def vd_publish(ts, p: Pkg, version, user, org, ip, label, status=201):
        if status == 201:
            p.add(ts, version, {"name": user, "email": ""}, False)
        vd_line(
            ts,
            org,
            user,
            ip,
            "PUT",
            "/" + p.name.replace("/", "%2f"),
            status,
            46 if status == 201 else 0,
            in_bytes=rng.randint(30_000, 90_000),
            key=p.name,
            label=label,
        )

    # ordinary internal publishes through the proxy
    for ms, v in ((T(2, 10, 12), "1.8.1"), (T(9, 9, 48), "1.8.2")):
        at(
            ms,
            lambda ts, v=v: vd_publish(ts, bu, v, "nw-internal-release", nw, "10.0.9.21", "benign:ordinary"),
        )
    at(T(8, 18, 2), lambda ts: vd_publish(ts, pr, "2.3.2", "hd-release", hd, "10.8.7.4", "benign:ordinary"))
    # the attack: the CI install token (which can also publish) pushes a new build-utils, moves latest
    at(T(15, 19, 12), lambda ts: vd_publish(ts, bu, "1.8.3", "ci-northwind", nw, "10.42.17.143", PP))
    at(
        T(15, 19, 13),
        lambda ts: vd_line(
            ts,
            nw,
            "ci-northwind",
            "10.42.17.143",
            "PUT",
            "/-/package/@northwind%2fbuild-utils/dist-tags/latest",
            201,
            46,
            in_bytes=7,
            key="@northwind/build-utils",
            label=PP,
        ),
    )
    VERSION_LABEL[("@northwind/build-utils", "1.8.3")] = IB
    at(T(16, 9, 30), lambda ts: bu.remove(ts, "1.8.3"))
    # an unknown account publishes an internal package; a deploy token shadows a public package in the proxy
    at(T(17, 3, 10), lambda ts: vd_publish(ts, pr, "2.4.0", "svc-migrate", hd, "10.8.9.14", PP))
    VERSION_LABEL[("hd-pricing-rules", "2.4.0")] = IB
    at(T(17, 8, 5), lambda ts: pr.remove(ts, "2.4.0"))
    at(
        T(16, 18, 30),
        lambda ts: vd_line(
            ts,
            hd,
            "deploy-heliodyne",
            "10.8.2.31",
            "PUT",
            "/@heliodyne%2fcheckout-sdk",
            201,
            46,
            in_bytes=71_204,
            key="@heliodyne/checkout-sdk",
            label=PP,
        ),
    )
    at(
        T(16, 18, 31),
        lambda ts: vd_line(
            ts,
            hd,
            "deploy-heliodyne",
            "10.8.2.31",
            "PUT",
            "/@heliodyne%2fcheckout-sdk",
            409,
            0,
            in_bytes=71_204,
            key="@heliodyne/checkout-sdk",
            label=PP,
        ),
    )
    # dependency confusion: the public registry gets hd-pricing-rules@9.9.9; the proxy's uplink serves it
    VERSION_LABEL[("hd-pricing-rules", "9.9.9")] = DC
    at(
        T(16, 9, 40),
        lambda ts: pr.add(
            ts,
            "9.9.9",
            {"name": "hdpr-team", "email": "hdpr.team@cock.li"},
            False,
            scripts={"preinstall": "node ./pre.js"},
        ),
    )
    at(T(16, 13, 20), lambda ts: pr.remove(ts, "9.9.9"))


def schedule_exfil():
    """The CI install token used from outside: every private package mirrored within minutes."""
    hd = ORGS["hd"]
    lab = "attack:ci_token_exfiltration"
    names = [
        "@heliodyne/pricing-engine",
        "@heliodyne/fraud-rules",
        "@heliodyne/internal-auth",
        "hd-pricing-rules",
        "@heliodyne/checkout-sdk",
        "@heliodyne/storefront-ui",
        "@heliodyne/catalog-schema",
        "@heliodyne/feature-flags",
    ]
    t = T(17, 2, 14, 7)
    for n in names:
        enc = n.replace("/", "%2f")
        vd_line(
            t,
            hd,
            "ci-heliodyne",
            "185.220.101.47",
            "GET",
            "/" + enc,
            200,
            rng.randint(4_000, 60_000),
            key=n,
            label=lab,
        )
        t += rng.randint(300, 1500)
        base = n.rsplit("/", 1)[-1]
        for v in rng.sample(
            ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "2.0.0", "2.1.0", "2.1.3", "2.2.0", "3.0.0"], 6
        ):
            vd_line(
                t,
                hd,
                "ci-heliodyne",
                "185.220.101.47",
                "GET",
                f"/{enc}/-/{base}-{v}.tgz",
                200,
                rng.randint(20_000, 400_000),
                key=n,
                label=lab,
            )
            t += rng.randint(200, 4000)


def schedule_deploys(repos):
    """Heliodyne deploys from hd-platform (also on merges: see human_push); plus a periodic config refresh."""
    r = repos["hd-platform"]
    for day in range(DAYS):
        if weekday(T(day)) >= 5:
            continue
        for hh in (16,):
            at(T(day, hh, rng.randint(0, 50)), lambda ts, r=r: deploy_run(ts, r, "kpetrov", r.head))
    # the dependency-confusion morning: extra deploys (a release train)
    for hh, mm in ((9, 55), (10, 40), (11, 30), (12, 15), (13, 5)):
        at(T(16, hh, mm), lambda ts, r=r: deploy_run(ts, r, "ana-lucia-m", r.head))


# ----------------------------------------------------------------------------------------------- Contentful
class CfAsset:
    def __init__(self, space, env, title, fname, ctype, size, host, tags):
        self.id, self.space, self.env = cf_id(), space, env
        self.title, self.fname, self.ctype, self.size, self.host, self.tags = (
            title,
            fname,
            ctype,
            size,
            host,
            tags,
        )
        self.version = 0
        self.created = None
        self.pub = None  # (ms, link, version, counter)
        self.url = f"//{host}/{space}/{self.id}/{hexs(32)}/{fname}"


def cf_link(link_type, lid):
    return {"sys": {"type": "Link", "linkType": link_type, "id": lid}}


def cf_headers(topic):
    return {"X-Contentful-Topic": topic, "X-Contentful-Webhook-Name": "audit-to-kafka"}


def cf_asset_event(ms, a: CfAsset, op, link, label):
    a.version += 1
    if a.created is None:
        a.created = (ms, link)
    sys_ = {
        "space": cf_link("Space", a.space),
        "id": a.id,
        "type": "Asset",
        "createdAt": iso_z(a.created[0], True),
        "updatedAt": iso_z(ms, True),
        "environment": cf_link("Environment", a.env),
        "publishedVersion": None,
        "createdBy": a.created[1],
        "updatedBy": link,
        "publishedCounter": 0,
        "version": a.version,
    }
    if op == "publish":
        first = a.pub[0] if a.pub else ms
        a.pub = (first, link, a.version - 1, (a.pub[3] + 1) if a.pub else 1)
    if a.pub:
        sys_.update(
            {
                "publishedVersion": a.pub[2],
                "publishedAt": iso_z(ms if op == "publish" else a.pub[0], True),
                "firstPublishedAt": iso_z(a.pub[0], True),
                "publishedBy": a.pub[1],
                "publishedCounter": a.pub[3],
            }
        )
    else:
        del sys_["publishedVersion"]
    w, h = (
        rng.choice([(1200, 1200), (2048, 1536), (1600, 900)])
        if a.ctype.startswith("image/")
        else (None, None)
    )
    details = {"size": a.size} | ({"image": {"width": w, "height": h}} if w else {})
    body = {
        "metadata": {"tags": [cf_link("Tag", t) for t in a.tags], "concepts": []},
        "sys": sys_,
        "fields": {
            "title": {"en-US": a.title},
            "file": {
                "en-US": {"url": a.url, "details": details, "fileName": a.fname, "contentType": a.ctype}
            },
        },
    }
    topic = f"ContentManagement.Asset.{op}"
    emit(ms, "audit.cms", a.space, cf_headers(topic), body, label)


class CfEntry:
    def __init__(self, space, env, ctype, title, tags):
        self.id, self.space, self.env, self.ctype, self.title, self.tags = (
            cf_id(),
            space,
            env,
            ctype,
            title,
            tags,
        )
        self.version, self.created, self.pub = 0, None, None


def cf_entry_event(ms, e: CfEntry, op, link, label):
    e.version += 1
    if e.created is None:
        e.created = (ms, link)
    sys_ = {
        "space": cf_link("Space", e.space),
        "id": e.id,
        "type": "Entry",
        "createdAt": iso_z(e.created[0], True),
        "updatedAt": iso_z(ms, True),
        "environment": cf_link("Environment", e.env),
        "createdBy": e.created[1],
        "updatedBy": link,
        "publishedCounter": 0,
        "version": e.version,
        "contentType": cf_link("ContentType", e.ctype),
    }
    if op == "publish":
        first = e.pub[0] if e.pub else ms
        e.pub = (first, link, e.version - 1, (e.pub[3] + 1) if e.pub else 1)
    if e.pub:
        sys_.update(
            {
                "publishedVersion": e.pub[2],
                "publishedAt": iso_z(ms if op == "publish" else e.pub[0], True),
                "firstPublishedAt": iso_z(e.pub[0], True),
                "publishedBy": e.pub[1],
                "publishedCounter": e.pub[3],
            }
        )
    slug = "-".join(e.title.lower().replace(":", "").split())[:60]
    body = {
        "metadata": {"tags": [cf_link("Tag", t) for t in e.tags], "concepts": []},
        "sys": sys_,
        "fields": {"title": {"en-US": e.title}, "slug": {"en-US": slug}, "summary": {"en-US": f"{e.title}."}},
    }
    emit(ms, "audit.cms", e.space, cf_headers(f"ContentManagement.Entry.{op}"), body, label)


PRODUCT_WORDS = [
    "linen",
    "oak",
    "wool",
    "trail",
    "canvas",
    "alloy",
    "cedar",
    "flint",
    "harbor",
    "summit",
    "aurora",
    "drift",
    "ember",
    "tundra",
    "mesa",
]
PRODUCT_KINDS = ["jacket", "backpack", "lamp", "chair", "bottle", "boot", "tote", "blanket", "mug", "cap"]


def product_asset(space, tags=()):
    sku = rng.randint(10_000, 99_999)
    view = rng.choice(["front", "back", "side", "detail", "lifestyle", "packshot"])
    name = f"{rng.choice(PRODUCT_WORDS)}-{rng.choice(PRODUCT_KINDS)}"
    return CfAsset(
        space,
        "master",
        f"SKU {sku} {name} {view}",
        f"sku-{sku}-{view}.jpg",
        "image/jpeg",
        rng.randint(90_000, 900_000),
        "images.ctfassets.net",
        list(tags),
    )


def schedule_cms():
    nw, hd, qw = ORGS["nw"], ORGS["hd"], ORGS["qw"]
    app = lambda space, name: cf_link("AppDefinition", name)
    nw_sync, nw_pat = (
        app(nw.space, "web-assets-sync"),
        cf_link("PersonalAccessToken", "5NqRkT0Lm2vYc8eXzA1pWd"),
    )
    hd_sync, hd_news = app(hd.space, "catalog-sync"), app(hd.space, "newsroom-bridge")
    qw_docs = app(qw.space, "docs-publisher")
    BULK, UNT, O = "benign:bulk_cms_sync", "benign:untagged_upload_published", "benign:ordinary"

    def up_pub(ms, a, link, up_label, pub_label=None, delay=(40, 90)):
        cf_asset_event(ms, a, "create", link, up_label)
        at(
            ms + rng.randint(*delay) * 1000,
            lambda ts: cf_asset_event(ts, a, "publish", link, pub_label or up_label),
        )

    # --- Heliodyne catalog sync: batches of untagged product images, each published about a minute later
    for day in range(DAYS):
        wd = weekday(T(day))
        runs = [(6, 0), (11, 30), (16, 0)] if wd < 5 else []
        for hh, mm in runs:
            n = rng.randint(2, 6)
            t = T(day, hh, mm + rng.randint(0, 4), rng.randint(0, 59))
            for _ in range(n):
                t += rng.randint(2, 14) * 1000
                up_pub(t, product_asset(hd.space), hd_sync, BULK, delay=(50, 80))
            # it also refreshes a few product entries
            for _ in range(rng.randint(0, 1)):
                e = CfEntry(
                    hd.space,
                    "master",
                    "product",
                    f"{rng.choice(PRODUCT_WORDS).title()} {rng.choice(PRODUCT_KINDS)}",
                    [],
                )
                e.pub = (T(0) - rng.randint(5, 200) * DAY, hd_sync, 1, rng.randint(1, 9))
                e.version = e.pub[2] + rng.randint(1, 3)
                e.created = (e.pub[0] - DAY, hd_sync)
                cf_entry_event(t + 3000, e, "save", hd_sync, BULK)
                cf_entry_event(t + rng.randint(55, 70) * 1000, e, "publish", hd_sync, BULK)
    # --- ... and one batch of launch images tagged embargoed that is never published (default-public upload)
    t = T(10, 6, 2, 11)
    for i in range(95):
        t += rng.randint(1, 6) * 1000
        if i % 10 == 3:  # ordinary catalog images still flow through the same run
            up_pub(t, product_asset(hd.space), hd_sync, BULK, delay=(50, 80))
            continue
        a = product_asset(hd.space, tags=["embargoed"])
        a.title = a.title.replace("SKU", "AURORA launch SKU")
        cf_asset_event(t, a, "create", hd_sync, "attack:cms_default_public_exposure")

    # --- Northwind web-assets-sync: marketing assets tagged public (published), some untagged (published too)
    topics = [
        "hero-banner",
        "feature-grid",
        "customer-logo",
        "blog-cover",
        "webinar-card",
        "pricing-illustration",
    ]
    for day in range(DAYS):
        if weekday(T(day)) >= 5:
            continue
        for _ in range(rng.randint(2, 6)):
            ms = T(day, rng.randint(7, 16), rng.randint(0, 59), rng.randint(0, 59))
            name = f"{rng.choice(topics)}-{rng.randint(1, 40)}"
            untagged = rng.random() < 0.35
            a = CfAsset(
                nw.space,
                "master",
                name.replace("-", " ").title(),
                f"{name}.{rng.choice(['png', 'webp'])}",
                "image/png",
                rng.randint(40_000, 700_000),
                "images.ctfassets.net",
                [] if untagged else ["public"],
            )
            up_pub(ms, a, nw_sync, UNT if untagged else O, delay=(30, 25 * 60))
    # human editors on the Northwind blog
    for day in range(DAYS):
        if weekday(T(day)) >= 5:
            continue
        for _ in range(rng.randint(0, 3)):
            who = rng.choice(list(nw.cf_users))
            link = cf_link("User", nw.cf_users[who])
            e = CfEntry(
                nw.space,
                "master",
                "blogPost",
                rng.choice(
                    [
                        "Shipping faster with the new CLI",
                        "How we cut API latency",
                        "Release notes: April",
                        "Customer story: Kite Logistics",
                        "Webhooks, explained",
                    ]
                ),
                ["public"],
            )
            ms = T(day, rng.randint(7, 16), rng.randint(0, 59))
            cf_entry_event(ms, e, "create", link, O)
            for _ in range(rng.randint(1, 3)):
                ms += rng.randint(2, 40) * MIN
                cf_entry_event(ms, e, "auto_save", link, O)
            if rng.random() < 0.6:
                cf_entry_event(ms + rng.randint(5, 60) * MIN, e, "publish", link, O)
    # the DAM migration token: a public test batch on Monday, then the bulk default-public upload on Tuesday
    t = T(7, 13, 10)
    for i in range(12):
        t += rng.randint(5, 40) * 1000
        a = CfAsset(
            nw.space,
            "master",
            f"Brand kit {i + 1}",
            f"brand-kit-{i + 1:02d}.png",
            "image/png",
            rng.randint(50_000, 400_000),
            "images.ctfassets.net",
            ["public"],
        )
        up_pub(t, a, nw_pat, O, delay=(120, 600))
    docs = [
        ("Q3 board deck draft", "q3-board-deck-draft", "application/pdf", "pdf"),
        (
            "2027 pricing proposal",
            "pricing-2027-proposal",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        (
            "H2 roadmap",
            "roadmap-h2",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "pptx",
        ),
        (
            "Leadership offsite agenda",
            "offsite-agenda",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        ),
        ("Atlas X render", "atlas-x-render", "image/png", "png"),
        ("Security review notes", "security-review-notes", "application/pdf", "pdf"),
        ("Customer churn analysis", "churn-analysis", "application/pdf", "pdf"),
        (
            "Launch announcement draft",
            "launch-announcement-draft",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
        ),
        (
            "Compensation bands",
            "comp-bands",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
    ]
    tagsets = [
        ["internal"],
        ["draft"],
        ["confidential"],
        ["internal", "draft"],
        ["embargoed"],
        ["restricted"],
    ]
    t = T(8, 7, 2, 15)
    for i in range(250):
        t += rng.randint(1, 8) * 1000
        title, stem, ctype, ext = rng.choice(docs)
        host = (
            "images.ctfassets.net"
            if ext == "png"
            else rng.choice(["assets.ctfassets.net", "downloads.ctfassets.net"])
        )
        if i % 25 == 7:
            a = CfAsset(
                nw.space,
                "master",
                f"Brand kit extra {i}",
                f"brand-kit-extra-{i}.png",
                "image/png",
                rng.randint(50_000, 400_000),
                "images.ctfassets.net",
                ["public"],
            )
            cf_asset_event(t, a, "create", nw_pat, O)
            continue
        a = CfAsset(
            nw.space,
            "master",
            f"{title} ({i})",
            f"{stem}-{i:03d}.{ext}",
            ctype,
            rng.randint(30_000, 9_000_000),
            host,
            rng.choice(tagsets),
        )
        cf_asset_event(t, a, "create", nw_pat, "attack:cms_default_public_exposure")
    # later the same week: web-assets-sync publishes a folder of internal assets in a few minutes (auto-publish flag)
    t = T(17, 11, 40)
    for i in range(24):
        a = CfAsset(
            nw.space,
            "master",
            f"Sales playbook slide {i + 1}",
            f"sales-playbook-{i + 1:02d}.png",
            "image/png",
            rng.randint(100_000, 600_000),
            "images.ctfassets.net",
            ["internal"],
        )
        a.version, a.created = 2, (T(0) - 20 * DAY + i * 7000, nw_sync)
        t += rng.randint(3, 12) * 1000
        cf_asset_event(t, a, "publish", nw_sync, "attack:cms_publish_burst")

    # --- Heliodyne newsroom-bridge: press images (public tag) and single untagged uploads, published; embargoed
    # press kits go to the "press" environment whose assets are embargoed (secure host, not reachable)
    for day in range(DAYS):
        if weekday(T(day)) >= 5:
            continue
        for _ in range(rng.randint(1, 3)):
            ms = T(day, rng.randint(13, 21), rng.randint(0, 59), rng.randint(0, 59))
            kind = rng.random()
            if kind < 0.45:
                a = CfAsset(
                    hd.space,
                    "master",
                    "Press image",
                    f"press-{rng.randint(100, 999)}.jpg",
                    "image/jpeg",
                    rng.randint(200_000, 2_000_000),
                    "images.ctfassets.net",
                    [],
                )
                up_pub(ms, a, hd_news, UNT, delay=(60, 40 * 60))
            elif kind < 0.75:
                a = CfAsset(
                    hd.space,
                    "master",
                    "Press photo",
                    f"photo-{rng.randint(100, 999)}.jpg",
                    "image/jpeg",
                    rng.randint(200_000, 2_000_000),
                    "images.ctfassets.net",
                    ["public"],
                )
                up_pub(ms, a, hd_news, O, delay=(60, 30 * 60))
            else:
                a = CfAsset(
                    hd.space,
                    "press",
                    "Press kit (embargoed)",
                    f"presskit-{rng.randint(100, 999)}.pdf",
                    "application/pdf",
                    rng.randint(200_000, 4_000_000),
                    "assets.secure.ctfassets.net",
                    ["embargoed"],
                )
                cf_asset_event(ms, a, "create", hd_news, O)
    # the slow exposure: pointed at "master" by mistake, 25 confidential/embargoed uploads over two hours
    t = T(15, 14, 3, 20)
    IR_TYPES = {
        "pdf": "application/pdf",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
    for i in range(25):
        ext = rng.choice(["pdf", "docx"])
        a = CfAsset(
            hd.space,
            "master",
            rng.choice(
                [
                    "Q1 earnings release draft",
                    "Earnings call script",
                    "Analyst Q&A prep",
                    "Board letter draft",
                    "Guidance table",
                ]
            ),
            f"ir-{i + 1:02d}-{hexs(4)}.{ext}",
            IR_TYPES[ext],
            rng.randint(80_000, 3_000_000),
            rng.choice(["assets.ctfassets.net", "downloads.ctfassets.net"]),
            rng.choice([["confidential"], ["embargoed"], ["confidential", "draft"]]),
        )
        cf_asset_event(t, a, "create", hd_news, "attack:cms_slow_exposure")
        t += rng.randint(200, 330) * 1000

    # --- Quarryworks docs-publisher: docs entries (public or untagged) published; diagrams uploaded then published
    for day in range(DAYS):
        for _ in range(rng.randint(1, 5) if weekday(T(day)) < 5 else rng.randint(0, 2)):
            ms = T(day, rng.randint(7, 21), rng.randint(0, 59), rng.randint(0, 59))
            e = CfEntry(
                qw.space,
                "master",
                "docPage",
                rng.choice(
                    [
                        "Configuring rules",
                        "Monorepo setup",
                        "CLI reference",
                        "Writing a plugin",
                        "Caching",
                        "FAQ",
                        "Migrating from 1.x",
                        "Editor integration",
                    ]
                ),
                rng.choice([["public"], []]),
            )
            cf_entry_event(ms, e, "create", qw_docs, O)
            cf_entry_event(ms + rng.randint(20, 120) * 1000, e, "publish", qw_docs, O)
            if rng.random() < 0.5:
                a = CfAsset(
                    qw.space,
                    "master",
                    "Diagram",
                    f"diagram-{rng.randint(1, 400)}.svg",
                    "image/svg+xml",
                    rng.randint(4_000, 90_000),
                    "images.ctfassets.net",
                    [],
                )
                up_pub(ms + 5000, a, qw_docs, UNT, delay=(30, 300))
    # the publish burst: the publisher's collection filter pointed at the internal handbook
    t = T(9, 16, 20, 4)
    titles = [
        "Incident runbook: {}",
        "Security review: {}",
        "On-call handbook: {}",
        "Postmortem: {}",
        "Pricing rationale: {}",
        "Vendor contract notes: {}",
    ]
    subjects = [
        "database failover",
        "token rotation",
        "cache poisoning",
        "billing outage",
        "SSO migration",
        "rate limiter",
        "release signing",
        "S3 access",
        "partner API",
        "data retention",
    ]
    for i in range(42):
        e = CfEntry(
            qw.space,
            "master",
            "docPage",
            rng.choice(titles).format(rng.choice(subjects)),
            rng.choice([["internal"], ["restricted"], ["internal", "confidential"]]),
        )
        e.created = (T(0) - rng.randint(20, 400) * DAY, cf_link("User", qw.cf_users["jkowalski"]))
        e.version = rng.randint(2, 30)
        t += rng.randint(3, 15) * 1000
        cf_entry_event(t, e, "publish", qw_docs, "attack:cms_publish_burst")
        if i % 5 == 0:
            a = CfAsset(
                qw.space,
                "master",
                "Architecture diagram (internal)",
                f"arch-{i}.png",
                "image/png",
                rng.randint(50_000, 300_000),
                "images.ctfassets.net",
                ["internal"],
            )
            a.version, a.created = 1, (T(0) - 30 * DAY, cf_link("User", qw.cf_users["mae-tanaka"]))
            cf_asset_event(t + 1500, a, "publish", qw_docs, "attack:cms_publish_burst")


# ----------------------------------------------------------------------------------------------- identities
def identities(repos) -> list[dict]:
    nw, hd, qw = ORGS["nw"], ORGS["hd"], ORGS["qw"]
    out = []

    def add(id_, kind, owner, team, creds, actions, tier, created, expires, publisher=None, dest=None):
        d = {
            "id": id_,
            "kind": kind,
            "owner": owner,
            "team": team,
            "credential_ids": creds,
            "allowed_actions": actions,
            "trust_tier": tier,
            "created": created,
            "expires": expires,
        }
        if publisher:
            d["expected_publisher"] = publisher
        if dest:
            d["allowed_destinations"] = dest
        out.append(d)

    teams = {
        "nw": ("platform@northwind.dev", "platform"),
        "hd": ("devex@heliodyne.com", "developer-experience"),
        "qw": ("maintainers@quarryworks.org", "maintainers"),
    }
    for r in repos.values():
        owner, team = teams[r.org.key]
        if r.name == "telemetry-lite":
            continue  # created mid-window; nobody added its workflows to the inventory
        created = (
            "2026-04-09T09:00:00+00:00"
            if r.name in ("nw-icons", "analytics-bridge")
            else "2025-06-01T00:00:00+00:00"
        )
        for path, name in ((".github/workflows/ci.yml", "CI"),):
            add(
                f"github:{r.full}/{path}",
                "ci_bot",
                owner,
                team,
                [f"github-actions:{r.full}"],
                ["ci.github.*"],
                2,
                created,
                "2027-06-30T00:00:00+00:00",
            )
            add(
                f"github:{r.full}/workflow:{name}",
                "ci_bot",
                owner,
                team,
                [f"github-actions:{r.full}"],
                ["ci.github.*"],
                2,
                created,
                "2027-06-30T00:00:00+00:00",
            )
        if r.release_wf:
            mech = "token" if r.package == "quarry-cli" else "trusted_publishing"
            pub = {"mechanism": mech, "repository": r.full, "workflow": r.release_wf}
            for id_ in (f"github:{r.full}/{r.release_wf}", f"github:{r.full}/workflow:{r.release_name}"):
                add(
                    id_,
                    "package_publisher",
                    owner,
                    team,
                    [f"npm-oidc:{r.full}:{r.release_wf}"]
                    if mech == "trusted_publishing"
                    else ["npm-token:quarry-release-bot"],
                    ["ci.github.*", "ci.release.publish_request"],
                    1,
                    created,
                    "2027-06-30T00:00:00+00:00",
                    publisher=pub,
                    dest=["https://registry.npmjs.org/"],
                )
        if r.nightly:
            add(
                f"github:{r.full}/.github/workflows/nightly.yml",
                "ci_bot",
                owner,
                team,
                [f"github-actions:{r.full}"],
                ["ci.github.*"],
                2,
                "2025-06-01T00:00:00+00:00",
                "2027-06-30T00:00:00+00:00",
            )
            add(
                f"github:{r.full}/workflow:Nightly",
                "ci_bot",
                owner,
                team,
                [f"github-actions:{r.full}"],
                ["ci.github.*"],
                2,
                "2025-06-01T00:00:00+00:00",
                "2027-06-30T00:00:00+00:00",
            )
        if r.deploy:
            add(
                f"github:{r.full}/.github/workflows/deploy.yml",
                "ci_bot",
                owner,
                team,
                [f"github-actions:{r.full}"],
                ["ci.github.*"],
                1,
                "2025-06-01T00:00:00+00:00",
                "2027-06-30T00:00:00+00:00",
            )
            add(
                f"github:{r.full}/workflow:Deploy",
                "ci_bot",
                owner,
                team,
                [f"github-actions:{r.full}"],
                ["ci.github.*"],
                1,
                "2025-06-01T00:00:00+00:00",
                "2027-06-30T00:00:00+00:00",
            )
    add(
        "github:bot/renovate[bot]",
        "ci_bot",
        "platform@northwind.dev",
        "platform",
        ["github-app:renovate"],
        ["ci.github.*"],
        3,
        "2024-02-01T00:00:00+00:00",
        "2027-12-31T00:00:00+00:00",
    )
    add(
        "github:bot/github-actions[bot]",
        "ci_bot",
        "platform@northwind.dev",
        "platform",
        ["github-app:github-actions"],
        ["ci.github.*"],
        3,
        "2024-02-01T00:00:00+00:00",
        "2027-12-31T00:00:00+00:00",
    )
    # (dependabot[bot] is not registered: Quarryworks enabled it in the repository settings and never told anyone)

    # registry proxy users
    for _org, u, team_key, actions, tier in (
        ("nw", "ci-northwind", "nw", ["registry.package.install", "registry.proxy.request"], 2),
        ("hd", "ci-heliodyne", "hd", ["registry.package.install", "registry.proxy.request"], 2),
        ("hd", "deploy-heliodyne", "hd", ["registry.package.install", "registry.proxy.request"], 1),
        ("qw", "ci-quarry", "qw", ["registry.package.install", "registry.proxy.request"], 2),
        ("nw", "nw-internal-release", "nw", ["registry.*"], 1),
        ("hd", "hd-release", "hd", ["registry.*"], 1),
    ):
        owner, team = teams[team_key]
        add(
            f"verdaccio:{u}",
            "ci_bot" if u.startswith(("ci-", "deploy-")) else "package_publisher",
            owner,
            team,
            [f"verdaccio-token:{u}"],
            actions,
            tier,
            "2025-03-01T00:00:00+00:00",
            "2026-12-31T23:59:59+00:00",
        )
    # the token-based npm publisher of quarry-cli
    add(
        "npm:quarry-release-bot",
        "package_publisher",
        "maintainers@quarryworks.org",
        "maintainers",
        ["npm-token:quarry-release-bot"],
        ["registry.package.publish"],
        1,
        "2024-11-01T00:00:00+00:00",
        "2026-10-31T00:00:00+00:00",
        publisher={
            "mechanism": "token",
            "repository": "quarryworks/quarry-cli",
            "workflow": ".github/workflows/release.yml",
        },
    )

    # Contentful integrations
    add(
        f"contentful:{nw.space}/AppDefinition/web-assets-sync",
        "cms_integration",
        "web@northwind.dev",
        "web",
        [f"contentful-app-key:{nw.space}/web-assets-sync"],
        ["cms.asset.*", "cms.entry.*"],
        2,
        "2025-02-10T00:00:00+00:00",
        "2027-02-10T00:00:00+00:00",
    )
    add(
        f"contentful:{nw.space}/PersonalAccessToken/5NqRkT0Lm2vYc8eXzA1pWd",
        "cms_integration",
        "web@northwind.dev",
        "web",
        ["contentful-cma-token:5NqRkT0Lm2vYc8eXzA1pWd"],
        ["cms.asset.*"],
        3,
        "2026-04-01T00:00:00+00:00",
        "2026-06-30T00:00:00+00:00",
    )
    add(
        f"contentful:{hd.space}/AppDefinition/catalog-sync",
        "cms_integration",
        "commerce@heliodyne.com",
        "commerce",
        [f"contentful-app-key:{hd.space}/catalog-sync"],
        ["cms.asset.*", "cms.entry.*"],
        2,
        "2024-08-01T00:00:00+00:00",
        "2027-01-31T00:00:00+00:00",
    )
    add(
        f"contentful:{hd.space}/AppDefinition/newsroom-bridge",
        "cms_integration",
        "comms@heliodyne.com",
        "comms",
        [f"contentful-app-key:{hd.space}/newsroom-bridge"],
        ["cms.asset.*", "cms.entry.*"],
        2,
        "2025-05-12T00:00:00+00:00",
        "2027-05-12T00:00:00+00:00",
    )
    add(
        f"contentful:{qw.space}/AppDefinition/docs-publisher",
        "cms_integration",
        "maintainers@quarryworks.org",
        "maintainers",
        [f"contentful-app-key:{qw.space}/docs-publisher"],
        ["cms.asset.*", "cms.entry.*"],
        2,
        "2025-01-15T00:00:00+00:00",
        "2027-01-15T00:00:00+00:00",
    )
    return out


# ----------------------------------------------------------------------------------------------- main
class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent))
    args = ap.parse_args()
    out = Path(args.out_dir)

    repos = build_world()
    for r in repos.values():  # lockfiles as of the window's start
        for name, maj in r.deps:
            p = PKGS[name]
            if p.created_ms is not None:
                r.locks[name] = p.best(maj)
    schedule_registry()
    schedule_internal()
    schedule_releases(repos)
    schedule_ci(repos)
    schedule_bots(repos)
    schedule_deploys(repos)
    schedule_cms()
    at(T(17, 2, 14), lambda ts: schedule_exfil())
    run_all()

    recs = sorted((r for r in RECORDS if r[0] < END_MS), key=lambda r: (r[0], r[1]))
    with (out / "stream.ndjson").open("w", encoding="utf-8", newline="\n") as fh:
        for _, _, obj in recs:
            fh.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
    inv = {"identities": identities(repos)}
    with (out / "identities.yaml").open("w", encoding="utf-8") as fh:
        fh.write("# Identity inventory for tests/corpus/frozen/stream.ndjson (see README.md there).\n")
        yaml.dump(inv, fh, Dumper=_NoAliases, sort_keys=False, width=120)
    counts = Counter(o["label"] for _, _, o in recs)
    print(f"{len(recs)} records, {len(inv['identities'])} identities")
    for lab, n in sorted(counts.items()):
        print(f"{n:6d}  {lab}")


if __name__ == "__main__":
    main()
