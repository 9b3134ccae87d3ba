"""The consumer's record reader, made to survive a header key that is not UTF-8 and a compression bomb.

Kafka's protocol says a header key is a string, but a broker stores what a producer sent, and aiokafka
decodes each key strictly: one such key raised UnicodeDecodeError inside the fetcher, which stopped the worker
at the same offset after every restart. `install` wraps aiokafka's batch reader: a batch is read by aiokafka's
own (compiled) reader as before; only a batch on which that fails is read again by its pure-Python reader
with the key decoded leniently (invalid bytes become U+FFFD), from the record it stopped at. The key is then
just an unknown header, which nhiguard never forwards nor stores (decision/headers.py).

A compressed batch is first inflated within a bound (streams/inflate.py). One that inflates past it is not
read: each of its offsets is handed over as a record whose value is the compressed batch as an `UnreadValue`
(a Python type, which no producer can forge), and the core dead-letters each (`oversized`), keeping the
compressed bytes' prefix, length and hash. So a batch costs at most the bound in memory, and no offset is
lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiokafka.consumer.fetcher as fetcher
from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

from nhiguard.decision.records import UnreadValue
from nhiguard.streams.inflate import inflated_past

_HEADER_SIZE = _DefaultRecordBatchPy.HEADER_STRUCT.size  # a v2 batch's header: its records follow
# Set by install(): how many bytes one record batch may inflate to (NHIGUARD_MAX_INFLATED_BYTES).
_limit = 32 * 1_048_576


class _Unread:
    """A record of a batch that was not read: what aiokafka's fetcher takes from a record."""

    __slots__ = ("checksum", "headers", "key", "offset", "timestamp", "timestamp_type", "value")

    def __init__(self, offset: int, timestamp: int, timestamp_type: int, value: UnreadValue) -> None:
        self.offset, self.timestamp, self.timestamp_type = offset, timestamp, timestamp_type
        self.key, self.value, self.headers, self.checksum = None, value, [], None


class _LenientBytes(bytearray):
    """A record batch's buffer whose slices decode header keys leniently (the reader slices, then decodes)."""

    def __getitem__(self, index: Any) -> Any:
        got = super().__getitem__(index)
        return _Lenient(got) if isinstance(index, slice) else got


class _Lenient(bytearray):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self).decode(encoding, "replace")


class _LenientBatch(_DefaultRecordBatchPy):
    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _LenientBytes):
            self._buffer = _LenientBytes(self._buffer)


class _Batch:
    """aiokafka's batch, iterated with a lenient second reading if a header key stops the first."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._fast = DefaultRecordBatch(data)
        self._records: Iterator[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fast, name)

    # An iterator, as aiokafka's batch is: the fetcher both loops over a batch and takes its first record with
    # next() (a transaction's control batch).
    def __iter__(self) -> _Batch:
        return self

    def __next__(self) -> Any:
        if self._records is None:
            self._records = self._read()
        return next(self._records)

    def _read(self) -> Iterator[Any]:
        codec = self._fast.compression_type
        if codec and (why := inflated_past(codec, self._data[_HEADER_SIZE:], _limit)):
            yield from self._unread(why)
            return
        last = -1
        try:
            for record in self._fast:
                last = record.offset
                yield record
            return
        except UnicodeDecodeError:
            pass
        for record in _LenientBatch(bytes(self._data)):
            if record.offset > last:
                yield record

    def _unread(self, why: str) -> Iterator[_Unread]:
        b = self._fast
        value = UnreadValue(bytes(self._data), "oversized", why)
        for offset in range(b.base_offset, b.base_offset + b.last_offset_delta + 1):
            yield _Unread(offset, b.max_timestamp, b.timestamp_type, value)


class _LenientMemoryRecords(_MemoryRecordsPy):
    """aiokafka's pure-Python splitting of a fetch into batches (cheap: per batch, not per record), each batch
    a `_Batch`."""

    def next_batch(self, *args: Any) -> Any:
        data = self._next_slice
        batch = super().next_batch(*args)
        if data is not None and isinstance(batch, DefaultRecordBatch):
            return _Batch(data)
        return batch


def install(max_inflated_bytes: int = _limit) -> None:
    """Make the consumer's fetcher read batches through the lenient, bounded wrapper (idempotent)."""
    global _limit
    _limit = max_inflated_bytes
    fetcher.MemoryRecords = _LenientMemoryRecords
