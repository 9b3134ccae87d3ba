"""nhiguard on a secured Kafka: a SASL_SSL listener (SCRAM-SHA-512, certificates made here), an authorizer
that refuses what no ACL allows, and exactly the ACLs the README's least-privilege table lists."""

import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ConfigSource,
    ResourcePatternType,
    ResourceType,
)

from nhiguard.avro import AvroCodec
from nhiguard.kafka_clients import confluent_config
from nhiguard.settings import KafkaSecurity, Settings, Topics, load_settings
from nhiguard.streams.identities import load_identities
from tools import REPO_ROOT
from tools.broker import BrokerSecurity, LocalBroker, default_cache_dir
from tools.certs import make_pki
from tools.demo import produce_records, worker_env
from tools.scenarios import default_params, generate, write_inventory

pytestmark = pytest.mark.integration

SHIPPERS = {"cms": "shipper-cms", "ci": "shipper-ci", "registry": "shipper-registry"}
USERS = ("admin", "nhiguard-worker", "nhiguard-operator", "enforcer", "soc", *SHIPPERS.values())


def documented_acls() -> list[AclBinding]:
    """The README's least-privilege table, row by row, as ACL bindings."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Running against a secured Kafka", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        if not line.startswith("| `User:"):
            continue
        principal, resource, pattern, names, operations, _why = (
            c.strip() for c in line.strip("|").split("|")
        )
        for name in re.findall(r"`([^`]+)`", names):
            for op in operations.split(","):
                out.append(
                    AclBinding(
                        ResourceType[resource.upper()],
                        name,
                        ResourcePatternType[pattern.upper()],
                        principal.strip("`"),
                        "*",
                        AclOperation[re.sub(r"(?<!^)([A-Z])", r"_\1", op.strip()).upper()],
                        AclPermissionType.ALLOW,
                    )
                )
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A secured broker with the topics created by its administrator and the README's ACLs."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    security = BrokerSecurity(pki, {u: secrets.token_hex(16) for u in USERS})
    with LocalBroker(default_cache_dir(), secured=security) as broker:
        base = replace(
            load_settings(env={}), bootstrap=broker.bootstrap, input_partitions=1, min_insync_replicas=1
        )

        def as_user(user: str, password: str | None = None) -> Settings:
            return replace(base, kafka=security.client(user, password))

        admin_settings = as_user("admin")
        # The cluster's administrator creates the topics, through the CLI and its NHIGUARD_KAFKA_* settings.
        cli = [sys.executable, "-m", "nhiguard.streams.cli", "topics", "create"]
        done = subprocess.run(
            cli, env=worker_env(admin_settings), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert set(Topics().inputs) <= set(
            AdminClient(confluent_config(admin_settings)).list_topics(timeout=10).topics
        )
        acls = documented_acls()
        assert len(acls) > 30
        admin = AdminClient(confluent_config(admin_settings))
        for fut in admin.create_acls(acls, request_timeout=30).values():
            fut.result(30)
        # The controller has them; wait until the broker's authorizer (which answers describe) does too.
        every = AclBindingFilter(
            ResourceType.ANY,
            None,
            ResourcePatternType.ANY,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        deadline = time.monotonic() + 30
        while len(admin.describe_acls(every).result(30)) < len(set(acls)) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield as_user, admin


def _read(settings: Settings, group: str, topics: list[str], until, timeout: float) -> list:
    """(topic, decoded record) pairs from the start of `topics`, as a reader in `group`."""
    codec = AvroCodec(settings.schemas_dir)
    c = Consumer(confluent_config(settings, **{"group.id": group, "auto.offset.reset": "earliest"}))
    c.subscribe(topics)
    out = []
    deadline = time.monotonic() + timeout
    try:
        while not until(out) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append((m.topic(), codec.decode(m.value())))
    finally:
        c.close()
    return out


def test_the_worker_decides_every_record_with_only_the_documented_acls(cluster, tmp_path):
    as_user, admin = cluster
    t = Topics()
    identities = tmp_path / "identities.yaml"
    write_inventory(default_params(), identities)
    load_identities(as_user("nhiguard-operator"), identities)
    records = generate(default_params(), ordinary=150)
    labels: dict = {}
    for domain, shipper in SHIPPERS.items():
        mine = [r for r in records if t.domain_of(r.topic) == domain]
        labels |= produce_records(as_user(shipper).bootstrap, mine, t, as_user(shipper).kafka)
    assert len(labels) == len(records)

    worker = replace(as_user("nhiguard-worker"), data_dir=tmp_path / "worker")
    intruder = replace(as_user("nhiguard-worker", "not-the-password"), data_dir=tmp_path / "intruder")
    procs = {}
    # March's incidents replayed through the live topics the ACLs name (not a sandbox's): their body times
    # are months before the broker's, so the time bound is widened for this test of the ACLs alone.
    years = {"NHIGUARD_MAX_TIME_SKEW_S": str(5 * 365 * 86400)}
    for name, s in (("intruder", intruder), ("worker", worker)):
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "nhiguard.streams.cli", "worker"],
                env=worker_env(s) | years,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    try:

        def accounted(out):  # or no point waiting: the worker stopped
            return len(out) >= len(labels) or procs["worker"].poll() is not None

        soc = _read(as_user("soc"), "soc", [t.decisions, t.deadletter], accounted, timeout=240)
        seen = {
            (r["input"]["topic"], r["input"]["partition"], r["input"]["offset"])
            if topic == t.decisions
            else (r["topic"], r["partition"], r["offset"])
            for topic, r in soc
        }
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert seen == set(labels), f"{len(seen)} of {len(labels)} accounted for; worker log:\n{log[-3000:]}"
        assert not [r for topic, r in soc if topic == t.deadletter]
        named = {cid: labels[(r["input"]["topic"], r["input"]["partition"], r["input"]["offset"])]
                 for _, r in soc for cid in r.get("command_ids", [])}  # fmt: skip
        assert named, "the incidents yield commands"
        commands = _read(
            as_user("enforcer"),
            "enforcer",
            [t.commands],
            lambda out: {r["command_id"] for _, r in out} >= set(named),
            timeout=60,
        )
        kinds = Counter(named[r["command_id"]] for _, r in commands)
        assert set(kinds) == {"incident:cms", "incident:ci", "incident:registry"}

        # The worker's intruder twin (a wrong password) got nowhere, and said why.
        assert procs["intruder"].wait(90) != 0
        assert "Authentication failed" in (tmp_path / "intruder.log").read_text(errors="replace")
        # Faust created its changelogs under the app id prefix, with the configured min.insync.replicas.
        changelog = ConfigResource(ConfigResource.Type.TOPIC, "nhiguard-identity-state-changelog")
        entry = admin.describe_configs([changelog])[changelog].result(30)["min.insync.replicas"]
        assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


def _produce(settings: Settings, topic: str) -> str | None:
    """Produce one record; None once delivered, else the delivery error and what the client reported."""
    errors, client = [], []
    conf = {"message.timeout.ms": 10000, "log_level": 0, "error_cb": lambda e: client.append(str(e))}
    p = Producer(confluent_config(settings, **conf))
    p.produce(topic, b'{"probe": true}', on_delivery=lambda err, _m: errors.append(err))
    p.flush(20)
    assert errors, "no delivery report"
    return None if errors[0] is None else "; ".join([str(errors[0]), *client])


def test_a_shipper_writes_its_own_input_topic_and_no_other(cluster):
    as_user, _ = cluster
    t = Topics()
    assert _produce(as_user("shipper-cms"), t.cms) is None
    for other in (t.ci, t.registry, t.runtime, t.by_identity, t.identities, t.commands):
        err = _produce(as_user("shipper-cms"), other)
        assert err is not None and "TOPIC_AUTHORIZATION_FAILED" in err, (other, err)


def test_clients_without_credentials_or_with_a_wrong_password_are_refused(cluster):
    as_user, _ = cluster
    good = as_user("nhiguard-operator")
    wrong = as_user("nhiguard-operator", "not-the-password")
    err = _produce(wrong, Topics().identities)
    assert err is not None and "Authentication failed" in err
    no_sasl = replace(good, kafka=replace(good.kafka, protocol="SSL"))  # TLS, but nobody
    for s in (wrong, no_sasl, replace(good, kafka=KafkaSecurity())):
        with pytest.raises(KafkaException):
            AdminClient(confluent_config(s, log_level=0)).list_topics(timeout=5)
    # Authenticated, but not authorized: the enforcer reads commands and writes nothing.
    err = _produce(as_user("enforcer"), Topics().commands)
    assert err is not None and "TOPIC_AUTHORIZATION_FAILED" in err
