"""`nhiguard alerts tail`'s board (streams/alerts.py): the latest version of each alert, filtered, newest
first, coloured by severity and verdict on a terminal and one line each when piped; a record it cannot read
is counted and named. (Against a real broker and worker: tests/integration/test_soc.py.)"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nhiguard.avro import AvroCodec, alert_record
from nhiguard.streams.alerts import AlertBoard, Filters, feed
from tests.unit.test_alerts import run
from tools import REPO_ROOT

CODEC = AvroCodec(REPO_ROOT / "schemas")


class Message:
    """What the board reads of a confluent-kafka message."""

    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


@pytest.fixture(scope="module")
def records():
    """Every alert record the demo stream sends, batch by batch of 50 (so windows are sent several times)."""
    _, sent = run(50)
    return [Message(CODEC.encode("Alert", alert_record(a)), i) for i, a in enumerate(sent)]


def test_the_board_keeps_the_latest_version_of_each_alert_newest_first(records):
    board = AlertBoard(Filters())
    shown = list(feed(board, CODEC, records))
    assert len(shown) == len(records) == board.records
    latest = {}
    for a in shown:
        latest[a["alert_id"]] = a
    assert {a["alert_id"]: a["count"] for a in board.rows()} == {k: a["count"] for k, a in latest.items()}
    seen = [a["last_seen"] for a in board.rows()]
    assert seen == sorted(seen, reverse=True)


def test_filters_are_globs_and_a_minimum_severity(records):
    def rows(**filters):
        board = AlertBoard(Filters(**filters))
        list(feed(board, CODEC, records))
        assert board.records == len(records)
        return board.rows()

    every = rows()
    some = rows(identity="contentful:*", rule="cms.public_exposure.*", severity="high")
    assert some and all(a["identity"].startswith("contentful:") for a in some)
    assert all(a["rule"].startswith("cms.public_exposure.") for a in some) and len(some) < len(every)
    critical = rows(severity="critical")
    assert critical and {a["severity"] for a in critical} == {"critical"} and len(critical) < len(every)
    assert {a["severity"] for a in rows(severity="high")} == {"high", "critical"}
    assert rows(identity="nobody") == []


def test_on_a_terminal_severities_and_verdicts_are_coloured(records):
    board = AlertBoard(Filters())
    list(feed(board, CODEC, records))
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="standard", width=220).print(board.table())
    text = out.getvalue()
    assert "\x1b[1;37;41mcritical" in text  # white on red
    assert "\x1b[1;31mhigh" in text and "\x1b[1;35mREVOKE" in text and "\x1b[31mDENY" in text
    assert f"{len(board.rows())} alerts" in text


def test_piped_it_prints_a_line_per_alert_and_names_what_it_cannot_read(records):
    board = AlertBoard(Filters(rule="cms.public_exposure.restricted_content_public"))
    bad = [Message(b"not avro", 10**6), Message(b"\xc3\x01" + b"\x00" * 8 + b"x", 10**6 + 1)]
    list(feed(board, CODEC, [*records, *bad]))
    assert len(board.unreadable) == 2 and "offset 1000000" in board.unreadable[0]
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=300)
    for a in board.rows():
        console.print(board.line(a), soft_wrap=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(board.rows()) and all(
        a["alert_id"] in line for a, line in zip(board.rows(), lines, strict=True)
    )
    assert "\x1b[" not in out.getvalue()
