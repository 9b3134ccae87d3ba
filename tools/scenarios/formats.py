"""Builders for each source's own JSON, in the shapes docs/sources.md describes.

GitHub bodies follow the real webhook payloads (octokit/webhooks examples): the long lists of API URL
templates are trimmed, every key an adapter or an analyst reads is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tools.scenarios._util import integrity, iso_ms, iso_s, node_id, shasum, stable_hex, stable_int, to_ms

# --------------------------------------------------------------------------------------------- Contentful

CONTENTFUL_CONTENT_TYPE = b"application/vnd.contentful.management.v1+json"


def cf_link(link_type: str, entity_id: str) -> dict[str, Any]:
    return {"sys": {"type": "Link", "linkType": link_type, "id": entity_id}}


@dataclass(frozen=True)
class CfPublished:
    version: int
    at: datetime
    by: tuple[str, str]  # (linkType, id)
    first_at: datetime
    counter: int


def cf_entity(
    *,
    kind: str,
    entity_id: str,
    version: int,
    space: str,
    environment: str,
    created_at: datetime,
    updated_at: datetime,
    created_by: tuple[str, str],
    updated_by: tuple[str, str],
    tags: tuple[str, ...],
    fields: dict[str, Any],
    published: CfPublished | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    sys: dict[str, Any] = {
        "type": kind,
        "id": entity_id,
        "version": version,
        "space": cf_link("Space", space),
        "environment": cf_link("Environment", environment),
        "createdAt": iso_ms(created_at),
        "updatedAt": iso_ms(updated_at),
        "createdBy": cf_link(*created_by),
        "updatedBy": cf_link(*updated_by),
    }
    if published is not None:
        sys |= {
            "publishedCounter": published.counter,
            "publishedVersion": published.version,
            "publishedAt": iso_ms(published.at),
            "publishedBy": cf_link(*published.by),
            "firstPublishedAt": iso_ms(published.first_at),
        }
    if content_type is not None:
        sys["contentType"] = cf_link("ContentType", content_type)
    return {"metadata": {"tags": [cf_link("Tag", t) for t in tags]}, "sys": sys, "fields": fields}


def cf_file_url(host: str, space: str, asset_id: str, file_name: str) -> str:
    """Contentful's protocol-relative file URL: //<host>/<space>/<asset>/<token>/<file name>."""
    return f"//{host}/{space}/{asset_id}/{stable_hex('file', asset_id, n=32)}/{file_name}"


def cf_headers(topic: str) -> tuple[tuple[str, bytes], ...]:
    return (
        ("X-Contentful-Topic", topic.encode()),
        ("X-Contentful-Webhook-Name", b"nhiguard audit feed"),
        ("Content-Type", CONTENTFUL_CONTENT_TYPE),
    )


# ------------------------------------------------------------------------------------------------- GitHub


@dataclass(frozen=True)
class GhAccount:
    login: str
    id: int
    type: str  # User | Bot | Organization
    name: str
    email: str


@dataclass(frozen=True)
class GhRepo:
    full_name: str
    description: str
    language: str
    team: str

    @property
    def owner(self) -> str:
        return self.full_name.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]

    @property
    def id(self) -> int:
        return stable_int("repo", self.full_name)

    @property
    def org_id(self) -> int:
        return stable_int("org", self.owner, digits=8)


@dataclass(frozen=True)
class GhWorkflow:
    repo: GhRepo
    path: str
    name: str
    jobs: tuple[str, ...]
    publishes: str | None = None  # the npm package this workflow releases, if any

    @property
    def id(self) -> int:
        return stable_int("workflow", self.repo.full_name, self.path, digits=8)

    @property
    def identity(self) -> str:
        return f"github:{self.repo.full_name}/{self.path}"


# GitHub App ids behind the bot accounts (their avatars are served per app, not per user).
_BOT_APP_IDS = {"github-actions[bot]": 15368, "renovate[bot]": 2740, "dependabot[bot]": 29110}


