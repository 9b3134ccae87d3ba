"""How far a compressed record batch inflates, found out within a bound.

A producer may compress a record batch; the broker checks only its compressed size (`max.message.bytes`), and
aiokafka inflates a batch whole before the first record is read. Zeros compress about a thousand times with
gzip and far more with zstd, so a batch within a 1 MiB limit can inflate to gigabytes in the worker: a
compression bomb. `inflated_past` inflates into a buffer of the bound and stops there, so the memory a batch
can cost is the bound (records_in.py then hands its records over as unread, to be dead-lettered).
"""

from __future__ import annotations

import struct
import threading

import cramjam
from aiokafka.record.default_records import DefaultRecordBase as Batch

_XERIAL = b"\x82SNAPPY\x00"  # the block framing Kafka's Java clients use for snappy
# The bound's buffer, allocated once per thread: a fresh one per batch was zero-filled every time (32 MiB by
# default), 40% of a worker's time on lz4 input of small records.
_scratch = threading.local()


def inflated_past(codec: int, payload: memoryview, limit: int) -> str | None:
    """Why the compressed records `payload` (a batch after its header) cannot be read within `limit`
    inflated bytes (None when they can): they inflate past it, or they do not inflate at all."""
    try:
        size = _inflated_size(codec, payload, limit)
    except (cramjam.DecompressionError, ValueError, struct.error) as exc:
        if "failed to write whole buffer" in str(exc):
            return f"a compressed batch ({_NAMES.get(codec, codec)}) inflates past {limit} bytes"
        return f"a compressed batch ({_NAMES.get(codec, codec)}) does not inflate: {str(exc)[:120]}"
    if size > limit:
        return f"a compressed batch ({_NAMES.get(codec, codec)}) inflates to {size} bytes, past {limit}"
    return None


_NAMES = {
    Batch.CODEC_GZIP: "gzip",
    Batch.CODEC_SNAPPY: "snappy",
    Batch.CODEC_LZ4: "lz4",
    Batch.CODEC_ZSTD: "zstd",
}


def _inflated_size(codec: int, payload: memoryview, limit: int) -> int:
    if codec == Batch.CODEC_SNAPPY:
        return _snappy_size(payload)
    module = {
        Batch.CODEC_GZIP: cramjam.gzip,
        Batch.CODEC_LZ4: cramjam.lz4,
        Batch.CODEC_ZSTD: cramjam.zstd,
    }.get(codec)
    if module is None:
        raise ValueError(f"unknown compression codec {codec:#04x}")
    # One byte more than the bound: a batch that fills it is past the bound. Only the size is read, so what an
    # earlier batch left in the buffer does not matter.
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) != limit + 1:
        buf = _scratch.buf = bytearray(limit + 1)
    return int(module.decompress_into(bytes(payload), buf))


def _snappy_size(payload: memoryview) -> int:
    """Snappy states each block's inflated length up front: summed without inflating anything."""
    if bytes(payload[:8]) != _XERIAL:
        return int(cramjam.snappy.decompress_raw_len(bytes(payload)))
    total, cursor, body = 0, 0, payload[16:]
    while cursor < len(body):
        (block,) = struct.unpack_from("!i", body, cursor)
        cursor += 4
        total += int(cramjam.snappy.decompress_raw_len(bytes(body[cursor : cursor + block])))
        cursor += block
    return total
