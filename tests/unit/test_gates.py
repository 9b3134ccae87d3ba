"""`nhiguard gate`: the job's context from its environment, lockfiles, and locked versions judged by their
registry documents (in the public registry's format, as recorded) by the shipped policies, offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nhiguard.decision.registry_facts import HISTORY
from nhiguard.lookup import RegistryLookup
from nhiguard.settings import load_settings
from nhiguard.streams.gate import OfflineCore, for_job, judged, publish_request
from nhiguard.streams.gate_context import GateError, job_from_env
from nhiguard.streams.gate_install import Locked, Prefetched, judge_locked, publish_body, read_lockfile
from tests.unit.test_registry import OIDC, iso, version_doc

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MAINTAINER = ("jasonsaayman", "jasonsaayman@gmail.com")
HIJACKER = ("jasonsaayman", "ifstap@proton.me")


def test_outside_ci_the_job_is_local_and_has_no_context():
    job = job_from_env({"HOME": "/root", "PATH": "/usr/bin"})
    assert (job.ci, job.identity, job.github) == ("local", "local", None)


def test_a_github_job_is_its_workflow_with_the_pull_requests_head(tmp_path: Path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"full_name": "eve/cli", "fork": True}}}}))
    job = job_from_env({
        "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/cli", "GITHUB_EVENT_NAME": "pull_request_target",
        "GITHUB_WORKFLOW_REF": "acme/cli/.github/workflows/release.yml@refs/heads/main",
        "GITHUB_REF": "refs/heads/main", "GITHUB_EVENT_PATH": str(event),
    })  # fmt: skip
    assert job.identity == "github:acme/cli/.github/workflows/release.yml"
    assert job.github is not None and job.github["event_name"] == "pull_request_target"
    assert job.github["event"] == {"pull_request": {"head": {"repo": {"full_name": "eve/cli", "fork": True}}}}
    with pytest.raises(GateError, match="GITHUB_WORKFLOW_REF"):
        job_from_env({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/cli"})
    with pytest.raises(GateError, match="cannot read the event payload"):
        job_from_env({
            "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "a/b", "GITHUB_WORKFLOW_REF": "a/b/w.yml@r",
            "GITHUB_EVENT_PATH": str(tmp_path / "missing.json"),
        })  # fmt: skip


def test_a_gitlab_job_is_its_projects_ci_configuration_and_a_merge_request_is_pull_request_code():
    tag = job_from_env({
        "GITLAB_CI": "true", "CI_PROJECT_PATH": "acme/web", "CI_COMMIT_TAG": "v2.0.0",
        "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_SHA": "9e1f",
    })  # fmt: skip
    assert tag.identity == "gitlab:acme/web/.gitlab-ci.yml"
    assert tag.github is not None
    assert (tag.github["ref"], tag.github["event_name"]) == ("refs/tags/v2.0.0", "push")
    assert tag.github["workflow_ref"] == "acme/web/.gitlab-ci.yml@refs/tags/v2.0.0"
    mr = job_from_env({
        "GITLAB_CI": "true", "CI_PROJECT_PATH": "acme/web", "CI_CONFIG_PATH": "ci/release.yml",
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "12",
        "CI_MERGE_REQUEST_SOURCE_PROJECT_PATH": "eve/web", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "9",
        "CI_MERGE_REQUEST_TARGET_PROJECT_ID": "4",
    })  # fmt: skip
    assert mr.identity == "gitlab:acme/web/ci/release.yml"
    assert mr.github is not None and mr.github["event_name"] == "pull_request"
    assert mr.github["ref"] == "refs/merge-requests/12/head"
    assert mr.github["event"]["pull_request"]["head"]["repo"] == {"full_name": "eve/web", "fork": True}


def _publish_decision(job_env: dict[str, str], files: list[str], identities: Path | None = None):
    offline = OfflineCore(load_settings(env={}), identities, None)
    job = job_from_env(job_env)
    packed = {"name": "@acme/web", "version": "2.0.0", "size": 900, "unpackedSize": 2000,
              "files": [{"path": f, "size": 100} for f in files]}  # fmt: skip
    rec = offline.record(
        "audit.ci", publish_request(job, packed, "https://registry.npmjs.org/", "public", "latest")
    )
    ev = for_job(offline.core.read(rec), job)  # type: ignore[arg-type]
    return job, judged(ev.resource_id, offline.decide([(rec, ev)])[0], identities is not None, [])


def test_a_gitlab_release_is_decided_for_its_pipeline_identity(tmp_path: Path):
    gitlab = {"GITLAB_CI": "true", "CI_PROJECT_PATH": "acme/web", "CI_COMMIT_TAG": "v2.0.0",
              "CI_PIPELINE_SOURCE": "push"}  # fmt: skip
    job, result = _publish_decision(gitlab, ["index.js", "package.json"])
    assert result.verdict == "ALLOW"
    assert [x for x in result.not_checked if "identity.inventory.unknown_identity" in x]
    inventory = tmp_path / "identities.yaml"
    inventory.write_text(json.dumps({"identities": [{
        "id": job.identity, "kind": "package_publisher", "allowed_actions": ["ci.release.*"],
        "expected_publisher": {"repository": "acme/web", "workflow": ".gitlab-ci.yml"},
    }]}))  # fmt: skip
    _, known = _publish_decision(gitlab, ["index.js", "package.json"], inventory)
    assert (known.verdict, known.findings, known.not_checked) == ("ALLOW", [], [])
    _, leak = _publish_decision(gitlab, ["index.js", "index.js.map"], inventory)
    assert leak.verdict == "DENY"
    assert [f.rule for f in leak.findings] == ["ci.release_artifacts.prohibited_source_map"]
    # The evidence names the file the policy found (its index, "select"), not every file of the package.
    assert leak.findings[0].evidence["files"] == ["index.js.map"]


def test_a_policy_bundle_that_does_not_compile_is_one_clear_error(tmp_path: Path):
    import shutil

    from tools import REPO_ROOT

    shutil.copytree(REPO_ROOT / "policies", tmp_path / "policies")
    rego = tmp_path / "policies" / "ci" / "release_artifacts.rego"
    rego.write_text(rego.read_text().replace("some i\n", "some i, f in ev.release.files\n", 1))
    with pytest.raises(GateError, match="does not compile"):
        OfflineCore(load_settings(env={}), None, tmp_path / "policies")


def test_lockfiles_of_every_version_name_each_registry_version_once(tmp_path: Path):
    v3 = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "dependencies": {"a": "^1"}},
            "node_modules/a": {"version": "1.2.0", "resolved": "https://r.example/a/-/a-1.2.0.tgz"},
            "node_modules/b/node_modules/a": {"version": "1.2.0"},
            "node_modules/@s/c": {"version": "2.0.0"},
            "node_modules/alias": {"name": "real-name", "version": "3.0.0"},
            "node_modules/local": {"resolved": "packages/local", "link": True},
            "node_modules/d": {"version": "1.0.0", "inBundle": True},
            "node_modules/g": {"version": "git+ssh://git@github.com/x/g.git#abc"},
            "node_modules/f": {"version": "1.0.0", "resolved": "file:../f-1.0.0.tgz"},
        },
    }
    (tmp_path / "package-lock.json").write_text(json.dumps(v3))
    got = read_lockfile(tmp_path / "package-lock.json")
    assert [(x.name, x.version, bool(x.skipped)) for x in got] == [
        ("@s/c", "2.0.0", False), ("a", "1.2.0", False), ("f", "1.0.0", True),
        ("g", "git+ssh://git@github.com/x/g.git#abc", True), ("real-name", "3.0.0", False),
    ]  # fmt: skip
    v1 = {"lockfileVersion": 1, "dependencies": {"a": {"version": "1.0.0", "dependencies": {
        "b": {"version": "2.0.0"}}}}}  # fmt: skip
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    assert [x.subject for x in read_lockfile(tmp_path / "v1.json")] == ["a@1.0.0", "b@2.0.0"]
    for bad in ("{", "[]", '{"name": "x"}'):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(GateError):
            read_lockfile(tmp_path / "bad.json")
    with pytest.raises(GateError):
        read_lockfile(tmp_path / "missing.json")


def document(name: str, releases: list[tuple[str, tuple[str, str], datetime, dict[str, Any]]]) -> dict:
    versions = {v: version_doc(name, v, who, **kw) for v, who, _, kw in releases}
    times = {"created": iso(min(t for *_, t, _ in releases))} | {v: iso(t) for v, _, t, _ in releases}
    return {"_id": name, "name": name, "versions": versions, "time": times}


def test_a_hook_body_keeps_the_history_the_adapter_reads_and_says_whether_publishers_are_named():
    releases = [(f"1.{i}.0", MAINTAINER, T0 + timedelta(days=i), {}) for i in range(HISTORY + 10)]
    doc = document("lib", releases)
    body, named = publish_body("lib", "1.35.0", doc) or ({}, False)
    kept = set(body["payload"]["versions"])
    assert (
        named and len(kept) == HISTORY + 1 and "1.35.0" in kept and "1.34.0" in kept and "1.2.0" not in kept
    )
    assert "1.36.0" not in kept and "created" in body["payload"]["time"]
    del doc["versions"]["1.30.0"]["_npmUser"]
    assert publish_body("lib", "1.35.0", doc)[1] is False  # type: ignore[index]
    assert publish_body("lib", "9.9.9", doc) is None


def axios_documents() -> dict[str, dict]:
    """The axios incident's shape in the public registry's format: trusted publishing with provenance for
    1.14.0, then 1.14.1 by token from another e-mail adding plain-crypto-js, published minutes before with a
    postinstall."""
    at = T0 + timedelta(days=30)
    axios = document("axios", [
        ("1.13.0", OIDC, T0, {"deps": {"follow-redirects": "^1.15.6"}}),
        ("1.14.0", OIDC, T0 + timedelta(days=20), {"deps": {"follow-redirects": "^1.15.6"}}),
        ("1.14.1", HIJACKER, at, {"deps": {"follow-redirects": "^1.15.6", "plain-crypto-js": "^4.2.1"}}),
    ])  # fmt: skip
    crypto = document("plain-crypto-js", [
        ("4.2.0", ("nrwise", "nrwise@proton.me"), at - timedelta(hours=20), {}),
        ("4.2.1", ("nrwise", "nrwise@proton.me"), at - timedelta(minutes=30),
         {"scripts": {"postinstall": "node setup.js"}}),
    ])  # fmt: skip
    redirects = document(
        "follow-redirects", [("1.15.6", ("rubenverborgh", "r@v.be"), T0 - timedelta(days=400), {})]
    )
    return {"axios": axios, "plain-crypto-js": crypto, "follow-redirects": redirects}


def _judge(docs: dict[str, dict], locked: list[Locked], missing: dict[str, str] | None = None):
    lookup = RegistryLookup(Prefetched(docs, None), 5.0, float("inf"))
    offline = OfflineCore(load_settings(env={}), None, None, lookup)
    return {r.subject: r for r in judge_locked(offline, locked, docs, missing or {})}


def test_the_axios_lockfile_is_denied_and_the_one_before_it_allowed():
    docs = axios_documents()
    bad = _judge(docs, [Locked("axios", "1.14.1"), Locked("follow-redirects", "1.15.6"),
                        Locked("plain-crypto-js", "4.2.1")])  # fmt: skip
    rules = {f.rule.rsplit(".", 1)[-1] for f in bad["axios@1.14.1"].findings if f.effect == "deny"}
    assert bad["axios@1.14.1"].verdict == "DENY"
    assert {"trusted_publishing_dropped", "publisher_changed_adds_dependency", "malicious_dependency_added",
            "young_dependency_added"} <= rules  # fmt: skip
    assert bad["plain-crypto-js@4.2.1"].verdict == "DENY"
    assert "registry.publisher_integrity.install_script_added" in {
        f.rule for f in bad["plain-crypto-js@4.2.1"].findings
    }
    assert bad["follow-redirects@1.15.6"].verdict == "ALLOW"
    good = _judge(docs, [Locked("axios", "1.14.0"), Locked("follow-redirects", "1.15.6")])
    assert [r.verdict for r in good.values()] == ["ALLOW", "ALLOW"]
    assert all(not r.not_checked for r in good.values())


def test_a_document_that_names_no_publisher_leaves_the_publisher_unchecked_and_never_denies_for_it():
    docs = axios_documents()
    for m in docs["axios"]["versions"].values():
        del m["_npmUser"]
    del docs["axios"]["versions"]["1.14.1"]["dependencies"]["plain-crypto-js"]
    got = _judge(docs, [Locked("axios", "1.14.1")])["axios@1.14.1"]
    assert (got.verdict, got.findings) == ("ALLOW", [])
    assert any("names no publisher" in x for x in got.not_checked)


def test_a_version_without_a_document_is_not_checked_and_not_denied():
    local = Locked("x", "1.0.0", "resolved from file:x.tgz, not a registry")
    got = _judge({}, [Locked("axios", "1.14.1"), local], {"axios": "axios: HTTP 503"})
    assert got["axios@1.14.1"].verdict == "ALLOW" and got["axios@1.14.1"].not_checked == [
        "registry document: axios: HTTP 503"
    ]
    assert got["x@1.0.0"].not_checked == ["resolved from file:x.tgz, not a registry"]
