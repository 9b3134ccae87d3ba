"""Labelled scenarios for the anomaly model: benign per-identity habits plus injected one-feature anomalies.

Pure Python and deterministic for a seed. Each identity gets a *habit* (`Habit`): when it acts (a
working-hours window on weekdays, or a cron-like schedule), the few actions it performs, the few targets it
touches (CMS entries/assets, repositories, packages, egress destinations), the principal/place its credential
is used from, how many events it ever produces within `BURST_WINDOW_MS`, and (for releases) its typical size.
The benign stream never leaves that habit. An injected anomaly changes exactly one feature of it:

- `off_hours`   an event moved to an hour of the week the identity is never active in;
- `new_target`  an asset / repository / destination the identity never touched (non-package identities);
- `new_package` a package the identity never released / installed (package identities);
- `burst`       habitual events moved next to each other so more fall within `BURST_WINDOW_MS` than ever
                 do in the habit (only the events past the habitual count are labelled anomalous);
- `new_source`  the same credential used from a new place (`actor.source_principal`).

Labels are not bookkeeping from the injector: they are recomputed with `deviations()` from the final stream,
so "anomalous" means exactly "deviates from its identity's habit", and the generator checks that every event
deviates in at most one feature.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from nhiguard.decision.facts import CmsChange, PackedFile, ReleaseRequest
from nhiguard.decision.records import Actor, CanonicalEvent, stable_id
from nhiguard.decision.registry_facts import Install
from nhiguard.models.anomaly import hour_of_week, target_of  # the model's own definitions

ANOMALY_KINDS: tuple[str, ...] = ("off_hours", "new_target", "new_package", "burst", "new_source")
PROFILES: tuple[str, ...] = (
    "cms_integration",
    "ci_workflow",
    "ci_release",
    "registry_installer",
    "runtime_egress",
)
EPOCH_MS = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
BURST_WINDOW_MS = 10 * 60_000
MIN_HISTORY = 40  # anomalies only after this many events of the identity: there must be a habit to break

_MIN_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-2")
_FOREIGN_PLACES = ("198.51.100.23", "203.0.113.77", "tor-exit:185.220.101.4", "laptop:dev-7f3a", "ap-east-1")
_ORGS = ("acme", "acme-labs", "acme-web")
_CMS_ACTIONS = {
    "Asset": ("cms.asset.create", "cms.asset.save", "cms.asset.auto_save", "cms.asset.publish"),
    "Entry": ("cms.entry.create", "cms.entry.save", "cms.entry.auto_save", "cms.entry.publish"),
}
_CI_ACTIONS = (
    "ci.github.workflow_run.requested",
    "ci.github.workflow_run.completed",
    "ci.github.workflow_job.completed",
    "ci.github.push",
)
_THIRD_PARTY = (
    "react", "lodash", "express", "typescript", "zod", "axios", "chalk", "commander", "debug", "semver",
    "yaml", "dotenv", "uuid", "ws", "pino", "undici", "esbuild", "vitest", "rollup", "tslib",
)  # fmt: skip
_DESTINATIONS = (
    "api.stripe.com:443", "hooks.slack.com:443", "s3.eu-west-1.amazonaws.com:443", "api.github.com:443",
    "registry.npmjs.org:443", "pagerduty.example:443", "partner-feed.example:443", "smtp.mailgun.org:587",
    "events.segment.io:443", "db.internal:5432",
)  # fmt: skip


@dataclass(frozen=True)
class Habit:
    """What one identity normally does. `deviations()` judges events against it."""

    identity: str
    profile: str  # one of PROFILES
    domain: str
    source: str
    schedule: str  # working_hours | cron
    active_hours: frozenset[int]  # hours of the week (0 = Monday 00:00 UTC) it acts in
    actions: tuple[str, ...]
    targets: tuple[str, ...]  # what target_of() returns for its events
    target_is_package: bool
    source_principal: str
    size_range: tuple[int, int] | None  # release sizes it produces (inclusive), None if it never releases
    max_in_window: int = 1  # most of its events ever within BURST_WINDOW_MS (filled in from the stream)
    anomaly_kinds: tuple[str, ...] = field(default=())  # kinds that apply to this identity


@dataclass
class Scenario:
    events: list[tuple[CanonicalEvent, bool]]  # sorted by (occurred_at_ms, event_id)
    kinds: dict[str, str]  # event_id -> anomaly kind, for anomalous events only
    habits: dict[str, Habit]  # identity -> habit
    requested_rate: float
    seed: int

    @property
    def anomaly_count(self) -> int:
        return len(self.kinds)

    def kind_of(self, ev: CanonicalEvent) -> str | None:
        return self.kinds.get(ev.event_id)


def window_counts(times: Sequence[int], window_ms: int = BURST_WINDOW_MS) -> list[int]:
    """For each time in a sorted sequence: how many times fall in (t - window_ms, t], itself included."""
    out = []
    lo = 0
    for i, t in enumerate(times):
        while times[lo] <= t - window_ms:
            lo += 1
        out.append(i - lo + 1)
    return out


def deviations(events: Sequence[CanonicalEvent], habit: Habit) -> list[set[str]]:
    """For one identity's events (sorted by time): the habit features each event departs from.

    Beyond the injected kinds, `new_action` and `size` are checked too (nothing injects them: they catch a
    benign stream that leaves its own habit).
    """
    counts = window_counts([e.occurred_at_ms for e in events])
    out: list[set[str]] = []
    for ev, count in zip(events, counts, strict=True):
        d: set[str] = set()
        if hour_of_week(ev.occurred_at_ms) not in habit.active_hours:
            d.add("off_hours")
        if target_of(ev) not in habit.targets:
            d.add("new_package" if habit.target_is_package else "new_target")
        if ev.actor.source_principal != habit.source_principal:
            d.add("new_source")
        if count > habit.max_in_window:
            d.add("burst")
        if ev.action not in habit.actions:
            d.add("new_action")
        if isinstance(ev.facts, ReleaseRequest) and (
            habit.size_range is None or not habit.size_range[0] <= ev.facts.size <= habit.size_range[1]
        ):
            d.add("size")
        out.append(d)
    return out


# --- benign streams -----------------------------------------------------------------------------------


def _word(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(n))


def _habit(index: int, rng: random.Random) -> tuple[Habit, dict]:
    """A habit and the private generation parameters (rates, sizes, versions) behind it."""
    profile = PROFILES[index % len(PROFILES)]
    org = rng.choice(_ORGS)
    region = rng.choice(_REGIONS)
    params: dict = {}
    if rng.random() < 0.5 or profile == "cms_integration":
        schedule = "working_hours"
        start = rng.randint(6, 11)
        end = start + rng.randint(7, 10)
        days = range(5) if rng.random() < 0.85 else range(6)
        active = frozenset(d * 24 + h for d in days for h in range(start, end))
        params.update(start=start, end=end, days=tuple(days), per_day=rng.uniform(4, 24))
    else:
        schedule = "cron"
        every = rng.choice((3, 4, 6, 8, 12, 24))
        offset = rng.randrange(every)
        hours = tuple(range(offset, 24, every))
        active = frozenset(d * 24 + h for d in range(7) for h in hours)
        params.update(hours=hours, minute=rng.randint(3, 45), cluster=rng.randint(1, 3))
    size_range = None
    if profile == "cms_integration":
        space = _word(rng, 12)
        name = f"{rng.choice(('asset', 'media', 'i18n', 'seo', 'dam', 'pim'))}-{_word(rng, 4)}"
        identity = f"contentful:{space}/AppDefinition/{name}"
        entity = rng.choice(("Asset", "Entry"))
        actions = tuple(sorted(rng.sample(_CMS_ACTIONS[entity], rng.randint(2, 3))))
        targets = tuple(f"{space}/{_word(rng, 22)}" for _ in range(rng.randint(3, 8)))
        domain, source, principal = "cms", "contentful.webhook", f"contentful-app-key:{space}/{name}"
        params.update(entity=entity, space=space)
    elif profile == "ci_workflow":
        repo = f"{org}/{_word(rng, 5)}"
        identity = f"github:{repo}/.github/workflows/ci.yml"
        actions = tuple(sorted(rng.sample(_CI_ACTIONS, rng.randint(2, 3))))
        targets = (repo, *(f"{org}/{_word(rng, 5)}" for _ in range(rng.randint(0, 2))))
        domain, source, principal = "ci", "github.webhook", f"github-actions[bot]:{repo}"
    elif profile == "ci_release":
        repo = f"{org}/{_word(rng, 5)}"
        identity = f"github:{repo}/.github/workflows/release.yml"
        actions = ("ci.release.publish_request",)
        targets = tuple(f"@{org}/{_word(rng, 5)}" for _ in range(rng.randint(1, 2)))
        domain, source, principal = "ci", "npm.publish_gate", f"npm-trusted-publisher:{repo}"
        typical = int(10 ** rng.uniform(4, 7))
        size_range = (int(typical * 0.9), int(typical * 1.1))
        params.update(typical=typical)
    elif profile == "registry_installer":
        bot = f"ci-{_word(rng, 5)}"
        identity = f"verdaccio:{bot}"
        actions = ("registry.package.install",)
        targets = tuple(rng.sample(_THIRD_PARTY, rng.randint(3, 8)))
        domain, source, principal = "registry", "verdaccio.log", bot
        params.update(
            versions={p: f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}" for p in targets}
        )
    else:
        name = f"{rng.choice(('billing', 'notifier', 'sync', 'exporter', 'webhooks'))}-{_word(rng, 4)}"
        identity = f"k8s:{org}-prod/serviceaccount/{name}"
        actions = tuple(
            sorted(rng.sample(("runtime.egress.connect", "runtime.secret.read"), rng.randint(1, 2)))
        )
        targets = tuple(rng.sample(_DESTINATIONS, rng.randint(1, 3)))
        domain, source, principal = "runtime", "runtime.egress", f"k8s-sa-token:{org}-prod/{name}"
    package = profile in ("ci_release", "registry_installer")
    kinds = tuple(k for k in ANOMALY_KINDS if k != ("new_target" if package else "new_package"))
    habit = Habit(
        identity=identity,
        profile=profile,
        domain=domain,
        source=source,
        schedule=schedule,
        active_hours=active,
        actions=actions,
        targets=targets,
        target_is_package=package,
        source_principal=f"{principal}@{region}",
        size_range=size_range,
        anomaly_kinds=kinds,
    )
    return habit, params


def _times(habit: Habit, params: dict, rng: random.Random, n: int) -> list[int]:
    """n event times following the habit's schedule, in order."""
    out: list[int] = []
    day = 0
    while len(out) < n:
        base = EPOCH_MS + day * _DAY_MS
        if habit.schedule == "working_hours":
            if day % 7 in params["days"]:
                lam = params["per_day"]
                k = sum(1 for _ in range(int(2 * lam)) if rng.random() < 0.5)
                span = (params["end"] - params["start"]) * _HOUR_MS
                ts = sorted(base + params["start"] * _HOUR_MS + rng.randrange(span) for _ in range(k))
                out.extend(ts)
        else:
            for h in params["hours"]:
                if rng.random() < 0.05:  # a skipped run
                    continue
                t = base + h * _HOUR_MS + params["minute"] * _MIN_MS + rng.randrange(120_000)
                for _ in range(rng.randint(1, params["cluster"])):
                    out.append(t)
                    t += rng.randint(2_000, 20_000)
        day += 1
    return out[:n]


