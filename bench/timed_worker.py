"""`nhiguard worker` with per-stage time accumulators, for the cost table of `make bench`.

The product carries no timing code: this entry point wraps the functions each stage runs in (perf_counter
accumulators, about a microsecond per call) and then runs the worker as `nhiguard worker` does. Times are
wall seconds in the worker process, *exclusive*: a stage's time excludes the stages it calls (decide's
excludes the scoring and the anomaly stage's query). `rego` is the round trip to the engine process (where
regopy runs), `commit` the worker's whole commit (waiting for delivery, state writes, the offset guard and
the commit itself: it awaits, so other agents' work may interleave). Every 0.5 s the totals are written as
JSON to $NHIGUARD_BENCH_STAGES. With $NHIGUARD_BENCH_NO_RULE_INDEX set, the rule index is off (its before).

Run as `python -m bench.timed_worker worker [ARGS]` (the arguments of `nhiguard`).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

_totals: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_local = threading.local()
_lock = threading.Lock()


def _timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack = _local.__dict__.setdefault("stack", [])
        stack.append(0.0)  # time spent in timed callees
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            inner = stack.pop()
            if stack:
                stack[-1] += elapsed
            with _lock:
                _totals[stage] += elapsed - inner
                _calls[stage] += 1

    return wrapper


def _timed_async(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            with _lock:
                _totals[stage] += time.perf_counter() - start
                _calls[stage] += 1

    return wrapper


def without_rule_index() -> None:
    """For the rule index's before: every event goes to the engine, as before the index."""
    from nhiguard.policy.bundle import PolicyBundle
    from nhiguard.policy.rule_index import no_index

    PolicyBundle.rule_index = lambda self: no_index()  # type: ignore[method-assign]


def instrument() -> None:
    import nhiguard.decision.core as core
    import nhiguard.streams.sink as sink
    from nhiguard import ocsf
    from nhiguard.avro import AvroCodec
    from nhiguard.policy.engines.pool import EnginePool
    from nhiguard.streams.checkpoint import Checkpoint

    D = core.DecisionCore
    D.read = _timed("parse_adapt", D.read)  # route's read and decide's read
    core.enrich = _timed("enrich", core.enrich)
    D._score = _timed("score", D._score)
    D._decide = _timed("decide", D._decide)
    EnginePool.evaluate_isolating = _timed("rego", EnginePool.evaluate_isolating)
    for name in ("decision_record", "command_record", "alert_record", "deadletter_record"):
        setattr(sink, name, _timed("encode", getattr(sink, name)))
    AvroCodec.encode = _timed("encode", AvroCodec.encode)
    ocsf.encode = _timed("encode", ocsf.encode)
    sink.OutputSink._produce = _timed("produce", sink.OutputSink._produce)
    Checkpoint.commit = _timed_async("commit", Checkpoint.commit)


def _writer(path: str) -> None:
    while True:
        time.sleep(0.5)
        with _lock:
            doc = {"seconds": dict(_totals), "calls": dict(_calls)}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)


def main() -> int:
    instrument()
    if os.environ.get("NHIGUARD_BENCH_NO_RULE_INDEX"):
        without_rule_index()
    threading.Thread(target=_writer, args=(os.environ["NHIGUARD_BENCH_STAGES"],), daemon=True).start()
    from nhiguard.streams.cli import main as nhiguard

    return nhiguard(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
