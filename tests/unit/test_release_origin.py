"""Publish-gate requests judged against the inventory's expected publisher (issue #10, "Use the inventory"):
the gate's GitHub context reaches the policy input, a package remembers where its last release ran, and the
shipped policies deny or revoke by the corpus classes they serve."""

from __future__ import annotations

import json
from typing import Any

from nhiguard.decision.adapters import adapt
from nhiguard.decision.context import ExpectedPublisher, Identity, Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.package_state import LastRelease
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT

BUNDLE = load_bundle(REPO_ROOT / "policies")


def publisher(repo: str, workflow: str = ".github/workflows/release.yml", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"github:{repo}/{workflow}",
        "kind": "package_publisher",
        "credential_ids": [f"npm-oidc:{repo}"],
        "expected_publisher": {"mechanism": "trusted_publishing", "repository": repo, "workflow": workflow},
        "allowed_destinations": ["https://registry.npmjs.org/"],
        **extra,
    }


def gate(
    n: int,
    repo: str,
    package: str,
    version: str,
    *,
    workflow: str = ".github/workflows/release.yml",
    event_name: str = "push",
    ref: str = "",
    files: tuple[str, ...] = ("dist/index.js",),
    **context: Any,
) -> RawRecord:
    ref = ref or f"refs/tags/v{version}"
    body = {
        "gate": "npm-publish",
        "request_id": f"req-{n}",
        "requested_at": f"2026-04-{10 + n:02d}T12:00:00Z",
        "registry": "https://registry.npmjs.org/",
        "tag": "latest",
        "access": "public",
        "github": {
            "repository": repo,
            "workflow_ref": f"{repo}/{workflow}@{ref}",
            "event_name": event_name,
            "ref": ref,
            "head_ref": "",
            "base_ref": "",
            **context,
        },
        "pack": {
            "name": package,
            "version": version,
            "size": 1000,
            "unpackedSize": 4000,
            "files": [{"path": p, "size": 400} for p in files],
        },
    }
    return RawRecord("audit.ci", 0, n, json.dumps(body).encode(), repo.encode(), (), 0)


def decide(inventory: list[dict[str, Any]], *records: RawRecord) -> list[tuple[str, list[str], list[str]]]:
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(inventory))
    out = []
    for d in core.process(list(records)).decisions:
        out.append((d.verdict, sorted(c.kind for c in d.commands), sorted(f.rule for f in d.findings)))
    return out


def test_the_gate_context_is_read_by_the_real_github_actions_names():
    fork = {"pull_request": {"head": {"repo": {"full_name": "outsider/cli", "fork": True}}}}
    rec = gate(
        1, "acme/cli", "@acme/cli", "3.7.2", event_name="pull_request", head_ref="docs-typo", event=fork
    )
    body = json.loads(rec.value)
    body["github"] |= {
        "base_ref": "main",
        "workflow_ref": "acme/cli/.github/workflows/release.yml@refs/pull/4/merge",
    }
    del body["github"]["ref"]  # an older gate: only workflow_ref carries the ref
    ev = adapt(RawRecord("audit.ci", 0, 1, json.dumps(body).encode(), b"acme/cli", (), 0), "ci")
    origin = ev.facts.origin
    assert (origin.event_name, origin.ref, origin.repository, origin.workflow) == (
        "pull_request",
        "refs/pull/4/merge",
        "acme/cli",
        ".github/workflows/release.yml",
    )
    assert (origin.head_ref, origin.base_ref, origin.head_repository, origin.fork) == (
        "docs-typo",
        "main",
        "outsider/cli",
        True,
    )
    assert ev.actor.id == "github:acme/cli/.github/workflows/release.yml"


def test_the_inventory_expectations_reach_the_policy_input_and_the_avro_record():
    ident = Identity.from_dict(
        publisher("acme/cli") | {"expected_publisher": {"repository": "acme/cli", "ref": "refs/tags/v*"}}
    )
    assert ident.expected_publisher == ExpectedPublisher(repository="acme/cli", ref="refs/tags/v*")
    assert ident.expectations() == {
        "expected_publisher": {
            "mechanism": "",
            "repository": "acme/cli",
            "workflow": "",
            "ref": "refs/tags/v*",
        },
        "allowed_destinations": ["https://registry.npmjs.org/"],
    }
    assert ident.to_dict()["expected_publisher"]["ref"] == "refs/tags/v*"
    bare = Identity.from_dict({"id": "github:bot/renovate[bot]", "kind": "ci_bot"})
    assert bare.expectations() == {}  # the input of identities that expect nothing stays small


