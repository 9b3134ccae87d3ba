"""The REVOKE circuit breaker: a bad rule or a poisoned stream cannot revoke the whole estate at once.

A step after `decide` and before `apply` (core.py): every identity a decision would revoke is counted in a
sliding window of event time, in total and per identity kind (the revoked identity's kind in the inventory;
`unknown` when it is not there). When a count within the window, this revoke included, is over its limit, the
REVOKE commands for that identity are *held*: status HELD, with the reason, on their own topic
(`enforcement.held`) instead of `enforcement.commands`, and the SOC gets an alert (rule RULE, in windows like
any other: decision/alerts.py). An operator releases them (`nhiguard commands release COMMAND_ID… | --all`),
which publishes each to `enforcement.commands` with the same command id (enforcement points stay idempotent)
and records the release on `enforcement.held`.

Held revokes count too: the breaker stays open while the storm lasts and closes once the window has been
quiet, rather than letting a flood through at the limit's rate. The window is event time, so a replay holds
the same commands; an event older than revokes already counted counts those too (it cannot slip in behind
them), so events of several partitions decided in another order than their times are held as surely.

It is state like any other: `RevokesCounted` is an effect that `State.apply` writes. In the worker the window
is stored in the packages global table under `nhiguard:breaker#<partition>`: each partition writes its own
copy and readers unite them, so every worker counts the revokes of all (no package key has that shape:
theirs end in `@<partition>`).
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from nhiguard.decision.records import Command, stable_id

ANY_KIND = "*"
UNKNOWN_KIND = "unknown"
FORMAT = 1
# Revokes kept per limit beyond what the limit needs, so a reason can say how many there were (beyond it:
# "at least"); bounds the stored window in a storm.
KEEP = 100
POLICY = "nhiguard.breaker"
RULE = "nhiguard.breaker.revoke_held"

Entry = tuple[int, str, str]  # (event time ms, kind of the revoked identity, a key unique to the revoke)


@dataclass(frozen=True, slots=True)
class BreakerLimits:
    """More than `total` revokes within `window_ms`, or more than a kind's limit of that kind, are held.
    `per_kind` maps kinds to limits, `*` for the kinds it does not name; None (or a kind not covered): no
    limit. A limit of 0 holds every REVOKE for an operator."""

    window_ms: int
    total: int | None
    per_kind: tuple[tuple[str, int], ...] = ()

    def of_kind(self, kind: str) -> int | None:
        limits = dict(self.per_kind)
        return limits.get(kind, limits.get(ANY_KIND))

    @property
    def off(self) -> bool:
        return self.total is None and not self.per_kind

    def keep(self, limit: int | None) -> int:
        return max(KEEP, limit + 1) if limit is not None else KEEP

    def exceeded(
        self, total: int, of_kind: int, kind: str, at_least: tuple[bool, bool] = (False, False)
    ) -> str | None:
        """Why a revoke that makes these counts is held, or None. `at_least`: the window kept only the
        newest revokes (of all kinds, of this kind), so the true counts may be higher."""
        minutes = f"{self.window_ms / 60_000:g} min"
        limit = self.of_kind(kind)
        if limit is not None and of_kind > limit:
            n = f"at least {of_kind}" if at_least[1] else of_kind
            return f"circuit breaker: {n} REVOKEs of {kind} identities within {minutes} (limit {limit})"
        if self.total is not None and total > self.total:
            n = f"at least {total}" if at_least[0] else total
            return f"circuit breaker: {n} REVOKEs within {minutes} (limit {self.total} in total)"
        return None


@dataclass
class BreakerWindow:
    """The revokes counted, sorted by time; only what a limit can still need is kept."""

    entries: list[Entry] = field(default_factory=list)

    def count(self, at_ms: int, window_ms: int, kind: str | None = None) -> int:
        """Revokes (of `kind`, or all) in the window that ends at `at_ms`, and any since: a late event (or a
        backdated one) counts the revokes after it too, so it cannot slip in behind them."""
        lo = bisect.bisect_right(self.entries, at_ms - window_ms, key=lambda e: e[0])
        if kind is None:
            return len(self.entries) - lo
        return sum(1 for e in self.entries[lo:] if e[1] == kind)

    def add(self, entries: tuple[Entry, ...], limits: BreakerLimits) -> bool:
        known = set(self.entries)
        new = [e for e in entries if e not in known]  # a revoke applied twice counts once
        for e in new:
            bisect.insort(self.entries, e)
        self._trim(limits)
        return bool(new)

    def merge(self, other: BreakerWindow) -> None:
        """Unite with another partition's copy."""
        self.entries = sorted(set(self.entries) | set(other.entries))

    def _trim(self, limits: BreakerLimits) -> None:
        """Forget what no limit can still need: entries older than a window before the newest, and beyond
        the newest `keep` of each limit (an older revoke matters only while the newer ones are fewer than
        the limit; the rest are kept to count)."""
        if not self.entries:
            return
        newest = self.entries[-1][0]
        live = [e for e in self.entries if e[0] > newest - limits.window_ms]
        kept: set[Entry] = set(live[-limits.keep(limits.total) :])
        by_kind: dict[str, list[Entry]] = defaultdict(list)
        for e in live:
            by_kind[e[1]].append(e)
        for kind, es in by_kind.items():
            kept.update(es[-limits.keep(limits.of_kind(kind)) :])
        self.entries = sorted(kept)