def _event(habit: Habit, params: dict, rng: random.Random, index: int, n: int, t: int) -> CanonicalEvent:
    actor = Actor(id=habit.identity, display=habit.identity.rsplit("/", 1)[-1], human=False,
                  source_principal=habit.source_principal)  # fmt: skip
    action = rng.choice(habit.actions)
    target = rng.choice(habit.targets)
    kw: dict = {}
    if habit.profile == "cms_integration":
        entity = params["entity"]
        op = action.rsplit(".", 1)[-1]
        resource_type, resource_id = f"cms.{entity.lower()}", target
        kw["facts"] = CmsChange(
            entity_type=entity, operation=op, tags=(), published_before=False,
            publicly_reachable=op == "publish", via="publish" if op == "publish" else "none",
            exposed_without_publish=False, file_public_url=False,
        )  # fmt: skip
    elif habit.profile == "ci_workflow":
        resource_type, resource_id = "github.repository", target
    elif habit.profile == "ci_release":
        version = f"1.{n // 50}.{n % 50}"
        size = rng.randint(int(params["typical"] * 0.95), int(params["typical"] * 1.05))
        resource_type, resource_id = "npm.package", f"{target}@{version}"
        files = (PackedFile("package.json", 900), PackedFile("dist/index.js", 4 * size - 900))
        kw["facts"] = ReleaseRequest(
            package=target, version=version, registry="https://registry.npmjs.org/",
            access="public", tag="latest", size=size, unpacked_size=size * 4,
            files=files,
            request_id=stable_id("req", habit.identity, index, n),
        )  # fmt: skip
    elif habit.profile == "registry_installer":
        version = params["versions"][target]
        resource_type, resource_id = "npm.package_version", f"{target}@{version}"
        kw["facts"] = Install(target, version, "verdaccio")
    else:
        resource_type, resource_id = "egress.destination", target
    return CanonicalEvent(
        event_id=stable_id("labelled", habit.identity, index, n),
        source=habit.source,
        domain=habit.domain,
        action=action,
        occurred_at_ms=t,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        **kw,
    )


