"""Per identity kind, how often an identity of the kind meets something new: the anomaly model's population
prior (`KindPrior`), declared in the policy bundle's data (policies/data.yaml `anomaly.kinds`).

A static prior, part of the bundle revision (a decision records the prior that made it, and a replay
reproduces it), not learned from the stream: the model's state is kept per identity, in that identity's
partition, so a kind-wide statistic would have no single writer (its value would depend on how identities are
spread over workers), and one compromised identity of a kind could move it for all the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FEATURES = ("hour", "target", "source", "action")


@dataclass(frozen=True, slots=True)
class KindPrior:
    """How often an identity of a kind meets a new hour, target, place or action, whatever its own habits:
    the population's share of novelty for the kind (policies/data.yaml `anomaly.kinds`)."""

    hour: float = 0.0
    target: float = 0.0
    source: float = 0.0
    action: float = 0.0


NO_PRIOR = KindPrior()


def kind_priors(data: Mapping[str, Any]) -> dict[str, KindPrior]:
    """The per-kind priors in a bundle's data (`nhiguard.params.anomaly.kinds`); unlisted kinds have none."""
    kinds: Any = data
    for key in ("nhiguard", "params", "anomaly", "kinds"):
        kinds = kinds.get(key) if isinstance(kinds, Mapping) else None
    if not isinstance(kinds, Mapping):
        return {}
    out = {}
    for kind, rates in kinds.items():
        if not isinstance(rates, Mapping) or set(rates) - set(FEATURES):
            raise ValueError(f"anomaly.kinds.{kind}: a mapping of hour, target, source, action rates")
        values = {f: rates.get(f, 0.0) for f in FEATURES}
        if not all(isinstance(v, int | float) and 0.0 <= v < 1.0 for v in values.values()):
            raise ValueError(f"anomaly.kinds.{kind}: novelty rates are numbers in [0, 1)")
        out[str(kind)] = KindPrior(**{f: float(v) for f, v in values.items()})
    return out
