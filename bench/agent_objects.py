"""The agents' own per-event work beside the stages, as a bound for the "fewer objects per event" lever.

Route builds a `RawRecord` per event and the forwarded record's headers; decide rebuilds the record from its
origin header; both mark offsets in the ledger per batch. This replays those functions of
`nhiguard.streams.agents` over the bench's 15,000 records (events stand in for Faust's: the attributes the
agents read) and prints CPU µs per event. Everything else per event is a stage of the cost table or Faust's.

Run as `python -m bench.agent_objects`.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from bench.run import stream
from nhiguard.streams import agents


class _Ledger:
    def mark(self, tp: Any, offsets: list[int]) -> None:
        pass


def per_event_us(n: int = 15_000, batch: int = 500) -> dict[str, float]:
    tp = object()
    events = [
        SimpleNamespace(
            message=SimpleNamespace(
                topic=r.topic,
                partition=0,
                offset=i,
                value=r.value,
                key=r.key,
                headers=list(r.headers),
                timestamp=r.timestamp_ms / 1000,
                tp=tp,
            )
        )
        for i, r in enumerate(stream(n))
    ]
    owner = SimpleNamespace(ledger=_Ledger())
    t0 = time.process_time()
    raws = [agents.raw_record(e) for e in events]
    forwarded = [(r.value, agents.forward_headers(r)) for r in raws]
    t1 = time.process_time()
    for i, (value, headers) in enumerate(forwarded):
        agents.from_forwarded(value, agents._headers(headers), i)
    t2 = time.process_time()
    for k in range(0, len(events), batch):
        agents.Agents.processed(owner, events[k : k + batch])  # type: ignore[arg-type]
        agents.Agents.processed(owner, events[k : k + batch])  # type: ignore[arg-type]
    t3 = time.process_time()
    per = 1e6 / len(events)
    return {
        "route": (t1 - t0) * per,
        "decide": (t2 - t1) * per,
        "ledger": (t3 - t2) * per,
        "total": (t3 - t0) * per,
    }


if __name__ == "__main__":
    print({k: round(v, 1) for k, v in per_event_us().items()})
