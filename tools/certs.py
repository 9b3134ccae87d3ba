"""A throwaway PKI for a secured local broker: a CA, a broker certificate for 127.0.0.1/localhost in a PKCS12
keystore Kafka reads, and a client certificate for mTLS. Made fresh by each test run; never for production."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca_file: Path  # PEM: the CA certificate (clients' and the broker's trust store)
    keystore: Path  # PKCS12: the broker's key and certificate chain
    keystore_password: str
    client_cert: Path  # PEM: a client certificate the CA signed (mTLS)
    client_key: Path  # PEM: its key, unencrypted


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = issuer if issuer else (subject, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return b.sign(signer, hashes.SHA256())


def make_pki(directory: Path, broker_cn: str = "nhiguard-test-broker") -> Pki:
    """Write the CA, the broker's keystore and a client certificate into directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("nhiguard-test-ca", ca_key, None, ca=True)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    # The broker serves TLS to clients and, on the controller listener, presents the same certificate as a
    # client: both usages.
    broker = _cert(
        broker_cn,
        broker_key,
        ("nhiguard-test-ca", ca_key),
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert(
        "nhiguard-test-client",
        client_key,
        ("nhiguard-test-ca", ca_key),
        usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    pem = serialization.Encoding.PEM
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    password = secrets.token_urlsafe(16)
    keystore = directory / "broker.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker", broker_key, broker, [ca], serialization.BestAvailableEncryption(password.encode())
        )
    )
    client_cert = directory / "client.pem"
    client_cert.write_bytes(client.public_bytes(pem) + ca.public_bytes(pem))
    client_key_file = directory / "client.key"
    client_key_file.write_bytes(
        client_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pki(ca_file, keystore, password, client_cert, client_key_file)
