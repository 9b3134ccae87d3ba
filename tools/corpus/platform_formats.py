"""The CI and CMS platforms' own JSON (docs/sources.md): GitHub audit log events as GitHub streams them,
GitHub Packages' `package` / `registry_package` webhooks, GitLab's pipeline, job, deployment and push hooks
and its streamed audit events, Strapi's webhooks (with the receiver's X-Webhook-Integration header). Field
sets follow the real formats (tests/fixtures/sources/), trimmed of URLs and avatars."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from typing import Any

from tools.scenarios._util import iso_ms, iso_s, sha40, stable_hex, stable_int, uuid4
from tools.scenarios.formats import GhAccount, GhRepo, gh_account, gh_org, gh_repo_mini

# ------------------------------------------------------------------------------------------ GitHub audit


def gh_audit(at: datetime, action: str, actor: str, org: str, **fields: Any) -> dict[str, Any]:
    """One audit log event as GitHub's stream writes it (`@timestamp` in Unix milliseconds)."""
    ms = int(at.timestamp() * 1000)
    doc = stable_hex(action, actor, ms, n=22)
    body = {"@timestamp": ms, "_document_id": doc, "action": action, "actor": actor, "org": org}
    body |= {"org_id": stable_int("org", org, digits=8), "created_at": ms, "business": f"{org}-enterprise"}
    return body | fields


