"""What a gate knows before it asks: the job that runs it (GitHub Actions, GitLab CI, or none) from the job's
environment variables, and npm's own answers (`npm pack --dry-run --json`, `npm config get`).

The gate request (docs/sources.md, npm.publish_gate) carries the job's context under GitHub's names; a GitLab
job's variables are mapped to the same names (a merge request pipeline is a pull request's code, as GitHub's
`pull_request` is), and its identity is its project's CI configuration, `gitlab:<project>/<config>`, as
GitLab's pipeline webhooks name it. Outside CI the identity is `local` and there is no context to judge.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL = "local"
DEFAULT_GITLAB_CONFIG = ".gitlab-ci.yml"
# GitLab's CI_PIPELINE_SOURCE under the name GitHub gives the same trigger (what ci.release_origin reads).
_GITLAB_EVENTS = {
    "merge_request_event": "pull_request",
    "external_pull_request_event": "pull_request",
    "web": "workflow_dispatch",
    "api": "workflow_dispatch",
    "trigger": "workflow_dispatch",
}
NPM_TIMEOUT_S = 300.0


class GateError(Exception):
    """The gate cannot ask: bad input or a tool that failed (one line for the user, exit 2)."""


@dataclass(frozen=True)
class Job:
    """Who asks: the CI system, the identity decided for, and the context the request carries."""

    ci: str  # github | gitlab | local
    identity: str
    github: dict[str, Any] | None  # the request's `github` object (GitHub's names); None outside CI

    @property
    def repository(self) -> str:
        return str((self.github or {}).get("repository", ""))


def job_from_env(env: Mapping[str, str]) -> Job:
    """The job from its environment: GitHub Actions (GITHUB_ACTIONS=true), GitLab CI (GITLAB_CI=true), or
    neither (`local`)."""
    if env.get("GITHUB_ACTIONS") == "true":
        return _github(env)
    if env.get("GITLAB_CI") == "true":
        return _gitlab(env)
    return Job("local", LOCAL, None)


def _required(env: Mapping[str, str], ci: str, *names: str) -> None:
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise GateError(f"{ci} job without {', '.join(missing)}: cannot name the identity that asks")


def _github(env: Mapping[str, str]) -> Job:
    _required(env, "GitHub Actions", "GITHUB_REPOSITORY", "GITHUB_WORKFLOW_REF")
    names = {
        "repository": "GITHUB_REPOSITORY", "workflow_ref": "GITHUB_WORKFLOW_REF", "run_id": "GITHUB_RUN_ID",
        "run_attempt": "GITHUB_RUN_ATTEMPT", "actor": "GITHUB_ACTOR", "event_name": "GITHUB_EVENT_NAME",
        "ref": "GITHUB_REF", "ref_type": "GITHUB_REF_TYPE", "head_ref": "GITHUB_HEAD_REF",
        "base_ref": "GITHUB_BASE_REF", "sha": "GITHUB_SHA",
    }  # fmt: skip
    github: dict[str, Any] = {k: env.get(v, "") for k, v in names.items()}
    head = _pull_request_head(env.get("GITHUB_EVENT_PATH", ""))
    if head is not None:
        github["event"] = {"pull_request": {"head": {"repo": head}}}
    repo = github["repository"]
    path = github["workflow_ref"].partition("@")[0].removeprefix(repo + "/")
    return Job("github", f"github:{repo}/{path}", github)


def _pull_request_head(path: str) -> dict[str, Any] | None:
    """The head repository of a pull request's run (its full name, whether a fork) from the event payload
    GitHub writes for the job; only those two fields are kept."""
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GateError(f"GITHUB_EVENT_PATH {path}: cannot read the event payload ({exc})") from None
    repo = (
        ((event.get("pull_request") or {}).get("head") or {}).get("repo") if isinstance(event, dict) else {}
    )
    if not isinstance(repo, dict):
        return None
    return {"full_name": str(repo.get("full_name") or ""), "fork": repo.get("fork") is True}


def _gitlab(env: Mapping[str, str]) -> Job:
    _required(env, "GitLab CI", "CI_PROJECT_PATH")
    path = env["CI_PROJECT_PATH"]
    config = env.get("CI_CONFIG_PATH") or DEFAULT_GITLAB_CONFIG
    if env.get("CI_COMMIT_TAG"):
        ref = f"refs/tags/{env['CI_COMMIT_TAG']}"
    elif env.get("CI_MERGE_REQUEST_IID"):
        ref = f"refs/merge-requests/{env['CI_MERGE_REQUEST_IID']}/head"
    else:
        ref = f"refs/heads/{env.get('CI_COMMIT_BRANCH') or env.get('CI_COMMIT_REF_NAME', '')}"
    source = env.get("CI_PIPELINE_SOURCE", "")
    github: dict[str, Any] = {
        "repository": path,
        "workflow_ref": f"{path}/{config}@{ref}",
        "run_id": env.get("CI_PIPELINE_ID", ""),
        "actor": env.get("GITLAB_USER_LOGIN", ""),
        "event_name": _GITLAB_EVENTS.get(source, source),
        "ref": ref,
        "ref_type": "tag" if env.get("CI_COMMIT_TAG") else "branch",
        "head_ref": env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", ""),
        "base_ref": env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", ""),
        "sha": env.get("CI_COMMIT_SHA", ""),
    }
    if head := env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_PATH", ""):
        source_id, target_id = (env.get(f"CI_MERGE_REQUEST_{x}_PROJECT_ID", "") for x in ("SOURCE", "TARGET"))
        fork = bool(source_id and target_id and source_id != target_id) or head.lower() != path.lower()
        github["event"] = {"pull_request": {"head": {"repo": {"full_name": head, "fork": fork}}}}
    return Job("gitlab", f"gitlab:{path}/{config}", github)


# ---------------------------------------------------------------------------------------------------------
def npm(args: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """Run the real npm client; its standard output, or GateError with the last of what it said."""
    if shutil.which("npm") is None:
        raise GateError("npm not found on PATH")
    try:
        done = subprocess.run(
            ["npm", *args], cwd=cwd, env=None if env is None else dict(env), capture_output=True, text=True,
            timeout=NPM_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise GateError(f"npm {' '.join(args)} gave no answer within {NPM_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise GateError(f"npm {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        last = said[-1] if said else f"exit {done.returncode}"
        raise GateError(f"npm {' '.join(args)} failed in {cwd}: {last[:300]}")
    return done.stdout


def pack(directory: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What `npm pack --dry-run --json --ignore-scripts` says the package in `directory` would publish (no
    lifecycle script runs: a package under review runs none of its code here)."""
    if not (directory / "package.json").is_file():
        raise GateError(f"{directory}: no package.json")
    out = npm(["pack", "--dry-run", "--json", "--ignore-scripts"], directory, env)
    try:
        packed = json.loads(out)
    except ValueError:
        raise GateError(f"npm pack --json in {directory} printed no JSON") from None
    if not isinstance(packed, list) or len(packed) != 1 or not isinstance(packed[0], dict):
        raise GateError(f"npm pack --json in {directory} did not describe one package")
    return packed[0]


def manifest(directory: Path) -> dict[str, Any]:
    """The package.json in `directory` (for publishConfig), or GateError."""
    try:
        data = json.loads((directory / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GateError(f"{directory / 'package.json'}: {exc}") from None
    if not isinstance(data, dict):
        raise GateError(f"{directory / 'package.json'}: not a JSON object")
    return data


def configured_registry(directory: Path, env: Mapping[str, str] | None = None, package: str = "") -> str:
    """The registry npm uses from `directory` (its .npmrc, the user's, the environment) for `package`: its
    scope's registry (`@scope:registry`) if one is set, else `npm config get registry`."""
    if package.startswith("@") and "/" in package:
        scoped = npm(["config", "get", f"{package.split('/', 1)[0]}:registry"], directory, env).strip()
        if scoped.startswith(("http://", "https://")):
            return scoped
    registry = npm(["config", "get", "registry"], directory, env).strip()
    if not registry.startswith(("http://", "https://")):
        raise GateError(f"npm config get registry gave {registry[:100]!r}, not a URL")
    return registry
