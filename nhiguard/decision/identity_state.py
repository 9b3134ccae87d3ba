"""Per-identity facts: what one identity's own events and decisions established.

Kept with the identity's partition (all its events reach one worker, in order), in one value with its
behavioural model. Changed only by effects (decision/effects.py), in event order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nhiguard.models.anomaly import Baseline

EXPOSURE_WINDOW_MS = 10 * 60 * 1000


@dataclass
class IdentityFacts:
    exposures: list[int] = field(default_factory=list)  # sorted exposure times within two windows
    revoked: dict[str, int] = field(default_factory=dict)  # revoke dedup key -> in force until (event ms)
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    events: int = 0

    def copy(self) -> IdentityFacts:
        return IdentityFacts(
            list(self.exposures), dict(self.revoked), self.first_seen_ms, self.last_seen_ms, self.events
        )

    # -- reads ------------------------------------------------------------------------------------------
    def exposures_within(self, at_ms: int) -> int:
        """Exposures in the window that ends at `at_ms`: sorted times, so a late or redelivered webhook counts
        only the exposures of its own window."""
        times = self.exposures
        return bisect.bisect_right(times, at_ms) - bisect.bisect_right(times, at_ms - EXPOSURE_WINDOW_MS)

    def in_force(self, key: str, at_ms: int) -> bool:
        """Whether a revocation under this dedup key is still in force at `at_ms`."""
        return self.revoked.get(key, -1) > at_ms

    # -- changes (effects call these) -------------------------------------------------------------------
    def seen(self, at_ms: int) -> None:
        self.first_seen_ms = at_ms if self.first_seen_ms is None else min(self.first_seen_ms, at_ms)
        self.last_seen_ms = at_ms if self.last_seen_ms is None else max(self.last_seen_ms, at_ms)
        self.events += 1

    def expose(self, at_ms: int) -> None:
        times = self.exposures
        bisect.insort(times, at_ms)
        # Forget what no event within a window of the newest can still count.
        del times[: bisect.bisect_right(times, times[-1] - 2 * EXPOSURE_WINDOW_MS)]

    def revoke(self, keys: tuple[str, ...], at_ms: int, until_ms: int) -> None:
        for key in [k for k, until in self.revoked.items() if until <= at_ms]:
            del self.revoked[key]  # expired: forget it
        for key in keys:
            self.revoked[key] = until_ms


@dataclass
class IdentityState:
    """One identity's stored value: its facts and its behavioural model, read and written together so a
    restart never pairs a model with facts from another point in the stream."""

    facts: IdentityFacts = field(default_factory=IdentityFacts)
    model: Baseline | None = None  # None until its first scored event
