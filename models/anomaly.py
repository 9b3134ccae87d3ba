"""Per-identity behavioural baselines in a few hundred bytes each.

Each identity keeps its habits, learned online: when in the week it acts (hour-of-week counts), what it acts
on, from where, with which actions (Bloom filters), and how bursty it is (its recent event times). River
`EWMean`s track how often the identity *normally* meets something new, so an integration that uploads a new
asset every time is not flagged for novelty, while a publisher that always ships the same package is.

An event's score is its largest surprise in [0, 1]: 1 for an hour the identity has never acted in, or a
new target/place/action for an identity that never meets new ones; bursts score by how far the count in the
last ten minutes exceeds the most the identity has shown. Scored before learning; no verdicts before the
warm-up.

River's shape: `Baseline.score_one` then `Baseline.learn_one`; and, as in river's
`ThresholdFilter(..., protect_anomaly_detector=True)`, the rule that protects the baseline lives here, not in
the caller: `learn_one` refuses an event that policy denied or that scored anomalous.

(Replaces the first version, a river HalfSpaceTrees per identity: ~25 KB and ~160 KB resident per identity,
and at chance on the labelled scenario. `make bench` measures both cost and quality.)
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

from river.stats import EWMean

if TYPE_CHECKING:
    from nhiguard.decision.records import CanonicalEvent

# Scores at or above this are "anomalous": not learned from, and a policy input.
ANOMALY_THRESHOLD = 0.8
_HOUR_MS = 3_600_000
BURST_WINDOW_MS = 10 * 60_000
_RECENT = 32  # event times kept for the burst count (a burst beyond this saturates)
_BLOOM_BITS = {"target": 2048, "source": 128, "action": 256}


def hour_of_week(ms: int) -> int:
    return ((ms // _HOUR_MS) + 72) % 168  # 0 = Monday 00:00 UTC (the epoch was a Thursday)


def time_bucket(ms: int) -> int:
    """Hour of day, weekdays and weekends apart: dense enough to learn from a few hundred events."""
    how = hour_of_week(ms)
    return how % 24 + (24 if how >= 120 else 0)


def target_of(ev: CanonicalEvent) -> str:
    """What the event acts on, as its facts say (a release's or an install's package), else the resource."""
    return ev.resource_id if ev.facts is None else ev.facts.target(ev.resource_id)


def _bits(value: str, nbits: int) -> tuple[int, int]:
    h = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(h[:4], "little") % nbits, int.from_bytes(h[4:], "little") % nbits


@dataclass(frozen=True, slots=True)
class Score:
    """An event's score against its identity's baseline, before any learning from it."""

    value: float  # the largest surprise, in [0, 1]
    warm: bool  # the baseline had seen enough events to judge
    features: dict[str, float]  # surprise per habit
    bits: dict[str, tuple[int, int]]  # the event's Bloom positions, hashed once for scoring and learning

    @property
    def flagged(self) -> bool:
        return self.warm and self.value >= ANOMALY_THRESHOLD


class Baseline:
    """One identity's habits."""

    __slots__ = (
        "action",
        "action_new",
        "grown_at",
        "hours",
        "max_burst",
        "n",
        "recent",
        "source",
        "source_new",
        "target",
        "target_new",
    )

    def __init__(self) -> None:
        self.n = 0
        self.hours = array("H", bytes(2 * 48))
        self.target = bytearray(_BLOOM_BITS["target"] // 8)
        self.source = bytearray(_BLOOM_BITS["source"] // 8)
        self.action = bytearray(_BLOOM_BITS["action"] // 8)
        # How often this identity meets something new, per feature: the prior for how surprising novelty is.
        self.target_new = EWMean(fading_factor=0.05)
        self.source_new = EWMean(fading_factor=0.05)
        self.action_new = EWMean(fading_factor=0.05)
        self.recent = array("q")
        self.max_burst = 1
        self.grown_at = -BURST_WINDOW_MS

    def score_one(self, ev: CanonicalEvent, warmup_events: int) -> Score:
        bits = event_bits(ev)
        x = features(self, ev, bits)
        return Score(max(x.values()), self.n >= warmup_events, x, bits)

    def learn_one(self, ev: CanonicalEvent, score: Score, allowed: bool) -> bool:
        """Learn from the event unless policy denied it or it scored anomalous: that is how baselines get
        poisoned. True when it learned."""
        if not allowed or score.flagged:
            return False
        _learn(self, ev, score.bits)
        return True

    def to_bytes(self) -> bytes:
        return baseline_to_bytes(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Baseline:
        return baseline_from_bytes(data)


_HEAD = struct.Struct("<BIHqddd")  # version, n, max_burst, grown_at, and the three novelty rates
_VERSION = 1


def _rate(m: EWMean, value: float) -> EWMean:
    m.update(value)  # the first update sets the mean: restores it exactly
    return m


def baseline_to_bytes(b: Baseline) -> bytes:
    """The baseline as ~1.1 KB (what the state table and its changelog store per identity)."""
    head = _HEAD.pack(
        _VERSION, b.n, b.max_burst, b.grown_at, b.target_new.get(), b.source_new.get(), b.action_new.get()
    )
    return b"".join(
        (head, b.hours.tobytes(), bytes(b.target), bytes(b.source), bytes(b.action), b.recent.tobytes())
    )


def baseline_from_bytes(data: bytes) -> Baseline:
    version, n, max_burst, grown_at, t_new, s_new, a_new = _HEAD.unpack_from(data)
    if version != _VERSION:
        raise ValueError(f"baseline format {version}, expected {_VERSION}")
    b = Baseline()
    b.n, b.max_burst, b.grown_at = n, max_burst, grown_at
    if n:
        b.target_new = _rate(b.target_new, t_new)
        b.source_new = _rate(b.source_new, s_new)
        b.action_new = _rate(b.action_new, a_new)
    pos = _HEAD.size
    b.hours = array("H")
    b.hours.frombytes(data[pos : pos + 96])
    pos += 96
    for name in ("target", "source", "action"):
        size = _BLOOM_BITS[name] // 8
        setattr(b, name, bytearray(data[pos : pos + size]))
        pos += size
    b.recent = array("q")
    b.recent.frombytes(data[pos:])
    return b


def _seen(bloom: bytearray, bits: tuple[int, int]) -> bool:
    a, b = bits
    return bool(bloom[a >> 3] & (1 << (a & 7)) and bloom[b >> 3] & (1 << (b & 7)))


def _add(bloom: bytearray, bits: tuple[int, int]) -> None:
    for bit in bits:
        bloom[bit >> 3] |= 1 << (bit & 7)


def event_bits(ev: CanonicalEvent) -> dict[str, tuple[int, int]]:
    """The event's Bloom positions per feature: hashed once per event, used to score and then to learn."""
    values = {"target": target_of(ev), "source": ev.actor.source_principal, "action": ev.action}
    return {name: _bits(value, _BLOOM_BITS[name]) for name, value in values.items()}


def features(b: Baseline, ev: CanonicalEvent, bits: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Surprise per habit, each in [0, 1]."""
    h = time_bucket(ev.occurred_at_ms)
    day = h - h % 24
    near = b.hours[h] + 0.5 * (b.hours[day + (h - 1) % 24] + b.hours[day + (h + 1) % 24])
    # Relative to how many events a usual bucket of this identity has seen: a quiet hour is surprising
    # for a busy identity, not for one that has acted only a few times.
    usual = max(b.n, 1) / 48
    out = {"hour": 1.0 / (1.0 + near / max(usual, 0.5))}
    for name, pos in bits.items():
        if _seen(getattr(b, name), pos):
            out[name] = 0.0
        else:
            rate = getattr(b, name + "_new").get() if b.n else 1.0
            out[name] = max(0.0, 1.0 - rate)  # new, for an identity that rarely meets new ones: surprising
    t = ev.occurred_at_ms
    count = 1 + sum(1 for r in b.recent if t - BURST_WINDOW_MS < r <= t)
    out["burst"] = 0.0 if count <= b.max_burst else 1.0 - 0.5 ** (count - b.max_burst)
    return out


def _learn(b: Baseline, ev: CanonicalEvent, bits: dict[str, tuple[int, int]]) -> None:
    h = time_bucket(ev.occurred_at_ms)
    b.hours[h] = min(b.hours[h] + 1, 65535)
    for name, pos in bits.items():
        bloom = getattr(b, name)
        getattr(b, name + "_new").update(0.0 if _seen(bloom, pos) else 1.0)
        _add(bloom, pos)
    t = ev.occurred_at_ms
    b.recent.append(t)
    if len(b.recent) > _RECENT:
        del b.recent[0]
    # The habit grows by one at most once per window, so a burst cannot teach the model that it is normal.
    count = sum(1 for r in b.recent if t - BURST_WINDOW_MS < r <= t)
    if count > b.max_burst and t - b.grown_at >= BURST_WINDOW_MS:
        b.max_burst += 1
        b.grown_at = t
    b.n += 1


class AnomalyModels:
    """Many identities' baselines in memory, score-then-learn (benchmarks and tests; the decision core keeps
    each baseline with its identity's state). `learn` is unprotected: the caller chooses what to teach."""

    def __init__(self, warmup_events: int = 30, seed: int = 42) -> None:
        self.warmup_events = warmup_events
        self._models: dict[str, Baseline] = {}
        self._last: tuple[str, dict[str, tuple[int, int]]] = ("", {})  # score() -> learn() of one event

    def score(self, ev: CanonicalEvent) -> tuple[float, bool, dict[str, float]]:
        """(score in [0, 1], warmed up, surprise per feature) for the event, before any learning from it."""
        b = self._models.get(ev.actor.id)
        if b is None:
            b = self._models[ev.actor.id] = Baseline()
        s = b.score_one(ev, self.warmup_events)
        self._last = (ev.event_id, s.bits)
        return s.value, s.warm, s.features

    def learn(self, ev: CanonicalEvent, x: dict[str, float]) -> None:
        bits = self._last[1] if self._last[0] == ev.event_id else event_bits(ev)
        _learn(self._models[ev.actor.id], ev, bits)

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, identity: str) -> bool:
        return identity in self._models

    def export(self, identity: str) -> bytes | None:
        b = self._models.get(identity)
        return None if b is None else baseline_to_bytes(b)

    def restore(self, identity: str, data: bytes) -> None:
        self._models[identity] = baseline_from_bytes(data)

    def forget(self, identity: str) -> None:
        self._models.pop(identity, None)