def benign_stream(index: int, n_events: int, seed: int = 7) -> tuple[Habit, list[CanonicalEvent]]:
    """Identity number `index`'s habit and its first n_events benign events, in time order.

    Depends only on (index, seed): the same identity is generated whatever the scenario size, and a
    longer stream starts with the shorter one. `habit.max_in_window` is taken from the stream itself.
    """
    # Separate generators for the habit, the times and the events keep a longer stream's prefix identical.
    habit, params = _habit(index, random.Random(f"nhiguard-bench/{seed}/{index}/habit"))
    times = _times(habit, params, random.Random(f"nhiguard-bench/{seed}/{index}/times"), n_events)
    rng = random.Random(f"nhiguard-bench/{seed}/{index}/events")
    events = [_event(habit, params, rng, index, n, t) for n, t in enumerate(times)]
    counts = window_counts([e.occurred_at_ms for e in events])
    habit = replace(habit, max_in_window=max(counts, default=1))
    return habit, events


# --- anomaly injection --------------------------------------------------------------------------------


def _new_target(habit: Habit, rng: random.Random) -> str:
    while True:
        if habit.profile == "cms_integration":
            t = f"{habit.targets[0].split('/', 1)[0]}/{_word(rng, 22)}"
        elif habit.profile == "ci_workflow":
            t = f"{rng.choice(_ORGS)}/{_word(rng, 5)}"
        elif habit.profile == "ci_release":
            t = f"@{rng.choice(_ORGS)}/{_word(rng, 5)}"
        elif habit.profile == "registry_installer":
            t = rng.choice((*_THIRD_PARTY, f"{_word(rng, 4)}-{_word(rng, 4)}"))
        else:
            t = rng.choice(
                (*_DESTINATIONS, f"{_word(rng, 8)}.example:443", f"{rng.randint(1, 223)}.0.2.1:8443")
            )
        if t not in habit.targets:
            return t


