"""Policy engines: what the decision core asks of one, and which one serves a bundle.

- `regopy.py`: regopy in process (replay, the cases runner, benchmarks, tests);
- `pool.py`: regopy in child processes, the worker's default (crash and hang isolation, `trial_run`);
- `opa.py`: an OPA server over REST (`NHIGUARD_ENGINE=opa-server`), and the OPA binary for parity.

Every engine answers `evaluate_isolating`: findings per input, None and a `Failure` where it had no answer
(`isolate_failures` bisects a failed batch for the in-process and REST engines; the pool also handles crashes
and deadlines). The core decides an event the engine had no answer for by its domain's failure mode, whatever
the failure (decision/core.py): a Failure is never a reason to let an event through unjudged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nhiguard.policy.bundle import BundleError, PolicyBundle
from nhiguard.settings import Settings

# Why an engine had no answer for an event (named in the engine-failure finding the core decides it by).
ERROR = "policy_evaluation_error"  # the engine could not evaluate this input (e.g. a Rego runtime error)
CRASH = "policy_engine_crash"  # the engine process died on this input, and again on the retry
TIMEOUT = "policy_engine_timeout"  # this input alone exceeded the deadline
UNAVAILABLE = "policy_engine_unavailable"  # no engine to ask: it could not be (re)started or reached
WHAT_FAILED = {
    ERROR: "could not evaluate the event",
    CRASH: "crashed on the event",
    TIMEOUT: "gave no answer in time",
    UNAVAILABLE: "is unavailable",
}

# One query's findings per input, in input order, for a plan (a domain, or the anomaly stage).
Evaluate = Callable[[str, list[dict[str, Any]]], list[list[dict[str, Any]]]]


class EvaluationError(Exception):
    """The engine could not evaluate an input."""


class EngineUnavailable(Exception):
    """There is no engine to ask (it cannot be started or reached): every input of the query fails at once,
    without bisecting (each half would fail the same way, at the cost of another start or connection)."""


@dataclass(frozen=True)
class Failure:
    """Why the engine gave no answer for an event: a dead-letter reason code and a detail."""

    reason: str  # ERROR | CRASH | TIMEOUT | UNAVAILABLE
    detail: str


class Evaluator(Protocol):
    """What the core needs from a policy engine: RegoEvaluator in process, EnginePool out of process, or
    OpaServerEvaluator."""

    def evaluate_isolating(
        self, domain: str, inputs: list[dict[str, Any]]
    ) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]: ...


def isolate_failures(
    evaluate: Evaluate, domain: str, inputs: list[dict[str, Any]]
) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]:
    """Evaluate; when the batch fails, bisect so only the inputs the engine cannot answer are lost.

    Returns findings per input (None where it failed) and the failure per failed index.
    """
    try:
        return list(evaluate(domain, inputs)), {}
    except EngineUnavailable as exc:
        return unavailable(inputs, str(exc))
    except EvaluationError as exc:
        if len(inputs) == 1:
            return [None], {0: Failure(ERROR, str(exc))}
    mid = len(inputs) // 2
    left, lerr = isolate_failures(evaluate, domain, inputs[:mid])
    right, rerr = isolate_failures(evaluate, domain, inputs[mid:])
    return left + right, {**lerr, **{i + mid: e for i, e in rerr.items()}}


def unavailable(
    inputs: list[dict[str, Any]], detail: str
) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]:
    """No answer for any input: the engine is not there to ask."""
    return [None] * len(inputs), {i: Failure(UNAVAILABLE, detail) for i in range(len(inputs))}


def make_evaluator(settings: Settings, bundle: PolicyBundle) -> Evaluator:
    """The configured policy engine, loaded with this bundle."""
    # Imported here: the engines import this module (Failure, EvaluationError, isolate_failures).
    if settings.engine == "opa-server":
        from nhiguard.policy.engines.opa import OpaServerEvaluator

        return OpaServerEvaluator(settings.opa_url, bundle, timeout_s=settings.engine_timeout_s)
    if settings.engine != "regopy":
        raise BundleError(f"unknown NHIGUARD_ENGINE {settings.engine!r}: regopy or opa-server")
    from nhiguard.policy.engines.pool import EnginePool

    return EnginePool(
        bundle,
        processes=settings.engine_processes,
        timeout_s=settings.engine_timeout_s,
        max_rss_mb=settings.engine_max_rss_mb,
    )
