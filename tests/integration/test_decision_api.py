"""The decision API as a client uses it: `nhiguard serve` with a token, a worker, the real broker. A gate
request is answered with the decision the worker made (the same decision on authz.decisions), its findings,
reasons and evidence; without a worker the answer is the domain's failure mode; refusals say why; and
`nhiguard gate npm-publish --url` exits on the server's decision.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.npm_packages import write_package
from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)
from tests.integration.test_verdaccio_pipeline import serving

pytestmark = pytest.mark.integration

TOKEN = "decision-api-token-0123456789"
WORKFLOW = "acme/cli/.github/workflows/r.yml"  # a package_publisher of the pipeline fixture's inventory


def gate_request(files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "gate": "npm-publish",
        "request_id": str(uuid.uuid4()),
        "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "registry": "https://registry.npmjs.org/",
        "access": "public",
        "tag": "latest",
        "github": {
            "repository": "acme/cli",
            "workflow_ref": f"{WORKFLOW}@refs/tags/v1.4.0",
            "event_name": "push",
            "ref": "refs/tags/v1.4.0",
        },
        "pack": {
            "name": "@acme/cli",
            "version": "1.4.0",
            "size": 5120,
            "unpackedSize": 20480,
            "files": files,
        },
    }


def post(base: str, body: Any, token: str = TOKEN, query: str = "") -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        f"{base}/v1/decisions{query}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def gate(pkg: Path, base: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`nhiguard gate npm-publish --url` as a GitHub Actions step runs it."""
    keep = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "NHIGUARD_WORKTREE") if k in os.environ}
    env = keep | {
        "HOME": str(home),
        "npm_config_update_notifier": "false",
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/cli",
        "GITHUB_WORKFLOW_REF": f"{WORKFLOW}@refs/tags/v1.4.0",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/tags/v1.4.0",
        "NHIGUARD_API_TOKEN": TOKEN,
    }
    return subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", "gate", "npm-publish", str(pkg), "--url", base],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_client_gets_the_workers_decision_or_the_failure_mode(pipeline, tmp_path):  # noqa: F811
    settings, start, _ = pipeline
    with serving(settings, tmp_path, NHIGUARD_API_TOKEN=TOKEN, NHIGUARD_API_DEADLINE_S="240") as base:
        # No worker yet: nothing decides it within the deadline, and the ci domain fails closed.
        early = gate_request([{"path": "cli.js", "size": 20480}])
        status, undecided = post(base, early, query="?deadline_s=3")
        assert status == 200, undecided
        assert (undecided["decided"], undecided["verdict"], undecided["failure_mode"]) == (
            False,
            "DENY",
            "closed",
        )

        assert post(base, early, token="not-the-token-0123456789")[0] == 401
        status, refused = post(base, {"format": "no.such", "record": {}})
        assert status == 422 and "not one nhiguard reads" in refused["error"]

        start()
        status, allowed = post(base, gate_request([{"path": "cli.js", "size": 20480}]))
        assert status == 200, allowed
        assert (allowed["decided"], allowed["verdict"]) == (True, "ALLOW"), allowed["findings"]
        assert allowed["identity"] == {"id": f"github:{WORKFLOW}", "known": True, "kind": "package_publisher"}
        status, denied = post(
            base, gate_request([{"path": "cli.js", "size": 20480}, {"path": "cli.js.map", "size": 9}])
        )
        assert status == 200 and denied["verdict"] == "DENY", denied
        [source_map] = [f for f in denied["findings"] if f["rule"].endswith("prohibited_source_map")]
        assert source_map["evidence"]["files"] == ["cli.js.map"] and source_map["reason"]
        assert denied["bundle_revision"] and denied["command_ids"]

        # Each answer is the decision on authz.decisions (the SOC sees gated attempts), the early one too.
        ids = {allowed["decision_id"], denied["decision_id"]}
        early_ref = tuple(undecided["input"].values())
        out = collect(
            settings,
            10**9,
            timeout=300,
            stop_when=lambda o: (
                ids <= {d["decision_id"] for d in o["decisions"]}
                and early_ref in {tuple(d["input"].values()) for d in o["decisions"]}
            ),
        )
        by_id = {d["decision_id"]: d for d in out["decisions"]}
        assert by_id[denied["decision_id"]]["verdict"] == "DENY"
        assert early_ref in {tuple(d["input"].values()) for d in out["decisions"]}

        # The gate a CI step runs, asking the server.
        # Unscoped: public releases (a scoped package is restricted unless it says otherwise).
        clean = write_package(tmp_path / "clean", "acme-cli", "1.4.1")
        leaky = write_package(tmp_path / "leaky", "acme-cli", "1.4.2", {"cli.js": "x\n", "cli.js.map": "{}"})
        (tmp_path / "home").mkdir()
        ok = gate(clean, base, tmp_path / "home")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "ALLOW acme-cli@1.4.1" in ok.stdout and f"asked {base}" in ok.stdout
        bad = gate(leaky, base, tmp_path / "home")
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert (
            "DENY ci.release_artifacts.prohibited_source_map" in bad.stdout
            and "files: cli.js.map" in bad.stdout
        )
