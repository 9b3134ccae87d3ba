"""The runtime domain's sources (audit.runtime) on the project's own fixtures in the real formats: field
mapping, the identity each derives, and dead letters whose reason says what is missing (docs/sources.md)."""

from __future__ import annotations

import copy
import json

import pytest

from nhiguard.decision.adapters import adapt
from nhiguard.decision.adapters.common import utc_ms
from nhiguard.decision.adapters.principals import aws_actor, gcp_actor, k8s_actor, role_of_session
from nhiguard.decision.cluster_facts import CloudCall, K8sRequest, k8s_category
from nhiguard.decision.process_facts import (
    ProcessActivity,
    image_repository,
    runs_install_script,
    workload_of_pod,
)
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord
from nhiguard.models.anomaly import target_of
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"


def body(name: str) -> dict:
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text())["body"])


def read(doc: dict | str | bytes, ts: int = 1775000000000) -> CanonicalEvent:
    value = doc if isinstance(doc, bytes) else (doc if isinstance(doc, str) else json.dumps(doc)).encode()
    return adapt(RawRecord("audit.runtime", 0, 3, value, None, (), ts), "runtime")


def refused(doc: dict) -> AdapterError:
    with pytest.raises(AdapterError) as e:
        read(doc)
    return e.value


# -- Kubernetes users and cloud principals -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "want_id", "human"),
    [
        ("system:serviceaccount:ci:release-bot", "k8s:sa/ci/release-bot", False),
        (
            "system:node:ip-10-0-3-17.eu-west-1.compute.internal",
            "k8s:node/ip-10-0-3-17.eu-west-1.compute.internal",
            False,
        ),
        ("system:kube-controller-manager", "k8s:system/system:kube-controller-manager", False),
        ("eks:addon-manager", "k8s:system/eks:addon-manager", False),
        ("system:anonymous", "k8s:anonymous", False),
        ("kubernetes-admin", "k8s:user/kubernetes-admin", True),
        ("oidc:alice@acme.example", "k8s:user/oidc:alice@acme.example", True),
    ],
)
def test_a_kubernetes_user_is_a_service_account_a_platform_component_or_a_person(username, want_id, human):
    actor = k8s_actor(username)
    assert (actor.id, actor.human, actor.source_principal) == (want_id, human, username)


def test_an_eks_user_mapped_from_an_iam_role_is_that_role_as_cloudtrail_names_it():
    extra = {"canonicalArn": ["arn:aws:iam::210987654321:role/ci-deploy"], "sessionName": ["17751"]}
    actor = k8s_actor("arn:aws:sts::210987654321:assumed-role/ci-deploy/17751", extra)
    assert (actor.id, actor.human) == ("arn:aws:iam::210987654321:role/ci-deploy", False)
    sso = {"canonicalArn": ["arn:aws:iam::210987654321:role/AWSReservedSSO_Admin_0123456789abcdef"]}
    assert k8s_actor("alice", sso).human  # an Identity Center role is a person's


def test_a_service_account_user_without_its_namespace_names_what_is_missing():
    with pytest.raises(AdapterError, match="without a namespace") as e:
        k8s_actor("system:serviceaccount:ci")
    assert e.value.reason == "missing_identity"


def test_gcp_principals():
    assert gcp_actor("terraform@acme-prod.iam.gserviceaccount.com").id == (
        "gcp:sa/terraform@acme-prod.iam.gserviceaccount.com"
    )
    assert gcp_actor("system:serviceaccount:ci:deployer").id == "k8s:sa/ci/deployer"  # one id with k8s.audit
    assert gcp_actor("alice@acme.example").human


def test_an_assumed_role_is_its_role_not_its_session():
    uid = body("aws.cloudtrail/assumed-role-reads-secret")["userIdentity"]
    actor, session = aws_actor(uid, console=False)
    assert (actor.id, actor.human, session) == (
        "arn:aws:iam::210987654321:role/ci/gha-release",
        False,
        "GitHubActions",
    )
    # Without the session issuer, the role from the session's ARN (its path is not in it).
    del uid["sessionContext"]
    assert aws_actor(uid, False)[0].id == "arn:aws:iam::210987654321:role/gha-release"
    assert role_of_session("arn:aws:sts::1:assumed-role/r/s") == "arn:aws:iam::1:role/r"
    # A console session, or an Identity Center role, is a person.
    assert aws_actor(uid, console=True)[0].human
    sso = {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::1:assumed-role/AWSReservedSSO_Dev_abc/alice@acme.example",
    }
    assert aws_actor(sso, False)[0].human