def encode_window(window: BreakerWindow) -> bytes:
    """Format 1: [u8 1][JSON list of [time, kind, key]]."""
    return bytes((FORMAT,)) + json.dumps([list(e) for e in window.entries], separators=(",", ":")).encode()


def decode_window(blob: bytes) -> BreakerWindow:
    if blob[:1] != bytes((FORMAT,)):
        found = blob[0] if blob else "empty"
        raise ValueError(f"breaker state format {found}; this version reads {FORMAT}")
    return BreakerWindow(sorted((int(t), str(k), str(x)) for t, k, x in json.loads(blob[1:])))


@dataclass(frozen=True, slots=True)
class RevokesCounted:
    """The breaker's effect: the revokes one decision asked for, issued or held, counted in the window."""

    entries: tuple[Entry, ...]
    limits: BreakerLimits

    def apply(self, window: BreakerWindow) -> bool:
        return window.add(self.entries, self.limits)


def check(
    commands: list[Command],
    at_ms: int,
    kinds: Mapping[str, str],
    window: BreakerWindow,
    limits: BreakerLimits,
) -> tuple[list[Command], RevokesCounted | None]:
    """A decision's commands with the REVOKEs over a limit held, and the revokes to count. Pure: reads the
    window, returns the effect that counts them. `kinds` maps revoked identities to their kinds."""
    revoked = sorted({c.identity for c in commands if c.kind == "REVOKE"})
    if not revoked or limits.off:
        return commands, None
    held: dict[str, str] = {}
    entries: list[Entry] = []
    ids = sorted(c.command_id for c in commands)  # the same decision decided again counts once
    for who in revoked:
        kind = kinds.get(who) or UNKNOWN_KIND
        in_total, of_kind = window.count(at_ms, limits.window_ms), window.count(at_ms, limits.window_ms, kind)
        at_least = (in_total >= limits.keep(limits.total), of_kind >= limits.keep(limits.of_kind(kind)))
        total = in_total + len(entries) + 1
        of_kind += sum(e[1] == kind for e in entries) + 1
        if (why := limits.exceeded(total, of_kind, kind, at_least)) is not None:
            held[who] = why
        entries.append((at_ms, kind, stable_id("breaker", at_ms, who, *ids)))
    out = [
        replace(c, status="HELD", hold=held[c.identity]) if c.kind == "REVOKE" and c.identity in held else c
        for c in commands
    ]
    return out, RevokesCounted(tuple(entries), limits)