def test_a_release_remembers_where_it_ran_and_old_values_read_without_it():
    assert LastRelease("1.0.0", 10, 40).record() == {"version": "1.0.0", "size": 10, "unpacked_size": 40}
    where = LastRelease("1.0.0", 10, 40, "acme/cli", ".github/workflows/release.yml").record()
    assert (
        where["repository"] == "acme/cli" and LastRelease(**where).workflow == ".github/workflows/release.yml"
    )


def test_ordinary_tag_releases_pass_and_templates_and_declaration_maps_are_not_leaks():
    # oncall_weekend_release, first_release_new_package, example_and_typemap_files (benign)
    files = ("dist/index.js", "dist/index.d.ts.map", "examples/.env.example", "examples/.env.local.example")
    got = decide(
        [publisher("acme/cli")],
        gate(1, "acme/cli", "@acme/cli", "3.7.0", files=files),
        gate(2, "acme/cli", "@acme/cli", "3.7.1", files=files),
    )
    assert got == [("ALLOW", [], []), ("ALLOW", [], [])]


def test_a_real_env_file_with_two_suffixes_is_denied_as_hygiene_not_revoked():
    # env_file_release (attack)
    got = decide(
        [publisher("acme/cli")], gate(1, "acme/cli", "@acme/cli", "3.7.0", files=(".env.production.local",))
    )
    assert got == [("DENY", ["DENY"], ["ci.release_artifacts.prohibited_dotenv"])]


def test_a_fork_pull_request_is_denied_and_revokes_nothing():
    # fork_or_unexpected_workflow_release (attack): a fork's run holds no credential of ours
    fork = {"pull_request": {"head": {"repo": {"full_name": "outsider/cli", "fork": True}}}}
    rec = gate(
        1, "acme/cli", "@acme/cli", "3.7.2", event_name="pull_request", ref="refs/pull/9/merge", event=fork
    )
    verdict, commands, rules = decide([publisher("acme/cli")], rec)[0]
    assert (verdict, commands) == ("DENY", ["DENY"])
    assert {"ci.release_origin.pull_request_code", "ci.release_origin.ref_not_expected"} <= set(rules)


def test_another_repository_publishing_the_package_is_denied_and_its_credential_revoked():
    # fork_or_unexpected_workflow_release (attack): a publish by a workflow the inventory does not expect
    got = decide(
        [publisher("acme/cli"), publisher("acme/lint-config")],
        gate(1, "acme/cli", "@acme/cli", "3.7.0"),
        gate(2, "acme/lint-config", "@acme/cli", "3.7.1"),
        gate(3, "acme/cli", "@acme/cli", "3.7.2"),
    )
    assert got[0] == ("ALLOW", [], [])
    verdict, commands, rules = got[1]
    assert verdict == "REVOKE" and commands == ["DENY", "REVOKE"]  # the gated step stops too
    assert {"ci.release_origin.other_repository", "ci.release_origin.publisher_credential_misused"} <= set(
        rules
    )
    assert got[2] == ("ALLOW", [], [])  # the denied request did not move the package


def test_a_branch_release_is_denied_unless_the_inventory_expects_that_ref():
    # fork_or_unexpected_workflow_release (attack) against a publisher that releases from main (benign)
    on_main = publisher("acme/web") | {
        "expected_publisher": {
            "repository": "acme/web",
            "workflow": ".github/workflows/release.yml",
            "ref": "refs/heads/main",
        }
    }
    got = decide(
        [publisher("acme/cli"), on_main],
        gate(
            1, "acme/cli", "@acme/cli", "3.7.0", event_name="workflow_dispatch", ref="refs/heads/hotfix/tmp"
        ),
        gate(2, "acme/web", "@acme/web", "1.0.0", ref="refs/heads/main"),
    )
    assert got == [("DENY", ["DENY"], ["ci.release_origin.ref_not_expected"]), ("ALLOW", [], [])]
