"""Every Kafka client's connection settings, from the one KafkaSecurity (NHIGUARD_KAFKA_*, kafka_security.py).

confluent-kafka clients (the sink, the admin, the inventory and bundle readers and writers, the checkpoint's
reader, the CLI's) take `confluent_config`; the Faust worker (its aiokafka consumer and producer, and the
topic creation that goes through them) takes `faust_settings`.
"""

from __future__ import annotations

import ssl
from typing import Any

from nhiguard.kafka_security import KafkaSecurity
from nhiguard.settings import Settings


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A librdkafka configuration for settings.bootstrap with its security settings, plus `extra`."""
    return {"bootstrap.servers": settings.bootstrap, **security_config(settings.kafka), **extra}


def security_config(sec: KafkaSecurity) -> dict[str, Any]:
    """The librdkafka properties for TLS and SASL (none for PLAINTEXT)."""
    conf: dict[str, Any] = {"security.protocol": sec.protocol.lower()}
    if sec.tls:
        conf["ssl.endpoint.identification.algorithm"] = "https" if sec.check_hostname else "none"
        if sec.ca_file is not None:
            conf["ssl.ca.location"] = str(sec.ca_file)
        if sec.cert_file is not None and sec.key_file is not None:
            conf["ssl.certificate.location"] = str(sec.cert_file)
            conf["ssl.key.location"] = str(sec.key_file)
            if sec.key_password:
                conf["ssl.key.password"] = sec.key_password
    if sec.sasl:
        conf.update(
            {
                "sasl.mechanism": sec.sasl_mechanism,
                "sasl.username": sec.username,
                "sasl.password": sec.password,
            }
        )
    return conf


def ssl_context(sec: KafkaSecurity) -> ssl.SSLContext:
    """The TLS context aiokafka connects with: verifies the broker against ca_file (else the system CAs),
    presents the client certificate for mTLS."""
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(sec.ca_file) if sec.ca_file else None
    )
    ctx.check_hostname = sec.check_hostname  # the chain is verified either way (CERT_REQUIRED)
    if sec.cert_file is not None and sec.key_file is not None:
        ctx.load_cert_chain(str(sec.cert_file), str(sec.key_file), password=sec.key_password)
    return ctx


def faust_settings(settings: Settings) -> dict[str, Any]:
    """faust.App keyword arguments: the broker, its credentials, and the replication of the topics Faust
    creates (table changelogs, the assignor's topic). Faust hands `broker_credentials` to its consumer, its
    producer and the topic creation they do (faust/transport/drivers/aiokafka.py
    credentials_to_aiokafka_auth)."""
    import faust

    sec = settings.kafka
    kw: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap}",
        "topic_replication_factor": settings.replication_factor,
    }
    if sec.sasl:
        kw["broker_credentials"] = faust.SASLCredentials(
            username=sec.username,
            password=sec.password,
            mechanism=sec.sasl_mechanism,
            ssl_context=ssl_context(sec) if sec.tls else None,
        )
    elif sec.tls:
        kw["broker_credentials"] = faust.SSLCredentials(ssl_context(sec))
    return kw


def topic_config(settings: Settings) -> dict[str, str]:
    """Per-topic configuration every topic nhiguard or its worker creates gets (min.insync.replicas)."""
    if settings.min_insync_replicas is None:
        return {}
    return {"min.insync.replicas": str(settings.min_insync_replicas)}
