"""Revoking a Verdaccio account's credentials in its htpasswd file, as `nhiguard enforce verdaccio` does.

Verdaccio 6.8.0 with its htpasswd plugin (the tests' registry, tools/verdaccio.py) re-reads the file on every
authentication, but *merges* what it reads into the users it already knows: an account removed from the file
keeps working until Verdaccio restarts (measured: tests/integration/test_enforce.py). Its tokens are no help
either: with its default `security.api.legacy`, an `npm login` token is the account's name and password
encrypted with the registry's secret, checked against the file on each request, and a token made with `npm
token create` carries the password too. So a credential is revoked by replacing the account's password hash
with one of a password nobody knows: every token and password of the account stops working at its next
request, and the line says who revoked it and why. An operator restores the account by setting a new password
(`htpasswd`, or Verdaccio's change-password API).

The file is changed as Verdaccio's own htpasswd plugin changes it: under `<file>.lock` (created exclusively),
written to a temporary file and renamed over it.

With `security.api.jwt` configured, Verdaccio checks a token's signature and expiry only: such tokens stay
valid until they expire whatever the file says, and Verdaccio 6.8.0 has no API to revoke them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_WAIT_S = 10.0
STALE_LOCK_S = 60.0  # a lock older than this was left by a process that died (Verdaccio's plugin: 60 s too)


class HtpasswdError(Exception):
    """The htpasswd file could not be read, locked or written (one line for the CLI)."""


def unusable_hash() -> str:
    """A `{SHA}` hash of 32 random bytes nobody kept: no password matches it."""
    return "{SHA}" + base64.b64encode(hashlib.sha1(secrets.token_bytes(32)).digest()).decode()


@contextlib.contextmanager
def locked(path: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold `<path>.lock`, the lock Verdaccio's htpasswd plugin takes for its own writes."""
    lock = path.with_name(path.name + ".lock")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                    lock.unlink()
                    continue
            if time.monotonic() > deadline:
                raise HtpasswdError(f"{lock} is held by another process (waited {wait_s:g} s)") from None
            time.sleep(0.05)
        except OSError as exc:
            raise HtpasswdError(f"cannot lock {path}: {exc.strerror}") from None
    try:
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def revoke(path: Path, user: str, why: str) -> bool:
    """Replace `user`'s password hash in the htpasswd file at `path` with an unusable one, noting `why` in its
    comment field; False when the file has no such account (nothing to revoke). Other lines are kept as they
    are."""
    if not user or any(c in user for c in ":\r\n"):
        raise HtpasswdError(f"{user!r} is no htpasswd account name")
    note = " ".join(why.replace(":", " ").split())[:200]  # Verdaccio splits a line at its first two colons
    with locked(path):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise HtpasswdError(f"cannot read {path}: {exc}") from None
        lines = text.splitlines(keepends=True)
        found = False
        for i, line in enumerate(lines):
            name = line.split(":", 1)[0].strip()
            if name == user and ":" in line:
                end = "\n" if line.endswith("\n") else ""
                lines[i] = f"{user}:{unusable_hash()}:{note}{end}"
                found = True
        if not found:
            return False
        tmp = path.with_name(path.name + ".nhiguard.tmp")
        try:
            tmp.write_text("".join(lines), encoding="utf-8")
            os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
        except OSError as exc:
            raise HtpasswdError(f"cannot write {path}: {exc.strerror}") from None
    return True
