"""The scenario's record type. Replay files are the product's format (nhiguard.streams.replayfile), so
`nhiguard replay` reads what the generator writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nhiguard.streams.replayfile import ReplayRecord, read_replay, write_replay

LABELS = (
    "ordinary",
    "twin:cms",
    "twin:ci",
    "twin:registry",
    "incident:cms",
    "incident:ci",
    "incident:registry",
)


@dataclass(frozen=True)
class SourceRecord(ReplayRecord):
    """One input record. `label` is ground truth for tests and is never sent to Kafka."""

    label: str

    def json(self) -> Any:
        return json.loads(self.value)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v.decode("utf-8")
        return None


def write_ndjson(records: Iterable[SourceRecord], path: str | Path) -> int:
    """Write a replay file; returns the number of records written."""
    return write_replay(records, path)


def read_ndjson(path: str | Path) -> list[SourceRecord]:
    return [
        SourceRecord(r.topic, r.key, r.value, r.headers, r.timestamp_ms, r.label or "ordinary")
        for r in read_replay(path)
    ]