def _retarget(ev: CanonicalEvent, target: str) -> CanonicalEvent:
    if isinstance(ev.facts, ReleaseRequest | Install):
        facts = replace(ev.facts, package=target)
        return replace(ev, resource_id=f"{target}@{facts.version}", facts=facts)
    return replace(ev, resource_id=target)


def _mutate(
    kind: str, evs: list[CanonicalEvent], habit: Habit, used: set[int], rng: random.Random, want: int
) -> tuple[list[CanonicalEvent], set[int]] | None:
    """One attempt at injecting `kind`: the new stream and the indices it touched, or None."""
    cands = [i for i in range(MIN_HISTORY, len(evs)) if not any(abs(i - u) <= 3 for u in used)]
    if not cands:
        return None
    i = rng.choice(cands)
    ev = evs[i]
    out = list(evs)
    if kind == "off_hours":
        day = (ev.occurred_at_ms - EPOCH_MS) // _DAY_MS
        how0 = hour_of_week(EPOCH_MS + day * _DAY_MS)
        quiet = [h for h in range(24) if (how0 + h) % 168 not in habit.active_hours]
        if not quiet:
            return None
        t = EPOCH_MS + day * _DAY_MS + rng.choice(quiet) * _HOUR_MS + rng.randrange(_HOUR_MS)
        out[i] = replace(ev, occurred_at_ms=t)
        return out, {i}
    if kind in ("new_target", "new_package"):
        out[i] = _retarget(ev, _new_target(habit, rng))
        return out, {i}
    if kind == "new_source":
        place = rng.choice(_FOREIGN_PLACES)
        principal = habit.source_principal.rsplit("@", 1)[0] + "@" + place
        out[i] = replace(ev, actor=replace(ev.actor, source_principal=principal))
        return out, {i}
    # burst: habitual events from the end of the stream, moved to just after event i, a few seconds apart
    times = [e.occurred_at_ms for e in evs]
    lo = bisect.bisect_right(times, ev.occurred_at_ms - BURST_WINDOW_MS)
    before = i - lo + 1  # already in the window ending at event i
    n_move = habit.max_in_window - before + want
    donors = [j for j in range(len(evs) - 1, i + 3, -1) if not any(abs(j - u) <= 3 for u in used)][:n_move]
    if n_move <= 0 or len(donors) < n_move:
        return None
    t = ev.occurred_at_ms
    for j in donors:
        t += rng.randint(5_000, 30_000)
        out[j] = replace(evs[j], occurred_at_ms=t)
    return out, {i, *donors}


