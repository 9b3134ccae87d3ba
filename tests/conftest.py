"""Session-wide Kafka for integration tests: $KAFKA_BOOTSTRAP, else a Docker container, else a local JVM."""

import contextlib
import os
from collections.abc import Iterator

import pytest

from tools.broker import LocalBroker, default_cache_dir, docker_available

KAFKA_IMAGE = "apache/kafka:4.1.1"  # same image as compose.yaml


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a broker that lives for the whole test session."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP"):
        yield bootstrap
    elif docker_available():
        with _kafka_container() as bootstrap:
            yield bootstrap
    else:
        with LocalBroker(default_cache_dir()) as broker:
            yield broker.bootstrap


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    # testcontainers-python's KafkaContainer drives Confluent's cp-kafka start scripts and cannot start the
    # official apache/kafka image, so this follows testcontainers-java's apache/kafka module: the external
    # listener must advertise the host's mapped port, known only once the container runs, so the container
    # waits for a start script that is copied in after start.
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    script = "/tmp/nhiguard_start.sh"
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_exposed_ports(9092)
        .with_envs(
            CLUSTER_ID="4L6g3nShT-eMCtK--X86sw",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_INTER_BROKER_LISTENER_NAME="BROKER",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9094",
            KAFKA_NUM_PARTITIONS="1",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
        .with_command(["sh", "-c", f"while [ ! -f {script} ]; do sleep 0.1; done; exec sh {script}"])
    )
    container.start()
    try:
        bootstrap = f"{container.get_container_host_ip()}:{container.get_exposed_port(9092)}"
        start = (
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{bootstrap},BROKER://$(hostname):9093\n"
            "exec /etc/kafka/docker/run\n"
        )
        container.copy_into_container(start.encode(), script, mode=0o755)
        LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120).wait_until_ready(container)
        yield bootstrap
    finally:
        container.stop()
