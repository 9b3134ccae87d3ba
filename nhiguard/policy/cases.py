"""Policy case files (`<name>.cases.yaml` beside each policy), run through the worker's own engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from nhiguard.decision.decide import capped, grade_of
from nhiguard.policy.bundle import ANOMALY_STAGE, PolicyBundle
from nhiguard.policy.engines.regopy import RegoEvaluator


class CaseEngine(Protocol):
    def evaluate(self, domain: str, inputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]: ...


EFFECT_ORDER = {"revoke": "revoke", "deny": "deny"}


@dataclass(frozen=True)
class CaseResult:
    policy_id: str
    name: str
    passed: bool
    detail: str


def load_cases(bundle: PolicyBundle) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for m in bundle.modules:
        path = bundle.root / Path(m.path).with_suffix(".cases.yaml")
        doc = yaml.safe_load(path.read_text()) if path.exists() else None
        out[m.policy_id] = (doc or {}).get("cases", [])
    return out


def expected_of(findings: list[dict[str, Any]]) -> tuple[str, list[str]]:
    effects = {f["effect"] for f in findings}
    verdict = "revoke" if "revoke" in effects else "deny" if "deny" in effects else "allow"
    return verdict, sorted({f["rule"] for f in findings})


def run_cases(bundle: PolicyBundle, evaluator: CaseEngine | None = None) -> list[CaseResult]:
    evaluator = evaluator or RegoEvaluator(bundle)
    results = []
    for policy_id, cases in load_cases(bundle).items():
        stage = ANOMALY_STAGE if bundle.by_id[policy_id].domain == ANOMALY_STAGE else None
        for case in cases:
            inp = case["input"]
            found = evaluator.evaluate(stage or inp["domain"], [inp])[0]
            # Judged as decide enforces them: capped to the policy's declared effects and evidence grade.
            declared = bundle.by_id[policy_id].effects
            mine = [
                f | {"effect": capped(str(f["effect"]), grade_of(f), declared)}
                for f in found
                if f["policy"] == policy_id
            ]
            verdict, rules = expected_of(mine)
            want = (case["expect"]["verdict"], sorted(case["expect"].get("rules", [])))
            ok = (verdict, rules) == want
            detail = "" if ok else f"expected {want[0]} {want[1]}, got {verdict} {rules}"
            results.append(CaseResult(policy_id, case["name"], ok, detail))
    return results