def labelled_scenario(
    n_identities: int,
    events_per_identity: int,
    anomaly_rate: float = 0.01,
    seed: int = 7,
    kinds: Sequence[str] = ANOMALY_KINDS,
) -> Scenario:
    """The labelled events plus what each anomaly changed (`Scenario.kinds`) and each identity's habit."""
    if not 0 <= anomaly_rate <= 1:
        raise ValueError("anomaly_rate must be in [0, 1]")
    unknown = set(kinds) - set(ANOMALY_KINDS)
    if unknown:
        raise ValueError(f"unknown anomaly kinds: {sorted(unknown)}")
    streams = [benign_stream(i, events_per_identity, seed) for i in range(n_identities)]
    habits = [h for h, _ in streams]
    budget = math.floor(anomaly_rate * n_identities * events_per_identity + 1e-9)

    # Plan: walk the kinds round-robin, give each anomaly to a random identity it applies to.
    plan: dict[int, list[tuple[str, int]]] = defaultdict(list)
    rng = random.Random(f"nhiguard-bench/{seed}/plan/{n_identities}/{events_per_identity}/{anomaly_rate}")
    who_for = {k: [i for i, h in enumerate(habits) if k in h.anomaly_kinds] for k in kinds}
    remaining, misses = budget, 0
    while remaining > 0 and misses < len(kinds) and n_identities:
        misses = 0
        for kind in kinds:
            cost = rng.randint(2, 3) if kind == "burst" else 1
            who = who_for[kind]
            if cost > remaining or not who:
                misses += 1
                continue
            plan[rng.choice(who)].append((kind, cost))
            remaining -= cost
            if remaining <= 0:
                break

    # Inject, identity by identity; keep a mutation only if the labels come out exactly as planned.
    pairs: list[tuple[CanonicalEvent, bool]] = []
    kind_of: dict[str, str] = {}
    for idx, (habit, evs) in enumerate(streams):
        used: set[int] = set()
        labels = deviations(evs, habit)
        mrng = random.Random(f"nhiguard-bench/{seed}/inject/{idx}")
        for kind, want in plan.get(idx, ()):
            for _attempt in range(20):
                got = _mutate(kind, evs, habit, used, mrng, want)
                if got is None:
                    continue
                new, touched = got
                order = sorted(range(len(new)), key=lambda k: (new[k].occurred_at_ms, new[k].event_id))
                new = [new[k] for k in order]
                pos_of = {k: pos for pos, k in enumerate(order)}
                touched = {pos_of[k] for k in touched}
                old_labels = [labels[k] for k in order]
                dev = deviations(new, habit)
                changed = [k for k in range(len(new)) if dev[k] != old_labels[k]]
                hit = [k for k in changed if dev[k] == {kind}]
                ok = all(k in touched and k >= MIN_HISTORY for k in hit)
                if ok and len(hit) == want and len(changed) == want:
                    evs, labels = new, dev
                    used = {pos_of[k] for k in used} | touched
                    break
        streams[idx] = (habit, evs)
        for ev, d in zip(evs, labels, strict=True):
            if len(d) > 1:
                raise AssertionError(f"event {ev.event_id} deviates in more than one feature: {sorted(d)}")
            if d:
                kind_of[ev.event_id] = next(iter(d))
            pairs.append((ev, bool(d)))
    pairs.sort(key=lambda p: (p[0].occurred_at_ms, p[0].event_id))
    return Scenario(
        events=pairs,
        kinds=kind_of,
        habits={h.identity: h for h in habits},
        requested_rate=anomaly_rate,
        seed=seed,
    )