@pytest.mark.parametrize(
    ("uid", "account", "want_id", "human"),
    [
        (
            {"type": "IAMUser", "arn": "arn:aws:iam::1:user/svc", "userName": "svc"},
            "",
            "arn:aws:iam::1:user/svc",
            False,
        ),
        ({"type": "IAMUser", "userName": "svc", "accountId": "7"}, "", "arn:aws:iam::7:user/svc", False),
        ({"type": "IAMUser", "userName": "svc"}, "9", "arn:aws:iam::9:user/svc", False),
        ({"type": "Root", "accountId": "7"}, "", "arn:aws:iam::7:root", True),
        (
            {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
            "",
            "aws:service/ec2.amazonaws.com",
            False,
        ),
        ({"type": "AWSAccount", "accountId": "123", "principalId": "AIDA:x"}, "", "aws:account/123", False),
        (
            {
                "type": "WebIdentityUser",
                "identityProvider": "token.actions.githubusercontent.com",
                "userName": "repo:acme/cli:ref:refs/heads/main",
            },
            "",
            "aws:web-identity/token.actions.githubusercontent.com/repo:acme/cli:ref:refs/heads/main",
            False,
        ),
        ({"type": "SAMLUser", "userName": "alice@acme.example"}, "", "aws:person/alice@acme.example", True),
    ],
)
def test_cloudtrail_principals(uid, account, want_id, human):
    actor, _ = aws_actor(uid, console=False, account=account)
    assert (actor.id, actor.human) == (want_id, human)


@pytest.mark.parametrize(
    ("uid", "says"),
    [
        (None, "missing field userIdentity"),
        ({"type": "IAMUser", "principalId": "AIDAEXAMPLE"}, "no arn, and no userName with an accountId"),
        ({"type": "AssumedRole", "userName": "TestRole"}, "no sessionIssuer.arn"),
        ({"type": "Unknown", "userName": "x"}, "CloudTrail could not tell who made the call"),
        ({"type": "Directory"}, "'Directory': unknown"),
    ],
)
def test_a_cloudtrail_identity_that_names_no_principal_says_what_is_missing(uid, says):
    with pytest.raises(AdapterError, match=says) as e:
        aws_actor(uid, console=False)
    assert e.value.reason == "missing_identity"


# -- Kubernetes audit, AKS, GKE -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("verb", "resource", "sub", "category"),
    [
        ("get", "secrets", "", "secret_read"),
        ("watch", "secrets", "", "secret_read"),
        ("delete", "secrets", "", ""),
        ("create", "pods", "exec", "exec"),
        ("create", "pods", "attach", "exec"),
        ("create", "serviceaccounts", "token", "token_request"),
        ("patch", "clusterrolebindings", "", "rbac_change"),
        ("bind", "roles", "", "rbac_change"),
        ("get", "roles", "", ""),
        ("create", "pods", "", ""),
    ],
)
def test_kubernetes_requests_that_reach_credentials_or_code_are_categorised(verb, resource, sub, category):
    assert k8s_category(verb, resource, sub) == category


def test_an_audit_event_maps_its_request_and_is_judged_from_its_client_address():
    ev = read(body("k8s.audit/sa-reads-secret"))
    assert isinstance(ev.facts, K8sRequest)
    assert (ev.action, ev.resource_id, ev.facts.category) == (
        "runtime.k8s.secrets.get",
        "ci/secrets/npm-publish-token",
        "secret_read",
    )
    assert ev.facts.used_from() == "10.42.3.17"  # enrichment holds it against the identity's networks
    assert ev.facts.target(ev.resource_id) == "ci/secrets"  # the model learns the kind, not each object


