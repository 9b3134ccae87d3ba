"""Benchmarks of the per-identity anomaly model (`models/anomaly.py`): cost, memory and detection quality.

Every function returns a JSON-ready dict and says what it measured: when a requested size does not fit the
time budget, the figures are measured at a smaller size (`measured_identities`), `extrapolated` is True, and
any figure scaled up to the requested size carries `estimate` in its name (or is `value_mb` of rss_mb_at,
whose `extrapolated` flag says so). Timings vary run to run; everything else is deterministic for a seed.

Try it: `.venv/bin/python -m bench.anomaly` (or `python bench/anomaly.py`; `--help` for sizes).
"""

from __future__ import annotations

import gc
import json
import math
import pickle
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))

from bench.labelled import (  # noqa: E402
    ANOMALY_KINDS,
    benign_stream,
    labelled_scenario,
    precision_at,
    recall_at,
    roc_auc,
    zscore_baseline,
)
from nhiguard.decision.records import CanonicalEvent  # noqa: E402
from nhiguard.models.anomaly import ANOMALY_THRESHOLD, AnomalyModels, Score, group_surprise  # noqa: E402
from nhiguard.settings import Settings  # noqa: E402

_WARMUP = Settings().anomaly_warmup_events  # what the decision core gives AnomalyModels by default


def _nice_floor(x: float) -> int:
    """The largest of 1, 2, 5, 10, 20, 50, ... not above x (at least 1): stable sizes from run to run."""
    if x < 1:
        return 1
    p = 10 ** math.floor(math.log10(x))
    return max(m * p for m in (1, 2, 5, 10) if m * p <= x)


def _feed(models: AnomalyModels, events: list[CanonicalEvent]) -> float:
    """Score then learn each event (the cost of one event in the core); seconds spent in the model."""
    t = time.perf_counter()
    for ev in events:
        _score, _warm, x = models.score(ev)
        models.learn(ev, x)
    return time.perf_counter() - t


