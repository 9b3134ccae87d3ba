"""Offline speed: `nhiguard backtest` on the bench's records, without a broker.

The records are written to a replay file, then read and decided as `nhiguard backtest FILE --identities INV`
does (the reader, then the core in batches on body time), without printing. Timed from reading the file to
the last outcome; with and without the rule index, interleaved.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.settings import Settings
from nhiguard.streams.backtest import decide_items
from nhiguard.streams.reader import read_inputs
from nhiguard.streams.replayfile import ReplayRecord, write_replay


def backtest_figures(settings: Settings, records: list, inventory: Inventory, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.ndjson"
        write_replay(
            (ReplayRecord(r.topic, r.key, r.value, tuple(r.headers), r.timestamp_ms) for r in records), path
        )
        rates: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(runs):
            for indexed in (False, True):  # interleaved: the rule index's before and after
                start = time.perf_counter()
                bundle = load_bundle(settings.policies_dir)
                engine = RegoEvaluator(bundle, rule_index=indexed)
                core = DecisionCore(settings, bundle, inventory, evaluator=engine, body_time=True)
                out = decide_items(core, read_inputs([path], settings.topics))
                seconds = time.perf_counter() - start
                if len(out.decisions) + len(out.deadletters) != len(records):
                    raise RuntimeError("backtest lost records")
                rates[indexed].append(len(records) / seconds)
    return {
        "backtest_events_per_s": statistics.median(rates[True]),
        "backtest_runs": rates[True],
        "backtest_events_per_s_without_index": statistics.median(rates[False]),
        "backtest_index_speedup": statistics.median(
            a / b for a, b in zip(rates[True], rates[False], strict=True)
        ),
    }
