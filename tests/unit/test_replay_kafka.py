"""`nhiguard replay --to-kafka`, without a broker: what it sends and in which order, and what it refuses."""

import json

import pytest

from nhiguard.settings import load_settings
from nhiguard.streams.cli import main
from nhiguard.streams.replay_kafka import anchors, parse_time, plan, replay_id
from nhiguard.streams.replayfile import ReplayRecord, write_replay
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"


def _line(topic: str, ms: int, n: int) -> ReplayRecord:
    return ReplayRecord(topic, None, json.dumps({"n": n}).encode(), (), ms)


def test_an_untimed_record_keeps_its_place_after_its_neighbour():
    assert anchors([None, 5, None, 3, None]) == [5, 5, 5, 3, 3]
    assert anchors([None, None]) == [None, None]


def test_records_go_in_event_time_order_across_files_and_untimed_ones_stay_with_their_neighbour(tmp_path):
    settings = load_settings(env={}, sandbox="sb")
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    write_replay([_line("audit.ci", 1000, 1), _line("audit.ci", 3000, 3)], a)
    write_replay([_line("audit.cms", 2000, 2), _line("audit.cms", 4000, 4)], b)
    # A source record whose adapter reads no time (an unknown shape) after the 4000 one: it stays there.
    with b.open("a") as f:
        f.write('{"no": "adapter reads this"}\n')
    out = plan(settings, [str(a), str(b)], None, ())
    assert [p.seq for p in out] == [0, 1, 2, 3, 4]
    assert [json.loads(p.out[2]).get("n") for p in out[:4]] == [1, 2, 3, 4]
    # Sent to the sandbox's topics, never the live ones; the unreadable one as the sandbox's dead letter.
    assert [p.out[0] for p in out] == [
        "sb.audit.ci",
        "sb.audit.cms",
        "sb.audit.ci",
        "sb.audit.cms",
        "sb.audit.deadletter",
    ]
    assert out[4].time_ms == 4000


def test_the_window_keeps_its_records_and_the_replay_id_names_what_is_sent(tmp_path):
    settings = load_settings(env={}, sandbox="sb")
    f = tmp_path / "a.ndjson"
    write_replay([_line("audit.ci", t, t) for t in (1000, 2000, 3000, 4000)], f)
    everything = plan(settings, [str(f)], None, ())
    window = plan(settings, [str(f)], None, (), (2000, 3000))
    assert [json.loads(p.out[2])["n"] for p in window] == [2000, 3000]
    assert replay_id(everything) == replay_id(plan(settings, [str(f)], None, ()))
    assert replay_id(window) != replay_id(everything)


def test_a_source_record_is_ordered_by_the_time_its_adapter_reads(tmp_path):
    settings = load_settings(env={}, sandbox="sb")
    body = json.loads((FIXTURES / "k8s.audit" / "sa-reads-secret.json").read_text())["body"]
    f = tmp_path / "k8s.json"
    f.write_text(json.dumps(body))
    (p,) = plan(settings, [str(f)], None, ())
    assert p.time_ms == parse_time(body["stageTimestamp"], "t") or p.time_ms == parse_time(
        body["requestReceivedTimestamp"], "t"
    )


def test_times_need_a_zone():
    assert parse_time("2026-03-14T09:00:00Z", "--from") == 1773478800000
    with pytest.raises(ValueError, match="zone"):
        parse_time("2026-03-14T09:00:00", "--from")
    with pytest.raises(ValueError, match="ISO"):
        parse_time("yesterday", "--to")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to-kafka"], "give --sandbox PREFIX"),
        (["--speed", "10"], "go with --to-kafka"),
        (["--to-kafka", "--sandbox", "sb", "--from", "2026-03-14T09:00"], "zone"),
        (["--to-kafka", "--sandbox", "sb", "--speed", "0"], "must be positive"),
        (["--to-kafka", "--sandbox", "sb", "--policies", "p"], "offline"),
    ],
)
def test_what_it_refuses_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    # main() exports --sandbox to the environment: undone after the test, so nothing else inherits it.
    monkeypatch.setenv("NHIGUARD_SANDBOX", "")
    monkeypatch.delenv("NHIGUARD_SANDBOX")
    f = tmp_path / "a.ndjson"
    write_replay([_line("audit.ci", 1000, 1)], f)
    assert main(["replay", str(f), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