def gh_account(acc: GhAccount) -> dict[str, Any]:
    api_login = quote(acc.login, safe="")
    if acc.type == "Bot":
        html = f"https://github.com/apps/{acc.login.removesuffix('[bot]')}"
        avatar = f"https://avatars.githubusercontent.com/in/{_BOT_APP_IDS.get(acc.login, acc.id)}?v=4"
    else:
        html = f"https://github.com/{acc.login}"
        avatar = f"https://avatars.githubusercontent.com/u/{acc.id}?v=4"
    base = "orgs" if acc.type == "Organization" else "users"
    return {
        "login": acc.login,
        "id": acc.id,
        "node_id": node_id(acc.type, acc.id),
        "avatar_url": avatar,
        "gravatar_id": "",
        "url": f"https://api.github.com/{base}/{api_login}",
        "html_url": html,
        "followers_url": f"https://api.github.com/users/{api_login}/followers",
        "repos_url": f"https://api.github.com/users/{api_login}/repos",
        "events_url": f"https://api.github.com/users/{api_login}/events{{/privacy}}",
        "type": acc.type,
        "user_view_type": "public",
        "site_admin": False,
    }


def gh_org(repo: GhRepo) -> dict[str, Any]:
    login = repo.owner
    return {
        "login": login,
        "id": repo.org_id,
        "node_id": node_id("Organization", repo.org_id),
        "url": f"https://api.github.com/orgs/{login}",
        "repos_url": f"https://api.github.com/orgs/{login}/repos",
        "events_url": f"https://api.github.com/orgs/{login}/events",
        "hooks_url": f"https://api.github.com/orgs/{login}/hooks",
        "issues_url": f"https://api.github.com/orgs/{login}/issues",
        "members_url": f"https://api.github.com/orgs/{login}/members{{/member}}",
        "public_members_url": f"https://api.github.com/orgs/{login}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{repo.org_id}?v=4",
        "description": "",
    }


def _org_account(repo: GhRepo) -> GhAccount:
    return GhAccount(repo.owner, repo.org_id, "Organization", repo.owner, "")


def gh_repo_mini(repo: GhRepo) -> dict[str, Any]:
    """The short repository object nested in workflow_run."""
    return {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": True,
        "owner": gh_account(_org_account(repo)),
        "html_url": f"https://github.com/{repo.full_name}",
        "description": repo.description,
        "fork": False,
        "url": f"https://api.github.com/repos/{repo.full_name}",
    }


def gh_repo(repo: GhRepo, pushed_at: datetime, *, push_event: bool = False) -> dict[str, Any]:
    created = datetime.fromtimestamp(1_500_000_000 + repo.id % 150_000_000, tz=pushed_at.tzinfo)
    out = gh_repo_mini(repo) | {
        # push payloads carry created_at/pushed_at as epoch seconds, every other event as ISO strings
        "created_at": int(created.timestamp()) if push_event else iso_s(created),
        "updated_at": iso_s(pushed_at),
        "pushed_at": int(pushed_at.timestamp()) if push_event else iso_s(pushed_at),
        "git_url": f"git://github.com/{repo.full_name}.git",
        "ssh_url": f"git@github.com:{repo.full_name}.git",
        "clone_url": f"https://github.com/{repo.full_name}.git",
        "svn_url": f"https://github.com/{repo.full_name}",
        "homepage": None,
        "size": repo.id % 90_000,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": repo.language,
        "has_issues": True,
        "has_projects": False,
        "has_downloads": True,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": repo.id % 40,
        "license": None,
        "allow_forking": False,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private",
        "forks": 0,
        "open_issues": repo.id % 40,
        "watchers": 0,
        "default_branch": "main",
        "custom_properties": {},
    }
    if push_event:
        out |= {"stargazers": 0, "master_branch": "main", "organization": repo.owner}
    return out


def gh_workflow(wf: GhWorkflow) -> dict[str, Any]:
    full = wf.repo.full_name
    return {
        "id": wf.id,
        "node_id": node_id("Workflow", wf.id),
        "name": wf.name,
        "path": wf.path,
        "state": "active",
        "created_at": "2024-02-12T09:14:03.000Z",
        "updated_at": "2025-11-04T16:40:12.000Z",
        "url": f"https://api.github.com/repos/{full}/actions/workflows/{wf.id}",
        "html_url": f"https://github.com/{full}/blob/main/{wf.path}",
        "badge_url": f"https://github.com/{full}/workflows/{quote(wf.name)}/badge.svg",
    }


