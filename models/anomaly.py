"""Per-identity behavioural baselines in a few hundred bytes each, judged against their identity kind.

Each identity keeps its habits, learned online: when in the week it acts (hour-of-week counts), what it acts
on, from where, with which actions (Bloom filters), and how bursty it is (its recent event times). River
`EWMean`s track how often the identity *normally* meets something new, so an integration that uploads a new
asset every time is not flagged for novelty, while a publisher that always ships the same package is.

Each feature's surprise is in [0, 1], one minus how expected the event is:
- hour: 0 for an hour (with its neighbours, and the same hour on the other kind of day as far as the identity
  acts on this kind) at least as busy as its average hour; less busy, in proportion; at most one minus the
  chance of meeting a new hour (Good-Turing: the share of its hours met once; and its kind's prior);
- target / source / action: 0 for a value met before; a new one, one minus the chance of novelty, which
  combines the identity's own rate and its kind's prior (`KindPrior`: a CI bot meets new dependencies, a
  publisher does not meet new packages);
- burst: how far the events of the last ten minutes exceed the most the identity has shown.

The event's score is evidence of *several* habits broken at once, never of one: the features form
independent groups (when: hour; what: target, action; where: source; rate: burst), and the score is one
minus the product of the groups' expectedness leaving out the most surprising group. One surprising
feature, however surprising, scores 0; two groups score at least the lesser surprise. Scored before
learning; no verdicts before the warm-up.

River's shape: `Baseline.score_one` then `Baseline.learn_one`; and, as in river's
`ThresholdFilter(..., protect_anomaly_detector=True)`, the rule that protects the baseline lives here, not in
the caller: `learn_one` refuses an event that policy denied or that broke several habits, and every event for
ten minutes after the latter (whose times still count towards bursts). `make bench` measures cost and quality.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from river.stats import EWMean

from nhiguard.models.kinds import NO_PRIOR, KindPrior

if TYPE_CHECKING:
    from nhiguard.decision.records import CanonicalEvent

# Scores at or above this are "anomalous": the anomaly stage's policies judge the event.
ANOMALY_THRESHOLD = 0.8
# Scores at or above this are not learned from: two habits broken at once, even below the threshold, must
# not become habits (a misused credential would otherwise teach its new habits on its way to the threshold).
# One broken habit scores 0 and is learned: a new runner or a first weekend becomes habitual.
LEARN_LIMIT = 0.5
_HOUR_MS = 3_600_000
BURST_WINDOW_MS = 10 * 60_000
_RECENT = 32  # event times kept for the burst count (a burst beyond this saturates)
_BLOOM_BITS = {"target": 2048, "source": 128, "action": 256}
# Independent groups of features: the score needs at least two of them surprising.
GROUPS: dict[str, tuple[str, ...]] = {
    "when": ("hour",),
    "what": ("target", "action"),
    "where": ("source",),
    "rate": ("burst",),
}
# Facts fields that say where a credential was used from (an address, a runner; for a workflow run started
# by hand, whose hands started it), most specific first; the first two are pools of machines (`_place`).
_PLACE_FIELDS = ("client_address", "runner", "dispatched_by")
_POOLED = frozenset(("client_address", "runner"))


def hour_of_week(ms: int) -> int:
    return ((ms // _HOUR_MS) + 72) % 168  # 0 = Monday 00:00 UTC (the epoch was a Thursday)


def time_bucket(ms: int) -> int:
    """Hour of day, weekdays and weekends apart: dense enough to learn from a few hundred events."""
    how = hour_of_week(ms)
    return how % 24 + (24 if how >= 120 else 0)


def target_of(ev: CanonicalEvent) -> str:
    """What the event acts on, as its facts say (a release's or an install's package), else the resource."""
    return ev.resource_id if ev.facts is None else ev.facts.target(ev.resource_id)


def source_of(ev: CanonicalEvent) -> str:
    """Where the credential was used from: the client address or runner the facts carry (an IPv4 address
    as its /24, a runner without its instance number, so a pool is one place), or who started a workflow run
    by hand, else the principal the source named."""
    for name in _PLACE_FIELDS:
        value = getattr(ev.facts, name, None)
        if value:
            return f"{name}:{_place(str(value)) if name in _POOLED else value}"
    return ev.actor.source_principal


def _place(value: str) -> str:
    parts = value.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return ".".join(parts[:3]) + ".0/24"
    return value.rstrip("0123456789").rstrip("-_ #") or value


def _bits(value: str, nbits: int) -> tuple[int, int]:
    h = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(h[:4], "little") % nbits, int.from_bytes(h[4:], "little") % nbits


@dataclass(frozen=True, slots=True)
class Score:
    """An event's score against its identity's baseline, before any learning from it."""

    value: float  # evidence of several habits broken at once, in [0, 1] (`combined`)
    warm: bool  # the baseline had seen enough events to judge
    features: dict[str, float]  # surprise per habit
    bits: dict[str, tuple[int, int]]  # the event's Bloom positions, hashed once for scoring and learning

    @property
    def flagged(self) -> bool:
        return self.warm and self.value >= ANOMALY_THRESHOLD

    @property
    def learnable(self) -> bool:
        return not self.warm or self.value < LEARN_LIMIT

    @property
    def judged(self) -> bool:
        """Whether the anomaly stage's policies judge the event: warm, and several habits broken."""
        return not self.learnable

    @property
    def peak(self) -> float:
        """The largest single surprise (one habit broken): ranks events, never decides alone."""
        return max(self.features.values(), default=0.0)

    def policy_input(self) -> dict[str, Any]:
        """What the anomaly stage's policies read as `input.anomaly`: the score, the surprise of each group
        and the three most surprising features."""
        top = sorted(self.features.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        return {
            "score": round(self.value, 6),
            "peak": round(self.peak, 6),
            "warm": self.warm,
            "threshold": ANOMALY_THRESHOLD,
            "groups": {g: round(v, 6) for g, v in group_surprise(self.features).items()},
            "top": [{"feature": k, "value": round(v, 6)} for k, v in top],
        }


def group_surprise(x: Mapping[str, float]) -> dict[str, float]:
    """Each independent group's surprise: its most surprising feature (GROUPS, spelt out: per event)."""
    get = x.get
    what = max(get("target", 0.0), get("action", 0.0))
    return {"when": get("hour", 0.0), "what": what, "where": get("source", 0.0), "rate": get("burst", 0.0)}


def combined(x: Mapping[str, float]) -> float:
    """One minus the product of the groups' expectedness, leaving out the most surprising group: 0 when only
    one group is surprising, at least the second-largest group surprise otherwise."""
    _, a, b, c = sorted(1.0 - s for s in group_surprise(x).values())
    return 1.0 - a * b * c


class Baseline:
    """One identity's habits."""

    __slots__ = ("action", "action_new", "grown_at", "hours", "max_burst", "n", "recent", "source")
    __slots__ += ("source_new", "target", "target_new")

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

    def score_one(
        self, ev: CanonicalEvent, warmup: int, prior: KindPrior = NO_PRIOR, vouched: bool = False
    ) -> Score:
        # `vouched`: an address in the credential's inventory networks: a new place there is a move (learned).
        bits = event_bits(ev)
        x = features(self, ev, bits, prior) | ({"source": 0.0} if vouched else {})
        return Score(combined(x), self.n >= warmup, x, bits)

    def learn_one(self, ev: CanonicalEvent, score: Score, allowed: bool) -> bool:
        """Learn from the event unless policy denied it or it broke several habits (LEARN_LIMIT): that is
        how baselines get poisoned. True when it learned. An event that broke several habits, and any event
        in the window after it, still counts towards later burst counts (it is activity). One that policy
        denied for its own reasons does not: it never teaches the habit (the most events in a window)
        either, so counting it would make an identity whose routine is denied look bursty for ever."""
        t = ev.occurred_at_ms
        if not score.learnable:
            # Counted towards bursts, and it opens a window in which nothing is learned (the same hands may
            # still hold the credential: their one-feature steps, such as metadata requests for new
            # packages, must not teach the baseline that novelty is normal). Whatever the verdict was.
            _recent(self, t, suspect=True)
            return False
        if not allowed:
            return False
        if _suspect(self, t):
            _recent(self, t)
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
    values = {"target": target_of(ev), "source": source_of(ev), "action": ev.action}
    return {name: _bits(value, _BLOOM_BITS[name]) for name, value in values.items()}


def hour_surprise(b: Baseline, ms: int, prior: float = 0.0) -> float:
    """How unexpected this hour is for the identity, in [0, 1] (see the module docstring)."""
    h = time_bucket(ms)
    day = h - h % 24
    near = b.hours[h] + 0.5 * (b.hours[day + (h - 1) % 24] + b.hours[day + (h + 1) % 24])
    # Relative to the identity's average hour: a quiet hour is surprising for a busy identity, not for one
    # that has acted only a few times.
    usual = max(b.n / 48, 0.5)
    expected = min(1.0, near / usual)
    if expected < 1.0:
        # The same hour on the other kind of day (weekday, weekend) counts as much as the identity acts on
        # this kind relative to the other: a first Saturday at a working hour is less surprising than a
        # first 3 a.m., and more so for an identity that never works weekends.
        this, other = sum(b.hours[day : day + 24]), sum(b.hours[24 - day : 48 - day])
        weight = min(0.5, (this + 1) / (other + 1))
        expected = min(1.0, (near + weight * b.hours[(h + 24) % 48]) / usual)
    if expected < 1.0:
        # At least as expected as meeting a new hour is. Good-Turing: the share of events that were the only
        # one in their hour estimates that chance, so an identity that keeps turning up at new hours (on
        # call) is not surprised by one more; and the kind's prior.
        own = b.hours.count(1) / b.n if b.n else 1.0
        expected = max(expected, 1.0 - (1.0 - own) * (1.0 - prior))
    return 1.0 - expected


def features(
    b: Baseline, ev: CanonicalEvent, bits: dict[str, tuple[int, int]], prior: KindPrior = NO_PRIOR
) -> dict[str, float]:
    """Surprise per habit, each in [0, 1]."""
    out = {"hour": hour_surprise(b, ev.occurred_at_ms, prior.hour)}
    for name, pos in bits.items():
        if _seen(getattr(b, name), pos):
            out[name] = 0.0
        else:
            # New: as surprising as novelty is rare, for this identity and for its kind.
            own = getattr(b, name + "_new").get() if b.n else 1.0
            out[name] = max(0.0, 1.0 - own) * (1.0 - getattr(prior, name))
    t = ev.occurred_at_ms
    count = 1 + _in_window(b, t)
    out["burst"] = 0.0 if count <= b.max_burst else 1.0 - 0.5 ** (count - b.max_burst)
    return out


def _learn(b: Baseline, ev: CanonicalEvent, bits: dict[str, tuple[int, int]]) -> None:
    h = time_bucket(ev.occurred_at_ms)
    b.hours[h] = min(b.hours[h] + 1, 65535)
    for name, pos in bits.items():
        bloom = getattr(b, name)
        # The first event meets everything for the first time: no sign of a habit of meeting new things (as
        # its rate, it would leave every young baseline half-blind to novelty for a hundred events).
        getattr(b, name + "_new").update(0.0 if b.n == 0 or _seen(bloom, pos) else 1.0)
        _add(bloom, pos)
    t = ev.occurred_at_ms
    _recent(b, t)
    # The habit grows by one at most once per window, so a burst cannot teach the model that it is normal.
    count = _in_window(b, t)
    if count > b.max_burst and t - b.grown_at >= BURST_WINDOW_MS:
        b.max_burst += 1
        b.grown_at = t
    b.n += 1


def _recent(b: Baseline, t: int, suspect: bool = False) -> None:
    # A suspect event's time is kept negated: the same compact record (and format) marks its window.
    b.recent.append(-t if suspect else t)
    if len(b.recent) > _RECENT:
        del b.recent[0]


def _suspect(b: Baseline, t: int) -> bool:
    """Whether an event that broke several habits happened in the window before t."""
    return bool(b.recent) and min(b.recent) < 0 and any(t - BURST_WINDOW_MS < -r <= t for r in b.recent)


def _in_window(b: Baseline, t: int) -> int:
    lo, recent = t - BURST_WINDOW_MS, b.recent
    n = sum(1 for r in recent if lo < r <= t)
    return n + sum(1 for r in recent if lo < -r <= t) if recent and min(recent) < 0 else n


class AnomalyModels:
    """Many identities' baselines in memory, score-then-learn (benchmarks and tests; the decision core keeps
    each baseline with its identity's state). `learn` is unprotected: the caller chooses what to teach."""

    def __init__(self, warmup_events: int = 30, seed: int = 42) -> None:
        self.warmup_events = warmup_events
        self._models: dict[str, Baseline] = {}
        self._last: tuple[str, dict[str, tuple[int, int]]] = ("", {})  # score() -> learn() of one event

    def score(self, ev: CanonicalEvent) -> tuple[float, bool, dict[str, float]]:
        """(score in [0, 1], warmed up, surprise per feature) for the event, before any learning from it."""
        s = self.score_event(ev)
        self._last = (ev.event_id, s.bits)
        return s.value, s.warm, s.features

    def score_event(self, ev: CanonicalEvent, prior: KindPrior = NO_PRIOR) -> Score:
        """The event's full score (as the decision core gets it), before any learning from it."""
        b = self._models.get(ev.actor.id)
        if b is None:
            b = self._models[ev.actor.id] = Baseline()
        return b.score_one(ev, self.warmup_events, prior)

    def learn_one(self, ev: CanonicalEvent, score: Score, allowed: bool = True) -> bool:
        """Learn as the decision core does: the baseline refuses what it must not learn."""
        return self._models[ev.actor.id].learn_one(ev, score, allowed)

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
