"""A header key that is not UTF-8 stopped aiokafka's reader (and the worker, at the same offset after every
restart); through the worker's reader the batch is read, the key replaced."""

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, _DefaultRecordBatchBuilderPy

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
