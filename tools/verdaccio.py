"""A throwaway Verdaccio (the npm registry proxy many teams run): a real npm registry on loopback for tests.

Verdaccio is pinned and locked in tools/verdaccio/package.json and package-lock.json; `make registry` (or
`python -m tools.verdaccio --install-only`) runs `npm ci` once into the cache dir, like tools/broker.py's
Kafka jars. Each LocalVerdaccio listens on a free port on 127.0.0.1 with its own config and storage in a
temporary directory, no uplinks (it never reaches another registry), htpasswd users only (nobody can sign
up), its access log as JSON lines (the `verdaccio.log` format nhiguard reads) and, if a URL is given, its
`notify` POSTing a JSON line per publish there.

python -m tools.verdaccio --user ci-bot:secret   # run one in the foreground, printing its URL
python -m tools.verdaccio --install-only         # `make registry`: only install it into the cache
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tools.broker import (
    _accepts,
    _file_lock,
    _free_ports,
    _remove_orphaned_run_dirs,
    _signal_group,
    _tail_file,
    _tail_text,
    default_cache_dir,
)

VERDACCIO_VERSION = "6.8.0"
_PINNED = Path(__file__).resolve().parent / "verdaccio"
_MARKER = ".installed"
_LOG_NAME = "verdaccio.log"
# What each publish notification POSTs: one JSON object. Handlebars escapes HTML, not JSON, so only values
# whose characters need no JSON escaping go in (package names and htpasswd user names).
NOTIFY_CONTENT = (
    '{"event": "{{publishType}}", "name": "{{name}}", "package": "{{publishedPackage}}",'
    ' "user": "{{publisher.name}}"}'
)


class VerdaccioError(RuntimeError):
    """The local Verdaccio could not be installed, started or used."""


def _lock_digest() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((_PINNED / name).read_bytes())
    return h.hexdigest()[:12]


def ensure_verdaccio(cache_dir: Path) -> Path:
    """`npm ci` the pinned Verdaccio into `cache_dir/verdaccio-<version>-<lock digest>` (once); its bin path.

    The directory is named by the lockfile's digest: a changed lockfile installs anew beside the old one."""
    home = Path(cache_dir) / f"verdaccio-{VERDACCIO_VERSION}-{_lock_digest()}"
    binary = home / "node_modules" / "verdaccio" / "bin" / "verdaccio"
    if (home / _MARKER).is_file() and binary.is_file():
        return binary
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise VerdaccioError(f"{tool} not found on PATH: Verdaccio needs Node.js 18+ and npm")
    home.mkdir(parents=True, exist_ok=True)
    with _file_lock(home / ".lock"):  # pytest and `make registry` may install at the same moment
        if (home / _MARKER).is_file() and binary.is_file():
            return binary
        shutil.rmtree(home / "node_modules", ignore_errors=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(_PINNED / name, home / name)
        # --ignore-scripts: the locked tree needs none, and a registry package's install script is code we did
        # not review.
        cmd = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(cmd, cwd=home, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not binary.is_file():
            raise VerdaccioError(
                f"installing Verdaccio {VERDACCIO_VERSION} failed (exit {done.returncode}): {' '.join(cmd)}"
                f" in {home}\n" + _tail_text(done.stdout + done.stderr)
            )
        (home / _MARKER).write_text(f"verdaccio {VERDACCIO_VERSION}\n")  # last: marks a complete install
    return binary


def htpasswd_line(user: str, password: str) -> str:
    """An htpasswd entry Verdaccio's htpasswd plugin verifies ({SHA}: fine for throwaway test users)."""
    if not user or any(c in user for c in ":\n") or "\n" in password:
        raise VerdaccioError(f"user {user!r}: no ':' or newline in htpasswd names and passwords")
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}:autocreated {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"


class LocalVerdaccio:
    """One Verdaccio process on 127.0.0.1, started and stopped from Python."""

    def __init__(
        self,
        cache_dir: Path,
        users: Mapping[str, str],
        notify_url: str | None = None,
        port: int | None = None,
        notify_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.users = dict(users)
        self.notify_url = notify_url
        # Sent with each notification besides Content-Type (nhiguard serve's route wants Authorization).
        self.notify_headers = dict(notify_headers or {})
        self.port = port
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tokens: dict[str, str] = {}

    @property
    def url(self) -> str:
        """The registry URL, with the trailing slash npm writes in its config."""
        if self.port is None or self._proc is None:
            raise VerdaccioError("Verdaccio is not started")
        return f"http://127.0.0.1:{self.port}/"

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise VerdaccioError("Verdaccio is not started")
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.directory / _LOG_NAME

    @property
    def htpasswd_path(self) -> Path:
        """Its htpasswd file (auth.htpasswd.file): what `nhiguard enforce verdaccio --htpasswd` changes."""
        return self.directory / "htpasswd"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 120) -> str:
        """Start it; return its URL once it answers `/-/ping`. Installing on first use comes on top."""
        if self._proc is not None:
            raise VerdaccioError(f"already started at {self.url}")
        binary = ensure_verdaccio(self.cache_dir)
        deadline = time.monotonic() + timeout
        run = self.cache_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_run_dirs(run, "verdaccio")
        # The pid in the name lets a later run delete this dir if this process dies without calling stop().
        self._dir = Path(tempfile.mkdtemp(prefix=f"verdaccio-{os.getpid()}-", dir=run))
        try:
            if self.port is None:
                self.port = _free_ports(1)[0]
            elif _accepts(self.port):
                raise VerdaccioError(f"127.0.0.1:{self.port} is already in use")
            config = self._write_config()
            self._launch(binary, config)
            self._wait_ready(deadline, timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, SIGKILL after `timeout` s; delete its directory (storage, config, log)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
            try:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            finally:
                if proc.poll() is None:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
        atexit.unregister(self.stop)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._tokens.clear()

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------------------------
    def token(self, user: str) -> str:
        """A token for one of its users (logged in once)."""
        if user not in self._tokens:
            self._tokens[user] = self.login(user, self.users[user])
        return self._tokens[user]

    def login(self, user: str, password: str) -> str:
        """The login `npm login` makes (PUT /-/user/org.couchdb.user:<name>); its token."""
        body = {"name": user, "password": password, "type": "user", "roles": []}
        # Registration is off: Verdaccio logs in an existing user whose request authenticates as them.
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        answer = self.request("PUT", f"-/user/org.couchdb.user:{user}", body, auth=f"Basic {basic}")
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise VerdaccioError(f"login of {user!r} gave no token: {str(answer)[:200]}")
        return token

    def set_password(self, user: str, password: str) -> None:
        """What an operator does to restore an account: a new password in the htpasswd file (its other lines
        kept); its next token is a new login."""
        path = self.htpasswd_path
        lines = [x for x in path.read_text().splitlines(keepends=True) if x.split(":", 1)[0] != user]
        path.write_text("".join(lines) + htpasswd_line(user, password))
        self.users[user] = password
        self._tokens.pop(user, None)

    def npmrc(self, user: str | None, path: Path) -> Path:
        """Write an .npmrc at `path` that uses this registry, as `user` (None: anonymous)."""
        host = self.url.removeprefix("http:")
        lines = [f"registry={self.url}"]
        if user is not None:
            lines.append(f"{host}:_authToken={self.token(user)}")
        Path(path).write_text("\n".join(lines) + "\n")
        return Path(path)

    def npm_env(self, user: str | None, home: Path) -> dict[str, str]:
        """Environment for a real `npm` run against this registry as `user`, its config and cache in `home`
        (not the machine's ~/.npmrc or cache)."""
        home.mkdir(parents=True, exist_ok=True)
        rc = self.npmrc(user, home / ".npmrc")
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        return env | {
            "HOME": str(home),
            "npm_config_userconfig": str(rc),
            "npm_config_cache": str(home / "npm-cache"),
            "npm_config_registry": self.url,
            "npm_config_audit": "false",
            "npm_config_fund": "false",
            "npm_config_update_notifier": "false",
        }

    def npm(
        self, user: str | None, args: list[str], cwd: Path, home: Path, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The real npm client against this registry as `user` (its config and cache in `home`)."""
        return subprocess.run(
            ["npm", *args], cwd=cwd, env=self.npm_env(user, home), capture_output=True, text=True,
            timeout=timeout, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def request(
        self, method: str, path: str, body: Any = None, user: str | None = None, auth: str | None = None
    ) -> Any:
        """One JSON request to the registry's API (as `user`'s token, or with this Authorization header, if
        given); the decoded answer."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if user is not None:
            auth = f"Bearer {self.token(user)}"
        if auth is not None:
            headers["Authorization"] = auth
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300]
            raise VerdaccioError(f"{method} /{path.lstrip('/')}: HTTP {exc.code} {detail!r}") from exc

    def log_lines(self) -> list[dict[str, Any]]:
        """Its log so far: one JSON object per line (pino), the lines nhiguard reads as verdaccio.log."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    # -------------------------------------------------------------------------------------------------------
    def _write_config(self) -> Path:
        d = self.directory
        self.htpasswd_path.write_text("".join(htpasswd_line(u, p) for u, p in self.users.items()))
        rule = {"access": "$authenticated", "publish": "$authenticated", "unpublish": "$authenticated"}
        config: dict[str, Any] = {
            "storage": str(d / "storage"),
            "plugins": str(d / "plugins"),
            # max_users -1: nobody registers; only the users written above exist.
            "auth": {"htpasswd": {"file": str(self.htpasswd_path), "max_users": -1}},
            "uplinks": {},  # no proxying: nothing leaves this machine
            "packages": {"@*/*": rule, "**": rule},
            "listen": f"127.0.0.1:{self.port}",
            "web": {"enable": False},
            "log": {"type": "file", "path": str(d / _LOG_NAME), "format": "json", "level": "http"},
        }
        if self.notify_url:
            config["notify"] = {
                "publish": {
                    "method": "POST",
                    "headers": [
                        {"Content-Type": "application/json"},
                        *({k: v} for k, v in self.notify_headers.items()),
                    ],
                    "endpoint": self.notify_url,
                    "content": NOTIFY_CONTENT,
                }
            }
        path = d / "config.yaml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML: no quoting surprises
        return path

    def _launch(self, binary: Path, config: Path) -> None:
        cmd = ["node", str(binary), "--config", str(config), "--listen", f"127.0.0.1:{self.port}"]
        # If this process is SIGKILLed, atexit never runs; the parent-death signal still stops Verdaccio.
        if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "TERM", *cmd]
        out: IO[bytes]
        with open(self.directory / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.directory, start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise VerdaccioError(
                    f"Verdaccio exited with code {self._proc.returncode} during startup:\n"
                    + _tail_file(self.directory / "stdout.log")
                )
            if _accepts(self.port or 0):
                with contextlib.suppress(OSError, ValueError):
                    with urllib.request.urlopen(f"{self.url}-/ping", timeout=5) as resp:
                        if resp.status == 200:
                            return
            if time.monotonic() > deadline:
                raise VerdaccioError(
                    f"Verdaccio did not answer /-/ping within {timeout:g} s:\n"
                    + _tail_file(self.directory / "stdout.log")
                )
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Install (once) and run Verdaccio until Ctrl-C or SIGTERM; or only install it."""
    p = argparse.ArgumentParser(
        prog="python -m tools.verdaccio",
        description=f"Run Verdaccio {VERDACCIO_VERSION} on 127.0.0.1 (installed with npm ci on first use,"
        " cached under $NHIGUARD_CACHE_DIR or .cache/), print NPM_REGISTRY=<url>, and run until Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: a free port)")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD", help="an htpasswd user")
    p.add_argument("--notify", metavar="URL", help="POST a JSON line per publish to URL")
    p.add_argument("--install-only", action="store_true", help="install it into the cache and exit")
    args = p.parse_args(argv)
    try:
        if args.install_only:
            print(ensure_verdaccio(default_cache_dir()))
            return 0
        users = dict(u.split(":", 1) for u in args.user if ":" in u)
        if len(users) != len(args.user):
            raise VerdaccioError("--user takes NAME:PASSWORD")
        registry = LocalVerdaccio(default_cache_dir(), users, args.notify, args.port)
    except VerdaccioError as e:
        print(f"tools.verdaccio: {e}", file=sys.stderr)
        return 1
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(f"NPM_REGISTRY={registry.start()}", flush=True)
        print(f"Verdaccio {VERDACCIO_VERSION}; log: {registry.log_path}; Ctrl-C stops it.", file=sys.stderr)
        while registry.running:
            time.sleep(0.5)
        print("tools.verdaccio: Verdaccio exited unexpectedly", file=sys.stderr)
        return 1
    except VerdaccioError as e:
        print(f"tools.verdaccio: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        registry.stop()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