@dataclass(frozen=True)
class GhRun:
    wf: GhWorkflow
    id: int
    run_number: int
    event: str  # push | pull_request | schedule | workflow_dispatch
    head_branch: str
    head_sha: str
    display_title: str
    actor: GhAccount
    commit_author: GhAccount
    created_at: datetime
    check_suite_id: int


def gh_head_commit(run: GhRun) -> dict[str, Any]:
    return {
        "id": run.head_sha,
        "tree_id": stable_hex("tree", run.head_sha),
        "message": run.display_title,
        "timestamp": iso_s(run.created_at),
        "author": {"name": run.commit_author.name, "email": run.commit_author.email},
        "committer": {"name": "GitHub", "email": "noreply@github.com"},
    }


def gh_workflow_run(
    run: GhRun, *, status: str, conclusion: str | None, updated_at: datetime
) -> dict[str, Any]:
    full = run.wf.repo.full_name
    api = f"https://api.github.com/repos/{full}/actions/runs/{run.id}"
    return {
        "id": run.id,
        "name": run.wf.name,
        "node_id": node_id("WorkflowRun", run.id),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.wf.path,
        "display_title": run.display_title,
        "run_number": run.run_number,
        "event": run.event,
        "status": status,
        "conclusion": conclusion,
        "workflow_id": run.wf.id,
        "check_suite_id": run.check_suite_id,
        "check_suite_node_id": node_id("CheckSuite", run.check_suite_id),
        "url": api,
        "html_url": f"https://github.com/{full}/actions/runs/{run.id}",
        "pull_requests": [],
        "created_at": iso_s(run.created_at),
        "updated_at": iso_s(updated_at),
        "actor": gh_account(run.actor),
        "run_attempt": 1,
        "referenced_workflows": [],
        "run_started_at": iso_s(run.created_at),
        "triggering_actor": gh_account(run.actor),
        "jobs_url": f"{api}/jobs",
        "logs_url": f"{api}/logs",
        "check_suite_url": f"https://api.github.com/repos/{full}/check-suites/{run.check_suite_id}",
        "artifacts_url": f"{api}/artifacts",
        "cancel_url": f"{api}/cancel",
        "rerun_url": f"{api}/rerun",
        "previous_attempt_url": None,
        "workflow_url": f"https://api.github.com/repos/{full}/actions/workflows/{run.wf.id}",
        "head_commit": gh_head_commit(run),
        "repository": gh_repo_mini(run.wf.repo),
        "head_repository": gh_repo_mini(run.wf.repo),
    }


def gh_workflow_run_event(
    run: GhRun, action: str, at: datetime, *, conclusion: str | None = None
) -> dict[str, Any]:
    status = {"requested": "queued", "in_progress": "in_progress", "completed": "completed"}[action]
    return {
        "action": action,
        "workflow_run": gh_workflow_run(run, status=status, conclusion=conclusion, updated_at=at),
        "workflow": gh_workflow(run.wf),
        "repository": gh_repo(run.wf.repo, run.created_at),
        "organization": gh_org(run.wf.repo),
        "sender": gh_account(run.actor),
    }


_JOB_STEPS = {
    "build": (
        "Set up job",
        "Run actions/checkout@v4",
        "Run actions/setup-node@v4",
        "Run npm ci",
        "Run npm run build",
        "Post Run actions/checkout@v4",
        "Complete job",
    ),
    "test": (
        "Set up job",
        "Run actions/checkout@v4",
        "Run actions/setup-node@v4",
        "Run npm ci",
        "Run npm test",
        "Complete job",
    ),
    "lint": ("Set up job", "Run actions/checkout@v4", "Run npm ci", "Run npm run lint", "Complete job"),
    "publish": (
        "Set up job",
        "Run actions/checkout@v4",
        "Run actions/setup-node@v4",
        "Run npm ci",
        "Run npm run build",
        "Run nhiguard publish gate",
        "Run npm publish --provenance --access public",
        "Complete job",
    ),
    "analyze": (
        "Set up job",
        "Run github/codeql-action/init@v3",
        "Run github/codeql-action/analyze@v3",
        "Complete job",
    ),
    "deploy": ("Set up job", "Run actions/checkout@v4", "Run ./scripts/deploy.sh", "Complete job"),
}


