"""Ed25519 signatures on the records nhiguard emits (commands, held/released commands, policy bundles).

The signed bytes are the record value exactly as produced; the signature and the signer's key id travel in
two record headers, so the value (Avro, or a bundle's JSON) is untouched and a consumer that ignores headers
still reads it:
- `nhiguard-sig`: the 64-byte Ed25519 signature, base64url without padding (ASCII);
- `nhiguard-kid`: the key id (ASCII), which selects the public key in the verifier's JWKS.

Keys: a private key file (PKCS#8 PEM, or a JWK with `kty: OKP`, `crv: Ed25519`, `d`, `x`) and a public JWKS
(RFC 7517) of `OKP`/`Ed25519` keys with `x` and `kid`. A key without a configured or JWK `kid` gets its RFC
7638 thumbprint as id, so signer and JWKS agree without coordination. Every signer of nhiguard (the worker's
commands, the bundle publisher, later the Security Event Tokens) loads its key here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from nhiguard.settings import Settings

SIG_HEADER = "nhiguard-sig"
KID_HEADER = "nhiguard-kid"
Headers = Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None


class SigningError(Exception):
    """A key or JWKS that cannot be used, with the reason (a configuration error, never a bad record)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Strict base64url (padding optional): anything else raises ValueError."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url text")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64url: {exc}") from exc


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the default key id."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(_raw_public(key))}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(_raw_public(key)),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }


@dataclass(frozen=True)
class Signer:
    kid: str
    key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.key.public_key()

    def sign(self, value: bytes) -> bytes:
        return self.key.sign(value)

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        """The record headers that sign this exact value."""
        return [(SIG_HEADER, b64url(self.sign(value)).encode()), (KID_HEADER, self.kid.encode())]

    def jwk(self) -> dict[str, str]:
        """This key's public half, as a JWKS entry."""
        return public_jwk(self.public_key, self.kid)


def _okp_x(jwk: Mapping[str, Any], where: str) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise SigningError(f"{where}: not an Ed25519 key (kty OKP, crv Ed25519)")
    try:
        x = unb64url(jwk["x"])
        if len(x) != 32:
            raise ValueError(f"x is {len(x)} bytes, not 32")
        return Ed25519PublicKey.from_public_bytes(x)
    except (KeyError, ValueError) as exc:
        raise SigningError(f"{where}: bad public key x: {exc}") from exc


def _private_from_jwk(jwk: Mapping[str, Any], where: str) -> tuple[Ed25519PrivateKey, str | None]:
    public = _okp_x(jwk, where)
    try:
        d = unb64url(jwk["d"])
        if len(d) != 32:
            raise ValueError(f"d is {len(d)} bytes, not 32")
        key = Ed25519PrivateKey.from_private_bytes(d)
    except (KeyError, ValueError) as exc:
        raise SigningError(f"{where}: bad private key d: {exc}") from exc
    if _raw_public(key.public_key()) != _raw_public(public):
        raise SigningError(f"{where}: x is not the public half of d")
    kid = jwk.get("kid")
    return key, str(kid) if kid else None


