"""Which policy engine serves a bundle: regopy in child processes, or an OPA server over REST."""

from __future__ import annotations

from nhiguard.decision.core import Evaluator
from nhiguard.decision.engine import EnginePool
from nhiguard.decision.policy import BundleError, PolicyBundle
from nhiguard.settings import Settings


def make_evaluator(settings: Settings, bundle: PolicyBundle) -> Evaluator:
    """The configured policy engine, loaded with this bundle."""
    if settings.engine == "opa-server":
        from nhiguard.opa import OpaServerEvaluator

        return OpaServerEvaluator(settings.opa_url, bundle, timeout_s=settings.engine_timeout_s)
    if settings.engine != "regopy":
        raise BundleError(f"unknown NHIGUARD_ENGINE {settings.engine!r}: regopy or opa-server")
    return EnginePool(bundle, processes=settings.engine_processes, timeout_s=settings.engine_timeout_s)
