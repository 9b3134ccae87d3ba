"""A throwaway single-node Kafka broker (KRaft) for the demo and the tests when Docker is not available.

The broker is the Apache Kafka jar run as a plain `java` subprocess: Maven resolves the pinned jars once
(tools/kafka/pom.xml); each broker listens on free ports on 127.0.0.1 only, so several can run side by side.

python -m tools.broker [--port N] [--data-dir DIR]   # `make broker`: run one in the foreground
python -m tools.broker --resolve-only                # `make kafka`: only resolve the jars into the cache

LocalBroker(..., secured=BrokerSecurity(pki, users)) starts it with one SASL_SSL listener instead (SCRAM
users made at format time, the controller listener on mutual TLS, an authorizer that refuses what no ACL
allows), as tests/integration/test_secured.py does.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from nhiguard.kafka_clients import security_config
from nhiguard.settings import KafkaSecurity, load_settings

if TYPE_CHECKING:  # tools.certs needs cryptography (a dev dependency): only secured brokers import it
    from tools.certs import Pki

KAFKA_VERSION = "4.3.1"

_KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
_POM = _KAFKA_DIR / "pom.xml"
_LOG4J_CONFIG = _KAFKA_DIR / "log4j2.properties"
_RESOLVED_MARKER = ".resolved"
_LOG_NAME = "broker.log"


class BrokerError(RuntimeError):
    """The local broker could not be provisioned, started or kept running."""


def default_cache_dir() -> Path:
    """The configured cache: `$NHIGUARD_CACHE_DIR`, else the checkout's `.cache` (Settings.cache_dir)."""
    return load_settings().cache_dir


def ensure_kafka(cache_dir: Path) -> Path:
    """Resolve the Kafka jars into `cache_dir/kafka-<version>/libs` (once) and return that directory."""
    home = Path(cache_dir) / f"kafka-{KAFKA_VERSION}"
    libs, marker = home / "libs", home / _RESOLVED_MARKER
    if marker.is_file() and libs.is_dir():
        return libs
    _require_tools("java", "mvn")
    home.mkdir(parents=True, exist_ok=True)
    # pytest and the demo may resolve at the same moment; the loser waits and then finds the marker.
    with _file_lock(home / ".lock"):
        if marker.is_file() and libs.is_dir():
            return libs
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            "mvn", "-q", "-B", "-f", str(_POM), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-Dkafka.version={KAFKA_VERSION}", f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"resolving the Kafka {KAFKA_VERSION} jars failed (exit {done.returncode}): {' '.join(cmd)}\n"
                + _tail_text(done.stdout + done.stderr)
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        # Written last: a marker means a complete libs/ even if an earlier attempt was killed half-way.
        marker.write_text(f"kafka {KAFKA_VERSION}\n")
    return libs


@dataclass(frozen=True)
class BrokerSecurity:
    """A secured broker: TLS from `pki`, SCRAM-SHA-512 `users` (name -> password; `admin` among them is the
    super user, as is the broker itself), and StandardAuthorizer with allow.everyone.if.no.acl.found=false."""

    pki: Pki
    users: Mapping[str, str] = field(repr=False)
    admin: str = "admin"

    def client(self, user: str, password: str | None = None) -> KafkaSecurity:
        """What a client of this broker configures (NHIGUARD_KAFKA_*) to connect as `user`."""
        pw = self.users[user] if password is None else password
        return KafkaSecurity(protocol="SASL_SSL", ca_file=self.pki.ca_file, username=user, password=pw)

    def properties(self, port: int, controller_port: int) -> dict[str, str]:
        admin = f'username="{self.admin}" password="{self.users[self.admin]}"'
        broker_cn = _certificate_cn(self.pki)
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
            "inter.broker.listener.name": "SASL_SSL",
            # The controller cannot use SCRAM (its credentials live in the metadata it serves): mutual TLS.
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "listener.name.controller.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                f"org.apache.kafka.common.security.scram.ScramLoginModule required {admin};"
            ),
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.pki.keystore),
            "ssl.keystore.password": self.pki.keystore_password,
            "ssl.key.password": self.pki.keystore_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca_file),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{self.admin};User:CN={broker_cn}",
        }

    def format_args(self) -> tuple[str, ...]:
        """`kafka-storage format` arguments that create the SCRAM users with the metadata."""
        out: list[str] = []
        for name, password in self.users.items():
            if not (name.replace("-", "").replace("_", "").isalnum() and password.isalnum()):
                raise BrokerError(
                    f"user {name!r}: names [A-Za-z0-9_-], passwords alphanumeric (format syntax)"
                )
            out += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return tuple(out)


