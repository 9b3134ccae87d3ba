"""`nhiguard gate` as a CI step runs it: the real CLI in a process with an empty environment (no CI
variables), the real `npm pack`, and for the install gate a real Verdaccio the real npm client published to
and installed from."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.npm_packages import install, publish, write_package
from tools.broker import default_cache_dir
from tools.verdaccio import LocalVerdaccio

pytestmark = pytest.mark.integration

USERS = {"publisher-bot": "publisher-secret-1", "ci-bot": "ci-secret-2", "intruder": "intruder-secret-3"}


def gate(*args: str, home: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a CI step would run it, in an environment with nothing but PATH, HOME and `env`."""
    keep = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "NHIGUARD_WORKTREE") if k in os.environ}
    return subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", "gate", *args],
        cwd=cwd,
        env={**keep, "HOME": str(home), "npm_config_update_notifier": "false", **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize(
    ("files", "code", "rule"),
    [
        ({"index.js": "module.exports = 1;\n", "index.d.ts.map": "{}"}, 0, ""),
        ({"index.js": "module.exports = 1;\n", "index.js.map": '{"sourcesContent": ["secret"]}'}, 1,
         "ci.release_artifacts.prohibited_source_map"),
        ({"index.js": "module.exports = 1;\n", "dist/.env.production.local": "API_KEY=live\n"}, 1,
         "ci.release_artifacts.prohibited_dotenv"),
    ],
)  # fmt: skip
def test_publish_gate_offline_outside_ci(tmp_path, files, code, rule):
    pkg = write_package(tmp_path / "pkg", "gate-publish", "1.0.0", files)
    home = tmp_path / "home"
    home.mkdir()
    done = gate("npm-publish", str(pkg), "--offline", home=home, cwd=tmp_path)
    assert done.returncode == code, done.stdout + done.stderr
    out = done.stdout
    assert "as local" in out
    assert ("DENY gate-publish@1.0.0" if code else "ALLOW gate-publish@1.0.0") in out
    if rule:
        assert f"DENY {rule}:" in out
        assert f"files: {next(f for f in files if f != 'index.js')}\n" in out  # the file, and only it
    # Offline and outside CI: the inventory, the job and the previous release were not there to check.
    assert "not checked: identity.inventory.unknown_identity" in out
    assert "not checked: where the job runs" in out
    assert "not checked: size against the package's previous release" in out


def test_publish_gate_errors_are_one_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (
        ["npm-publish", str(empty), "--offline"],
        ["npm-publish", str(tmp_path / "nowhere"), "--offline"],
    ):
        done = gate(*args, home=home, cwd=tmp_path)
        assert done.returncode == 2
        assert "no package.json" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    pkg = write_package(tmp_path / "pkg", "gate-publish", "1.0.0")
    done = gate("npm-publish", str(pkg), home=home, cwd=tmp_path)
    assert done.returncode == 2 and "--offline" in done.stderr


def test_publish_gate_in_a_pull_request_run(tmp_path):
    """GitHub Actions: the job's variables name the workflow, and a pull_request run is pull-request code."""
    pkg = write_package(tmp_path / "pkg", "gate-publish", "1.0.0")
    home = tmp_path / "home"
    home.mkdir()
    github = {
        "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/cli",
        "GITHUB_WORKFLOW_REF": "acme/cli/.github/workflows/release.yml@refs/pull/7/merge",
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge",
    }  # fmt: skip
    done = gate("npm-publish", str(pkg), "--offline", home=home, cwd=tmp_path, **github)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "as github:acme/cli/.github/workflows/release.yml" in done.stdout
    assert "DENY ci.release_origin.pull_request_code:" in done.stdout
    tag = github | {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.0.0"}
    tag["GITHUB_WORKFLOW_REF"] = "acme/cli/.github/workflows/release.yml@refs/tags/v1.0.0"
    done = gate("npm-publish", str(pkg), "--offline", home=home, cwd=tmp_path, **tag)
    assert done.returncode == 0, done.stdout + done.stderr


def test_install_gate_against_verdaccio(tmp_path):
    """A clean lockfile is allowed; one that resolves the axios pattern as far as a local registry carries it
    (a new version by another user adds a dependency published minutes before, with a postinstall) is
    denied, with the reasons."""
    with LocalVerdaccio(default_cache_dir(), USERS) as registry:
        publish(
            registry,
            "publisher-bot",
            write_package(tmp_path / "lib-1.0.0", "gate-lib", "1.0.0"),
            tmp_path / "h1",
        )
        clean = tmp_path / "clean-app"
        install(registry, "ci-bot", clean, tmp_path / "h2", "gate-lib@1.0.0")
        helper = write_package(
            tmp_path / "helper", "gate-helper", "1.0.0", scripts={"postinstall": "node setup.js"},
            files={"index.js": "module.exports = 2;\n", "setup.js": "process.exit(0);\n"},
        )  # fmt: skip
        publish(registry, "intruder", helper, tmp_path / "h3")
        bad_lib = write_package(
            tmp_path / "lib-1.0.1", "gate-lib", "1.0.1", dependencies={"gate-helper": "^1.0.0"}
        )
        publish(registry, "intruder", bad_lib, tmp_path / "h3")
        bad = tmp_path / "bad-app"
        install(registry, "ci-bot", bad, tmp_path / "h2", "gate-lib@1.0.1")

        home = tmp_path / "home"
        home.mkdir()
        token = registry.token("ci-bot")
        args = ("--offline", "--registry", registry.url)
        ok = gate(
            "npm-install", str(clean / "package-lock.json"), *args, home=home, cwd=clean, NPM_TOKEN=token
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "0 denied, 1 allowed" in ok.stdout

        no = gate("npm-install", *args, home=home, cwd=bad, NPM_TOKEN=token)
        assert no.returncode == 1, no.stdout + no.stderr
        out = no.stdout
        assert "2 denied, 0 allowed" in out
        assert "DENY registry.publisher_integrity.install_script_added:" in out  # gate-helper's postinstall
        assert "DENY registry.publisher_integrity.malicious_dependency_added:" in out  # gate-lib@1.0.1
        assert "DENY registry.publisher_integrity.young_dependency_added:" in out
        # Verdaccio keeps no publisher in its documents: that fact is said to be unchecked, not guessed.
        assert "the document names no publisher" in out

        # No token: the registry answers nothing. A gate that could check nothing says so and fails (2).
        refused = gate("npm-install", *args, home=home, cwd=bad)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "HTTP 401" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_publish_gate_reads_where_and_how_npm_would_publish(tmp_path):
    """A scoped package goes to its scope's registry, restricted unless it says public (as npm publish)."""
    home = tmp_path / "home"
    home.mkdir()
    files = {"index.js": "module.exports = 1;\n", "index.js.map": "{}"}
    pkg = write_package(tmp_path / "pkg", "@acme/web", "2.0.0", files)
    (pkg / ".npmrc").write_text("@acme:registry=http://127.0.0.1:9/\n")
    done = gate("npm-publish", str(pkg), "--offline", home=home, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr  # a restricted package is not a public release
    assert "to http://127.0.0.1:9/ (restricted, tag latest)" in done.stdout
    done = gate(
        "npm-publish", str(pkg), "--offline", "--access", "public", "--tag", "next", home=home, cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "to http://127.0.0.1:9/ (public, tag next)" in done.stdout