def gh_workflow_job_event(
    run: GhRun, job_name: str, job_id: int, started: datetime, completed: datetime, conclusion: str
) -> dict[str, Any]:
    full = run.wf.repo.full_name
    names = _JOB_STEPS.get(job_name, _JOB_STEPS["build"])
    span = (completed - started) / len(names)
    steps = []
    for i, step in enumerate(names):
        ok = conclusion == "success" or i < len(names) - 2
        steps.append(
            {
                "name": step,
                "status": "completed",
                "conclusion": "success" if ok else ("failure" if i == len(names) - 2 else "skipped"),
                "number": i + 1,
                "started_at": iso_ms(started + span * i),
                "completed_at": iso_ms(started + span * (i + 1)),
            }
        )
    runner = 2 + job_id % 19
    return {
        "action": "completed",
        "workflow_job": {
            "id": job_id,
            "run_id": run.id,
            "workflow_name": run.wf.name,
            "head_branch": run.head_branch,
            "run_url": f"https://api.github.com/repos/{full}/actions/runs/{run.id}",
            "run_attempt": 1,
            "node_id": node_id("CheckRun", job_id),
            "head_sha": run.head_sha,
            "url": f"https://api.github.com/repos/{full}/actions/jobs/{job_id}",
            "html_url": f"https://github.com/{full}/actions/runs/{run.id}/job/{job_id}",
            "status": "completed",
            "conclusion": conclusion,
            "created_at": iso_s(started),
            "started_at": iso_s(started),
            "completed_at": iso_s(completed),
            "name": job_name,
            "steps": steps,
            "check_run_url": f"https://api.github.com/repos/{full}/check-runs/{job_id}",
            "labels": ["ubuntu-latest"],
            "runner_id": runner,
            "runner_name": f"GitHub Actions {runner}",
            "runner_group_id": 2,
            "runner_group_name": "GitHub Actions",
        },
        "repository": gh_repo(run.wf.repo, run.created_at),
        "organization": gh_org(run.wf.repo),
        "sender": gh_account(run.actor),
    }


def gh_push_event(
    repo: GhRepo,
    *,
    ref: str,
    before: str,
    after: str,
    commits: list[tuple[str, str, GhAccount, datetime]],
    pusher: GhAccount,
    at: datetime,
) -> dict[str, Any]:
    """commits: (sha, message, author, timestamp); an empty list is a tag push."""
    full = repo.full_name
    cobjs = [
        {
            "id": sha,
            "tree_id": stable_hex("tree", sha),
            "distinct": True,
            "message": msg,
            "timestamp": iso_s(ts),
            "url": f"https://github.com/{full}/commit/{sha}",
            "author": {"name": author.name, "email": author.email, "username": author.login},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
            "added": [],
            "removed": [],
            "modified": ["package.json"] if "deps" in msg else ["src/index.ts"],
        }
        for sha, msg, author, ts in commits
    ]
    is_tag = ref.startswith("refs/tags/")
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": gh_repo(repo, at, push_event=True),
        "pusher": {"name": pusher.login, "email": pusher.email},
        "organization": gh_org(repo),
        "sender": gh_account(pusher),
        "created": is_tag,
        "deleted": False,
        "forced": False,
        "base_ref": "refs/heads/main" if is_tag else None,
        "compare": (
            f"https://github.com/{full}/compare/{ref.removeprefix('refs/tags/')}"
            if is_tag
            else f"https://github.com/{full}/compare/{before[:12]}...{after[:12]}"
        ),
        "commits": cobjs,
        "head_commit": cobjs[-1] if cobjs else None,
    }


def gh_release_event(
    repo: GhRepo,
    *,
    tag: str,
    release_id: int,
    author: GhAccount,
    created: datetime,
    published: datetime,
    body: str,
) -> dict[str, Any]:
    full = repo.full_name
    api = f"https://api.github.com/repos/{full}/releases/{release_id}"
    return {
        "action": "published",
        "release": {
            "url": api,
            "assets_url": f"{api}/assets",
            "upload_url": f"https://uploads.github.com/repos/{full}/releases/{release_id}/assets{{?name,label}}",
            "html_url": f"https://github.com/{full}/releases/tag/{tag}",
            "id": release_id,
            "author": gh_account(author),
            "node_id": node_id("Release", release_id),
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "draft": False,
            "prerelease": False,
            "created_at": iso_s(created),
            "published_at": iso_s(published),
            "assets": [],
            "tarball_url": f"https://api.github.com/repos/{full}/tarball/{tag}",
            "zipball_url": f"https://api.github.com/repos/{full}/zipball/{tag}",
            "body": body,
        },
        "repository": gh_repo(repo, published),
        "organization": gh_org(repo),
        "sender": gh_account(author),
    }