class LocalBroker:
    """One KRaft broker+controller process on 127.0.0.1, started and stopped from Python."""

    def __init__(
        self,
        cache_dir: Path,
        data_dir: Path | None = None,
        port: int | None = None,
        secured: BrokerSecurity | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.port = port
        self.secured = secured
        self._given_data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self._data_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._dir_lock: IO[str] | None = None
        self._ports: tuple[int, int] | None = None  # client and controller port: kept across restart()

    @property
    def bootstrap(self) -> str:
        if self._port is None:
            raise BrokerError("the broker is not started")
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        if self._data_dir is None:
            raise BrokerError("the broker is not started")
        return self._data_dir / _LOG_NAME

    def start(self, timeout: float = 120) -> str:
        """Start the broker; return its bootstrap address once it answers a metadata request.

        `timeout` bounds the broker's startup; resolving the jars on first use (~30 s) comes on top.
        """
        if self._proc is not None:
            raise BrokerError(f"already started at {self.bootstrap}")
        _require_tools("java")
        classpath = str(ensure_kafka(self.cache_dir) / "*")  # java expands the wildcard itself
        deadline = time.monotonic() + timeout
        self._data_dir = self._make_data_dir()
        try:
            port, controller_port = self._ports = self._pick_ports()
            props = self._write_properties(port, controller_port)
            if not (self._data_dir / "data" / "meta.properties").is_file():
                self._format(classpath, props)
            self._launch(classpath, props)
            self._port = port
            self._wait_ready(deadline, timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after `timeout` s; delete the data dir if temporary."""
        self._halt(timeout)
        atexit.unregister(self.stop)
        self._port = None
        if self._dir_lock is not None:
            self._dir_lock.close()  # releases the flock
            self._dir_lock = None
        if self._given_data_dir is None and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def restart(self, down_s: float = 0.0, timeout: float = 120, stop_timeout: float = 30) -> str:
        """Stop the broker process and start it again on the same ports and data (its topics, offsets and
        consumer groups kept), as a broker restart in a cluster would; `down_s` seconds in between."""
        if self._proc is None or self._data_dir is None or self._ports is None:
            raise BrokerError("the broker is not started")
        self._halt(stop_timeout)
        time.sleep(down_s)
        deadline = time.monotonic() + timeout
        classpath = str(ensure_kafka(self.cache_dir) / "*")
        try:
            self._launch(classpath, self._data_dir / "server.properties")
            self._port = self._ports[0]
            self._wait_ready(deadline, timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def _halt(self, timeout: float) -> None:
        """Stop the JVM only: the data dir and the ports stay this broker's (restart() uses them again)."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
            try:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            finally:
                # Also reached on a second Ctrl-C during the wait: never leave the JVM behind.
                if proc.poll() is None:
                    _signal_group(proc, signal.SIGKILL)
                    proc.wait()
            self._proc = None

    def __enter__(self) -> Self:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _make_data_dir(self) -> Path:
        if self._given_data_dir is not None:
            self._given_data_dir.mkdir(parents=True, exist_ok=True)
            # A second broker on the same directory gets as far as running its controller on the first one's
            # metadata log before Kafka's own lock stops it; refuse before launching anything.
            lock = open(self._given_data_dir / ".nhiguard.lock", "a")  # held until stop()
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                raise BrokerError(f"{self._given_data_dir} is in use by another broker") from None
            self._dir_lock = lock
            return self._given_data_dir
        run = self.cache_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        _remove_orphaned_run_dirs(run)
        # The pid in the name lets a later run delete this dir if this process dies without calling stop().
        return Path(tempfile.mkdtemp(prefix=f"broker-{os.getpid()}-", dir=run))

    def _pick_ports(self) -> tuple[int, int]:
        if self.port is not None and _accepts(self.port):
            raise BrokerError(f"127.0.0.1:{self.port} is already in use")
        a, b = _free_ports(2)
        if self.port is None:
            return a, b
        return self.port, b if b != self.port else a

    def _write_properties(self, port: int, controller_port: int) -> Path:
        assert self._data_dir is not None
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._data_dir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            # Single node: every internal topic must fit on one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",  # the default 50 makes the first consumer group slow
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",  # tests and the demo should not wait 3 s per group join
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.retention.hours": "24",
        }
        if self.secured is not None:
            props |= self.secured.properties(port, controller_port)
        path = self._data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _java(self, classpath: str, *args: str) -> list[str]:
        return [
            "java", "-Xmx768m", "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={_LOG4J_CONFIG}",
            "-cp", classpath, *args,
        ]  # fmt: skip

    def _format(self, classpath: str, props: Path) -> None:
        args = ("format", "--standalone", "-t", _cluster_id(), "-c", str(props))
        if self.secured is not None:
            args += self.secured.format_args()
        cmd = self._java(classpath, "kafka.tools.StorageTool", *args)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = _tail_text(done.stdout + done.stderr)
            raise BrokerError(f"formatting the Kafka storage failed:\n{output}")

    def _launch(self, classpath: str, props: Path) -> None:
        assert self._data_dir is not None
        cmd = self._java(classpath, "kafka.Kafka", str(props))
        # If this process is SIGKILLed, atexit never runs; the parent-death signal still stops the JVM.
        # Only from the main thread: the signal fires when the *thread* that forked exits.
        if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
            cmd = ["setpriv", "--pdeathsig", "TERM", *cmd]
        with open(self._data_dir / _LOG_NAME, "ab") as log:
            # Own process group: Ctrl-C reaches only us, and we shut the broker down in order.
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self._data_dir, start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self._proc is not None and self._port is not None
        while True:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with code {self._proc.returncode} during startup;"
                    f" {self.log_path}:\n{_tail_file(self.log_path)}"
                )
            # Probe the socket first: librdkafka would log every refused connection to stderr.
            if _accepts(self._port) and _answers_metadata(self.bootstrap, self._admin_config()):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Kafka broker did not become ready within {timeout:g} s;"
                    f" {self.log_path}:\n{_tail_file(self.log_path)}"
                )
            time.sleep(0.2)

    def _admin_config(self) -> dict[str, str]:
        if self.secured is None:
            return {}
        return security_config(self.secured.client(self.secured.admin))


