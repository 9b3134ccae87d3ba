"""Per-identity behavioural baselines with river.

First version (issue #2): one small HalfSpaceTrees per identity over a handful of event features, scored
before it learns, and taught only by events that were allowed and did not look anomalous. Issue #5 replaces
it with a model that fits a per-identity byte budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from river.anomaly import HalfSpaceTrees

from nhiguard.decision.records import CanonicalEvent

# Scores at or above this are "anomalous": not learned from (and, later, a policy input that can revoke).
ANOMALY_THRESHOLD = 0.8
_HOUR_MS = 3_600_000


def features(ev: CanonicalEvent, novelty: float, rate: float) -> dict[str, float]:
    """Features in [0, 1] (HalfSpaceTrees assumes that range)."""
    hour_of_week = ((ev.occurred_at_ms // _HOUR_MS) + 72) % 168  # the epoch was a Thursday
    size = 0.0
    if ev.release is not None:
        size = min(math.log10(1 + ev.release["size"]) / 10, 1.0)
    return {
        "hour_of_week": hour_of_week / 168,
        "novel_action": novelty,
        "rate": min(rate / 100.0, 1.0),
        "size": size,
    }


@dataclass
class _IdentityModel:
    model: HalfSpaceTrees
    seen: int = 0
    actions: set[str] = field(default_factory=set)
    recent: list[int] = field(default_factory=list)


class AnomalyModels:
    """score-then-learn per identity; deterministic for a given event order (fixed seeds)."""

    def __init__(self, warmup_events: int = 30, seed: int = 42) -> None:
        self.warmup_events = warmup_events
        self.seed = seed
        self._models: dict[str, _IdentityModel] = {}

    def _get(self, identity: str) -> _IdentityModel:
        m = self._models.get(identity)
        if m is None:
            m = _IdentityModel(HalfSpaceTrees(n_trees=5, height=6, window_size=32, seed=self.seed))
            self._models[identity] = m
        return m

    def score(self, ev: CanonicalEvent) -> tuple[float, bool, dict[str, float]]:
        """(score in [0, 1], warmed up, features) for the event, before any learning from it."""
        m = self._get(ev.actor.id)
        cutoff = ev.occurred_at_ms - _HOUR_MS
        rate = sum(1 for t in m.recent if t > cutoff)
        x = features(ev, 0.0 if ev.action in m.actions else 1.0, rate)
        return float(m.model.score_one(x)), m.seen >= self.warmup_events, x

    def learn(self, ev: CanonicalEvent, x: dict[str, float]) -> None:
        m = self._get(ev.actor.id)
        m.model.learn_one(x)
        m.seen += 1
        m.actions.add(ev.action)
        cutoff = ev.occurred_at_ms - _HOUR_MS
        m.recent = [t for t in m.recent if t > cutoff] + [ev.occurred_at_ms]

    def __len__(self) -> int:
        return len(self._models)
