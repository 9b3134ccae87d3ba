"""Policy engines: what the decision core asks of one, and which one serves a bundle.

- `regopy.py`: regopy in process (the cases runner, benchmarks, tests) and `isolate_failures`;
- `pool.py`: regopy in child processes, the worker's default (crash and hang isolation, `trial_run`);
- `opa.py`: an OPA server over REST (`NHIGUARD_ENGINE=opa-server`), and the OPA binary for parity.

Every engine answers `evaluate_isolating`: findings per input, None and a `Failure` where it had no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from nhiguard.policy.bundle import BundleError, PolicyBundle
from nhiguard.settings import Settings

# Dead-letter reason codes for an event an engine could not answer.
ERROR = "policy_evaluation_error"
CRASH = "policy_engine_crash"
TIMEOUT = "policy_engine_timeout"


class EvaluationError(Exception):
    """The engine could not evaluate an input."""


@dataclass(frozen=True)
class Failure:
    """Why the engine gave no answer for an event: a dead-letter reason code and a detail."""

    reason: str  # ERROR | CRASH | TIMEOUT
    detail: str


class Evaluator(Protocol):
    """What the core needs from a policy engine: RegoEvaluator in process, EnginePool out of process, or
    OpaServerEvaluator."""

    def evaluate_isolating(
        self, domain: str, inputs: list[dict[str, Any]]
    ) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]: ...


def make_evaluator(settings: Settings, bundle: PolicyBundle) -> Evaluator:
    """The configured policy engine, loaded with this bundle."""
    # Imported here: the engines import this module for Failure and EvaluationError.
    if settings.engine == "opa-server":
        from nhiguard.policy.engines.opa import OpaServerEvaluator

        return OpaServerEvaluator(settings.opa_url, bundle, timeout_s=settings.engine_timeout_s)
    if settings.engine != "regopy":
        raise BundleError(f"unknown NHIGUARD_ENGINE {settings.engine!r}: regopy or opa-server")
    from nhiguard.policy.engines.pool import EnginePool

    return EnginePool(bundle, processes=settings.engine_processes, timeout_s=settings.engine_timeout_s)