def load_signer(path: Path, kid: str | None = None) -> Signer:
    """The private key in `path` (PKCS#8 PEM or a JWK), with its key id: `kid` if given, else the JWK's
    `kid`, else the key's thumbprint."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read signing key {path}: {exc.strerror or exc}") from exc
    if data.lstrip().startswith(b"{"):
        try:
            jwk = json.loads(data)
        except ValueError as exc:
            raise SigningError(f"signing key {path}: not a JWK (invalid JSON: {exc})") from exc
        if not isinstance(jwk, dict):
            raise SigningError(f"signing key {path}: a JWK is a JSON object")
        key, jwk_kid = _private_from_jwk(jwk, f"signing key {path}")
    else:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningError(f"signing key {path}: not an unencrypted PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(f"signing key {path}: a {type(key).__name__}, not an Ed25519 key")
        jwk_kid = None
    return Signer(kid or jwk_kid or thumbprint(key.public_key()), key)


def new_key_pem() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Jwks:
    """The public keys a verifier trusts, by key id."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def parse(cls, data: bytes | str, where: str = "JWKS") -> Jwks:
        """An RFC 7517 key set; keys for another use or algorithm are skipped, a private key is refused."""
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise SigningError(f"{where}: invalid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise SigningError(f'{where}: a JWKS is a JSON object with a "keys" list')
        keys: dict[str, Ed25519PublicKey] = {}
        for i, jwk in enumerate(doc["keys"]):
            at = f"{where}: keys[{i}]"
            if not isinstance(jwk, dict):
                raise SigningError(f"{at}: not a JSON object")
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or jwk.get("use", "sig") != "sig":
                continue  # another party's key (RSA, encryption) in a shared set
            if "d" in jwk:
                raise SigningError(f"{at}: holds a private key (d); publish only public keys")
            public = _okp_x(jwk, at)
            kid = str(jwk.get("kid") or thumbprint(public))
            if kid in keys:
                raise SigningError(f"{at}: key id {kid!r} appears twice")
            keys[kid] = public
        if not keys:
            raise SigningError(f"{where}: no Ed25519 signing key (kty OKP, crv Ed25519) in it")
        return cls(keys)

    @classmethod
    def load(cls, path: Path) -> Jwks:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SigningError(f"cannot read JWKS {path}: {exc.strerror or exc}") from exc
        return cls.parse(data, f"JWKS {path}")

    def document(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(k, kid) for kid, k in self.keys.items()]}


@dataclass(frozen=True)
class Verdict:
    """Whether a record is signed by a trusted key: `ok`, the key id it names, and why not."""

    ok: bool
    kid: str | None
    reason: str  # "valid", "unsigned", "unknown key id", "bad signature", "malformed signature header"

    def __bool__(self) -> bool:
        return self.ok


def _header_values(headers: Headers, name: str) -> list[bytes | str | None]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [v for k, v in items if (k.decode(errors="replace") if isinstance(k, bytes) else k) == name]


def _ascii(value: bytes | str | None) -> str:
    text = value.decode("ascii") if isinstance(value, bytes) else value  # UnicodeDecodeError is a ValueError
    if not isinstance(text, str):
        raise ValueError("empty")
    return text


def verify_record(value: bytes | None, headers: Headers, jwks: Jwks) -> Verdict:
    """Check a record's signature headers against the trusted keys. Exactly one signature and one key id are
    accepted: a second signature header could let a lax consumer pick the one it likes."""
    sigs, kids = _header_values(headers, SIG_HEADER), _header_values(headers, KID_HEADER)
    if not sigs and not kids:
        return Verdict(False, None, "unsigned")
    if len(sigs) != 1 or len(kids) != 1:
        return Verdict(
            False, None, f"malformed signature header ({len(sigs)} signatures, {len(kids)} key ids)"
        )
    try:
        kid = _ascii(kids[0])
        sig = unb64url(_ascii(sigs[0]))
    except ValueError as exc:
        return Verdict(False, None, f"malformed signature header: {exc}")
    key = jwks.keys.get(kid)
    if key is None:
        return Verdict(False, kid, f"unknown key id {kid!r}")
    if value is None:
        return Verdict(False, kid, "no value")
    try:
        key.verify(sig, value)
    except InvalidSignature:
        return Verdict(False, kid, "bad signature (value altered, or signed by another key)")
    return Verdict(True, kid, "valid")


def command_signer(settings: Settings) -> Signer | None:
    """The signer of this process's commands, or None when no key is configured (refused when signing is
    required). Raises SigningError for a key that is configured but unusable: never sign with a fallback."""
    if settings.signing_key is None:
        if settings.require_signing:
            raise SigningError("NHIGUARD_REQUIRE_SIGNING is set but no NHIGUARD_SIGNING_KEY is configured")
        return None
    return load_signer(settings.signing_key, settings.signing_kid or None)


def trusted_keys(path: Path | None, what: str, settings: Settings) -> Jwks | None:
    """The JWKS at path, or None when not configured (refused when signing is required)."""
    if path is None:
        if settings.require_signing:
            raise SigningError(f"NHIGUARD_REQUIRE_SIGNING is set but no {what} is configured")
        return None
    return Jwks.load(path)
