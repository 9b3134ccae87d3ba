"""Every alert is also an OCSF Detection Finding (class 2004, nhiguard/ocsf.py), validated here against the
OCSF 1.8.0 schema the project vendors (schemas/ocsf/: JSON Schema compiled from OCSF's own source, with its
licence), and the validator is shown to refuse what OCSF refuses."""

from __future__ import annotations

import copy
import json
import shutil
import time

import jsonschema
import pytest

from nhiguard import ocsf
from nhiguard.decision.records import Alert
from nhiguard.policy.bundle import load_bundle
from tests.unit.test_alerts import PARAMS, core, final, run
from tests.unit.test_core import raw_records
from tools import REPO_ROOT
from tools.scenarios import generate

VENDORED = REPO_ROOT / "schemas" / "ocsf"
SCHEMA = json.loads((VENDORED / f"detection_finding-{ocsf.OCSF_VERSION}.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def errors(finding):
    return sorted(e.message for e in VALIDATOR.iter_errors(finding))


def test_the_vendored_schema_is_ocsf_1_8_0s_detection_finding_with_its_licence():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["title"] == "OCSF 1.8.0 Detection Finding (2004)"
    assert SCHEMA["properties"]["class_uid"] == {"const": 2004}
    assert "Apache-2.0" in SCHEMA["$comment"] and "tag 1.8.0" in SCHEMA["$comment"]
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    assert "Open Cybersecurity Schema Framework" in (VENDORED / "NOTICE").read_text()
    # The class as OCSF defines it: what it requires, and objects it reaches.
    assert set(SCHEMA["required"]) >= {"finding_info", "metadata", "severity_id", "time", "type_uid"}
    assert SCHEMA["$defs"]["finding_info"]["required"] == ["uid"]
    assert len(SCHEMA["$defs"]) > 100


def _all_kinds():
    """Final alerts of the demo stream (DENY, REVOKE, ALLOW-with-alert), the breaker's (HELD), a shadow
    policy's, a policy with a runbook, and a refused bundle's."""
    alerts = list(final(run(500)[1]).values())
    alerts += [a for a in final(run(500, breaker_max_revokes=0)[1]).values() if a.verdict == "HELD"]
    return alerts


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    alerts = _all_kinds()
    root = tmp_path_factory.mktemp("p") / "policies"
    shutil.copytree(REPO_ROOT / "policies", root)
    rego = root / "ci" / "release_artifacts.rego"
    text = rego.read_text().replace("#   mode: enforce", "#   mode: shadow", 1)
    rego.write_text(
        text.replace("#   severity: high", "#   severity: high\n#   runbook: https://rb.example/x", 1)
    )
    shadow = core(load_bundle(root)).process(
        raw_records([r for r in generate(PARAMS) if r.label == "incident:ci"])
    )
    alerts += shadow.alerts
    now = int(time.time() * 1000)
    alerts.append(
        Alert(
            "a1", "nhiguard", "bundle", "bundle.refused", "high", "REFUSED", 1, "r", "r", now, now, "s", "rev"
        )
    )
    return alerts


def test_every_alert_is_a_valid_detection_finding(every_kind):
    verdicts = {a.verdict for a in every_kind}
    assert verdicts >= {"DENY", "REVOKE", "HELD", "SHADOW", "REFUSED"}, verdicts
    assert any(a.runbook for a in every_kind)
    for a in every_kind:
        finding = ocsf.detection_finding(a)
        assert errors(finding) == [], (a.rule, errors(finding)[:5])
        assert json.loads(ocsf.encode(a)) == finding


def test_a_finding_says_what_its_alert_says(every_kind):
    burst = max(every_kind, key=lambda a: a.count)
    f = ocsf.detection_finding(burst)
    assert (f["class_uid"], f["activity_id"], f["type_uid"]) == (2004, 2, 200402)  # an update of the window
    assert f["finding_info"]["uid"] == burst.alert_id and f["count"] == burst.count
    assert (f["start_time"], f["time"]) == (burst.first_seen_ms, burst.last_seen_ms)
    assert [e["uid"] for e in f["finding_info"]["related_events"]] == list(burst.decision_ids)
    assert f["finding_info"]["related_events_count"] == burst.count
    assert (f["action"], f["disposition"]) == ("Denied", "Access Revoked")
    assert (f["severity_id"], f["severity"]) == (4, "High") == (4, burst.severity.title())
    assert f["resources"][0] == {
        "uid": burst.identity,
        "name": burst.identity,
        "type": "non-human identity",
        "role_id": 2,
        "role": "Actor",
    }
    assert f["unmapped"]["nhiguard"]["window_start"] == burst.window_start_ms
    leak = next(a for a in every_kind if a.runbook)
    f = ocsf.detection_finding(leak)
    assert f["remediation"]["references"] == [leak.runbook] and f["is_alert"] is False  # shadow
    assert {
        "technique": {"uid": "T1552"},
        "sub_technique": {"uid": "T1552.001", "name": "Credentials In Files"},
    } in f["finding_info"]["attacks"]
    first = ocsf.detection_finding(next(a for a in every_kind if a.count == 1))
    assert (first["activity_id"], first["type_name"]) == (1, "Detection Finding: Create")


@pytest.mark.parametrize(
    "break_it",
    [
        lambda f: f.update(class_uid=2003),
        lambda f: f.update(type_uid=200401, activity_id=2),  # type_uid is class_uid * 100 + activity_id
        lambda f: f.update(severity="Low"),  # the caption of its severity_id
        lambda f: f.update(surprise=1),  # not an attribute of the class
        lambda f: f["finding_info"].pop("uid"),
        lambda f: f["metadata"].pop("product"),
        lambda f: f["finding_info"]["attacks"].append({"version": "14"}),  # names no tactic or technique
        lambda f: f.update(time="2026-03-26T08:00:00Z"),  # a timestamp is epoch milliseconds
        lambda f: f["metadata"].update(profiles=["cloud"]),  # the cloud profile requires `cloud`
    ],
)
def test_the_validator_refuses_what_ocsf_refuses(every_kind, break_it):
    finding = ocsf.detection_finding(next(a for a in every_kind if a.attack))
    assert errors(finding) == []
    broken = copy.deepcopy(finding)
    break_it(broken)
    assert errors(broken)
