"""The one reader of input files: what `replay`, `eval`, `backtest` and `ingest` read.

A file is either a replay file (NDJSON, one Kafka record per line: streams/replayfile.py) or audit records in
their sources' own JSON, in any of the layouts exporters write: one document, a JSON array, NDJSON or
concatenated documents, a CloudTrail `{"Records": [...]}` file; gzip of any of these. Each source record is
recognised by the adapters' registry (the most specific source wins, across every domain), or by the format
forced with `--format`, and goes to its source's input topic. Counts are of records after splitting; files are
read in argument order; a record that cannot be read (not JSON, recognised by no source, a file that is not
text) becomes an `Unreadable` naming its file and line: a dead letter, never an abort.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nhiguard.decision.adapters.registry import FORMAT_HEADER, REGISTRY
from nhiguard.decision.records import DeadLetter, RawRecord
from nhiguard.settings import Topics
from nhiguard.streams.replayfile import ReplayRecord, from_line

MAX_FILE_BYTES = 1 << 30  # inflated: a file is read whole


@dataclass(frozen=True)
class Unreadable:
    """A record (or a whole file) the reader could not turn into an input record: why, and its bytes."""

    file: str
    line: int
    reason: str  # a dead-letter reason: malformed_json | unknown_shape | unreadable_file
    detail: str
    raw: bytes

    def dead_letter(self, limit: int = 65_536) -> DeadLetter:
        import hashlib

        return DeadLetter(
            topic=f"file:{self.file}",
            partition=0,
            offset=self.line,
            reason=self.reason,
            detail=f"{self.file}:{self.line}: {self.detail}",
            original=self.raw[:limit],
            original_length=len(self.raw),
            original_sha256=hashlib.sha256(self.raw).hexdigest(),
            truncated=len(self.raw) > limit,
            timestamp_ms=0,
        )


@dataclass(frozen=True)
class Read:
    """An input record as a topic would carry it, and where in which file it was."""

    record: ReplayRecord
    file: str
    line: int
    source: str = ""  # the source that recognised it ("" for a replay-file line: its topic says)


Item = Read | Unreadable


def read_inputs(
    paths: Iterable[str | Path],
    topics: Topics | None = None,
    fmt: str | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> Iterator[Item]:
    """Every record of the files, in argument and file order (`-` is standard input)."""
    topics = topics or Topics()
    if fmt is not None and REGISTRY.get(fmt) is None:
        raise ValueError(f"--format {fmt}: no such source (one of {', '.join(REGISTRY.names())})")
    for path in paths:
        name = str(path)
        # A file that cannot be opened is the caller's error (OSError: one line, exit 2); one whose content
        # is no text is a dead letter like any record that cannot be read.
        data = sys.stdin.buffer.read() if name == "-" else Path(path).read_bytes()
        try:
            text = _text(data)
        except (ValueError, EOFError, zlib.error, OSError) as exc:
            yield Unreadable(name, 0, "unreadable_file", str(exc)[:200], b"")
            continue
        for line, doc, raw in _documents(name, text):
            if isinstance(doc, Unreadable):
                yield doc
            else:
                yield from _records(name, line, doc, raw, topics, fmt, headers)


def _text(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{len(data)} bytes: over the {MAX_FILE_BYTES} bytes a file may hold")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _gunzip(data: bytes) -> bytes:
    """A gzip file's content (every member, as `gzip` concatenates them), inflated no further than the bound
    a file may hold: a small file that inflates to gigabytes is refused, not read into memory."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += inflater.decompress(data, MAX_FILE_BYTES + 1 - len(out))
        if inflater.unconsumed_tail or len(out) > MAX_FILE_BYTES:
            raise ValueError(f"inflates past the {MAX_FILE_BYTES} bytes a file may hold")
        if not inflater.eof:
            raise ValueError("a gzip stream that ends early")
        data = inflater.unused_data
    return bytes(out)


def _documents(name: str, text: str) -> Iterator[tuple[int, Any, bytes]]:
    """(line, document, its exact bytes) for each top-level JSON value; a stretch that does not parse is an
    Unreadable for its line, and reading goes on at the next line."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    line, counted = 1, 0  # the line at `counted`: lines are counted once, not from the start each time
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            doc, stop = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            stop = text.find("\n", pos)
            stop = end if stop < 0 else stop
            raw = text[pos:stop].encode("utf-8", "replace")
            yield line, Unreadable(name, line, "malformed_json", str(exc)[:200], raw), raw
        else:
            yield line, doc, text[pos:stop].encode("utf-8")
        pos = stop


def _records(
    name: str,
    line: int,
    doc: Any,
    raw: bytes,
    topics: Topics,
    fmt: str | None,
    headers: tuple[tuple[str, bytes], ...],
) -> Iterator[Item]:
    if isinstance(doc, dict) and "topic" in doc and ("value" in doc or "value_base64" in doc):
        try:
            rec = from_line(raw.decode("utf-8"))
            # A line names a topic by its default name (`audit.ci`): here it is this deployment's, a
            # sandbox's included, so a recording never lands on a live topic because it was written for one.
            rec = replace(rec, topic=_renamed(topics).get(rec.topic, rec.topic))
            yield Read(rec, name, line)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            yield Unreadable(name, line, "malformed_json", f"not a replay record: {exc}"[:200], raw)
        return
    if isinstance(doc, list):
        for item in doc:
            yield from _records(name, line, item, _compact(item), topics, fmt, headers)
        return
    if isinstance(doc, dict) and isinstance(doc.get("Records"), list) and fmt is None:
        # A CloudTrail file (or any exporter's envelope of the same shape): one record per event.
        for item in doc["Records"]:
            yield from _records(name, line, item, _compact(item), topics, fmt, headers)
        return
    yield _recognised(name, line, doc, raw, topics, fmt, headers)


def _recognised(
    name: str,
    line: int,
    doc: Any,
    raw: bytes,
    topics: Topics,
    fmt: str | None,
    headers: tuple[tuple[str, bytes], ...],
) -> Item:
    if not isinstance(doc, dict):
        what = f"a JSON {type(doc).__name__}, not an audit record"
        return Unreadable(name, line, "unknown_shape", what, raw)
    hdrs = headers + (((FORMAT_HEADER, fmt.encode()),) if fmt else ())
    source = REGISTRY.get(fmt) if fmt else REGISTRY.recognise(RawRecord("", 0, 0, raw, None, hdrs), doc)
    if source is None:
        return Unreadable(name, line, "unknown_shape", "no source recognises this record (try --format)", raw)
    topic = getattr(topics, source.domains[0])
    return Read(ReplayRecord(topic, None, raw, hdrs, 0), name, line, source.name)


def _renamed(topics: Topics) -> dict[str, str]:
    return {default: getattr(topics, field) for field, default in vars(Topics()).items()}


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def parse_headers(pairs: Iterable[str]) -> tuple[tuple[str, bytes], ...]:
    """`NAME=VALUE` arguments as record headers; ValueError names one without a `=`."""
    out = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--header {pair!r}: expected NAME=VALUE")
        out.append((name.strip(), value.encode()))
    return tuple(out)


def input_args(p: Any) -> None:
    """The reader's arguments on a command that reads files (FILE…, --format, --header)."""
    p.add_argument("files", nargs="+", metavar="FILE", help="files to read, in order; - for standard input")
    p.add_argument("--format", dest="fmt", metavar="SOURCE", help="read every record as this source")
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a header every record carries (e.g. X-GitHub-Event=workflow_run for saved webhook bodies)",
    )
