"""The stateful stage's part of an identity's table value: what tells a record it already applied (redelivered
after a restart, or forwarded twice by route) from one it has not; and the value's envelope.

Source watermarks. Route reads each source partition in order and forwards its records keyed by identity in
that order, with their source coordinates (streams/agents.py says why the order holds). So an identity's
records from one source (topic, partition) reach the stateful stage in source-offset order, and one at or
below the highest source offset applied from that source was applied already: a second forward (route
stopped before committing, or its source partition moved to another worker) or a redelivery after a restart.
For each source its records came from, the identity keeps that highest offset and the record's Kafka
timestamp.

A record is skipped as applied only when its offset is at or below its source's watermark AND its timestamp is
not later than the watermark's. A source topic deleted and recreated restarts its offsets with later
timestamps: its records are decided (losing an event is worse than applying one twice), counted and logged as
`reordered`, and the watermark starts again from them. So is a copy of a record stamped later than the one
at the watermark (a producer clock that went back, with CreateTime): applied twice, never lost. A recreated
topic filled with records stamped before the old watermark (old data re-produced with CreateTime) cannot be
told from redelivery: give input topics LogAppendTime, or a new name.

Bound: MAX_SOURCES watermarks per identity; beyond it the least recently advanced is forgotten, and a record
of that source forwarded twice is decided twice (never one lost). 21 bytes a watermark and each topic name
once: at most MAX_SOURCES * (21 + 250) bytes, ~21 bytes a source partition in practice (a few input topics).

The value (one changelog record: a record's effects and the note that it was applied are never split):

    format 3: [u8 3][u32 n][core part, n bytes][u8 T][T x (u8 len, topic)]
              [u8 W][W x (u8 topic index, i32 partition, i64 offset, i64 timestamp ms)]

the watermarks least recently advanced first (so eviction survives a restart). The core part is the decision
core's own, self-versioned (nhiguard/decision/codec.py).

Formats 1 and 2 are still read. Format 2 ([u8 2][u32 n][core part][i64 position][u64 hash]...) kept the
by-identity offset last applied (without its partition) and hashes of the last 64 source records applied;
format 1 was the core part alone with both inside its JSON ("a", "o"). Neither has source offsets, so a value
read from them keeps both in memory (`Legacy`): records redelivered at or below that position, before any new
record of the identity is applied, are skipped, and so are those whose hash is among the 64 while the worker
runs; each one skipped teaches its source's watermark. The value is written as format 3 at the identity's
next change, without them. So upgrading from format 2 is exact after a clean stop (SIGTERM: route's forwards
and the state are committed, nothing is redelivered); after a crash it is as good as format 2 was for the
first restart, and a record forwarded twice across the upgrade and more than 64 records back may be decided
twice. Any other format is refused with an error that names it: a worker never guesses at state it cannot
read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from nhiguard.decision.codec import StateFormatError
from nhiguard.decision.records import RawRecord

VALUE_FORMAT = 3
MAX_SOURCES = 64
_HEAD = struct.Struct("<BI")  # format, length of the core part
_MARK = struct.Struct("<Biqq")  # topic index, partition, offset, timestamp ms

Source = tuple[str, int]  # (topic, partition)

APPLIED, NEW, REORDERED = "applied", "new", "reordered"


def origin_hash(topic: str, partition: int, offset: int) -> int:
    """Format 2's hash of a source record (what its delivery part listed)."""
    return int.from_bytes(
        hashlib.blake2b(f"{topic}|{partition}|{offset}".encode(), digest_size=8).digest(), "little"
    )


@dataclass(frozen=True)
class Legacy:
    """What a format 1 or 2 value knew of delivery: the by-identity position last applied and hashes of the
    last source records applied. In memory only, never written again."""

    applied: int = -1
    recent: frozenset[int] = frozenset()


