"""How every Kafka client of nhiguard connects (NHIGUARD_KAFKA_*): TLS, mTLS and SASL, read by load_settings.

nhiguard/settings.py stays the one place that reads configuration: it calls `load_kafka_security(env)` with
the environment it was given and keeps the result as `Settings.kafka` (re-exported there as KafkaSecurity).
This module is apart only because settings.py is at the module size limit; nhiguard/kafka_clients.py turns it
into the confluent-kafka and the Faust/aiokafka configuration, so no client is configured elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nhiguard.config_values import settings_error

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of nhiguard connects (NHIGUARD_KAFKA_*)."""

    protocol: str = "PLAINTEXT"
    ca_file: Path | None = None  # PEM CAs that sign the brokers' certificates (else the system's)
    cert_file: Path | None = None  # mTLS: this client's certificate chain (PEM) ...
    key_file: Path | None = None  # ... and its private key (PEM)
    key_password: str | None = field(default=None, repr=False)
    check_hostname: bool = True  # the broker's certificate must name the host it was reached at
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise settings_error(
                f"NHIGUARD_KAFKA_SECURITY_PROTOCOL: {self.protocol!r} is not one of {SECURITY_PROTOCOLS}"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise settings_error(
                f"NHIGUARD_KAFKA_SASL_MECHANISM: {self.sasl_mechanism!r} is not one of {SASL_MECHANISMS}"
            )
        if self.sasl and not (self.username and self.password):
            raise settings_error(
                f"security protocol {self.protocol} needs NHIGUARD_KAFKA_SASL_USERNAME and a password"
                " (NHIGUARD_KAFKA_SASL_PASSWORD or NHIGUARD_KAFKA_SASL_PASSWORD_FILE)"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise settings_error("NHIGUARD_KAFKA_SSL_CERT_FILE and NHIGUARD_KAFKA_SSL_KEY_FILE go together")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")


def _named_flag(var: str, text: str) -> bool:
    text = text.strip().lower()
    if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise settings_error(f"{var}: expected true or false, got {text!r}")
    return text in ("1", "true", "yes", "on")


def load_kafka_security(env: Mapping[str, str]) -> KafkaSecurity:
    """NHIGUARD_KAFKA_*; the password from a file (a mounted secret) wins over the variable."""
    password = env.get("NHIGUARD_KAFKA_SASL_PASSWORD")
    if path := env.get("NHIGUARD_KAFKA_SASL_PASSWORD_FILE"):
        try:
            password = Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            raise settings_error(
                f"NHIGUARD_KAFKA_SASL_PASSWORD_FILE: cannot read {path}: {exc.strerror}"
            ) from None
    files = {
        name: Path(env[var])
        for name, var in (
            ("ca_file", "NHIGUARD_KAFKA_SSL_CA_FILE"),
            ("cert_file", "NHIGUARD_KAFKA_SSL_CERT_FILE"),
            ("key_file", "NHIGUARD_KAFKA_SSL_KEY_FILE"),
        )
        if env.get(var)
    }
    for name, path in files.items():
        if not path.is_file():
            raise settings_error(f"NHIGUARD_KAFKA_SSL_{name.upper()}: no such file: {path}")
    check = env.get("NHIGUARD_KAFKA_SSL_CHECK_HOSTNAME")
    return KafkaSecurity(
        protocol=env.get("NHIGUARD_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper(),
        key_password=env.get("NHIGUARD_KAFKA_SSL_KEY_PASSWORD") or None,
        check_hostname=True if check is None else _named_flag("NHIGUARD_KAFKA_SSL_CHECK_HOSTNAME", check),
        sasl_mechanism=env.get("NHIGUARD_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").strip().upper(),
        username=env.get("NHIGUARD_KAFKA_SASL_USERNAME") or None,
        password=password or None,
        **files,  # type: ignore[arg-type]
    )
