"""`nhiguard backtest --decisions-out` and `--baseline-policies`: one line per input record, in input order,
with the worker's alert ids; and the difference between two bundles over the same records."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter

import pytest
import yaml

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.backtest import decide_items
from nhiguard.streams.cli import main
from nhiguard.streams.reader import read_inputs
from nhiguard.streams.replayfile import write_replay
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, write_inventory

POLICIES = REPO_ROOT / "policies"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo stream (its incidents and some ordinary work), with an unreadable line in the middle."""
    tmp = tmp_path_factory.mktemp("demo")
    path = tmp / "stream.ndjson"
    write_replay(list(generate(default_params(), ordinary=200)), path)
    lines = path.read_text().splitlines()
    lines.insert(5, '{"topic": "audit.ci", "value": ')
    path.write_text("\n".join(lines) + "\n")
    ids = tmp / "identities.yaml"
    write_inventory(default_params(), ids)
    return path, ids, len(lines)


def _backtest(tmp_path, demo, *extra: str) -> tuple[dict, list[dict]]:
    path, ids, _ = demo
    summary, out = tmp_path / "summary.json", tmp_path / "decisions.jsonl"
    argv = ["backtest", str(path), "--identities", str(ids), "--summary-json", str(summary)]
    assert main([*argv, "--decisions-out", str(out), *extra]) == 0
    return json.loads(summary.read_text()), [json.loads(x) for x in out.read_text().splitlines()]


def test_one_line_per_input_record_in_input_order_a_dead_letter_included(tmp_path, demo):
    figures, lines = _backtest(tmp_path, demo)
    _, _, n = demo
    assert len(lines) == n == figures["records"]
    assert [x["line"] for x in lines] == list(range(1, n + 1))
    bad = lines[5]
    assert (bad["verdict"], bad["reason"], bad["decision_id"]) == ("deadletter", "malformed_json", None)
    assert Counter(x["verdict"] for x in lines if x["verdict"] != "deadletter") == Counter(
        figures["decisions"]
    )
    commands = [c for x in lines for c in x["commands"]]
    assert Counter(c["kind"] for c in commands) == Counter(figures["commands"])
    revoke = next(x for x in lines if any(c["kind"] == "REVOKE" for c in x["commands"]))
    assert revoke["verdict"] == "REVOKE" and revoke["identity"] and revoke["findings"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", revoke["event_time"])
    cmd = next(c for c in revoke["commands"] if c["kind"] == "REVOKE")
    assert cmd["target"].startswith("credential:") and len(cmd["command_id"]) == 32
    assert all("baseline_revision" not in x for x in lines) and "diff" not in figures


def test_the_lines_name_the_alert_ids_the_core_gives_with_their_counts(tmp_path, demo):
    path, ids, _ = demo
    settings = load_settings(env={})
    core = DecisionCore(settings, load_bundle(POLICIES), Inventory.load(ids), body_time=True)
    run = decide_items(core, read_inputs([path], settings.topics))
    _, lines = _backtest(tmp_path, demo)
    counted = Counter(aid for x in lines for aid in x["alert_ids"].values())
    assert len(run.alerts) > 5
    assert counted == Counter({a.alert_id: a.count for a in run.alerts.values()})


def _baseline(tmp_path, edit) -> str:
    copy = tmp_path / "baseline"
    shutil.copytree(POLICIES, copy)
    edit(copy)
    return str(copy)


def test_higher_thresholds_in_the_baseline_show_the_revoke_earlier_and_the_verdicts_that_changed(
    tmp_path, demo, capsys
):
    def raise_thresholds(root):
        data = root / "data.yaml"
        text = data.read_text()
        for old, new in (
            ("minutes: 10, threshold: 10", "minutes: 10, threshold: 30"),
            ("minutes: 120, threshold: 12}", "minutes: 120, threshold: 200}"),
        ):
            assert old in text
            text = text.replace(old, new)
        data.write_text(text)

    figures, lines = _backtest(tmp_path, demo, "--baseline-policies", _baseline(tmp_path, raise_thresholds))
    diff = figures["diff"]
    assert diff["baseline_revision"] != diff["revision"]
    changed = [x for x in lines if "baseline_verdict" in x]
    assert len(changed) == diff["records_changed"] > 0
    assert all(x["baseline_revision"] == diff["baseline_revision"] for x in lines)
    # The credential is revoked by both bundles: by this one at the 10th exposure, by the baseline later.
    assert diff["commands"] == {"earlier": {"REVOKE": 1}}
    (change,) = diff["command_changes"]
    assert change["target"].startswith("credential:contentful") and change["policies"] == [
        "cms.public_exposure"
    ]
    now = next(x for x in lines if any(c["target"] == change["target"] for c in x["commands"]))
    then = next(x for x in changed if any(c["target"] == change["target"] for c in x["baseline_commands"]))
    assert (change["event_time"], change["baseline_event_time"]) == (now["event_time"], then["event_time"])
    assert now["event_time"] < then["event_time"]
    # Every record between the two was denied by the baseline and is revoked by this bundle.
    between = [x for x in changed if now["event_time"] <= x["event_time"] < then["event_time"]]
    assert between and all((x["baseline_verdict"], x["verdict"]) == ("DENY", "REVOKE") for x in between)
    assert diff["verdicts"] == {"DENY -> REVOKE": len(between)}
    assert list(diff["policies"]) == ["cms.public_exposure"]
    assert diff["policies"]["cms.public_exposure"]["new_findings"] == len(between)
    printed = capsys.readouterr().out
    assert "against baseline" in printed and "earlier" in printed and "cms.public_exposure" in printed


def test_a_policy_missing_from_the_baseline_shows_its_commands_as_new(tmp_path, demo):
    def remove_policy(root):
        for f in (root / "ci").glob("release_artifacts.*"):
            f.unlink()
        index = yaml.safe_load((root / "index.yaml").read_text())  # and its rule index entry (else refused)
        del index["ci.release_artifacts"]
        (root / "index.yaml").write_text(yaml.safe_dump(index))

    figures, lines = _backtest(tmp_path, demo, "--baseline-policies", _baseline(tmp_path, remove_policy))
    diff = figures["diff"]
    assert diff["commands"] == {"new": {"DENY": 1}} and diff["verdicts"] == {"ALLOW -> DENY": 1}
    assert diff["policies"]["ci.release_artifacts"]["new_commands"] == 1
    (x,) = [x for x in lines if "baseline_verdict" in x]
    assert x["baseline_commands"] == [] and x["commands"][0]["policies"] == ["ci.release_artifacts"]


def test_the_same_bundle_as_baseline_changes_nothing(tmp_path, demo):
    figures, lines = _backtest(tmp_path, demo, "--baseline-policies", str(POLICIES))
    assert figures["diff"]["records_changed"] == 0 and figures["diff"]["commands"] == {}
    assert not any("baseline_verdict" in x for x in lines)


def test_a_baseline_that_is_no_bundle_or_an_output_that_cannot_be_written_is_one_line_exit_2(
    tmp_path, demo, capsys
):
    path, _, _ = demo
    assert main(["backtest", str(path), "--baseline-policies", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nhiguard backtest: ") and len(err.strip().splitlines()) == 1
    out = tmp_path / "missing-dir" / "d.jsonl"
    assert main(["backtest", str(path), "--decisions-out", str(out)]) == 2
    assert "cannot write" in capsys.readouterr().err
