"""The one reader (streams/reader.py) and the offline commands on it: every layout an exporter writes, gzip,
splitting, recognition across domains, --format, and a dead letter naming file and line for what cannot be
read, never an abort."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from nhiguard.decision.adapters.registry import FORMAT_HEADER
from nhiguard.streams.reader import Read, Unreadable, parse_headers, read_inputs
from nhiguard.streams.replayfile import ReplayRecord, to_line
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"


def _k8s() -> dict:
    return json.loads((FIXTURES / "k8s.audit" / "exec-by-admin.json").read_text())["body"]


def _cloudtrail() -> dict:
    return json.loads((FIXTURES / "aws.cloudtrail" / "assumed-role-reads-secret.json").read_text())["body"]


def _items(tmp_path, name: str, data: bytes, **kw):
    path = tmp_path / name
    path.write_bytes(data)
    return list(read_inputs([path], **kw))


def test_every_layout_reads_the_same_records(tmp_path):
    docs = [_k8s(), _cloudtrail(), _k8s()]
    layouts = {
        "array.json": json.dumps(docs).encode(),
        "lines.ndjson": b"\n".join(json.dumps(d).encode() for d in docs) + b"\n",
        "pretty.json": b"\n".join(json.dumps(d, indent=2).encode() for d in docs),
        "lines.ndjson.gz": gzip.compress(b"\n".join(json.dumps(d).encode() for d in docs)),
    }
    for name, data in layouts.items():
        items = _items(tmp_path, name, data)
        assert [type(i) for i in items] == [Read, Read, Read], name
        assert [i.source for i in items] == ["k8s.audit", "aws.cloudtrail", "k8s.audit"], name
        assert {i.record.topic for i in items} == {"audit.runtime"}
        assert [json.loads(i.record.value) for i in items] == docs, name


def test_a_cloudtrail_file_is_split_into_its_events(tmp_path):
    event = _cloudtrail()
    items = _items(tmp_path, "ct.json.gz", gzip.compress(json.dumps({"Records": [event] * 3}).encode()))
    assert len(items) == 3 and all(i.source == "aws.cloudtrail" for i in items)


def test_a_bad_line_is_a_dead_letter_naming_file_and_line_and_reading_goes_on(tmp_path):
    lines = [json.dumps(_k8s()), '{"broken": ', json.dumps({"who": "knows"}), "[1, 2]", json.dumps(_k8s())]
    items = _items(tmp_path, "mixed.ndjson", "\n".join(lines).encode())
    kinds = [(type(i).__name__, i.line) for i in items]
    assert kinds == [("Read", 1), ("Unreadable", 2), ("Unreadable", 3), ("Unreadable", 4),
                     ("Unreadable", 4), ("Read", 5)]  # fmt: skip
    bad = [i for i in items if isinstance(i, Unreadable)]
    assert [b.reason for b in bad] == ["malformed_json", "unknown_shape", "unknown_shape", "unknown_shape"]
    x = bad[0].dead_letter()
    assert x.topic == f"file:{tmp_path / 'mixed.ndjson'}" and x.offset == 2 and x.original == b'{"broken": '
    assert "mixed.ndjson:2" in x.detail


def test_a_file_that_is_no_text_is_one_dead_letter_and_one_that_is_missing_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(read_inputs([tmp_path / "missing.json"]))
    items = _items(tmp_path, "latin1.json", b'{"a": "\xe9"}')
    assert items[0].reason == "unreadable_file" and "UTF-8" in items[0].detail


def test_replay_lines_keep_their_topics_and_labels(tmp_path):
    rec = ReplayRecord("audit.ci", b"k", b'{"x":1}', (("X-GitHub-Event", b"push"),), 123, "attack:x")
    (item,) = _items(tmp_path, "r.ndjson", (to_line(rec) + "\n").encode())
    assert item.record == rec and item.source == ""


def test_format_forces_a_source_and_names_it_for_the_worker(tmp_path):
    body = {"not": "recognisable"}
    (item,) = _items(tmp_path, "x.json", json.dumps(body).encode(), fmt="k8s.audit")
    assert item.source == "k8s.audit" and (FORMAT_HEADER, b"k8s.audit") in item.record.headers
    with pytest.raises(ValueError, match="no such source"):
        _items(tmp_path, "x.json", b"{}", fmt="nope")


def test_headers_given_on_the_command_line_reach_every_record(tmp_path):
    assert parse_headers(["X-GitHub-Event=push", "A=b=c"]) == (("X-GitHub-Event", b"push"), ("A", b"b=c"))
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_headers(["nope"])


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_backtest_decides_every_record_or_dead_letters_it_and_writes_its_figures(tmp_path):
    data = tmp_path / "in.ndjson"
    data.write_text("\n".join([json.dumps(_k8s()), "not json", json.dumps(_cloudtrail())]) + "\n")
    out = tmp_path / "summary.json"
    done = _cli("backtest", str(data), "--summary-json", str(out))
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert (figures["records"], figures["decided"], figures["deadletters"]) == (3, 2, {"malformed_json": 1})
    assert figures["sources"] == {"k8s.audit": 1, "(unread)": 1, "aws.cloudtrail": 1}


def test_replay_reports_a_bad_line_instead_of_aborting(tmp_path):
    rec = ReplayRecord("audit.ci", None, b"{}", (), 1)
    data = tmp_path / "r.ndjson"
    data.write_text(to_line(rec) + "\n{oops\n")
    done = _cli("replay", str(data))
    assert done.returncode == 0, done.stderr
    assert "unread:" in done.stdout and "r.ndjson:2" in done.stdout and "Traceback" not in done.stderr


def test_ingest_of_history_needs_a_sandbox_or_live_and_dry_run_writes_nothing(tmp_path):
    data = tmp_path / "in.json"
    data.write_text(json.dumps([_k8s(), {"who": "knows"}]))
    done = _cli("ingest", str(data))
    assert done.returncode == 2 and "--sandbox" in done.stderr and "Traceback" not in done.stderr
    done = _cli("ingest", "--dry-run", str(data))
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith(f"{data}:1\taudit.runtime\tk8s.audit ") and "unknown_shape" in second


def test_a_gzip_file_that_inflates_past_the_bound_is_refused_unread(tmp_path, monkeypatch):
    from nhiguard.streams import reader

    monkeypatch.setattr(reader, "MAX_FILE_BYTES", 1 << 20)
    items = _items(tmp_path, "bomb.json.gz", gzip.compress(b" " * (8 << 20)))
    assert [(i.reason, "inflates past" in i.detail) for i in items] == [("unreadable_file", True)]
    # Concatenated members are one file, as gzip writes them.
    two = gzip.compress(json.dumps(_k8s()).encode() + b"\n") + gzip.compress(json.dumps(_k8s()).encode())
    assert [type(i).__name__ for i in _items(tmp_path, "two.json.gz", two)] == ["Read", "Read"]
    assert _items(tmp_path, "cut.json.gz", two[:-30])[0].reason == "unreadable_file"


def test_line_numbers_stay_right_deep_into_a_file(tmp_path):
    lines = [json.dumps(_k8s())] * 2000 + ["{bad"] + [json.dumps(_k8s())]
    items = _items(tmp_path, "long.ndjson", "\n\n".join(lines).encode())
    (bad,) = [i for i in items if isinstance(i, Unreadable)]
    assert bad.line == 4001 and items[-1].line == 4003


def test_a_replay_line_lands_on_this_deployments_topic_a_sandboxs_included(tmp_path):
    from nhiguard.settings import load_settings

    rec = ReplayRecord("audit.ci", None, b"{}", (), 1)
    path = tmp_path / "r.ndjson"
    path.write_text(to_line(rec) + "\n" + to_line(ReplayRecord("elsewhere", None, b"{}", (), 1)) + "\n")
    topics = load_settings(env={"NHIGUARD_SANDBOX": "hist"}).topics
    first, second = read_inputs([path], topics)
    assert first.record.topic == "hist.audit.ci"  # never the live audit.ci
    assert second.record.topic == "elsewhere"  # not an input here: ingest dead-letters it, the core too
