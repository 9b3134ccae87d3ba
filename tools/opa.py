"""Build the pinned real OPA (dev tooling: not installed with nhiguard, and the product never imports it).

The parity tests, `nhiguard policy test --engine opa|both` (given `--opa PATH`) and the benchmarks compare
regopy with the real OPA. `make opa` (or `python -m tools.opa`) builds the pinned release once with
`go install` through the Go module proxy, caches it under the cache dir and prints its path.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

OPA_VERSION = "v1.22.2"
OPA_MODULE = "github.com/open-policy-agent/opa"


class OpaBuildError(RuntimeError):
    """The pinned OPA could not be built."""


def opa_path(cache_dir: Path) -> Path:
    """Where the pinned OPA lives in the cache (it may not be built yet)."""
    return Path(cache_dir) / f"opa-{OPA_VERSION}" / "opa"


def ensure_opa(cache_dir: Path) -> Path:
    """The cached OPA binary, building it with `go install` first if needed (a few minutes, once)."""
    binary = opa_path(cache_dir)
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise OpaBuildError("building OPA needs the Go toolchain (`go`) on PATH")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builders (pytest + bench) wait for the first
        if binary.is_file():
            return binary
        with tempfile.TemporaryDirectory() as gobin:
            env = dict(os.environ, GOBIN=gobin, GOFLAGS="-mod=mod")
            proc = subprocess.run(
                ["go", "install", f"{OPA_MODULE}@{OPA_VERSION}"],
                env=env,
                cwd=gobin,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if proc.returncode != 0:
                raise OpaBuildError(f"go install {OPA_MODULE}@{OPA_VERSION} failed:\n{proc.stderr[-2000:]}")
            shutil.move(str(Path(gobin) / "opa"), binary)
    return binary


def main() -> int:
    """Build (once) and print the path of the pinned OPA, under the configured cache dir."""
    from nhiguard.settings import load_settings

    try:
        print(ensure_opa(load_settings().cache_dir))
    except OpaBuildError as exc:
        print(f"tools.opa: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