def test_each_stage_of_a_request_is_its_own_event_and_a_non_resource_request_names_its_path():
    doc = body("k8s.audit/exec-by-admin")
    started = read(doc)
    doc["stage"] = "ResponseComplete"
    assert read(doc).event_id != started.event_id
    probe = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "verb": "get",
        "requestURI": "/healthz?verbose",
        "user": {"username": "system:anonymous"},
        "stageTimestamp": "2026-04-02T09:00:00Z",
    }
    ev = read(probe)
    assert (ev.action, ev.resource_type, ev.resource_id) == (
        "runtime.k8s.nonresource.get",
        "k8s.url",
        "/healthz",
    )


def test_an_aks_record_is_the_audit_event_in_its_properties():
    aks = read(body("azure.aks_audit/sa-lists-secrets"))
    inner = json.loads(body("azure.aks_audit/sa-lists-secrets")["properties"]["log"])
    direct = read(inner)
    assert (aks.actor, aks.action, aks.facts) == (direct.actor, direct.action, direct.facts)
    assert aks.source == "azure.aks_audit" and direct.source == "k8s.audit"


def test_an_aks_record_whose_log_is_not_an_audit_event_says_so():
    doc = body("azure.aks_audit/sa-lists-secrets")
    doc["properties"]["log"] = "kube-apiserver started"
    assert refused(doc).reason == "malformed_json"
    doc["properties"] = {"stream": "stdout"}
    assert (refused(doc).reason, refused(doc).detail) == ("unknown_shape", "missing field properties.log")


def test_gke_names_the_same_request_as_the_audit_log():
    ev = read(body("gcp.audit_log/gke-sa-exec"))
    assert (ev.action, ev.actor.id, ev.resource_id) == (
        "runtime.k8s.pods.exec.create",
        "k8s:sa/ci/deployer",
        "payments/pods/payments-api-6d4f8b7c9-q8w2e",
    )
    assert ev.facts.category == "exec" and ev.facts.api_group == ""


def test_another_google_service_is_a_cloud_call_with_its_key():
    ev = read(body("gcp.audit_log/sa-key-created"))
    assert isinstance(ev.facts, CloudCall)
    assert ev.action == "runtime.gcp.iam.CreateServiceAccountKey"
    assert ev.facts.credential.endswith("/keys/6a1f0e9d8c7b") and ev.facts.account == "acme-prod"


# -- CloudTrail ---------------------------------------------------------------------------------------------
def test_a_cloudtrail_event_maps_its_call():
    ev = read(body("aws.cloudtrail/iam-user-creates-access-key"))
    assert (ev.action, ev.resource_type, ev.actor.human) == (
        "runtime.aws.iam.CreateAccessKey",
        "aws.iam",
        False,
    )
    assert ev.facts.credential == "AKIATESTEXAMPLE00004" and not ev.facts.read_only
    assert ev.facts.used_from() == "198.51.100.23"


def test_a_service_name_as_source_address_is_no_client_address_to_judge():
    ev = read(body("aws.cloudtrail/service-call"))
    assert ev.facts.client_address == "cloudformation.amazonaws.com" and ev.facts.used_from() == ""


def test_console_sign_ins_and_console_sessions_are_people():
    assert read(body("aws.cloudtrail/root-console-login")).actor.human
    doc = body("aws.cloudtrail/iam-user-creates-access-key") | {"sessionCredentialFromConsole": "true"}
    assert read(doc).actor.human


def test_a_log_file_of_one_event_is_that_event_and_of_several_is_refused_whole_with_the_count():
    one = body("aws.cloudtrail.file/one-record")
    ev = read(one)
    assert ev.source == "aws.cloudtrail.file"
    assert ev.actor == read(one["Records"][0]).actor and ev.event_id == read(one["Records"][0]).event_id
    err = refused(body("aws.cloudtrail.file/two-records"))
    assert err.reason == "multi_record" and "holds 2 events" in err.detail
    assert refused({"Records": []}).detail == "CloudTrail Records is empty: no event to decide"
    assert refused({"Records": [7]}).detail == "Records[0] is not an object"


def test_a_cloudtrail_record_without_a_call_names_the_fields():
    doc = body("aws.cloudtrail/service-call")
    doc["eventName"] = None
    assert refused(doc).detail == "missing field eventSource or eventName"