def gh_headers(event: str, delivery: str, org_id: int) -> tuple[tuple[str, bytes], ...]:
    return (
        ("X-GitHub-Event", event.encode()),
        ("X-GitHub-Delivery", delivery.encode()),
        ("X-GitHub-Hook-ID", str(stable_int("hook", org_id)).encode()),
        ("X-GitHub-Hook-Installation-Target-Type", b"organization"),
        ("X-GitHub-Hook-Installation-Target-ID", str(org_id).encode()),
        ("User-Agent", b"GitHub-Hookshot/7c1e2f9"),
        ("Content-Type", b"application/json"),
    )


# ---------------------------------------------------------------------------------------- npm publish gate


def tarball_name(package: str, version: str) -> str:
    """What `npm pack` calls the tarball: @scope/name -> scope-name-1.0.0.tgz."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack(package: str, version: str, files: list[tuple[str, int]], ratio: float) -> dict[str, Any]:
    """The object `npm pack --dry-run --json` prints (one element of its array)."""
    unpacked = sum(size for _, size in files)
    return {
        "id": f"{package}@{version}",
        "name": package,
        "version": version,
        "size": int(unpacked * ratio),
        "unpackedSize": unpacked,
        "shasum": shasum("pack", package, version),
        "integrity": integrity("pack", package, version),
        "filename": tarball_name(package, version),
        "files": [{"path": path, "size": size, "mode": 420} for path, size in sorted(files)],
        "entryCount": len(files),
        "bundled": [],
    }


def gate_request(
    *, request_id: str, at: datetime, run: GhRun, tag: str, pack: dict[str, Any], dist_tag: str = "latest"
) -> dict[str, Any]:
    full = run.wf.repo.full_name
    return {
        "gate": "npm-publish",
        "request_id": request_id,
        "requested_at": iso_s(at),
        "registry": "https://registry.npmjs.org/",
        "tag": dist_tag,
        "access": "public",
        "github": {
            "repository": full,
            "repository_owner": run.wf.repo.owner,
            "workflow": run.wf.name,
            "workflow_ref": f"{full}/{run.wf.path}@refs/tags/{tag}",
            "job": "publish",
            "run_id": str(run.id),
            "run_number": str(run.run_number),
            "run_attempt": "1",
            "actor": run.actor.login,
            "triggering_actor": run.actor.login,
            "event_name": run.event,
            "ref": f"refs/tags/{tag}",
            "ref_type": "tag",
            "sha": run.head_sha,
        },
        "pack": pack,
    }


# -------------------------------------------------------------------------------------------- npm registry

NPM_OIDC_USER = {"name": "GitHub Actions", "email": "npm-oidc-no-reply@github.com"}
_NPM_SIG_KEY = "SHA256:DhQ8wR5APBvFHLF/+Tc+AYvPOdTpcIDqOhxsBHRwC7U"


def npm_tarball_url(package: str, version: str) -> str:
    base = package.rsplit("/", 1)[-1]
    return f"https://registry.npmjs.org/{package}/-/{base}-{version}.tgz"


@dataclass(frozen=True)
class NpmVersion:
    """One version of a published package, with how it was published."""

    package: str
    version: str
    published_at: datetime
    publisher: str  # _npmUser.name
    publisher_email: str
    trusted: bool  # OIDC trusted publishing (implies provenance here)
    dependencies: tuple[tuple[str, str], ...]
    scripts: tuple[tuple[str, str], ...]
    unpacked_size: int
    file_count: int
    description: str
    maintainers: tuple[tuple[str, str], ...]
    repository: str  # "github:owner/repo" or ""


def npm_version_doc(v: NpmVersion) -> dict[str, Any]:
    npm_user: dict[str, Any] = {"name": v.publisher, "email": v.publisher_email}
    if v.trusted:
        npm_user["trustedPublisher"] = {
            "id": "github",
            "oidcConfigId": f"oidc:{stable_hex('oidc', v.package, n=32)}",
        }
    dist: dict[str, Any] = {
        "integrity": integrity("npm", v.package, v.version),
        "shasum": shasum("npm", v.package, v.version),
        "tarball": npm_tarball_url(v.package, v.version),
        "fileCount": v.file_count,
        "unpackedSize": v.unpacked_size,
        "signatures": [
            {"keyid": _NPM_SIG_KEY, "sig": "MEUCIQ" + stable_hex("sig", v.package, v.version, n=56)}
        ],
    }
    if v.trusted:
        dist["attestations"] = {
            "url": f"https://registry.npmjs.org/-/npm/v1/attestations/{v.package}@{v.version}",
            "provenance": {"predicateType": "https://slsa.dev/provenance/v1"},
        }
    doc: dict[str, Any] = {
        "name": v.package,
        "version": v.version,
        "description": v.description,
        "main": "index.js",
        "license": "MIT",
        "scripts": dict(v.scripts),
        "dependencies": dict(v.dependencies),
        "gitHead": stable_hex("git", v.package, v.version),
        "_id": f"{v.package}@{v.version}",
        "_nodeVersion": "22.14.0" if v.trusted else "20.11.1",
        "_npmVersion": "11.5.1" if v.trusted else "10.2.4",
        "dist": dist,
        "_npmUser": npm_user,
        "directories": {},
        "maintainers": [{"name": n, "email": e} for n, e in v.maintainers],
        "_hasShrinkwrap": False,
    }
    if v.repository:
        doc["repository"] = {"type": "git", "url": f"git+https://github.com/{v.repository}.git"}
    return doc


def npm_hook(
    versions: list[NpmVersion],
    *,
    just_published: NpmVersion,
    dist_tags: dict[str, str],
    hook_owner: str,
    created: datetime,
    at: datetime,
) -> dict[str, Any]:
    """A `package:publish` hook body: the packument after the publish of `just_published`."""
    name = just_published.package
    ordered = sorted(versions, key=lambda v: v.published_at)
    times: dict[str, str] = {"created": iso_ms(created), "modified": iso_ms(at)}
    times |= {v.version: iso_ms(v.published_at) for v in ordered}
    latest = ordered[-1]
    packument = {
        "_id": name,
        "_rev": f"{len(ordered)}-{stable_hex('rev', name, just_published.version, n=32)}",
        "name": name,
        "description": latest.description,
        "dist-tags": dist_tags,
        "versions": {v.version: npm_version_doc(v) for v in ordered},
        "time": times,
        "maintainers": [{"name": n, "email": e} for n, e in just_published.maintainers],
        "license": "MIT",
        "readmeFilename": "README.md",
    }
    if just_published.repository:
        packument["repository"] = {
            "type": "git",
            "url": f"git+https://github.com/{just_published.repository}.git",
        }
    return {
        "event": "package:publish",
        "name": name,
        "type": "package",
        "version": just_published.version,
        "hookOwner": {"username": hook_owner},
        "payload": packument,
        "change": {"version": just_published.version},
        "time": to_ms(at),
    }


# --------------------------------------------------------------------------------------- Verdaccio (pino)

# Verdaccio logs its message template verbatim; pino fills nothing in.
VERDACCIO_MSG = (
    "@{status}, user: @{user}(@{remoteIP}), "
    "req: '@{request.method} @{request.url}', bytes: @{bytes.in}/@{bytes.out}"
)


def verdaccio_url(package: str, version: str | None = None) -> str:
    """Tarball (version given) or metadata URL; scoped names are escaped as Verdaccio logs them."""
    escaped = package.replace("/", "%2f")
    if version is None:
        return f"/{escaped}"
    return f"/{escaped}/-/{package.rsplit('/', 1)[-1]}-{version}.tgz"


def verdaccio_line(
    *, at: datetime, user: str, ip: str, url: str, status: int, bytes_out: int, pod: int = 0
) -> dict[str, Any]:
    return {
        "level": 30,
        "time": to_ms(at),
        "pid": 7,
        "hostname": f"verdaccio-{pod}",
        "sub": "out",
        "request": {"method": "GET", "url": url},
        "user": user,
        "remoteIP": ip,
        "status": status,
        "error": None,
        "bytes": {"in": 0, "out": bytes_out},
        "msg": VERDACCIO_MSG,
    }
