"""One import name per module: the checkout's top-level streams/, models/, policies/ and schemas/ install as
nhiguard.streams, … (pyproject's package-dir), and pytest's pythonpath makes them importable under their
folder names too. A module loaded under both names is two modules (two copies of its globals and classes), so
every import must use the installed name."""

import ast
import json
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

from tools import REPO_ROOT

PACKAGE_DIR = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
# Folders installed under another name: {"streams": "nhiguard.streams", …}.
RENAMED = {folder: name for name, folder in PACKAGE_DIR.items() if folder != name.replace(".", "/")}
SKIP = {".git", ".venv", ".cache", "build", "dist", "__pycache__"}


def _python_files() -> list[Path]:
    return [p for p in REPO_ROOT.rglob("*.py") if not SKIP.intersection(p.relative_to(REPO_ROOT).parts)]


def test_the_renamed_folders_are_the_ones_expected():
    assert set(RENAMED) >= {"streams", "models", "policies", "schemas"}


def test_no_source_imports_a_folder_by_its_checkout_name():
    bad = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            bad += [
                f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {n}"
                for n in names
                if n.split(".")[0] in RENAMED
            ]
    assert not bad, f"import these by their installed names ({RENAMED}): {bad}"


def test_after_importing_the_test_tree_and_the_package_every_module_has_one_name(tmp_path):
    """As pytest loads them (collection imports every test module), plus every module of the package."""
    out = tmp_path / "modules.json"
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import pytest\n"
        "rc = pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests'])\n"
        f"for pkg in {sorted(PACKAGE_DIR)!r}:\n"
        "    for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "files = {n: getattr(m, '__file__', None) for n, m in list(sys.modules.items())}\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'rc': int(rc), 'files': files}}))\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, check=True)
    loaded = json.loads(out.read_text())
    assert loaded["rc"] == 0, "collecting the test tree failed"
    names_of: dict[Path, list[str]] = defaultdict(list)
    for name, file in loaded["files"].items():
        if file and Path(file).resolve().is_relative_to(REPO_ROOT):
            rel = Path(file).resolve().relative_to(REPO_ROOT)
            if not SKIP.intersection(rel.parts):
                names_of[rel].append(name)
    assert {Path("streams/app.py"), Path("models/anomaly.py"), Path("tools/scenarios/generate.py")} <= set(
        names_of
    )
    twice = {str(f): names for f, names in names_of.items() if len(names) > 1}
    assert not twice, f"modules loaded under two names: {twice}"
    wrong = sorted(n for n in loaded["files"] if n.split(".")[0] in RENAMED)
    assert not wrong, f"modules loaded under their checkout folder's name: {wrong}"