# -- time ---------------------------------------------------------------------------------------------------
def test_times_of_these_sources_are_utc_by_their_specification():
    assert utc_ms("2026-04-04T12:00:00Z", 0) == 1775304000000
    assert utc_ms("2026-04-04 12:00:00.000000000", 0) == 1775304000000  # as Panther's data lake writes it
    assert utc_ms("2026-04-04T14:00:00+02:00", 0) == 1775304000000  # a zone that is written is honoured
    assert utc_ms(None, 5) == 5
    with pytest.raises(AdapterError, match="bad_time: not an ISO-8601 time"):
        utc_ms("...", 0)


# -- Falco and Tetragon -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pod", "workload"),
    [
        ("payments-api-7f9c6d8b5-x2k4q", "payments-api"),  # Deployment
        ("node-exporter-9xkwz", "node-exporter"),  # DaemonSet, Job
        ("backup-29061440-v8s2m", "backup"),  # CronJob
        ("redis-0", "redis-0"),  # StatefulSet: each ordinal a stable member
        ("standalone", "standalone"),
    ],
)
def test_a_pod_belongs_to_its_workload(pod, workload):
    assert workload_of_pod(pod) == workload


@pytest.mark.parametrize(
    ("cwd", "parent_cwd", "parent", "parent_args", "want"),
    [
        ("/w/node_modules/plain-crypto-js", "/w", "/usr/bin/node", "setup.js", True),  # a dependency's script
        ("/tmp", "/w/node_modules/plain-crypto-js/", "/usr/bin/node", "setup.js", True),  # a child it started
        ("/w", "/w", "/usr/bin/npm", "install --no-audit", True),  # the root package's own install script
        ("/w", "/w", "/usr/bin/node", "/usr/lib/node_modules/npm/bin/npm-cli.js ci", True),
        ("/w", "/w", "/usr/bin/node", "/usr/lib/node_modules/npm/bin/npm-cli.js run build", False),
        ("/app", "/app", "/usr/local/bin/node", "/app/node_modules/.bin/next start", False),  # a server
        ("/w", "/w", "/usr/bin/bash", "-e /w/_temp/x.sh", False),
    ],
)
def test_an_install_script_is_told_by_where_it_runs_or_who_started_it(
    cwd, parent_cwd, parent, parent_args, want
):
    assert runs_install_script(cwd, parent_cwd, parent, parent_args) is want


def test_image_repository_drops_tag_and_digest_not_a_registry_port():
    assert image_repository("ghcr.io/acme/api:2.14.0") == "ghcr.io/acme/api"
    assert image_repository("quay.io/x/y@sha256:abc") == "quay.io/x/y"
    assert image_repository("registry:5000/acme/api") == "registry:5000/acme/api"


def test_tetragon_connect_from_an_install_script_is_the_runtime_side_of_the_axios_chain():
    ev = read(body("tetragon.event/install-script-connect"))
    facts = ev.facts
    assert isinstance(facts, ProcessActivity)
    assert (ev.action, ev.actor.id) == (
        "runtime.process.connect",
        "k8s:workload/ci-runners/release-runner-x7k2p",
    )
    assert facts.install_script and facts.destination() == ("", "142.11.206.73")
    assert facts.joins() == (
        "k8s:pod-label/ci-runners/actions.github.com/scale-set-name=release-runner",
        "k8s:pod-label/ci-runners/app.kubernetes.io/component=runner",
    )
    assert facts.deny_target(ev.resource_id) == (
        "request",
        "process:ci-runner-node-3/cnVubmVyLW5vZGUtMzoxMjM0NTY3ODkwOjQxOTk=",
    )


