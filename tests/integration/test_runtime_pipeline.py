"""audit.runtime through a real worker on a real broker: a runtime sensor's record joined to its identity by a
pod label held in the worker's identities table, decided and commanded; a multi-event CloudTrail file
dead-lettered; one outcome per input record."""

import json
import time

import pytest
import yaml

from nhiguard.streams.identities import load_identities
from tests.integration.test_pipeline import collect, pipeline  # noqa: F401 (a fixture)
from tests.unit.test_runtime_egress import RELEASE, body
from tools.demo import produce_records
from tools.scenarios.records import SourceRecord

pytestmark = pytest.mark.integration


def test_runtime_records_are_joined_decided_and_commanded_by_the_worker(pipeline):  # noqa: F811
    settings, start, tmp_path = pipeline
    extra = tmp_path / "runtime-identities.yaml"
    sa = {"id": "k8s:sa/ci/release-bot", "kind": "k8s_service_account", "networks": ["10.42.0.0/16"]}
    extra.write_text(yaml.safe_dump([RELEASE, sa]))
    load_identities(settings, extra)
    docs = [
        ("npm-ci", body("tetragon.event/tcp-connect-kprobe")),
        ("chain", body("tetragon.event/install-script-connect")),
        ("secret", body("k8s.audit/sa-reads-secret")),
        ("file", body("aws.cloudtrail.file/two-records")),
    ]
    records = [
        SourceRecord("audit.runtime", None, json.dumps(d).encode(), (), 0, label=name) for name, d in docs
    ]
    labels = produce_records(settings.bootstrap, records, settings.topics)
    start()
    out = collect(settings, len(records))
    assert len(out["seen"]) == len(records)
    by_label = {
        labels[(d["input"]["topic"], d["input"]["partition"], d["input"]["offset"])]: d
        for d in out["decisions"]
    }
    assert set(by_label) == {"npm-ci", "chain", "secret"}
    assert [x["reason"] for x in out["deadletters"]] == ["multi_record"]
    assert (
        by_label["npm-ci"]["event"]["actor"]["id"] == RELEASE["id"]
        and by_label["npm-ci"]["verdict"] == "ALLOW"
    )
    chain = by_label["chain"]
    assert chain["event"]["actor"]["id"] == RELEASE["id"] and chain["verdict"] == "REVOKE"
    assert chain["event"]["process"]["install_script"] is True
    assert (by_label["secret"]["verdict"], by_label["secret"]["identity_known"]) == ("ALLOW", True)
    deadline = time.monotonic() + 30
    while {c["command_id"] for c in out["commands"]} < set(
        chain["command_ids"]
    ) and time.monotonic() < deadline:
        out["commands"] = collect(settings, 10**9, timeout=3)["commands"]
    got = sorted((c["kind"], c["target_type"], c["target"]) for c in out["commands"])
    assert got == [
        ("DENY", "request", "process:ci-runner-node-3/cnVubmVyLW5vZGUtMzoxMjM0NTY3ODkwOjQxOTk="),
        ("REVOKE", "credential", "github-app:acme-release"),
        ("REVOKE", "credential", "npm-token:acme-cli"),
    ]