# ----------------------------------------------------------------------------------------- GitHub Packages
def gh_package_event(
    repo: GhRepo,
    author: GhAccount,
    ecosystem: str,
    name: str,
    version: str,
    at: datetime,
    manifest: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(X-GitHub-Event, body) of a GitHub Packages publish: `package` for npm, `registry_package` for a
    container image (the two events GitHub sends for the two registries)."""
    owner = gh_account(GhAccount(repo.owner, repo.org_id, "Organization", repo.owner, ""))
    version_id = stable_int("package_version", name, version, digits=8)
    pv: dict[str, Any] = {
        "id": version_id,
        "version": version,
        "name": version,
        "target_commitish": "main",
        "created_at": iso_s(at),
        "updated_at": iso_s(at),
        "author": gh_account(author),
    }
    if ecosystem == "npm":
        short = name.split("/")[-1]
        pv |= {
            "manifest": json.dumps(manifest or {"name": name, "version": version}),
            "tag_name": f"v{version}",
            "package_files": [
                {"id": version_id % 100_000, "name": f"{short}-{version}.tgz", "state": "uploaded"}
            ],
            "installation_command": f"npm install {name}@{version}",
        }
        package = {
            "name": short,
            "namespace": f"{repo.owner}/{short}",
            "ecosystem": "npm",
            "package_type": "npm",
        }
        event, key = "package", "package"
        registry = {
            "name": "GitHub npm registry",
            "type": "npm",
            "url": f"https://npm.pkg.github.com/@{repo.owner}",
        }
    else:
        digest = "sha256:" + stable_hex("image", name, version, n=64)
        pv |= {
            "version": digest,
            "name": digest,
            "manifest": "",
            "container_metadata": {"tag": {"name": version, "digest": digest}},
            "package_files": [],
            "installation_command": f"docker pull ghcr.io/{repo.owner}/{name}:{version}",
        }
        package = {"name": name, "namespace": f"{repo.owner}/{name}", "ecosystem": "CONTAINER"}
        package["package_type"] = "CONTAINER"
        event, key = "registry_package", "registry_package"
        registry = {"name": "GitHub CONTAINER registry", "type": "CONTAINER"}
        registry["url"] = f"https://CONTAINER.pkg.github.com/{repo.owner}"
    package |= {
        "id": stable_int("package", name, digits=7),
        "owner": owner,
        "created_at": "2024-06-03T09:12:44Z",
        "updated_at": iso_s(at),
        "package_version": pv,
        "registry": registry | {"vendor": "GitHub Inc"},
    }
    body = {
        "action": "published",
        key: package,
        "repository": gh_repo_mini(repo),
        "organization": gh_org(repo),
        "sender": gh_account(author),
    }
    return event, body


# ------------------------------------------------------------------------------------------------ GitLab
def _gl_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def gl_project(pid: int, path: str, host: str) -> dict[str, Any]:
    ns, name = path.split("/", 1)
    return {
        "id": pid,
        "name": name,
        "description": "",
        "web_url": f"https://{host}/{path}",
        "namespace": ns,
        "visibility_level": 0,
        "path_with_namespace": path,
        "default_branch": "main",
        "ci_config_path": None,
    }


def gl_user(uid: int, username: str, name: str) -> dict[str, Any]:
    return {"id": uid, "name": name, "username": username, "email": "[REDACTED]"}


def gl_pipeline(
    rng: random.Random,
    project: dict[str, Any],
    pipeline: int,
    user: dict[str, Any],
    source: str,
    start: datetime,
    end: datetime,
    ref: str = "main",
) -> dict[str, Any]:
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline,
            "iid": pipeline % 10_000,
            "name": None,
            "ref": ref,
            "tag": False,
            "sha": sha40(rng),
            "source": source,
            "status": "success",
            "stages": ["validate", "plan", "apply"],
            "created_at": _gl_time(start),
            "finished_at": _gl_time(end),
            "duration": int((end - start).total_seconds()),
            "variables": [],
            "url": f"{project['web_url']}/-/pipelines/{pipeline}",
        },
        "merge_request": None,
        "user": user,
        "project": project,
        "builds": [],
    }


def gl_job(
    project: dict[str, Any],
    pipeline: int,
    job: int,
    name: str,
    stage: str,
    user: dict[str, Any],
    runner: tuple[int, str, list[str]],
    start: datetime,
    end: datetime,
    ref: str = "main",
) -> dict[str, Any]:
    rid, description, tags = runner
    return {
        "object_kind": "build",
        "ref": ref,
        "tag": False,
        "build_id": job,
        "build_name": name,
        "build_stage": stage,
        "build_status": "success",
        "build_created_at": iso_ms(start - timedelta(seconds=3)),
        "build_started_at": iso_ms(start),
        "build_finished_at": iso_ms(end),
        "build_allow_failure": False,
        "pipeline_id": pipeline,
        "project_id": project["id"],
        "project_name": project["path_with_namespace"].replace("/", " / "),
        "user": user,
        "commit": {"id": pipeline, "name": None, "status": "success"},
        "project": project,
        "runner": {
            "id": rid,
            "description": description,
            "active": True,
            "runner_type": "instance_type",
            "is_shared": True,
            "tags": tags,
        },
        "environment": {"name": "production", "action": "start"} if stage == "apply" else None,
    }


def gl_deployment(project: dict[str, Any], job: int, user: dict[str, Any], at: datetime) -> dict[str, Any]:
    return {
        "object_kind": "deployment",
        "status": "success",
        "status_changed_at": _gl_time(at),
        "deployment_id": job % 100_000,
        "deployable_id": job,
        "deployable_url": f"{project['web_url']}/-/jobs/{job}",
        "environment": "production",
        "environment_tier": "production",
        "project": project,
        "user": user,
        "ref": "main",
    }


def gl_push(rng: random.Random, project: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": sha40(rng),
        "after": sha40(rng),
        "ref": "refs/heads/main",
        "ref_protected": True,
        "user_id": user["id"],
        "user_name": user["name"],
        "user_username": user["username"],
        "user_email": "",
        "project_id": project["id"],
        "project": project,
        "commits": [],
        "total_commits_count": 1,
    }


def gl_headers(kind: str, rng: random.Random) -> tuple[tuple[str, bytes], ...]:
    return (
        ("X-Gitlab-Event", f"{kind} Hook".encode()),
        ("X-Gitlab-Event-UUID", uuid4(rng).encode()),
        ("Content-Type", b"application/json"),
    )


def gl_audit(
    at: datetime,
    event_type: str,
    author: tuple[int, str],
    path: str,
    pid: int,
    target: tuple[str, str],
    ip: str,
    message: Any,
) -> dict[str, Any]:
    """A streamed audit event (its fields repeated under `details`, as GitLab streams them)."""
    ident = stable_int("gitlab-audit", event_type, path, at.timestamp(), digits=10)
    details = {
        "author_name": author[1],
        "target_id": pid,
        "target_type": target[0],
        "target_details": target[1],
        "custom_message": message,
        "ip_address": ip,
        "entity_path": path,
    }
    top = {
        "author_name": author[1],
        "entity_path": path,
        "target_details": target[1],
        "target_type": target[0],
    }
    return {
        "id": ident,
        "author_id": author[0],
        "entity_id": pid,
        "entity_type": "Project",
        "details": details,
        "ip_address": ip,
        "created_at": iso_ms(at),
        "target_id": pid,
        "event_type": event_type,
    } | top


# ------------------------------------------------------------------------------------------------ Strapi
def strapi_entry(
    event: str, uid: str, doc: str, num: int, fields: dict[str, Any], at: datetime, live: bool
) -> dict[str, Any]:
    entry = {"id": num, "documentId": doc} | fields
    entry |= {"createdAt": iso_ms(at - timedelta(days=3)), "updatedAt": iso_ms(at), "locale": "en"}
    entry["publishedAt"] = iso_ms(at) if live else None
    model = uid.split(".")[-1]
    return {"event": event, "createdAt": iso_ms(at), "model": model, "uid": uid, "entry": entry}


def strapi_media(
    event: str, doc: str, num: int, name: str, mime: str, size_kb: float, at: datetime
) -> dict[str, Any]:
    stem, ext = name.rsplit(".", 1)
    file_hash = f"{stem.replace('-', '_')}_{stable_hex(doc, n=6)}"
    media = {
        "id": num,
        "documentId": doc,
        "name": name,
        "alternativeText": None,
        "caption": None,
        "hash": file_hash,
        "ext": f".{ext}",
        "mime": mime,
        "size": round(size_kb, 2),
        "url": f"/uploads/{file_hash}.{ext}",
        "previewUrl": None,
        "provider": "local",
        "provider_metadata": None,
        "folderPath": "/1",
        "createdAt": iso_ms(at),
        "updatedAt": iso_ms(at),
    }
    return {"event": event, "createdAt": iso_ms(at), "media": media}


def strapi_headers(event: str, integration: str) -> tuple[tuple[str, bytes], ...]:
    return (
        ("X-Strapi-Event", event.encode()),
        ("X-Webhook-Integration", integration.encode()),
        ("Content-Type", b"application/json"),
    )
