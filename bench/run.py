"""`make bench`: where the pipeline stands against a bare Faust agent, regopy alone, and its own budgets.

Prints one table and writes the same figures to bench/results/latest.json. Every Kafka figure is the median
of several runs on inputs produced before timing starts; ratios are taken within this run so that the
machine's noise cancels. Tests never assert these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import kafka, latency
from bench.backtest import backtest_figures
from bench.policy import bench_policy
from nhiguard.decision.context import Inventory
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.broker import KAFKA_VERSION, LocalBroker
from tools.scenarios import default_params, generate, inventory, variant_params

RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"


def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")),
        "0",
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(int(mem) / 2**20, 1),
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "platform": platform.platform(),
    }


def median_of(fn: Any, runs: int) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


def scenario_params(n: int) -> list:
    """The demo stream's parameters, then renamed variants, enough for about n records."""
    count = max(1, -(-n // 1141))  # one demo stream is ~1,141 records: 1,000 ordinary plus the incidents
    return [default_params()] + [variant_params(seed) for seed in range(1, count)]


def stream(n: int) -> list:
    """n records: the demo stream (ordinary activity + the three incidents) and renamed variants of it, one
    after the other, as a replay of several incident weeks would look."""
    return [r for params in scenario_params(n) for r in generate(params, ordinary=1000)][:n]


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()
    settings = load_settings()
    out: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    records = stream(args.events)
    out["input"] = {
        "events": len(records),
        "bytes_per_event": round(sum(len(r.value) for r in records) / len(records)),
        "by_topic": dict(Counter(r.topic for r in records)),
        "by_label": dict(Counter(r.label.split(":")[0] for r in records)),
    }
    # The stream repeats the incidents under other names: every variant's identities are known too.
    inv_doc = {
        "identities": [i for params in scenario_params(args.events) for i in inventory(params)["identities"]]
    }
    inv = Inventory.load_dict(inv_doc)

    print(f"policy stage (in process, {len(records)} events) …", flush=True)
    out |= bench_policy(settings, records, inv, repeats=args.runs)
    print("opa bench …", flush=True)
    out |= opa_figures(settings, records, inv)
    print("backtest (offline, no broker) …", flush=True)
    out |= backtest_figures(settings, records, inv, args.runs)

    external = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None if external else LocalBroker(settings.cache_dir)
    try:
        bootstrap = external or broker.start()  # type: ignore[union-attr]
        settings = replace(settings, bootstrap=bootstrap)
        with tempfile.TemporaryDirectory() as tmp:
            identities = Path(tmp) / "identities.json"
            identities.write_text(json.dumps(inv_doc))
            one = kafka.input_topics(f"bench-in1-{os.getpid()}")
            two = kafka.input_topics(f"bench-in2-{os.getpid()}")
            kafka.create_topics(bootstrap, list(one.inputs), 1)
            kafka.create_topics(bootstrap, list(two.inputs), 2)
            print(f"producing {len(records)} input records twice (1 and 2 partitions) …", flush=True)
            kafka.produce(bootstrap, records, one)
            kafka.produce(bootstrap, records, two)
            n = len(records)

            out |= throughput(
                args.runs,
                lambda: kafka.passthrough(bootstrap, one, n),
                lambda: kafka.two_hop(bootstrap, one, n),
                lambda: kafka.timed_pipeline(settings, one, identities, n),
                lambda: kafka.timed_pipeline(settings, one, identities, n, rule_index=False),
            )
            out |= cost_table(out, records)
            print("two workers on two partitions …", flush=True)
            single2, _ = median_of(lambda: kafka.pipeline_throughput(settings, two, identities, n, 1), 2)
            double2, _ = median_of(lambda: kafka.pipeline_throughput(settings, two, identities, n, 2), 2)
            out["two_worker_speedup"] = double2 / single2
            out["two_worker_detail"] = {"one_worker_two_partitions": single2, "two_workers": double2}

            rate = out["pipeline_events_per_s"] / 2
            print(f"latency at {rate:.0f} events/s (the worker, then the bare two hops) …", flush=True)
            paced, warmup = records[: int(rate * args.latency_seconds)], records[-200:]
            lat, floor = [], []
            for _ in range(args.runs):  # interleaved: the machine's load drifts
                lat.append(latency.worker(settings, paced, identities, rate, warmup))
                floor.append(latency.two_hop(settings, paced, rate, warmup))
            out["latency_p50_ms"] = statistics.median(x["p50"] for x in lat)
            out["latency_p99_ms"] = statistics.median(x["p99"] for x in lat)
            out["latency_two_hop_p50_ms"] = statistics.median(x["p50"] for x in floor)
            out["latency_two_hop_p99_ms"] = statistics.median(x["p99"] for x in floor)
            out["latency_detail"] = {"rate_events_per_s": rate, "runs": lat, "two_hop_runs": floor}
    finally:
        if broker is not None:
            broker.stop()

    print("anomaly model …", flush=True)
    out |= anomaly_figures()
    print("detection quality (nhiguard eval on the labelled corpus) …", flush=True)
    from bench.detection import detection_figures

    out |= detection_figures()
    out["batch_max"] = settings.batch_max
    out["batch_within_s"] = settings.batch_within_s
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def throughput(runs: int, single: Any, two_hop: Any, pipeline: Any, before: Any) -> dict[str, Any]:
    """The passthroughs and the pipeline, interleaved (single hop, two hops, pipeline; `runs` times), so that
    each pipeline run is compared with the baselines measured next to it: the machine's load drifts. The
    ratios are the median of the paired ratios, with their min and max. `pipeline` returns events/s and the
    seconds per stage of its timed worker; `before` is the pipeline without the rule index (its before)."""
    rounds = []
    for i in range(runs):
        print(f"round {i + 1}/{runs}: passthrough, two hops, pipeline, pipeline without index …", flush=True)
        rounds.append((single(), two_hop(), *pipeline(), *before()))
    s, t, p, stages, b, b_stages = (list(x) for x in zip(*rounds, strict=True))
    out: dict[str, Any] = {
        "faust_passthrough_events_per_s": statistics.median(s),
        "faust_passthrough_runs": s,
        "faust_two_hop_events_per_s": statistics.median(t),
        "faust_two_hop_runs": t,
        "pipeline_events_per_s": statistics.median(p),
        "pipeline_runs": p,
        "stage_seconds_runs": stages,
        "pipeline_events_per_s_without_index": statistics.median(b),
        "pipeline_without_index_runs": b,
        "stage_seconds_without_index_runs": b_stages,
        "pipeline_index_speedup": statistics.median(x / y for x, y in zip(p, b, strict=True)),
    }
    for key, base in (("pipeline_vs_passthrough", s), ("pipeline_vs_two_hop_passthrough", t)):
        ratios = [a / b for a, b in zip(p, base, strict=True)]
        out[key] = statistics.median(ratios)
        out[key + "_min"], out[key + "_max"] = min(ratios), max(ratios)
        out[key + "_runs"] = ratios
    return out


COST_STAGES = ("consume", "parse_adapt", "enrich", "score", "rego", "decide", "encode", "produce", "commit")


def cost_table(res: dict[str, Any], records: list) -> dict[str, Any]:
    """Microseconds per input event in each stage: the median over the timed pipeline runs (live, in the
    worker: bench/timed_worker.py), and consume derived from the bare agent of the same rounds."""
    n = len(records)
    start = time.perf_counter()
    for r in records:
        json.loads(r.value)
    decode_us = (time.perf_counter() - start) / n * 1e6
    # The bare single-hop agent's whole cost per event, less its JSON decoding: Faust's consumer and stream
    # machinery for one hop; the worker consumes every event twice (its input, then the by-identity topic).
    per_hop = [max(1e6 / rate - decode_us, 0.0) for rate in res["faust_passthrough_runs"]]
    consume = 2 * statistics.median(per_hop)

    def table(runs: list[dict[str, float]]) -> dict[str, float]:
        cost = {"consume": consume}
        for stage in COST_STAGES[1:]:
            cost[stage] = statistics.median(run.get(stage, 0.0) / n * 1e6 for run in runs)
        return {k: round(v, 1) for k, v in cost.items()}

    return {
        "cost_us_per_event": table(res["stage_seconds_runs"]),
        "cost_us_per_event_without_index": table(res["stage_seconds_without_index_runs"]),
        "cost_us_per_event_how": (
            "live, wall time in the worker process per input event, exclusive of the stages called (median "
            "of the timed pipeline runs, bench/timed_worker.py); parse_adapt counts both reads (route and "
            "decide); rego is the round trip to the engine process; commit is the worker's whole commit "
            "(delivery wait, state writes, offset guard); consume is derived: two hops of the bare Faust "
            "agent's cost per event in the same rounds, less its JSON decoding (measured on the same records)"
        ),
    }


def opa_figures(settings: Any, records: list, inv: Inventory) -> dict[str, Any]:
    """`opa bench` on the same bundle and inputs as regopy (those that reach the engine after the rule index,
    projected), in queries of the worker's batch size, per domain, weighted by the mix."""
    from bench.policy import opa_bench, policy_inputs
    from nhiguard.policy.bundle import load_bundle
    from nhiguard.policy.engines.opa import export_bundle
    from tools.opa import ensure_opa

    opa = ensure_opa(settings.cache_dir)
    bundle = load_bundle(settings.policies_dir)
    index = bundle.rule_index()
    inputs = [i for i in policy_inputs(settings, records, inv) if index.applies(i["domain"], i)]
    mix = Counter(i["domain"] for i in inputs)
    # What regopy is given: the fields the policies read (the projection), so both engines get the same.
    projection = bundle.projection()
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = export_bundle(bundle, Path(tmp) / "bundle")
        rates = {}
        for domain in mix:
            mine = [i for i in inputs if i["domain"] == domain][: settings.batch_max]
            batch = projection.apply(domain, mine)
            rates[domain] = opa_bench(opa, bundle_dir, domain, batch)
            # And one event per query, as `opa bench` is usually run: the first of the domain's inputs.
            rates[domain + "_single"] = opa_bench(opa, bundle_dir, domain, batch[:1])
    total = sum(mix.values())
    return {
        "opa_decisions_per_s": total / sum(mix[d] / rates[d] for d in mix),
        "opa_single_decisions_per_s": total / sum(mix[d] / rates[d + "_single"] for d in mix),
        "opa_decisions_per_s_by_domain": rates,
        "opa_version": opa.parent.name.removeprefix("opa-"),
    }


def anomaly_figures() -> dict[str, Any]:
    """Per-identity model cost at 10k and 100k identities, RSS at 100k, and quality on the labelled scenario.

    A size that cannot be built within the budget is reported as null with the reason, never extrapolated.
    """
    from bench import anomaly

    out: dict[str, Any] = {}
    q = anomaly.quality()
    out |= {k: q[k] for k in ("anomaly_auc", "anomaly_auc_warm", "anomaly_auc_baseline")}
    out["anomaly_precision_at_threshold"] = q.get("precision_at_threshold")
    out["anomaly_recall_at_threshold"] = q.get("recall_at_threshold")
    out["anomaly_precision_at_revoke_score"] = q.get("precision_at_revoke_score")
    out["anomaly_recall_at_revoke_score"] = q.get("recall_at_revoke_score")
    out["anomaly_policy_revoke_precision"] = q.get("policy_revoke_precision")
    out["anomaly_policy_revokes_per_1000_sensitive"] = q.get("policy_revokes_per_1000_sensitive_events")
    costs = {n: anomaly.model_cost(n) for n in (10_000, 100_000)}
    for key, field in (
        ("anomaly_us_per_event", "us_per_event"),
        ("anomaly_bytes_per_identity", "bytes_per_identity"),
    ):
        out[key] = {str(n): (None if c.get("extrapolated") else c.get(field)) for n, c in costs.items()}
        reasons = {
            str(n): f"measured at {c['measured_identities']} identities only (build budget)"
            for n, c in costs.items()
            if c.get("extrapolated")
        }
        if reasons:
            out[key + "_reason"] = reasons
    rss = anomaly.rss_mb_at(100_000)
    out["rss_mb_at_100k_identities"] = None if rss["extrapolated"] else rss["value_mb"]
    if rss["extrapolated"]:
        out["rss_mb_at_100k_identities_reason"] = (
            f"not measured: {rss['measured_mb']:.0f} MB at {rss['measured_identities']} identities "
            f"({rss['kb_per_identity']} KB each); linear estimate {rss['value_mb']:.0f} MB"
        )
    out["anomaly_detail"] = {"quality": q, "model_cost": {str(n): c for n, c in costs.items()}, "rss": rss}
    return out


ROWS = [
    ("faust_passthrough_events_per_s", "bare Faust agent (decode + count), events/s", "{:,.0f}"),
    ("faust_two_hop_events_per_s", "bare Faust, two hops (the worker's topology), events/s", "{:,.0f}"),
    ("pipeline_events_per_s", "nhiguard worker, full pipeline, events/s", "{:,.0f}"),
    ("pipeline_events_per_s_without_index", "  the same without the rule index", "{:,.0f}"),
    ("pipeline_index_speedup", "  with / without the index, median of paired runs", "{:.2f}"),
    ("pipeline_vs_passthrough", "  ratio to the single hop, median of paired runs", "{:.2f}"),
    (
        "pipeline_vs_two_hop_passthrough",
        "  ratio to the two hops, median of paired (target >= 0.7)",
        "{:.2f}",
    ),
    ("cost_us_per_event", "cost per event by stage, us", "{}"),
    ("cost_us_per_event_without_index", "  the same without the rule index", "{}"),
    ("backtest_events_per_s", "backtest, offline, events/s (target >= 5,000)", "{:,.0f}"),
    ("backtest_events_per_s_without_index", "  the same without the rule index", "{:,.0f}"),
    ("two_worker_speedup", "two workers / one worker (2 partitions)", "{:.2f}"),
    ("latency_p50_ms", "latency p50 ms at half the sustained rate", "{:.0f}"),
    ("latency_p99_ms", "latency p99 ms (target <= 50)", "{:.0f}"),
    ("latency_two_hop_p99_ms", "bare two hops (no decision), latency p99 ms, same rate", "{:.0f}"),
    ("policy_single_decisions_per_s", "regopy, one event per query, decisions/s", "{:,.0f}"),
    ("policy_batched_decisions_per_s", "regopy, worker batch size (target >= OPA), decisions/s", "{:,.0f}"),
    (
        "policy_batched_decisions_per_s_without_projection",
        "  the same without the input projection",
        "{:,.0f}",
    ),
    ("policy_projection_speedup", "  with / without the projection, median of paired runs", "{:.2f}"),
    ("opa_decisions_per_s", "OPA (opa bench), same inputs and batches, decisions/s", "{:,.0f}"),
    ("opa_single_decisions_per_s", "OPA (opa bench), one event per query, decisions/s", "{:,.0f}"),
    ("policy_inputs_after_index", "  non-human inputs reaching the engine after the rule index", "{}"),
    ("policy_stage_decisions_per_s", "policy stage, every non-human input, with the index", "{:,.0f}"),
    ("policy_stage_decisions_per_s_without_index", "  the same without the index", "{:,.0f}"),
    ("anomaly_us_per_event", "anomaly score+learn, us/event (target <= 20)", "{}"),
    ("anomaly_bytes_per_identity", "anomaly state, bytes/identity (target <= 4096)", "{}"),
    ("rss_mb_at_100k_identities", "RSS MB holding 100k identities", "{}"),
    ("anomaly_auc", "anomaly ROC AUC on the labelled scenario", "{:.3f}"),
    ("anomaly_auc_warm", "  the same, warmed-up identities only", "{:.3f}"),
    ("anomaly_auc_baseline", "  trivial z-score baseline AUC", "{:.3f}"),
    ("anomaly_precision_at_threshold", "  precision at the flag threshold (0.8)", "{:.3f}"),
    ("anomaly_recall_at_threshold", "  recall at the flag threshold", "{:.3f}"),
    ("anomaly_precision_at_revoke_score", "  precision at the policy's revoke score (0.97)", "{:.3f}"),
    ("anomaly_recall_at_revoke_score", "  recall at the policy's revoke score", "{:.3f}"),
    (
        "anomaly_policy_revoke_precision",
        "  the shipped revoke rule (warm, sensitive, >= 0.97): precision",
        "{:.3f}",
    ),
    ("anomaly_policy_revokes_per_1000_sensitive", "  ... revokes per 1,000 sensitive actions", "{}"),
    ("eval_attack_classes", "labelled corpus (seeds 1-3): attack classes", "{}"),
    ("eval_attack_classes_caught", "  attack classes caught", "{}"),
    ("eval_known_misses", "  of them documented known misses (README)", "{}"),
    (
        "eval_min_class_recall",
        "  lowest per-class record recall, known misses aside (target >= 0.9)",
        "{:.2f}",
    ),
    ("eval_benign_commands_per_1000", "  benign records commanded per 1,000 (target <= 1)", "{:.2f}"),
    ("eval_benign_revokes", "  benign records revoked (target 0)", "{}"),
    ("eval_deny_precision", "  DENY precision", "{:.3f}"),
    ("eval_revoke_precision", "  REVOKE precision", "{:.3f}"),
]


def table(res: dict[str, Any]) -> str:
    lines = [
        f"nhiguard bench — {res['machine']['cpu']}, {res['machine']['cores']} cores, "
        f"{res['input']['events']} events of ~{res['input']['bytes_per_event']} bytes",
        "",
    ]
    for key, label, fmt in ROWS:
        v = res.get(key)
        if v is None:
            text = "n/a" + (f" ({res.get(key + '_reason')})" if res.get(key + "_reason") else "")
        elif isinstance(v, int | float):
            text = fmt.format(v)
        else:
            text = json.dumps(v)
        lines.append(f"  {label:<62} {text}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=15000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    res = run(parser.parse_args())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2, default=str))
    print()
    print(table(res))
    print(f"\nwritten to {RESULTS.relative_to(REPO_ROOT)} in {res['seconds']} s")


if __name__ == "__main__":
    main()