def test_the_model_learns_where_a_build_connects_not_each_address():
    """A build's downloads reach a provider at any address of its ranges (the corpus's ci_runner_runtime
    class: install scripts fetching from npm's registry, GitHub, Google storage): the behavioural model's
    target is the host the sensor resolved, else the address's /16 (IPv6: /48), with the port; loopback is
    one place. Other process events keep their resource (the binary)."""

    def connect_target(ip: str, port: int = 443, host: str = "") -> str:
        doc = (
            body("falco.alert/outbound-connection") if host else body("tetragon.event/install-script-connect")
        )
        if host:
            doc["output_fields"] |= {"fd.sip": ip, "fd.sport": port, "fd.sip.name": host}
        else:
            doc["process_connect"] |= {"destination_ip": ip, "destination_port": port}
        return target_of(read(doc))

    assert connect_target("104.16.3.35") == connect_target("104.16.250.7") == "104.16.0.0/16:443"
    assert connect_target("104.17.3.35") != connect_target("104.16.3.35")
    assert connect_target("104.16.3.35", 8000) != connect_target("104.16.3.35")
    assert (
        connect_target("2606:4700::6810:1", 443)
        == connect_target("2606:4700::6810:ff23")
        == "2606:4700::/48:443"
    )
    assert connect_target("127.0.0.1", 3000) == connect_target("127.0.0.2", 5432) == "loopback"
    assert connect_target("104.18.1.1", host="Registry.npmjs.org.") == "registry.npmjs.org:443"
    assert target_of(read(body("tetragon.event/process-exec"))) == "/usr/bin/curl"


def test_a_connect_kprobe_is_a_connection_and_another_kprobe_is_not():
    ev = read(body("tetragon.event/tcp-connect-kprobe"))
    assert (ev.facts.kind, ev.resource_id, ev.facts.protocol) == ("connect", "104.16.3.35:443", "TCP")
    assert not ev.facts.install_script  # npm itself, not a script it runs
    doc = body("tetragon.event/tcp-connect-kprobe")
    doc["process_kprobe"]["function_name"] = "__x64_sys_write"
    assert (read(doc).facts.kind, read(doc).facts.destination()) == ("kprobe", None)


def test_a_process_outside_kubernetes_is_its_host():
    ev = read(body("tetragon.event/process-exit-on-host"))
    assert ev.actor.id == "host:build-vm-2" and ev.facts.joins() == ()


def test_a_tetragon_record_without_a_process_event_or_any_place_says_which():
    assert refused({"node_name": "n1", "time": "2026-04-05T09:00:00Z"}).detail == (
        "no process_* event in this Tetragon record"
    )
    doc = body("tetragon.event/process-exit-on-host")
    doc["node_name"] = ""
    err = refused(doc)
    assert (err.reason, err.detail) == ("missing_identity", "no process_exit.process.pod and no node_name")


def test_falco_maps_a_connect_with_its_pod_labels_and_another_rule_as_an_alert():
    ev = read(body("falco.alert/outbound-connection"))
    assert (ev.action, ev.resource_id, ev.facts.install_script) == (
        "runtime.process.connect",
        "142.11.206.73:8000",
        True,
    )
    assert ev.facts.workload.labels == (
        "actions.github.com/scale-set-name=release-runner",
        "app.kubernetes.io/component=runner",
    )
    shell = read(body("falco.alert/shell-in-container"))
    assert (shell.action, shell.actor.id, shell.facts.rule) == (
        "runtime.process.exec",
        "k8s:workload/payments/payments-api",
        "Terminal shell in container",
    )
    doc = body("falco.alert/shell-in-container")
    doc["output_fields"]["evt.type"] = "openat"
    assert (read(doc).action, read(doc).resource_id) == (
        "runtime.process.alert",
        "Terminal shell in container",
    )


def test_falco_reads_the_destination_from_the_connection_tuple_when_the_ip_fields_are_absent():
    doc = body("falco.alert/outbound-connection")
    for f in ("fd.sip", "fd.sport"):
        del doc["output_fields"][f]
    assert read(doc).resource_id == "142.11.206.73:8000"


def test_a_falco_alert_from_a_plugin_source_names_the_source():
    assert "from source 'k8saudit'" in refused(body("falco.alert/plugin-source")).detail


def test_a_runtime_record_no_adapter_knows_is_unknown_shape_and_a_non_object_too():
    assert refused({"hello": "world"}).reason == "unknown_shape"
    with pytest.raises(AdapterError, match="top-level JSON list"):
        read(b"[1, 2]")
