"""The real OPA as a policy engine: an OPA server over REST, or the OPA binary (`opa eval`) for parity.

nhiguard ships no OPA binary: `find_opa` takes the one given (`--opa`, NHIGUARD_OPA_BINARY) or `opa` on
PATH (a checkout builds the pinned one with `make opa`, see tools/opa.py). OPA runs our bundle exactly as the
worker does: the same modules, the same generated entry module, and data.yaml as data.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nhiguard.policy.bundle import PolicyBundle, entry_module, tagged
from nhiguard.policy.engines import EngineUnavailable, EvaluationError, Failure, isolate_failures


class OpaError(RuntimeError):
    """OPA could not be found or run."""


class OpaUnreachable(OpaError):
    """The OPA server did not answer at all (refused, reset, timed out): not an answer about the input."""


def find_opa(explicit: Path | None = None, configured: Path | None = None) -> Path:
    """The OPA binary to run: `explicit` (--opa), else `configured` (NHIGUARD_OPA_BINARY), else `opa` on PATH.

    nhiguard ships no OPA; a checkout builds the pinned one with `make opa`.
    """
    chosen = explicit or configured
    if chosen is None:
        found = shutil.which("opa")
        if found is None:
            raise OpaError(
                "no OPA binary: pass --opa PATH, set NHIGUARD_OPA_BINARY, or put opa on PATH "
                "(in a checkout, `make opa` builds the pinned one and prints its path)"
            )
        return Path(found)
    path = Path(chosen).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise OpaError(f"OPA binary {path} is not an executable file")
    return path


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
    try:
        return tagged(result[0]["expressions"][0]["value"])
    except ValueError as exc:
        raise OpaError(f"opa eval: {exc}") from exc


class OpaBinaryEvaluator:
    """The real OPA behind the evaluator interface the cases runner uses (one `opa eval` per call)."""

    def __init__(self, opa: Path, bundle: PolicyBundle, work_dir: Path) -> None:
        self.opa = opa
        self.bundle = bundle
        self.bundle_dir = export_bundle(bundle, work_dir)

    def evaluate(self, domain: str, inputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        if domain not in self.bundle.plans():
            return [[] for _ in inputs]
        return opa_eval(self.opa, self.bundle_dir, domain, inputs)


class OpaServerEvaluator:
    """An OPA server (REST API) as the policy engine, for teams that already run OPA.

    At start the evaluator loads our bundle into the server — the same modules, the same generated entry
    module, the same data — so the server answers exactly what regopy would (the parity tests hold for it).
    Same interface as the in-process and out-of-process regopy evaluators.
    """

    def __init__(self, url: str, bundle: PolicyBundle, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.bundle = bundle
        self.timeout_s = timeout_s
        for m in bundle.modules:
            self._request("PUT", f"/v1/policies/nhiguard/{m.path}", m.source.encode(), "text/plain")
        self._request(
            "PUT", "/v1/policies/nhiguard/nhiguard_entry.rego", entry_module(bundle).encode(), "text/plain"
        )
        self._request("PUT", "/v1/data", json.dumps(bundle.data).encode(), "application/json")
        self._domains = set(bundle.plans())

    def _request(self, method: str, path: str, body: bytes, content_type: str) -> Any:
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise OpaError(f"OPA server {method} {path}: {exc.code} {exc.read()[:500]!r}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise OpaUnreachable(f"OPA server {method} {path}: {exc}") from exc
        return json.loads(payload) if payload else None

    def evaluate(self, domain: str, inputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        if domain not in self._domains or not inputs:
            return [[] for _ in inputs]
        try:
            out = self._request(
                "POST",
                f"/v1/data/nhiguard/entry/{domain}",
                json.dumps({"input": {"events": inputs}}).encode(),
                "application/json",
            )
        except OpaUnreachable as exc:  # every input fails at once, the core applies the failure mode
            raise EngineUnavailable(str(exc)) from exc
        except OpaError as exc:  # the server answered with an error for this batch
            raise EvaluationError(str(exc)) from exc
        try:
            result = tagged((out or {}).get("result"))
        except ValueError as exc:
            raise EvaluationError(f"OPA server: {exc}") from exc
        if len(result) != len(inputs):
            raise EvaluationError(f"OPA server gave {len(result)} answers for {len(inputs)} inputs")
        return result

    def evaluate_isolating(
        self, domain: str, inputs: list[dict[str, Any]]
    ) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]:
        return isolate_failures(self.evaluate, domain, inputs)
