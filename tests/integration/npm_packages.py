"""Small npm packages the registry tests build, publish with the real npm client and install."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tools.verdaccio import LocalVerdaccio


def write_package(
    root: Path,
    name: str,
    version: str,
    files: Mapping[str, str] | None = None,
    dependencies: Mapping[str, str] | None = None,
    scripts: Mapping[str, str] | None = None,
) -> Path:
    """A package directory: package.json and its files (index.js unless `files` names others)."""
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, object] = {"name": name, "version": version, "main": "index.js", "license": "MIT"}
    if dependencies:
        manifest["dependencies"] = dict(dependencies)
    if scripts:
        manifest["scripts"] = dict(scripts)
    (root / "package.json").write_text(json.dumps(manifest, indent=2))
    for path, text in (files or {"index.js": "module.exports = 1;\n"}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def publish(registry: LocalVerdaccio, user: str, pkg: Path, home: Path) -> None:
    """`npm publish` of `pkg` as `user`; raises with npm's output if it fails."""
    done = registry.npm(user, ["publish", "--ignore-scripts"], pkg, home)
    assert done.returncode == 0, f"npm publish {pkg.name} as {user}: {done.stderr[-2000:]}"


def install(registry: LocalVerdaccio, user: str, project: Path, home: Path, *specs: str) -> dict:
    """`npm install` of `specs` in a throwaway project as `user`; its package-lock.json."""
    project.mkdir(parents=True, exist_ok=True)
    if not (project / "package.json").exists():
        manifest = {"name": "app", "version": "0.0.0", "private": True}
        (project / "package.json").write_text(json.dumps(manifest))
    # --ignore-scripts: the test's postinstall must not run here either (what it would run is the point).
    done = registry.npm(user, ["install", "--ignore-scripts", *specs], project, home)
    assert done.returncode == 0, f"npm install {specs} as {user}: {done.stderr[-2000:]}"
    return json.loads((project / "package-lock.json").read_text())


@contextmanager
def notify_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A loopback HTTP endpoint that keeps each JSON body POSTed to it: (its URL, the bodies so far)."""
    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/notify", got
    finally:
        server.shutdown()
        server.server_close()