def docker_available() -> bool:
    """True if a Docker engine answers within a couple of seconds."""
    try:
        import docker  # dev dependency (via testcontainers); absent in a plain install

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run the broker until Ctrl-C or SIGTERM; the exit code is 0 after a clean stop."""
    p = argparse.ArgumentParser(
        prog="python -m tools.broker",
        description=(
            f"Start a KRaft Kafka {KAFKA_VERSION} broker on 127.0.0.1 (jars resolved by Maven on first use,"
            " cached under $NHIGUARD_CACHE_DIR or .cache/), print KAFKA_BOOTSTRAP=<host:port>, and run until"
            " Ctrl-C."
        ),
    )
    p.add_argument("--port", type=int, default=None, help="client port (default: a free port)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep topics in this directory across runs (default: a temporary directory, deleted on exit)",
    )
    p.add_argument("--resolve-only", action="store_true", help="resolve the jars into the cache and exit")
    args = p.parse_args(argv)
    if args.resolve_only:
        try:
            print(ensure_kafka(default_cache_dir()))
        except BrokerError as e:
            print(f"tools.broker: {e}", file=sys.stderr)
            return 1
        return 0
    broker = LocalBroker(default_cache_dir(), data_dir=args.data_dir, port=args.port)
    # SIGTERM behaves like Ctrl-C, so `kill` and process managers also get a controlled broker shutdown.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        try:
            bootstrap = broker.start()
            print(f"KAFKA_BOOTSTRAP={bootstrap}", flush=True)
            print(f"Kafka {KAFKA_VERSION} is up; log: {broker.log_path}; Ctrl-C stops it.", file=sys.stderr)
            while broker.running:
                time.sleep(0.5)
            print(f"tools.broker: the broker exited unexpectedly; see {broker.log_path}", file=sys.stderr)
            return 1
        except BrokerError as e:
            print(f"tools.broker: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("tools.broker: stopping", file=sys.stderr)
            return 0
        finally:
            broker.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise BrokerError(
            f"{' and '.join(missing)} not found on PATH: the local Kafka broker needs Java 17+ and Maven"
            " (e.g. `apt-get install openjdk-17-jdk-headless maven`); or use Docker (compose.yaml)"
        )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _free_ports(n: int) -> list[int]:
    # Hold all sockets until every port is chosen, so the n ports are distinct.
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers_metadata(bootstrap: str, security: Mapping[str, str]) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    conf = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 2000, "log_level": 3}
    admin = AdminClient({**conf, **security})
    try:
        return bool(admin.list_topics(timeout=2).brokers)
    except KafkaException:
        return False


def _certificate_cn(pki: Pki) -> str:
    """The broker certificate's CN: its principal on the mutual-TLS controller listener."""
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    _, cert, _ = pkcs12.load_key_and_certificates(pki.keystore.read_bytes(), pki.keystore_password.encode())
    assert cert is not None
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _cluster_id() -> str:
    # As Kafka's Uuid.toString(): URL-safe base64 of 16 random bytes, unpadded, never starting with "-".
    while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cid


def _remove_orphaned_run_dirs(run: Path, prefix: str = "broker") -> None:
    """Delete `<prefix>-<pid>-*` run dirs whose process is gone (killed before it could clean up)."""
    for d in run.glob(f"{prefix}-*-*"):
        try:
            pid = int(d.name.split("-")[1])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _tail_file(path: Path, lines: int = 40) -> str:
    try:
        return _tail_text(path.read_text(errors="replace"), lines)
    except OSError as e:
        return f"(cannot read {path}: {e})"


def _tail_text(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
