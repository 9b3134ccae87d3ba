"""Per-identity facts: what one identity's own events and decisions established.

Kept with the identity's partition (all its events reach one worker, in order), in one value with its
behavioural model. Changed only by effects (decision/effects.py), in event order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nhiguard.decision.alert_state import AlertWindows

if TYPE_CHECKING:
    from nhiguard.models.anomaly import Baseline

MINUTE_MS = 60_000
MINUTES_PER_DAY = 24 * 60
# Restricted exposures are counted per minute over the last EXPOSURE_RECENT_MINUTES (the longest window a
# policy can count over: policies/data.yaml `exposure_windows`), then per UTC day for EXPOSURE_HISTORY_DAYS
# (the identity's own normal rate). Minute counts bound the stored size whatever the burst (a burst of 3,000
# exposures is at most 240 small numbers), at the price of a window edge one minute wide.
EXPOSURE_RECENT_MINUTES = 240
EXPOSURE_HISTORY_DAYS = 14
# Revocations remembered at once (each dedups a REVOKE for REVOKE_DEDUP_MS). Beyond it the one that expires
# first is forgotten, another identity's before the acting identity's own (its own in force refuse its next
# suspect requests: policies/anomaly/behaviour.rego). Forgetting one only lets the same REVOKE be issued
# again: a duplicate command, never a missing one.
MAX_REVOKED = 64


@dataclass
class IdentityFacts:
    # Restricted exposures per epoch minute, the last EXPOSURE_RECENT_MINUTES up to the newest.
    exposure_minutes: dict[int, int] = field(default_factory=dict)
    # Restricted exposures per epoch day that aged out of the minutes, the last EXPOSURE_HISTORY_DAYS days.
    exposure_days: dict[int, int] = field(default_factory=dict)
    revoked: dict[str, int] = field(default_factory=dict)  # revoke dedup key -> in force until (event ms)
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    events: int = 0

    def copy(self) -> IdentityFacts:
        return IdentityFacts(
            dict(self.exposure_minutes),
            dict(self.exposure_days),
            dict(self.revoked),
            self.first_seen_ms,
            self.last_seen_ms,
            self.events,
        )

    # -- reads ------------------------------------------------------------------------------------------
    def recent_exposures(self, at_ms: int) -> list[int]:
        """Restricted exposures per minute before `at_ms`: index 0 is the event's own minute, index i the
        minute i minutes earlier (trailing zeros cut). A policy sums the first W entries for a W-minute
        window. Later minutes are left out, so a late or redelivered webhook counts only its own window."""
        now = at_ms // MINUTE_MS
        ago = {now - m: n for m, n in self.exposure_minutes.items() if 0 <= now - m < EXPOSURE_RECENT_MINUTES}
        return [ago.get(i, 0) for i in range(max(ago) + 1)] if ago else []

    def typical_exposure_day(self, at_ms: int) -> int:
        """The identity's own normal rate: the median of its daily restricted exposures over the last
        EXPOSURE_HISTORY_DAYS UTC days, counting only exposures older than the recent minutes (a window
        never compares with itself). A median: one bad day (an attack that was revoked) does not become
        the normal, and an identity has a normal above 0 only if it exposes restricted content on at least
        half of the days."""
        if not self.exposure_days and not self.exposure_minutes:
            return 0
        now = at_ms // MINUTE_MS
        today = now // MINUTES_PER_DAY
        days = dict(self.exposure_days)
        for m, n in self.exposure_minutes.items():
            if now - m >= EXPOSURE_RECENT_MINUTES:  # not yet moved to its day: no newer exposure since
                days[m // MINUTES_PER_DAY] = days.get(m // MINUTES_PER_DAY, 0) + n
        counts = sorted(days.get(today - i, 0) for i in range(EXPOSURE_HISTORY_DAYS))
        return counts[EXPOSURE_HISTORY_DAYS // 2]

    def in_force(self, key: str, at_ms: int) -> bool:
        """Whether a revocation under this dedup key is still in force at `at_ms`."""
        return self.revoked.get(key, -1) > at_ms

    # -- changes (effects call these) -------------------------------------------------------------------
    def seen(self, at_ms: int) -> None:
        self.first_seen_ms = at_ms if self.first_seen_ms is None else min(self.first_seen_ms, at_ms)
        self.last_seen_ms = at_ms if self.last_seen_ms is None else max(self.last_seen_ms, at_ms)
        self.events += 1

    def expose(self, at_ms: int) -> None:
        minute = at_ms // MINUTE_MS
        self.exposure_minutes[minute] = self.exposure_minutes.get(minute, 0) + 1
        newest = max(self.exposure_minutes)
        # Minutes no window can count any more become days; days older than the history are forgotten.
        for m in [m for m in self.exposure_minutes if newest - m >= EXPOSURE_RECENT_MINUTES]:
            d = m // MINUTES_PER_DAY
            self.exposure_days[d] = self.exposure_days.get(d, 0) + self.exposure_minutes.pop(m)
        last_day = newest // MINUTES_PER_DAY
        for d in [d for d in self.exposure_days if last_day - d >= EXPOSURE_HISTORY_DAYS]:
            del self.exposure_days[d]

    def revoke(self, keys: tuple[str, ...], at_ms: int, until_ms: int, own: str = "") -> None:
        """Remember revocations until `until_ms`; `own` is the prefix of the acting identity's own keys."""
        for key in [k for k, until in self.revoked.items() if until <= at_ms]:
            del self.revoked[key]  # expired: forget it
        for key in keys:
            self.revoked[key] = until_ms
        excess = len(self.revoked) - MAX_REVOKED
        if excess > 0:  # a flood of distinct revocations within the hour
            first = sorted(self.revoked, key=lambda k: (bool(own) and k.startswith(own), self.revoked[k], k))
            for key in first[:excess]:
                del self.revoked[key]


@dataclass
class IdentityState:
    """One identity's stored value: its facts, its behavioural model and its open alert windows, read and
    written together so a restart never pairs a model with facts from another point in the stream."""

    facts: IdentityFacts = field(default_factory=IdentityFacts)
    model: Baseline | None = None  # None until its first scored event
    alerts: AlertWindows = field(default_factory=AlertWindows)
