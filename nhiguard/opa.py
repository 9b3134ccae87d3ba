"""The real OPA, as a reference engine: parity with regopy on every case, and `opa bench` for the benchmarks.

The binary is built once with `go install` of a pinned release through the Go module proxy and cached under
the cache dir (`make opa`). OPA runs our bundle exactly as the worker does: the same modules, the same
generated entry module, and data.yaml as data.json.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from nhiguard.decision.policy import PolicyBundle, entry_module

OPA_VERSION = "v1.22.2"
OPA_MODULE = "github.com/open-policy-agent/opa"


class OpaError(RuntimeError):
    """OPA could not be built or run."""


def opa_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / f"opa-{OPA_VERSION}" / "opa"


def ensure_opa(cache_dir: Path) -> Path:
    """The cached OPA binary, building it with `go install` first if needed (a few minutes, once)."""
    binary = opa_path(cache_dir)
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise OpaError("building OPA needs the Go toolchain (`go`) on PATH")
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
                raise OpaError(f"go install {OPA_MODULE}@{OPA_VERSION} failed:\n{proc.stderr[-2000:]}")
            shutil.move(str(Path(gobin) / "opa"), binary)
    return binary


def export_bundle(bundle: PolicyBundle, dst: Path) -> Path:
    """Write the bundle as OPA loads it: the policy modules, the generated entry module and data.json."""
    dst.mkdir(parents=True, exist_ok=True)
    for m in bundle.modules:
        target = dst / m.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(m.source)
    (dst / "nhiguard_entry.rego").write_text(entry_module(bundle))
    (dst / "data.json").write_text(json.dumps(bundle.data))
    return dst


def opa_eval(
    opa: Path, bundle_dir: Path, domain: str, inputs: list[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """Findings per input from the real OPA, for the same entry query the worker runs."""
    proc = subprocess.run(
        [
            str(opa),
            "eval",
            "--format",
            "json",
            "--data",
            str(bundle_dir),
            "--stdin-input",
            f"data.nhiguard.entry.{domain}",
        ],
        input=json.dumps({"events": inputs}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise OpaError(f"opa eval failed: {proc.stderr[-2000:] or proc.stdout[-2000:]}")
    result = json.loads(proc.stdout).get("result") or []
    if not result:
        raise OpaError(f"opa eval gave no result for domain {domain}")
    return result[0]["expressions"][0]["value"]


class OpaEvaluator:
    """The real OPA behind the evaluator interface the cases runner uses (one `opa eval` per call)."""

    def __init__(self, opa: Path, bundle: PolicyBundle, work_dir: Path) -> None:
        self.opa = opa
        self.bundle = bundle
        self.bundle_dir = export_bundle(bundle, work_dir)

    def evaluate(self, domain: str, inputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        if not any(m.domain == domain for m in self.bundle.modules):
            return [[] for _ in inputs]
        return opa_eval(self.opa, self.bundle_dir, domain, inputs)


def opa_bench(opa: Path, bundle_dir: Path, domain: str, event: dict[str, Any], count: int = 3) -> float:
    """Decisions per second for one event per query (`opa bench`, the median of `count` runs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"events": [event]}, f)
    try:
        rates = []
        for _ in range(count):
            proc = subprocess.run(
                [
                    str(opa),
                    "bench",
                    "--format",
                    "json",
                    "--data",
                    str(bundle_dir),
                    "--input",
                    f.name,
                    f"data.nhiguard.entry.{domain}",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                raise OpaError(f"opa bench failed: {proc.stderr[-2000:]}")
            result = json.loads(proc.stdout)  # Go's testing.BenchmarkResult: N operations in T nanoseconds
            rates.append(result["N"] / (result["T"] / 1e9))
        return sorted(rates)[len(rates) // 2]
    finally:
        os.unlink(f.name)
