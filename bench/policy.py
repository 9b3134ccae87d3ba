"""Policy engines on the shipped bundle: regopy one event per query and in batches; `opa bench`."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.settings import Settings


def policy_inputs(settings: Settings, records: list, inventory: Inventory) -> list[dict[str, Any]]:
    """The policy inputs the worker would build for these records (non-human events only)."""
    core = DecisionCore(settings, load_bundle(settings.policies_dir), inventory)
    offsets: Counter[str] = Counter()
    raws = []
    for r in records:
        raws.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        offsets[r.topic] += 1
    out = [pin for pin in core.policy_inputs(raws) if pin["identity"]["kind"] != "human"]
    return out


def decisions_per_s(evaluator: RegoEvaluator, inputs: list[dict[str, Any]], batch: int) -> float:
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in inputs:
        by_domain[i["domain"]].append(i)
    start = time.perf_counter()
    for domain, items in by_domain.items():
        for k in range(0, len(items), batch):
            evaluator.evaluate(domain, items[k : k + batch])
    return len(inputs) / (time.perf_counter() - start)


def firing_fraction(evaluator: RegoEvaluator, inputs: list[dict[str, Any]]) -> float:
    """Share of the inputs for which at least one rule fires."""
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in inputs:
        by_domain[i["domain"]].append(i)
    fired = sum(sum(1 for f in evaluator.evaluate(d, items) if f) for d, items in by_domain.items())
    return fired / max(len(inputs), 1)


# Actions a shipped rule can fire on (every CMS change; release gate requests; publishes and installs).
FIRABLE = ("cms.", "ci.release.publish_request", "registry.package.publish", "registry.package.install")


def bench_policy(settings: Settings, records: list, inventory: Inventory, repeats: int = 3) -> dict[str, Any]:
    """regopy on the inputs that reach the engine after the rule index (the same inputs OPA is timed on), and
    the policy stage over every non-human input with and without the index (interleaved)."""
    bundle = load_bundle(settings.policies_dir)
    inputs = policy_inputs(settings, records, inventory)
    index = bundle.rule_index()
    engine = [i for i in inputs if index.applies(i["domain"], i)]
    bare = RegoEvaluator(bundle, rule_index=False)
    whole = RegoEvaluator(bundle, rule_index=False, projection=False)
    indexed = RegoEvaluator(bundle)
    single = sorted(decisions_per_s(bare, engine[:600], 1) for _ in range(repeats))
    # The projection's before and after, interleaved on the same inputs.
    projected: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeats):
        projected[False].append(decisions_per_s(whole, engine, settings.batch_max))
        projected[True].append(decisions_per_s(bare, engine, settings.batch_max))
    batched = sorted(projected[True])
    stage: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(repeats):
        stage["without"].append(decisions_per_s(bare, inputs, settings.batch_max))
        stage["with"].append(decisions_per_s(indexed, inputs, settings.batch_max))
    return {
        "policy_single_decisions_per_s": single[len(single) // 2],
        "policy_batched_decisions_per_s": batched[len(batched) // 2],
        "policy_batch_size": settings.batch_max,
        "policy_batched_decisions_per_s_without_projection": statistics.median(projected[False]),
        "policy_projection_speedup": statistics.median(
            a / b for a, b in zip(projected[True], projected[False], strict=True)
        ),
        "policy_inputs": len(inputs),
        "policy_inputs_by_domain": dict(Counter(i["domain"] for i in inputs)),
        "policy_inputs_after_index": len(engine),
        "policy_inputs_after_index_by_domain": dict(Counter(i["domain"] for i in engine)),
        "policy_stage_decisions_per_s": statistics.median(stage["with"]),
        "policy_stage_decisions_per_s_without_index": statistics.median(stage["without"]),
        "policy_stage_index_speedup": statistics.median(
            a / b for a, b in zip(stage["with"], stage["without"], strict=True)
        ),
        "policy_firing_fraction": firing_fraction(bare, inputs),
        # Of all input events (humans included): the share evaluated by a rule that can fire on it.
        "events_reaching_firable_rule_fraction": sum(1 for i in inputs if i["action"].startswith(FIRABLE))
        / max(len(records), 1),
    }


def opa_bench(
    opa: Path, bundle_dir: Path, domain: str, events: list[dict[str, Any]], count: int = 3
) -> float:
    """Decisions per second for these events in one query (`opa bench`, the median of `count` runs)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"events": events}, f)
    try:
        rates = []
        for _ in range(count):
            proc = subprocess.run(
                [
                    str(opa),
                    "bench",
                    "--format",
                    "json",
                    "--data",
                    str(bundle_dir),
                    "--input",
                    f.name,
                    f"data.nhiguard.entry.{domain}",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"opa bench failed: {proc.stderr[-2000:]}")
            result = json.loads(proc.stdout)  # Go's testing.BenchmarkResult: N operations in T nanoseconds
            rates.append(len(events) * result["N"] / (result["T"] / 1e9))
        return sorted(rates)[len(rates) // 2]
    finally:
        os.unlink(f.name)
