"""Client security settings: read once from NHIGUARD_KAFKA_*, turned into each client's configuration."""

import ssl

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from nhiguard.kafka_clients import confluent_config, faust_settings, topic_config
from nhiguard.settings import SettingsError, load_settings
from tools import REPO_ROOT
from tools.demo import security_env


def _pem_ca(tmp_path):
    """A real CA certificate (the SSL context loads it)."""
    from tools.certs import make_pki

    return make_pki(tmp_path)


def test_plaintext_by_default_adds_nothing_but_the_protocol():
    s = load_settings(env={"KAFKA_BOOTSTRAP": "k:9092"})
    assert confluent_config(s, **{"acks": "all"}) == {
        "bootstrap.servers": "k:9092",
        "security.protocol": "plaintext",
        "acks": "all",
    }
    kw = faust_settings(s)
    assert kw == {"broker": "kafka://k:9092", "topic_replication_factor": 1}
    assert topic_config(s) == {}


def test_sasl_ssl_scram_with_the_password_from_a_file(tmp_path):
    pki = _pem_ca(tmp_path)
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\n")
    env = {
        "NHIGUARD_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "NHIGUARD_KAFKA_SSL_CA_FILE": str(pki.ca_file),
        "NHIGUARD_KAFKA_SASL_USERNAME": "nhiguard-worker",
        "NHIGUARD_KAFKA_SASL_PASSWORD": "from-the-variable",
        "NHIGUARD_KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    s = load_settings(env=env)
    assert s.kafka.password == "s3cret-from-file"  # the mounted secret wins, without its newline
    assert "s3cret" not in repr(s)  # never in a log line that prints the settings
    conf = confluent_config(s)
    assert conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("nhiguard-worker", "s3cret-from-file")
    assert conf["ssl.ca.location"] == str(pki.ca_file)
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    # What Faust hands to aiokafka's consumer, producer and topic creation:
    auth = credentials_to_aiokafka_auth(faust_settings(s)["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "nhiguard-worker",
        "s3cret-from-file",
    )
    ctx = auth["ssl_context"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_mtls_and_plain_and_no_hostname_check(tmp_path):
    pki = _pem_ca(tmp_path)
    env = {
        "NHIGUARD_KAFKA_SECURITY_PROTOCOL": "SSL",
        "NHIGUARD_KAFKA_SSL_CA_FILE": str(pki.ca_file),
        "NHIGUARD_KAFKA_SSL_CERT_FILE": str(pki.client_cert),
        "NHIGUARD_KAFKA_SSL_KEY_FILE": str(pki.client_key),
        "NHIGUARD_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    s = load_settings(env=env)
    conf = confluent_config(s)
    assert conf["ssl.certificate.location"] == str(pki.client_cert)
    assert conf["ssl.key.location"] == str(pki.client_key)
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.mechanism" not in conf
    creds = faust_settings(s)["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED and not auth["ssl_context"].check_hostname

    plain = load_settings(
        env={
            "NHIGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "NHIGUARD_KAFKA_SASL_MECHANISM": "plain",
            "NHIGUARD_KAFKA_SASL_USERNAME": "u",
            "NHIGUARD_KAFKA_SASL_PASSWORD": "p",
        }
    )
    auth = credentials_to_aiokafka_auth(faust_settings(plain)["broker_credentials"])
    assert (auth["security_protocol"], auth["sasl_mechanism"], auth["ssl_context"]) == (
        "SASL_PLAINTEXT",
        "PLAIN",
        None,
    )
    assert "ssl.ca.location" not in confluent_config(plain)


def test_the_settings_survive_the_round_trip_through_a_worker_environment(tmp_path):
    pki = _pem_ca(tmp_path)
    env = {
        "NHIGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "NHIGUARD_KAFKA_SSL_CA_FILE": str(pki.ca_file),
        "NHIGUARD_KAFKA_SASL_USERNAME": "w",
        "NHIGUARD_KAFKA_SASL_PASSWORD": "pw",
    }
    s = load_settings(env=env)
    assert load_settings(env=security_env(s.kafka)).kafka == s.kafka


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"NHIGUARD_KAFKA_SECURITY_PROTOCOL": "TLS"}, "NHIGUARD_KAFKA_SECURITY_PROTOCOL"),
        ({"NHIGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "NHIGUARD_KAFKA_SASL_USERNAME"),
        (
            {"NHIGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "NHIGUARD_KAFKA_SASL_USERNAME": "u"},
            "password",
        ),
        ({"NHIGUARD_KAFKA_SASL_MECHANISM": "GSSAPI"}, "NHIGUARD_KAFKA_SASL_MECHANISM"),
        ({"NHIGUARD_KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "no such file"),
        ({"NHIGUARD_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "cannot read"),
        ({"NHIGUARD_KAFKA_SSL_CHECK_HOSTNAME": "maybe"}, "true or false"),
    ],
)
def test_unusable_settings_are_refused_with_the_variable_named(env, says):
    with pytest.raises(SettingsError, match=says):
        load_settings(env=env)


def test_cert_without_key_is_refused(tmp_path):
    pki = _pem_ca(tmp_path)
    with pytest.raises(SettingsError, match="go together"):
        load_settings(env={"NHIGUARD_KAFKA_SSL_CERT_FILE": str(pki.client_cert)})


def test_replication_settings_reach_created_topics_and_faust():
    s = load_settings(env={"NHIGUARD_REPLICATION_FACTOR": "3", "NHIGUARD_MIN_INSYNC_REPLICAS": "2"})
    assert topic_config(s) == {"min.insync.replicas": "2"}
    assert faust_settings(s)["topic_replication_factor"] == 3


def test_no_kafka_client_is_configured_outside_the_helper():
    """Every confluent-kafka client of the product, the dev tools and the benchmarks takes its configuration
    from nhiguard.kafka_clients, so none can miss the security settings."""
    allowed = {
        "nhiguard/kafka_clients.py",
        "tools/broker.py",
    }  # the broker's own probe: its listener's config
    offenders = [
        str(p.relative_to(REPO_ROOT))
        for d in ("nhiguard", "streams", "tools", "bench")
        for p in (REPO_ROOT / d).rglob("*.py")
        if '"bootstrap.servers"' in p.read_text() and str(p.relative_to(REPO_ROOT)) not in allowed
    ]
    assert not offenders
    faust_apps = [
        str(p.relative_to(REPO_ROOT))
        for d in ("streams", "bench")
        for p in (REPO_ROOT / d).rglob("*.py")
        if "broker=f" in p.read_text()
    ]
    assert not faust_apps
