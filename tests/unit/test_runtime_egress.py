"""The runtime side of the axios chain through the whole core: a workload joined to its identity by the
inventory, its connections judged against the identity's allowed_destinations (runtime.egress), and the
control-plane logs' client addresses against its networks (identity.networks)."""

from __future__ import annotations

import copy
import json

import pytest

from nhiguard.avro import AvroCodec, command_record, decision_record
from nhiguard.decision.context import Identity, Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import Decision, RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT

BUNDLE = load_bundle(REPO_ROOT / "policies")
CODEC = AvroCodec(REPO_ROOT / "schemas")
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"
RUNNERS = "k8s:pod-label/ci-runners/actions.github.com/scale-set-name=release-runner"
RELEASE = {
    "id": "github:acme/cli/.github/workflows/release.yml",
    "kind": "ci_bot",
    "credential_ids": ["npm-token:acme-cli", "github-app:acme-release"],
    "allowed_destinations": ["https://registry.npmjs.org/", "104.16.0.0/12", "10.0.0.0/8"],
    "aliases": [RUNNERS],
}


def body(name: str) -> dict:
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text())["body"])


def decide(identities: list[dict], *docs: dict) -> list[Decision]:
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(identities))
    records = [
        RawRecord("audit.runtime", 0, i, json.dumps(d).encode(), None, (), 0) for i, d in enumerate(docs)
    ]
    result = core.process(records)
    assert not result.deadletters
    return result.decisions


def rules(d: Decision) -> set[str]:
    return {f.rule for f in d.findings}


def commands(d: Decision) -> list[tuple[str, str, str]]:
    return sorted((c.kind, c.target_type, c.target) for c in d.commands)


# -- destinations ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "ip", "want"),
    [
        ("registry.npmjs.org", "", True),  # a URL entry counts by its host
        ("REGISTRY.npmjs.org.", "", True),
        ("", "104.16.3.35", True),
        ("", "::ffff:10.1.2.3", True),  # IPv4 as a dual-stack socket shows it
        ("", "142.11.206.73", False),  # the networks are the whole address allow-list
        ("evil.example", "142.11.206.73", False),
        ("evil.example", "", False),
    ],
)
def test_a_destination_is_allowed_outside_or_cannot_be_told(host, ip, want):
    assert Identity.from_dict(RELEASE).reaches(host, ip) is want


def test_an_address_against_host_names_only_cannot_be_told_and_wildcards_admit_subdomains():
    hosts = Identity.from_dict(RELEASE | {"allowed_destinations": ["*.githubusercontent.com"]})
    assert hosts.reaches("", "142.11.206.73") is None  # a name's addresses are not known here
    assert hosts.reaches("objects.githubusercontent.com", "185.199.108.133") is True
    assert hosts.reaches("githubusercontent.com.evil.example", "") is False
    nets = Identity.from_dict(RELEASE | {"allowed_destinations": ["10.0.0.0/8"]})
    assert nets.reaches("registry.npmjs.org", "") is None


# -- the axios chain, end to end ---------------------------------------------------------------------------
def test_a_workload_is_joined_to_its_identity_by_a_pod_label_and_its_registry_traffic_is_allowed():
    [npm_ci] = decide([RELEASE], body("tetragon.event/tcp-connect-kprobe"))
    assert npm_ci.event.actor.id == RELEASE["id"] and npm_ci.identity_known
    assert (npm_ci.verdict, npm_ci.findings) == ("ALLOW", [])


def test_an_install_script_calling_home_from_the_release_build_revokes_its_credentials_and_stops_it():
    [chain] = decide([RELEASE], body("tetragon.event/install-script-connect"))
    assert chain.verdict == "REVOKE"
    assert rules(chain) == {"runtime.egress.destination_not_allowed", "runtime.egress.install_script_egress"}
    assert {f.grade for f in chain.findings} == {"hygiene", "compromise"}
    assert commands(chain) == [
        ("DENY", "request", "process:ci-runner-node-3/cnVubmVyLW5vZGUtMzoxMjM0NTY3ODkwOjQxOTk="),
        ("REVOKE", "credential", "github-app:acme-release"),
        ("REVOKE", "credential", "npm-token:acme-cli"),
    ]
    for c in chain.commands:  # what the sink writes: the schema's target types
        CODEC.encode("EnforcementCommand", command_record(c))
    CODEC.encode("Decision", decision_record(chain, 0))
    revoke = next(c for c in chain.commands if c.kind == "REVOKE")
    assert revoke.evidence["destination"] == ["142.11.206.73:8000"] and revoke.evidence["install_script"] == [
        "true"
    ]


