"""generate(): the whole scenario stream, sorted by time."""

from __future__ import annotations

from tools.scenarios.emit import Sink
from tools.scenarios.incidents import emit_incidents
from tools.scenarios.ordinary import emit_ordinary
from tools.scenarios.params import ScenarioParams
from tools.scenarios.records import SourceRecord
from tools.scenarios.world import build_world

TOPICS = ("audit.cms", "audit.ci", "audit.registry")


def generate(params: ScenarioParams, ordinary: int = 1000) -> list[SourceRecord]:
    """At least `ordinary` ordinary records plus the twins and incidents; deterministic for given params.

    Incidents are generated first from their own random streams, so their records do not change with
    `ordinary`; ties in time keep generation order (the sort is stable).
    """
    if ordinary < 0:
        raise ValueError("ordinary must be >= 0")
    world = build_world(params)
    sink = Sink()
    emit_incidents(world, sink)
    emit_ordinary(world, sink, ordinary)
    return sorted(sink.records, key=lambda r: r.timestamp_ms)