def _vmrss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _build(
    models: AnomalyModels,
    n: int,
    events_per_identity: int,
    seed: int,
    budget_s: float,
    pilot: int,
    on_built: dict[int, object] | None = None,
) -> dict:
    """Give identities 0.. their first events until n are built or, from the pilot's pace, n would not fit
    in budget_s; then stop at a round size that fits. Returns what was built and how long it took."""
    ids: list[str] = []
    model_s = 0.0
    t0 = time.perf_counter()
    target = n
    i = 0
    while i < target:
        habit, events = benign_stream(i, events_per_identity, seed)
        model_s += _feed(models, events)
        ids.append(habit.identity)
        i += 1
        if on_built is not None and i in on_built:
            on_built[i] = _vmrss_mb()
        if i == min(pilot, n) and n > i:
            per_identity = (time.perf_counter() - t0) / i
            fits = int(budget_s / per_identity)
            target = n if n <= fits else max(i, _nice_floor(fits))
            if on_built is not None:
                for c in (target // 4, target // 2, target):
                    if c >= i:
                        on_built.setdefault(c, None)
        if time.perf_counter() - t0 > 2 * budget_s:  # a guard if the pace changes: report what was built
            break
    return {"ids": ids, "model_seconds": model_s, "wall_seconds": time.perf_counter() - t0}


def model_cost(
    n_identities: int,
    events_per_identity: int = 20,
    seed: int = 1,
    budget_s: float = 60.0,
    repeats: int = 3,
    timed_identities: int = 1000,
    events_per_pass: int = 32,
    sample: int = 200,
) -> dict:
    """Cost of `AnomalyModels` as it is: µs per event (score+learn), pickled bytes per identity, build time.

    Builds the state of n_identities (each fed `events_per_identity` benign events, in this process) if a
    100-identity pilot says that fits in ~budget_s, else of the largest round number that fits (reported as
    `measured_identities`, with `extrapolated: True`). Then times `repeats` passes; each pass feeds
    `events_per_pass` more events (one HalfSpaceTrees window) to each of `timed_identities` identities spread
    over the built ones, interleaved in time order, with all built identities resident. `us_per_event` is the
    median pass. `bytes_per_identity` is the mean pickled size of `sample` identities' state.
    """
    t_start = time.perf_counter()
    models = AnomalyModels(warmup_events=_WARMUP)
    built = _build(models, n_identities, events_per_identity, seed, budget_s, pilot=100)
    ids = built["ids"]
    k = len(ids)
    out: dict = {
        "requested_identities": n_identities,
        "measured_identities": k,
        "extrapolated": k < n_identities,
        "events_per_identity": events_per_identity,
        "seed": seed,
    }
    if k == 0:
        return {**out, "seconds": round(time.perf_counter() - t_start, 3)}

    # Timed passes over identities spread across the built ones.
    s = min(k, timed_identities)
    timed = [j * k // s for j in range(s)]
    per_identity = [
        benign_stream(i, events_per_identity + repeats * events_per_pass, seed)[1][events_per_identity:]
        for i in timed
    ]
    passes = []
    for r in range(repeats):
        batch = [ev for evs in per_identity for ev in evs[r * events_per_pass : (r + 1) * events_per_pass]]
        batch.sort(key=lambda e: (e.occurred_at_ms, e.event_id))
        passes.append(_feed(models, batch) / len(batch) * 1e6)

    picked = [ids[j * k // min(k, sample)] for j in range(min(k, sample))]
    # What the worker stores per identity (the state table and its changelog): the model as exported.
    sizes = [len(models.export(i) or b"") for i in picked]
    pickled = [len(pickle.dumps(models._models[i], protocol=pickle.HIGHEST_PROTOCOL)) for i in picked]

    per_identity_ms = built["model_seconds"] / k * 1e3
    out.update(
        {
            "us_per_event": round(statistics.median(passes), 2),
            "us_per_event_passes": [round(p, 2) for p in passes],
            "timed_identities": s,
            "timed_events_per_pass": s * events_per_pass,
            "bytes_per_identity": round(statistics.fmean(sizes)),
            "bytes_per_identity_pickled": round(statistics.fmean(pickled)),
            "bytes_per_identity_sample": len(sizes),
            "build_seconds": round(built["model_seconds"], 3),
            "build_ms_per_identity": round(per_identity_ms, 3),
            "build_seconds_estimate_for_requested": (
                round(per_identity_ms * n_identities / 1e3, 1) if k < n_identities else None
            ),
            "method": (
                f"state of {k} identities built in-process ({events_per_identity} events each, score+learn); "
                f"µs/event = median of {repeats} timed passes of {events_per_pass} events x {s} identities; "
                f"bytes = mean stored size (AnomalyModels.export) of {len(sizes)} identities' baselines"
                + (
                    f"; {n_identities} requested did not fit the {budget_s:.0f} s budget: per-event and "
                    "per-identity figures are measured at the smaller size, only "
                    "build_seconds_estimate_for_requested is scaled up (linearly)"
                    if k < n_identities
                    else ""
                )
            ),
        }
    )
    models._models.clear()
    del models, per_identity
    gc.collect()
    out["seconds"] = round(time.perf_counter() - t_start, 3)
    return out


def _rss_child(n: int, cap_s: float, events_per_identity: int, seed: int) -> None:
    """Runs in a fresh interpreter: build the state, print one JSON line of VmRSS figures."""
    gc.collect()
    baseline = _vmrss_mb()
    models = AnomalyModels(warmup_events=_WARMUP)
    checkpoints: dict[int, object] = {}
    # 0.8: the pace slows as the heap grows, and the interpreter's start and the final gc count too.
    built = _build(models, n, events_per_identity, seed, cap_s * 0.8, pilot=min(200, n), on_built=checkpoints)
    gc.collect()
    k = len(built["ids"])
    import resource

    res = {
        "baseline_mb": baseline,
        "measured_mb": _vmrss_mb(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "measured_identities": k,
        "identities_held": len(models),
        "checkpoints": sorted([c, v] for c, v in checkpoints.items() if v is not None and c <= k),
        "build_seconds": built["model_seconds"],
        "wall_seconds": built["wall_seconds"],
    }
    print(json.dumps(res))


def rss_mb_at(
    n_identities: int, cap_seconds: float = 90, events_per_identity: int = 20, seed: int = 1
) -> dict:
    """Resident MB of a fresh interpreter holding n identities' `AnomalyModels` state.

    A child process builds the state (each identity fed `events_per_identity` benign events). A 200-identity
    pilot estimates the pace; if n would not be built within ~cap_seconds, the child stops at the largest
    round size k that fits, and `value_mb` is extrapolated linearly to n from the slope between k/2 and k
    identities (`extrapolated: True`; `measured_mb` is what was measured at k).
    """
    t0 = time.perf_counter()
    code = (
        "import sys; from bench.anomaly import _rss_child; "
        "_rss_child(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(n_identities),
            str(cap_seconds),
            str(events_per_identity),
            str(seed),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3 * cap_seconds + 120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rss child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    k = child["measured_identities"]
    points = child["checkpoints"]
    extrapolated = k < n_identities
    mb_per_identity = None
    if len(points) >= 2:
        (c1, m1), (c2, m2) = points[-2], points[-1]
        mb_per_identity = (m2 - m1) / (c2 - c1) if c2 > c1 else None
    if mb_per_identity is None and k:
        mb_per_identity = (child["measured_mb"] - child["baseline_mb"]) / k
    if extrapolated:
        value = child["measured_mb"] + (mb_per_identity or 0.0) * (n_identities - k)
        method = (
            f"VmRSS of a fresh interpreter with {k} identities' state ({events_per_identity} events each); "
            f"{n_identities} would not fit the {cap_seconds:.0f} s cap, so value_mb is extrapolated linearly "
            f"from the slope between {points[-2][0] if len(points) >= 2 else 0} and {k} identities"
        )
    else:
        value = child["measured_mb"]
        method = (
            f"VmRSS of a fresh interpreter with {k} identities' state ({events_per_identity} events each), "
            "after gc.collect()"
        )
    return {
        "value_mb": round(value, 1),
        "requested_identities": n_identities,
        "measured_identities": k,
        "extrapolated": extrapolated,
        "measured_mb": round(child["measured_mb"], 1),
        "baseline_mb": round(child["baseline_mb"], 1),
        "maxrss_mb": round(child["maxrss_mb"], 1),
        "kb_per_identity": round(mb_per_identity * 1024, 1) if mb_per_identity is not None else None,
        "checkpoints_mb": [[c, round(m, 1)] for c, m in points],
        "build_seconds": round(child["build_seconds"], 3),
        "method": method,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _params() -> dict:
    from nhiguard.policy.bundle import load_bundle

    return load_bundle(Settings().policies_dir).data["nhiguard"]["params"]


def revoke_score() -> float:
    """The shipped policy's revoke threshold (policies/data.yaml)."""
    return float(_params()["anomaly"]["behaviour"]["revoke_score"])


def sensitive_prefixes() -> tuple[str, ...]:
    return tuple(_params()["sensitive_actions"])


def _policy_rule_figures(events: list, scored: list[Score], labels: list[bool]) -> dict:
    """What the shipped anomaly policy would revoke, every identity known and every event let through by the
    rule policies: a warm event scored >= revoke_score with min_groups groups at group_surprise or more, and,
    while such a REVOKE is in force (an hour), each further event scored >= episode_score."""
    p = _params()["anomaly"]["behaviour"]
    cut, level, groups, episode = p["revoke_score"], p["group_surprise"], p["min_groups"], p["episode_score"]
    prefixes = sensitive_prefixes()
    sens = [ev.action.startswith(prefixes) for ev, _y in events]
    revoked_until: dict[str, int] = {}
    fired = []
    for (ev, _y), s in zip(events, scored, strict=True):
        broken = sum(1 for v in group_surprise(s.features).values() if v >= level)
        first = s.warm and s.value >= cut and broken >= groups
        again = s.warm and s.value >= episode and revoked_until.get(ev.actor.id, -1) > ev.occurred_at_ms
        if first and not again:
            revoked_until[ev.actor.id] = ev.occurred_at_ms + 3_600_000
        fired.append(first or again)
    hits = sum(f and y for f, y in zip(fired, labels, strict=True))
    positives = sum(y and x for y, x in zip(labels, sens, strict=True))
    return {
        "policy_revokes": sum(fired),
        # Revokes of any action, per 1,000 sensitive actions (the figure the first rule, which revoked only
        # sensitive actions, was measured by).
        "policy_revokes_per_1000_sensitive_events": round(1000 * sum(fired) / max(1, sum(sens)), 2),
        "policy_revoke_precision": round(hits / sum(fired), 4) if any(fired) else None,
        "policy_revoke_recall_on_sensitive_anomalies": (
            round(sum(f and y and x for f, y, x in zip(fired, labels, sens, strict=True)) / positives, 4)
            if positives
            else None
        ),
    }


def quality(
    seed: int = 7, n_identities: int = 300, events_per_identity: int = 200, anomaly_rate: float = 0.01
) -> dict:
    """Detection quality of `AnomalyModels` on `labelled_scenario`, run the way the decision core runs it.

    Every event is treated as allowed by policy, so (as in `core._decide`) the model scores it and learns
    from it as `Baseline.learn_one` lets it (not an event that broke several habits, nor one in the window
    after it). Each labelled anomaly breaks exactly one habit, so it is ranked by the event's largest single
    surprise (`Score.peak`): `anomaly_auc` (all events), `anomaly_auc_warm` (events scored while the identity
    was warm: all anomalies are) and the precision/recall figures. The model's score (`Score.value`, two or
    more habits broken) and the policy's revoke rule are what `flagged_*` and `policy_*` count: on one-habit
    anomalies they should stay near zero.
    """
    t0 = time.perf_counter()
    sc = labelled_scenario(n_identities, events_per_identity, anomaly_rate, seed)
    t_gen = time.perf_counter() - t0

    t1 = time.perf_counter()
    models = AnomalyModels(warmup_events=_WARMUP)
    scores: list[float] = []
    scored: list[Score] = []
    warm: list[bool] = []
    learned = 0
    for ev, _label in sc.events:
        s = models.score_event(ev)
        learned += models.learn_one(ev, s)
        scores.append(s.peak)
        scored.append(s)
        warm.append(s.warm)
    t_model = time.perf_counter() - t1
    baseline = zscore_baseline(sc.events)

    labels = [y for _ev, y in sc.events]
    kinds = [sc.kinds.get(ev.event_id) for ev, _y in sc.events]

    def auc(values: list[float], keep: list[bool]) -> float | None:
        ys = [y for y, k in zip(labels, keep, strict=True) if k]
        if all(ys) or not any(ys):
            return None
        return round(roc_auc([v for v, k in zip(values, keep, strict=True) if k], ys), 4)

    everything = [True] * len(labels)
    # Per kind: its anomalies against the benign events of the identities the kind applies to (new_package
    # only to package identities, new_target only to the others), so identity mix does not pass as skill.
    applies = [sc.habits[ev.actor.id].anomaly_kinds for ev, _y in sc.events]
    by_kind = {
        k: [kk == k or (kk is None and k in a) for kk, a in zip(kinds, applies, strict=True)]
        for k in ANOMALY_KINDS
    }
    flagged = sum(1 for s in scored if s.flagged)
    n_events = len(labels)
    return {
        "input": {
            "identities": n_identities,
            "events_per_identity": events_per_identity,
            "events": n_events,
            "anomaly_rate_requested": anomaly_rate,
            "anomalies": sc.anomaly_count,
            "anomaly_rate": round(sc.anomaly_count / n_events, 5) if n_events else 0.0,
            "anomalies_by_kind": dict(sorted(Counter(k for k in kinds if k).items())),
            "seed": seed,
        },
        "model": {
            "class": "nhiguard.models.anomaly.AnomalyModels",
            "warmup_events": _WARMUP,
            "threshold": ANOMALY_THRESHOLD,
            "learn_rule": "score, then Baseline.learn_one (every event allowed)",
            "ranked_by": "Score.peak (each labelled anomaly breaks one habit)",
        },
        "anomaly_auc": auc(scores, everything),
        "anomaly_auc_warm": auc(scores, warm),
        "precision_at_threshold": round(precision_at(scores, labels, ANOMALY_THRESHOLD), 4),
        "recall_at_threshold": round(recall_at(scores, labels, ANOMALY_THRESHOLD), 4),
        # The peak at the policy's revoke score (a single habit: the policy itself never revokes on one).
        "revoke_score": revoke_score(),
        "precision_at_revoke_score": round(precision_at(scores, labels, revoke_score()), 4),
        "recall_at_revoke_score": round(recall_at(scores, labels, revoke_score()), 4),
        # What the shipped anomaly policy revokes (its rule, emulated).
        **_policy_rule_figures(sc.events, scored, labels),
        "flagged_at_threshold": flagged,
        "flagged_fraction": round(flagged / n_events, 4) if n_events else 0.0,
        "learned_fraction": round(learned / n_events, 4) if n_events else 0.0,
        "auc_by_kind": {k: auc(scores, keep) for k, keep in by_kind.items()},
        "auc_by_kind_warm": {
            k: auc(scores, [a and b for a, b in zip(keep, warm, strict=True)]) for k, keep in by_kind.items()
        },
        "anomaly_auc_baseline": auc(baseline, everything),
        "anomaly_auc_baseline_warm": auc(baseline, warm),
        "auc_by_kind_baseline": {k: auc(baseline, keep) for k, keep in by_kind.items()},
        "baseline": "per-identity running |z-score| of the hour of day, scored before it updates",
        "seconds": {
            "generate": round(t_gen, 3),
            "model": round(t_model, 3),
            "total": round(time.perf_counter() - t0, 3),
        },
    }


def figures(n_identities: int = 100_000) -> dict:
    """The flat figures `bench/run.py` puts in its table, plus every detail under `anomaly_detail`.

    A figure that could only be extrapolated is not given as a number: its key is None and `<key>_reason`
    says what was measured and what the linear estimate is.
    """
    q = quality()
    cost = model_cost(n_identities)
    rss = rss_mb_at(n_identities)
    key = f"rss_mb_at_{n_identities // 1000}k_identities" if n_identities % 1000 == 0 else "rss_mb"
    out: dict = {
        "anomaly_us_per_event": cost.get("us_per_event"),
        "anomaly_bytes_per_identity": cost.get("bytes_per_identity"),
        key: None if rss["extrapolated"] else rss["value_mb"],
        "anomaly_auc": q["anomaly_auc"],
        "anomaly_auc_warm": q["anomaly_auc_warm"],
        "anomaly_auc_baseline": q["anomaly_auc_baseline"],
        "anomaly_detail": {"quality": q, "model_cost": cost, "rss": rss},
    }
    if rss["extrapolated"]:
        out[key + "_reason"] = (
            f"not measured: {rss['measured_mb']:.0f} MB at {rss['measured_identities']} identities "
            f"({rss['kb_per_identity']} KB each), linear estimate {rss['value_mb']:.0f} MB"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, nargs="+", default=[10_000], help="sizes for cost and RSS")
    ap.add_argument("--budget-seconds", type=float, default=60.0, help="model_cost build budget per size")
    ap.add_argument("--cap-seconds", type=float, default=90.0, help="rss_mb_at build cap per size")
    ap.add_argument("--only", choices=("quality", "cost", "rss"), action="append", help="run only these")
    args = ap.parse_args(argv)
    only = set(args.only or ("quality", "cost", "rss"))
    out: dict = {}
    if "quality" in only:
        out["quality"] = quality()
    if "cost" in only:
        out["model_cost"] = {str(n): model_cost(n, budget_s=args.budget_seconds) for n in args.identities}
    if "rss" in only:
        out["rss"] = {str(n): rss_mb_at(n, cap_seconds=args.cap_seconds) for n in args.identities}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
