"""Evidence an analyst acts on: built from the event's typed facts (never from policy output), carried by
each finding, command and alert, narrowed by a finding's `show` / `select`, and printed whole and escaped."""

import json
import shutil

from nhiguard.avro import AvroCodec, alert_record, command_record, decision_record
from nhiguard.decision.alert_state import EVIDENCE_VALUES
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.evidence import MAX_VALUES, for_finding, merge, of_event
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams import table
from tests.unit.test_core import default_run, raw_records  # noqa: F401 (a fixture)
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

CODEC = AvroCodec(REPO_ROOT / "schemas")


def _decision(run, label, kind=None):
    _, decisions, _, labels = run
    return next(
        d
        for d in decisions
        if labels[(d.topic, d.offset)] == label
        and d.commands
        and (kind is None or d.commands[0].kind == kind)
    )


def test_each_incident_decision_names_the_file_dependency_tag_and_version(default_run):  # noqa: F811
    leak = _decision(default_run, "incident:ci")
    (f,) = {f.policy: f for f in leak.findings if f.policy == "ci.release_artifacts"}.values()
    assert f.evidence["package"] == ["@acme/cli"] and f.evidence["version"] == ["2.1.88"]
    assert f.evidence["largest_files"][0].startswith("cli.js.map ")
    assert "cli.js.map" in f.evidence["files"] and f.evidence["tag"] == ["latest"]
    assert f.evidence["identity"] == ["github:acme/cli/.github/workflows/release.yml"]  # the workflow

    _, decisions, _, labels = default_run
    hijack = next(
        (d, f)
        for d in decisions
        for f in d.findings
        if labels[(d.topic, d.offset)] == "incident:registry" and "adds a dependency" in f.reason
    )
    d, f = hijack
    assert f.evidence["added_dependencies"] and f.evidence["previous_email"] != f.evidence["publisher_email"]
    assert set(f.evidence["added_dependencies"]) <= set(d.commands[0].evidence["added_dependencies"])

    exposure = _decision(default_run, "incident:cms")
    assert exposure.findings[0].evidence["tags"] and exposure.findings[0].evidence["via"] == ["upload"]


def test_alerts_carry_the_union_of_their_findings_evidence_and_their_command_ids(default_run):  # noqa: F811
    core = DecisionCore(
        load_settings(env={}),
        load_bundle(REPO_ROOT / "policies"),
        Inventory.load_dict(inventory(default_params())),
    )
    res = core.process(raw_records(generate(default_params())))
    burst = next(
        a for a in res.alerts if a.rule == "cms.public_exposure.restricted_content_public" and a.count > 12
    )
    # An alert keeps its first EVIDENCE_VALUES values of a key and counts the rest (one asset per event).
    assert len(burst.evidence["resource"]) == EVIDENCE_VALUES < burst.count
    assert burst.evidence["resource_more"] == [str(burst.count - EVIDENCE_VALUES)]
    assert burst.command_ids and all(len(c) == 32 for c in burst.command_ids)
    back = CODEC.decode(CODEC.encode("Alert", alert_record(burst)))
    assert back["evidence"] == burst.evidence and back["command_ids"] == list(burst.command_ids)


def test_show_and_select_narrow_the_evidence_without_copying_a_policy_string():
    full = {"identity": ["npm:x"], "files": ["a.js", ".env.production.local", "b.map"], "tag": ["latest"]}
    assert for_finding({}, full) == full
    assert for_finding({"show": ["files", 'nope"}']}, full) == {"files": full["files"]}
    assert for_finding({"show": ["files"], "select": {"files": [1, 1, 7, -1, True, "0"]}}, full) == {
        "files": [".env.production.local"]
    }
    assert for_finding({"show": "files"}, full) == full  # not a list: ignored
    assert for_finding({"select": {"files": []}}, full) == {"identity": ["npm:x"], "tag": ["latest"]}


def test_long_lists_and_values_are_capped_and_say_how_many_were_left_out():
    full = {"files": [f"f{i}" for i in range(MAX_VALUES + 7)], "x": ["y" * 10_000]}
    out = for_finding({}, full)
    assert out["files"] == full["files"][:MAX_VALUES] and out["files_more"] == ["7"]
    assert len(out["x"][0]) == 512 and out["x"][0].endswith("…")
    merged = merge([out, {"files": ["g1", "g2"]}])
    assert merged["files_more"] == ["9"]


PROBE = """# METADATA
# title: Probe
# description: Names the source maps of a release by index.
# custom:
#   severity: low
#   mode: enforce
package nhiguard.ci.evidence_probe

import rego.v1

evidence_probe_idx(ev) := [i | some i; f := ev.release.files[i]; endswith(f.path, ".map")]

findings(ev) := {f |
	count(evidence_probe_idx(ev)) > 0
	f := {"rule": "probe", "effect": "alert", "reason": "probe", "show": ["files"],
		"select": {"files": evidence_probe_idx(ev)}}
}
"""


def test_select_with_a_real_policy_engine(tmp_path):
    """A policy points at the files it found by index (numbers: no input string leaves the engine)."""
    shutil.copytree(REPO_ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "ci" / "evidence_probe.rego").write_text(PROBE)
    params = default_params()
    core = DecisionCore(
        load_settings(env={}), load_bundle(tmp_path / "p"), Inventory.load_dict(inventory(params))
    )
    res = core.process(raw_records(generate(params)))
    probes = [f for d in res.decisions for f in d.findings if f.rule == "ci.evidence_probe.probe"]
    assert probes and all(f.evidence == {"files": ["cli.js.map"]} for f in probes)


def test_evidence_round_trips_and_prints_escaped_and_whole():
    params = default_params()
    core = DecisionCore(
        load_settings(env={}), load_bundle(REPO_ROOT / "policies"), Inventory.load_dict(inventory(params))
    )
    records = generate(params)
    raws = raw_records(records)
    # A tag with a quote, a terminal escape and a bidi override, as the source would send it.
    i = next(i for i, r in enumerate(records) if r.label == "incident:cms")
    body = json.loads(raws[i].value)
    evil = 'internal"\x1b[2J\u202egpj.exe'
    body["metadata"]["tags"].append({"sys": {"type": "Link", "linkType": "Tag", "id": evil}})
    raws[i] = raws[i].__class__(
        raws[i].topic, 0, raws[i].offset, json.dumps(body).encode(), None, raws[i].headers
    )
    res = core.process(raws)
    d = next(d for d in res.decisions if (d.topic, d.offset) == (raws[i].topic, raws[i].offset))
    assert evil in d.findings[0].evidence["tags"]
    back = CODEC.decode(CODEC.encode("Decision", decision_record(d, 0)))
    assert evil in back["findings"][0]["evidence"]["tags"]
    printed = table.row(command_record(d.commands[0]))
    assert "\x1b" not in printed and "\u202e" not in printed and "\\x1b[2J\\u202egpj.exe" in printed


def test_of_event_leaves_out_empty_values():
    params = default_params()
    core = DecisionCore(
        load_settings(env={}), load_bundle(REPO_ROOT / "policies"), Inventory.load_dict(inventory(params))
    )
    ev = core.read(raw_records(generate(params, ordinary=5))[0])
    out = of_event(ev)
    assert out["identity"] == [ev.actor.id] and all(v and all(v) for v in out.values())
