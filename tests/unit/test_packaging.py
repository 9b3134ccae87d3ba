"""The wheel is the product: it carries every policy and schema, none of the dev tooling, and runs on its own.

Built from a copy of the working tree (a `build/` left in the checkout could leak stale files into it),
installed into a fresh venv without the checkout's editable finder, and run from a directory outside it.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from nhiguard.policy.bundle import load_bundle
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, write_inventory, write_ndjson

_NOT_SOURCE = (".git", ".venv", ".cache", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "results")
# Dev tooling that must stay out of the wheel (tools/ in the checkout).
_TOOLING = ("scenarios", "broker", "demo", "pom.xml", "log4j2", "tools/")


def _pip(*args: str) -> None:
    """The project venv's pip, offline: nothing but the wheel itself is built or installed."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO_ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    _pip("wheel", str(src), "--no-build-isolation", "-w", str(tmp / "dist"))
    (whl,) = (tmp / "dist").glob("nhiguard-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; the project venv's third-party packages are visible through a plain
    path line (which, unlike the editable install's .pth, runs no import hook)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    py = venv / "bin" / "python"
    _pip("--python", str(py), "install", str(wheel))
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NHIGUARD_", "PYTHON"))}
    env["HOME"] = str(cwd)  # any cache the product writes lands here, not in the checkout or the real home
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_has_every_policy_and_schema_and_no_dev_tooling(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = [
        *(p for p in (REPO_ROOT / "policies").rglob("*") if p.suffix in (".rego", ".yaml")),
        *(REPO_ROOT / "schemas").glob("*.avsc"),
    ]
    expected = {"nhiguard/" + p.relative_to(REPO_ROOT).as_posix() for p in data}
    assert {"nhiguard/policies/data.yaml", "nhiguard/policies/manifest.yaml"} <= expected
    assert len([n for n in expected if n.endswith(".avsc")]) >= 6
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert {n.split("/")[0] for n in names} == {"nhiguard", wheel.name.split("-py")[0] + ".dist-info"}
    tooling = sorted(n for n in names if any(t in n for t in _TOOLING))
    assert not tooling, f"dev tooling in the wheel: {tooling}"


def test_the_installed_wheel_runs_offline_outside_the_checkout(installed, tmp_path):
    py, cli = installed / "bin" / "python", installed / "bin" / "nhiguard"
    where = _run(
        installed,
        tmp_path,
        str(py),
        "-c",
        "import nhiguard; from nhiguard.avro import AvroCodec; from nhiguard.settings import load_settings\n"
        "s = load_settings(); AvroCodec(s.schemas_dir)\n"
        "print(nhiguard.__file__); print(s.policies_dir); print(s.schemas_dir)",
    )
    assert where.returncode == 0, where.stderr
    # The wheel's nhiguard, its bundled policies and schemas: nothing from the checkout.
    assert all(Path(p).is_relative_to(installed) for p in where.stdout.split()), where.stdout

    revision = load_bundle(REPO_ROOT / "policies").revision  # a hash of every file that can change a decision
    cases = _run(installed, tmp_path, str(cli), "policy", "test", "--engine", "regopy")
    assert cases.returncode == 0, cases.stdout + cases.stderr
    assert f" 0 failed (regopy, bundle {revision})" in cases.stdout

    params = default_params()
    records = generate(params, ordinary=20)
    write_ndjson(records, tmp_path / "stream.ndjson")
    write_inventory(params, tmp_path / "identities.yaml")
    replay = _run(installed, tmp_path, str(cli), "replay", "stream.ndjson", "--identities", "identities.yaml")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert f"bundle {revision}: {len(records)} records" in replay.stdout
    for policy in ("cms.public_exposure", "ci.release_artifacts", "registry.publisher_integrity"):
        assert policy in replay.stdout
    assert " REVOKE " in replay.stdout and "dead letters: {}" in replay.stdout
