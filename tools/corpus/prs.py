"""GitHub `pull_request` webhooks (the demo generator has no builder for them), trimmed like its others."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from tools.scenarios._util import iso_s, node_id, sha40, stable_int
from tools.scenarios.formats import GhAccount, GhRepo, gh_account, gh_org, gh_repo, gh_repo_mini


def fork_repo_mini(base: GhRepo, owner: GhAccount) -> dict[str, Any]:
    """The short repository object of `owner`'s public fork of `base`."""
    fork = GhRepo(f"{owner.login}/{base.name}", base.description, base.language, base.team)
    mini = gh_repo_mini(fork)
    mini |= {"private": False, "fork": True, "owner": gh_account(owner)}
    return mini


def gh_pull_request_event(
    rng: random.Random,
    repo: GhRepo,
    *,
    number: int,
    author: GhAccount,
    head_ref: str,
    head_sha: str,
    title: str,
    at: datetime,
    fork: bool = False,
) -> dict[str, Any]:
    full = repo.full_name
    pr_id = stable_int("pr", full, number, digits=10)
    head_repo = fork_repo_mini(repo, author) if fork else gh_repo_mini(repo)
    base_repo = gh_repo_mini(repo)
    head_owner = author.login if fork else repo.owner
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{full}/pulls/{number}",
            "id": pr_id,
            "node_id": node_id("PullRequest", pr_id),
            "html_url": f"https://github.com/{full}/pull/{number}",
            "number": number,
            "state": "open",
            "locked": False,
            "title": title,
            "user": gh_account(author),
            "body": title,
            "created_at": iso_s(at),
            "updated_at": iso_s(at),
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "draft": False,
            "head": {
                "label": f"{head_owner}:{head_ref}",
                "ref": head_ref,
                "sha": head_sha,
                "user": gh_account(author),
                "repo": head_repo,
            },
            "base": {
                "label": f"{repo.owner}:main",
                "ref": "main",
                "sha": sha40(rng),
                "repo": base_repo,
            },
            "author_association": "NONE" if fork else "CONTRIBUTOR",
            "commits": rng.randint(1, 3),
            "additions": rng.randint(1, 120),
            "deletions": rng.randint(0, 60),
            "changed_files": rng.randint(1, 6),
        },
        "repository": gh_repo(repo, at),
        "organization": gh_org(repo),
        "sender": gh_account(author),
    }