def test_falco_sees_the_same_chain_and_within_the_hour_it_is_stopped_without_a_second_revoke():
    _, falco = decide(
        [RELEASE], body("tetragon.event/install-script-connect"), body("falco.alert/outbound-connection")
    )
    assert falco.event.actor.id == RELEASE["id"]
    assert falco.verdict == "REVOKE" and [c.kind for c in falco.commands] == ["DENY"]


def test_a_kind_without_ci_or_publishing_credentials_is_denied_not_revoked():
    [d] = decide([RELEASE | {"kind": "service_account"}], body("tetragon.event/install-script-connect"))
    assert (d.verdict, rules(d)) == ("DENY", {"runtime.egress.destination_not_allowed"})


def test_an_install_scripts_address_that_host_names_cannot_judge_alerts_and_commands_nothing():
    hosts_only = RELEASE | {"allowed_destinations": ["registry.npmjs.org"]}
    script, npm = decide(
        [hosts_only], body("tetragon.event/install-script-connect"), body("tetragon.event/tcp-connect-kprobe")
    )
    assert (script.verdict, rules(script), script.commands) == (
        "ALLOW",
        {"runtime.egress.destination_unjudged"},
        [],
    )
    assert (npm.verdict, npm.findings) == ("ALLOW", [])  # npm's own traffic: no alert on every connection


def test_unjoined_workloads_identities_without_destinations_process_starts_and_loopback_are_not_judged():
    doc = body("tetragon.event/install-script-connect")
    [unknown] = decide([], doc)
    assert (unknown.identity_kind, unknown.verdict, unknown.findings) == ("unknown", "ALLOW", [])
    [undeclared] = decide([{k: v for k, v in RELEASE.items() if k != "allowed_destinations"}], doc)
    assert (undeclared.verdict, undeclared.findings) == ("ALLOW", [])
    doc["process_connect"]["destination_ip"] = "127.0.0.1"
    exec_doc = body("tetragon.event/process-exec")
    exec_doc["process_exec"]["process"]["pod"] = doc["process_connect"]["process"]["pod"]
    for d in decide([RELEASE], doc, exec_doc):
        assert d.identity_known and (d.verdict, d.findings) == ("ALLOW", [])


def test_the_worker_keys_a_joined_workload_by_its_identity():
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict([RELEASE]))
    rec = RawRecord("audit.runtime", 0, 0, json.dumps(body("tetragon.event/install-script-connect")).encode())
    routed, dead = core.route([rec])
    assert [k for k, _ in routed] == [RELEASE["id"]] and not dead


def test_the_workloads_own_id_wins_over_a_label():
    own = {"id": "k8s:workload/ci-runners/release-runner-x7k2p", "kind": "service_account"}
    [d] = decide([RELEASE, own], body("tetragon.event/install-script-connect"))
    assert d.event.actor.id == own["id"] and d.identity_kind == "service_account"


# -- control-plane logs and the identity's networks --------------------------------------------------------
def test_a_service_account_token_used_from_outside_the_clusters_network_revokes_it():
    sa = {"id": "k8s:sa/ci/release-bot", "kind": "k8s_service_account", "networks": ["10.42.0.0/16"]}
    doc = body("k8s.audit/sa-reads-secret")
    [inside] = decide([sa], doc)
    assert (inside.verdict, inside.identity_known) == ("ALLOW", True)
    doc["sourceIPs"] = ["185.220.101.4"]
    [outside] = decide([sa], doc)
    assert outside.verdict == "REVOKE" and rules(outside) == {"identity.networks.outside_networks"}
    assert [c.target for c in outside.commands if c.kind == "REVOKE"] == ["identity:k8s:sa/ci/release-bot"]


def test_a_role_called_by_aws_itself_has_no_address_to_judge():
    role = {
        "id": "aws:service/cloudformation.amazonaws.com",
        "kind": "cloud_role",
        "networks": ["10.0.0.0/8"],
    }
    [d] = decide([role], body("aws.cloudtrail/service-call"))
    assert (d.verdict, d.findings) == ("ALLOW", [])