def labelled_events(
    n_identities: int, events_per_identity: int, anomaly_rate: float = 0.01, seed: int = 7
) -> list[tuple[CanonicalEvent, bool]]:
    """(event, is_anomaly) for n_identities x events_per_identity events, sorted by time.

    At most `anomaly_rate` of the events are anomalous; each anomaly departs from its identity's habit in
    exactly one feature. Use `labelled_scenario` for the kind of each anomaly and the habits.
    """
    return labelled_scenario(n_identities, events_per_identity, anomaly_rate, seed).events


# --- scoring helpers ----------------------------------------------------------------------------------


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U), ties given their average rank."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        raise ValueError("roc_auc needs at least one positive and one negative label")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1  # ranks are 1-based
        rank_sum += avg * sum(1 for k in order[i : j + 1] if labels[k])
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def precision_at(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> float:
    """Of the events scored >= threshold, the fraction that are anomalies (0.0 if none is flagged)."""
    flagged = [y for s, y in zip(scores, labels, strict=True) if s >= threshold]
    return sum(flagged) / len(flagged) if flagged else 0.0


def recall_at(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> float:
    """Of the anomalies, the fraction scored >= threshold (0.0 if there are none)."""
    hits = [s >= threshold for s, y in zip(scores, labels, strict=True) if y]
    return sum(hits) / len(hits) if hits else 0.0


def zscore_baseline(events: Iterable[CanonicalEvent | tuple[CanonicalEvent, bool]]) -> list[float]:
    """A trivial scorer: per identity, |z| of the hour of day against that identity's running mean and
    deviation (Welford), scored before the event updates them; 0.0 for an identity's first two events."""
    state: dict[str, list[float]] = {}
    out = []
    for item in events:
        ev = item[0] if isinstance(item, tuple) else item
        x = (ev.occurred_at_ms % _DAY_MS) / _HOUR_MS
        s = state.setdefault(ev.actor.id, [0, 0.0, 0.0])  # n, mean, M2
        n, mean, m2 = s
        if n >= 2:
            sd = max(math.sqrt(m2 / (n - 1)), 0.25)
            out.append(abs(x - mean) / sd)
        else:
            out.append(0.0)
        n += 1
        delta = x - mean
        mean += delta / n
        s[0], s[1], s[2] = n, mean, m2 + delta * (x - mean)
    return out
