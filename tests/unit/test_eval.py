"""`nhiguard eval`: figures per class from a labelled recording, counted by record."""

from __future__ import annotations

import json
from dataclasses import replace

from nhiguard.streams.cli import main
from nhiguard.streams.evaluate import Evaluation, Outcome, parse_label
from nhiguard.streams.replayfile import write_replay
from tools.scenarios import default_params, generate, write_inventory


def _labelled(tmp_path):
    """The demo stream with its incidents labelled as attacks, its twins and ordinary work as benign."""
    out = []
    for r in generate(default_params(), ordinary=300):
        kind, _, cls = r.label.partition(":")
        label = f"attack:{cls}" if kind == "incident" else f"benign:{kind}" if kind == "twin" else None
        out.append(replace(r, label=label))
    path = tmp_path / "stream.ndjson"
    write_replay(out, path)
    ids = tmp_path / "identities.yaml"
    write_inventory(default_params(), ids)
    return path, ids, out


def test_labels_parse_attack_and_context_with_class_and_everything_else_as_benign():
    assert parse_label("attack:cms_burst") == ("attack", "cms_burst")
    assert parse_label("attack") == ("attack", "attack")
    assert parse_label("context:attack_context") == ("context", "attack_context")
    assert parse_label("benign:multi_maintainer") == ("benign", "multi_maintainer")
    assert parse_label("benign") == ("benign", "benign")
    assert parse_label("incident:ci") == ("benign", "unlabelled")
    assert parse_label(None) == ("benign", "unlabelled")


def test_context_records_count_in_no_benign_or_attack_figure_nor_a_precision():
    ev = Evaluation()
    ev.add(Outcome("attack", "burst", 1_000, frozenset({"DENY"})))
    ev.add(Outcome("benign", "ordinary", 2_000))
    ev.add(Outcome("context", "attack_context", 3_000, frozenset({"DENY", "REVOKE"})))
    s = ev.summary()
    assert (s["attack_records"], s["benign_records"]) == (1, 1)
    assert (s["benign_commands"], s["benign_revokes"]) == (0, 0)
    assert (s["deny_precision"], s["revoke_precision"]) == (1.0, None)
    assert (s["context_records"], s["context_commands"], s["context_revokes"]) == (1, 1, 1)
    assert s["classes"]["context:attack_context"]["revoke"] == 1
    other = Evaluation()
    other.add(Outcome("context", "attack_context", 4_000))
    ev.merge(other)
    assert ev.summary()["context_records"] == 2


def test_eval_counts_records_per_class_and_writes_the_summary(tmp_path, capsys):
    path, ids, records = _labelled(tmp_path)
    out = tmp_path / "summary.json"
    assert main(["eval", str(path), "--identities", str(ids), "--summary-json", str(out)]) == 0
    s = json.loads(out.read_text())
    attacks = [r for r in records if r.label and r.label.startswith("attack")]
    assert s["attack_records"] == len(attacks)
    assert s["benign_records"] == len(records) - len(attacks)
    assert s["attack_classes"] == 3 and s["attack_classes_caught"] == 3
    for key in ("attack_records_commanded", "benign_commands", "benign_revokes"):
        assert isinstance(s[key], int)
    assert s["benign_revokes"] == 0 and s["benign_commands"] == 0
    assert s["deny_precision"] == 1.0 and s["revoke_precision"] == 1.0
    cms = s["classes"]["attack:cms"]
    assert cms["records"] == 120 and cms["commanded"] == cms["records"] and cms["recall"] == 1.0
    assert cms["time_to_first_command_s"] is not None
    printed = capsys.readouterr().out
    assert "attack:cms" in printed and "DENY precision: 1.0" in printed


def test_two_files_are_one_stream_and_an_unreadable_record_is_named_not_an_abort(tmp_path, capsys):
    path, ids, records = _labelled(tmp_path)
    out = tmp_path / "summary.json"
    assert main(["eval", str(path), str(path), "--identities", str(ids), "--summary-json", str(out)]) == 0
    assert json.loads(out.read_text())["benign_records"] + json.loads(out.read_text())[
        "attack_records"
    ] == 2 * len(records)
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"topic": "audit.ci"\n')
    capsys.readouterr()
    assert main(["eval", str(path), str(bad)]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[-1].startswith("1 records could not be read (first ") and "bad.ndjson:1" in said[-1]
    assert main(["eval", str(tmp_path / "missing.ndjson")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.ndjson" in err[0]
