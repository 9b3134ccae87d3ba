"""A header key that is not UTF-8 stopped aiokafka's reader (and the worker, at the same offset after every
restart); through the worker's reader the batch is read, the key replaced. A compressed batch that inflates
past the bound is handed over unread (to be dead-lettered), never inflated whole."""

import tracemalloc

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchBuilderPy

from nhiguard.decision.records import UnreadValue
from nhiguard.streams import records_in
from nhiguard.streams.records_in import _LenientMemoryRecords


class RawKey(str):
    """A header key the builder writes as these bytes (the protocol says UTF-8; a broker does not check)."""

    def encode(self, *_args, **_kw):
        return b"\xff\xfebad-key"


def _batch(compression=0):
    b = _DefaultRecordBatchBuilderPy(2, compression, 0, -1, -1, -1, 2**20)
    b.append(0, 1774500000000, b"k0", b'{"n": 0}', [("ok", b"1")])
    b.append(1, 1774500000000, b"k1", b'{"n": 1}', [(RawKey("x"), b"v"), ("ok", b"2")])
    b.append(2, 1774500000000, None, b'{"n": 2}', [])
    return bytes(b.build())


@pytest.mark.parametrize("compression", [0, 1])  # none, gzip
def test_a_batch_with_a_non_utf8_header_key_is_read_whole_with_the_key_replaced(compression):
    data = _batch(compression)
    with pytest.raises(UnicodeDecodeError):
        list(DefaultRecordBatch(data))  # aiokafka's own reader
    batch = _LenientMemoryRecords(data).next_batch()
    assert batch.validate_crc() and batch.base_offset == 0 and batch.next_offset == 3  # as the fetcher asks
    records = list(batch)
    assert [r.offset for r in records] == [0, 1, 2]
    assert [r.value for r in records] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert records[1].headers == [("\ufffd\ufffdbad-key", b"v"), ("ok", b"2")]


def test_an_ordinary_batch_is_read_by_aiokafkas_own_reader():
    b = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, -1, 2**20)
    b.append(0, 1774500000000, None, b"{}", [("ok", b"1")])
    b.append(1, 1774500000000, None, b"[]", [])
    batch = _LenientMemoryRecords(bytes(b.build())).next_batch()
    first = next(batch)  # as the fetcher reads a control batch's marker
    assert (first.offset, first.headers) == (0, [("ok", b"1")])
    assert [r.offset for r in batch] == [1]


# -- compression bombs ---------------------------------------------------------------------------------------
BOMB_RECORD = 4 * 2**20  # zeros: under 1 MiB compressed with any codec (snappy's ratio is the lowest)


def _bomb(compression: int, records: int = 3) -> bytes:
    b = _DefaultRecordBatchBuilderPy(2, compression, 0, -1, -1, -1, 2**30)
    for i in range(records):
        b.append(i, 1774500000000 + i, None, bytes(BOMB_RECORD), [])
    return bytes(b.build())


@pytest.fixture
def bound(monkeypatch):
    monkeypatch.setattr(records_in, "_limit", 4 * 2**20)
    return 4 * 2**20


@pytest.mark.parametrize("compression", [1, 2, 3, 4])  # gzip, snappy, lz4, zstd
def test_a_batch_that_inflates_past_the_bound_is_handed_over_unread_within_the_bound(compression, bound):
    data = _bomb(compression)
    assert len(data) < 2**20 < 3 * BOMB_RECORD  # within a broker's 1 MiB limit, 12 MiB inflated
    tracemalloc.start()
    try:
        batch = _LenientMemoryRecords(data).next_batch()
        records = list(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * bound  # aiokafka's own reader inflates all 12 MiB
    assert [r.offset for r in records] == [0, 1, 2] and batch.next_offset == 3
    assert all(isinstance(r.value, UnreadValue) and r.value.reason == "oversized" for r in records)
    assert "inflates past" in records[0].value.detail or "inflates to" in records[0].value.detail
    assert bytes(records[0].value) == data  # what the dead letter keeps: the compressed batch


@pytest.mark.parametrize("compression", [1, 2, 3, 4])
def test_a_compressed_batch_within_the_bound_is_read_as_before(compression, bound):
    b = _DefaultRecordBatchBuilderPy(2, compression, 0, -1, -1, -1, 2**30)
    for i in range(3):
        b.append(i, 1774500000000, None, bytes(2**20), [("ok", b"1")])
    records = list(_LenientMemoryRecords(bytes(b.build())).next_batch())
    assert [(r.offset, len(r.value), type(r.value)) for r in records] == [(i, 2**20, bytes) for i in range(3)]


def test_a_compressed_batch_that_does_not_inflate_is_handed_over_unread(bound):
    b = _DefaultRecordBatchBuilderPy(2, 1, 0, -1, -1, -1, 2**20)
    b.append(0, 1774500000000, None, bytes(range(256)) * 64, [])
    data = bytearray(b.build())
    data[-200:-100] = bytes(100)  # the gzip stream broken (the reader is asked for records, not the CRC)
    records = list(_LenientMemoryRecords(bytes(data)).next_batch())
    assert len(records) == 1 and "does not inflate" in records[0].value.detail


def test_the_core_dead_letters_an_unread_record_with_its_bytes_and_reason():
    from nhiguard.decision.context import Inventory
    from nhiguard.decision.core import DecisionCore
    from nhiguard.decision.records import RawRecord
    from nhiguard.policy.bundle import load_bundle
    from nhiguard.settings import load_settings
    from tools import REPO_ROOT

    core = DecisionCore(load_settings(env={}), load_bundle(REPO_ROOT / "policies"), Inventory())
    value = UnreadValue(b'{"looks": "like json"}' * 10_000, "oversized", "a compressed batch (zstd) inflates")
    (x,) = core.process([RawRecord("audit.ci", 0, 7, value, timestamp_ms=1)]).deadletters
    assert (x.reason, x.offset, x.original_length, x.truncated) == ("oversized", 7, len(value), True)
    assert x.detail == "a compressed batch (zstd) inflates" and x.original == value[:65_536]


def test_forged_unread_bytes_are_only_bytes():
    # The marker is the type: the same bytes from a producer are an ordinary (here unreadable) record.
    from nhiguard.streams import inflate

    assert inflate.inflated_past(1, memoryview(b"not gzip"), 100).startswith("a compressed batch (gzip) does")