@dataclass
class Delivery:
    """An identity's source watermarks: (topic, partition) -> (highest offset applied, its timestamp ms),
    least recently advanced first."""

    marks: OrderedDict[Source, tuple[int, int]] = field(default_factory=OrderedDict)
    legacy: Legacy | None = None

    def judge(self, rec: RawRecord) -> str:
        """APPLIED (skip it), NEW or REORDERED (decide it); the watermarks move with the record."""
        source = (rec.topic, rec.partition)
        mark = self.marks.get(source)
        old = self.legacy
        if old is not None and (
            rec.position <= old.applied or origin_hash(rec.topic, rec.partition, rec.offset) in old.recent
        ):
            if mark is None or rec.offset > mark[0]:
                self._set(source, rec)  # applied under the old format: what a redelivery is measured by
            return APPLIED
        if mark is not None and rec.offset <= mark[0]:
            if rec.timestamp_ms <= mark[1]:
                return APPLIED
            # A lower offset with a later time: the source topic was recreated (or its producer's clock
            # went back): decided, and its records are measured from here on.
            self._set(source, rec)
            return REORDERED
        self._set(source, rec)
        return NEW

    def _set(self, source: Source, rec: RawRecord) -> None:
        if self.legacy is not None and self.legacy.applied >= 0 and rec.position > self.legacy.applied:
            # A record beyond the old position: the redeliveries the old position covered are behind.
            self.legacy = Legacy(-1, self.legacy.recent) if self.legacy.recent else None
        self.marks[source] = (rec.offset, rec.timestamp_ms)
        self.marks.move_to_end(source)
        while len(self.marks) > MAX_SOURCES:
            self.marks.popitem(last=False)


def encode_value(core: bytes, delivery: Delivery) -> bytes:
    """An identity's table value (format 3): the core's part and the stage's, one changelog record."""
    topics = list(dict.fromkeys(t for t, _ in delivery.marks))
    index = {t: i for i, t in enumerate(topics)}
    names = b"".join(bytes((len(b),)) + b for b in (t.encode() for t in topics))
    marks = b"".join(_MARK.pack(index[t], p, o, ts) for (t, p), (o, ts) in delivery.marks.items())
    head = _HEAD.pack(VALUE_FORMAT, len(core))
    return b"".join((head, core, bytes((len(topics),)), names, bytes((len(delivery.marks),)), marks))


def decode_value(value: bytes) -> tuple[bytes, Delivery]:
    """(the core part, the delivery part) of an identity's table value of format 1, 2 or 3."""
    fmt, n = _HEAD.unpack_from(value)
    if fmt == 1:  # the core part alone, the delivery facts inside its JSON
        d = json.loads(value[_HEAD.size + n :])
        raw = base64.b64decode(d.get("o", ""))
        return value, _legacy(int(d["a"]), raw)
    if fmt not in (2, VALUE_FORMAT):
        raise StateFormatError(f"identity state value format {fmt}; this version reads 1 to {VALUE_FORMAT}")
    core, tail = value[_HEAD.size : _HEAD.size + n], value[_HEAD.size + n :]
    if fmt == 2:
        return core, _legacy(struct.unpack_from("<q", tail)[0], tail[8:])
    return core, Delivery(_marks(tail))


def _legacy(applied: int, hashes: bytes) -> Delivery:
    recent = frozenset(struct.unpack(f"<{len(hashes) // 8}Q", hashes))
    return Delivery(legacy=Legacy(applied, recent))


def _marks(tail: bytes) -> OrderedDict[Source, tuple[int, int]]:
    topics, pos = [], 1
    for _ in range(tail[0]):
        size = tail[pos]
        topics.append(tail[pos + 1 : pos + 1 + size].decode())
        pos += 1 + size
    marks: OrderedDict[Source, tuple[int, int]] = OrderedDict()
    for i in range(tail[pos]):
        t, p, o, ts = _MARK.unpack_from(tail, pos + 1 + i * _MARK.size)
        marks[(topics[t], p)] = (o, ts)
    return marks
