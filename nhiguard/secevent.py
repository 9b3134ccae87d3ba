"""A REVOKE command as a Security Event Token (RFC 8417) with a CAEP event, signed with nhiguard's Ed25519 key
(joserfc), and the SSF transmitter metadata and JWKS a receiver verifies it with (README "SSF / CAEP").

CAEP defines no subject for a non-human identity's credential, so nhiguard's is (SSF 1.0 subject members,
RFC 9493 formats):
- a REVOKE of a credential (`target` a credential id `<scheme>:<id>` of the inventory) is a
  `credential-change` event, change_type `revoke`, credential_type from the id's scheme (CREDENTIAL_TYPES),
  friendly_name the credential id; its `sub_id` is a complex subject whose `application` is the identity
  (`iss_sub`: iss this transmitter, sub nhiguard's identity id: the inventory is the namespace) and whose
  `credential` member (ours; SSF receivers ignore members they do not know) is the credential id (`opaque`);
- a REVOKE of `identity:<id>` (an identity the inventory lists without credential ids: all of its access) is a
  `session-revoked` event whose `sub_id` is the complex subject with only `application`: every session and
  token of that identity.
The SET's `jti` is derived from the command id (the same command is the same SET), `txn` is the command id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey

from nhiguard.signing import Signer

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
CREDENTIAL_CHANGE = CAEP + "credential-change"
SESSION_REVOKED = CAEP + "session-revoked"
PUSH = "urn:ietf:rfc:8935"
# RFC 9864's fully-specified name for Ed25519 signatures (the polymorphic "EdDSA" it deprecates is refused by
# joserfc's defaults).
ALG = "Ed25519"
SET_TYPE = "secevent+jwt"
JWKS_PATH = "/ssf/jwks.json"
WELL_KNOWN = "/.well-known/ssf-configuration"

# credential_type by the credential id's scheme (the part before the first ':'). CAEP lets transmitter and
# receiver agree on types beyond its own list (all of which are a person's authenticators).
CREDENTIAL_TYPES = {
    "api-token": (
        "github-pat", "github-actions-token", "github-deploy-key", "contentful-cma-token",
        "contentful-app-key", "aws-access-key", "k8s-sa-token", "api-token",
    ),
    "registry-publish-token": ("verdaccio", "verdaccio-token", "npm-token", "npm-publish-token"),
    "oauth-client": ("github-app", "github-app-installation", "oauth-client"),
    "ci-oidc-trust": ("npm-trusted-publisher", "github-oidc", "gitlab-oidc", "ci-oidc"),
}  # fmt: skip
_BY_SCHEME = {scheme: kind for kind, schemes in CREDENTIAL_TYPES.items() for scheme in schemes}
OTHER_CREDENTIAL = "nhi-credential"  # a scheme not above
IDENTITY_PREFIX = "identity:"


class NotTransmitted(Exception):
    """A command that is no SET (a DENY, not a credential): why, for the log."""


def credential_type(credential_id: str) -> str:
    scheme = credential_id.split(":", 1)[0] if ":" in credential_id else ""
    return _BY_SCHEME.get(scheme, OTHER_CREDENTIAL)


def set_id(command_id: str) -> str:
    """The SET's jti: the same command id always gives the same one (receivers drop a jti seen before)."""
    return "nhiguard-" + hashlib.sha256(f"set|{command_id}".encode()).hexdigest()[:32]


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


def event_of(cmd: Mapping[str, Any], issuer: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(sub_id, event type, event claims) of a REVOKE command; NotTransmitted for any other."""
    target, identity = str(cmd["target"]), str(cmd["identity"])
    if cmd["kind"] != "REVOKE" or cmd["target_type"] != "credential":
        raise NotTransmitted(f"{cmd['kind']} of {cmd['target_type']} {target}: not a credential revoke")
    app = {"format": "iss_sub", "iss": issuer, "sub": identity}
    common = {
        "event_timestamp": _ms(cmd["issued_at"]) // 1000,
        "initiating_entity": "policy",
        "reason_admin": {"en": "; ".join(cmd["reasons"])[:1000] or ", ".join(cmd["rule_ids"])},
    }
    if target.startswith(IDENTITY_PREFIX):
        return {"format": "complex", "application": app}, SESSION_REVOKED, common
    sub_id = {"format": "complex", "application": app, "credential": {"format": "opaque", "id": target}}
    claims = {
        "credential_type": credential_type(target),
        "change_type": "revoke",
        "friendly_name": target,
        **common,
    }
    return sub_id, CREDENTIAL_CHANGE, claims


def set_claims(cmd: Mapping[str, Any], issuer: str, audience: str, now_s: int) -> dict[str, Any]:
    """The SET's claims for one receiver (its `aud`)."""
    sub_id, event_type, event = event_of(cmd, issuer)
    return {
        "iss": issuer,
        "jti": set_id(str(cmd["command_id"])),
        "iat": now_s,
        "aud": audience,
        "txn": str(cmd["command_id"]),
        "sub_id": sub_id,
        "events": {event_type: event},
    }


@dataclass(frozen=True)
class SetSigner:
    """Signs SETs with nhiguard's Ed25519 key (nhiguard/signing.py loads it) and publishes its public half."""

    issuer: str
    signer: Signer

    @cached_property
    def _key(self) -> OKPKey:
        from cryptography.hazmat.primitives import serialization

        pem = self.signer.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return OKPKey.import_key(pem, {"kid": self.signer.kid})

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The compact JWS (a `secevent+jwt`) of these claims."""
        header = {"typ": SET_TYPE, "alg": ALG, "kid": self.signer.kid}
        return jwt.encode(header, dict(claims), self._key, algorithms=[ALG])

    def token(self, cmd: Mapping[str, Any], audience: str, now_s: int | None = None) -> str:
        now = int(time.time()) if now_s is None else now_s
        return self.sign(set_claims(cmd, self.issuer, audience, now))

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [{**self.signer.jwk(), "alg": ALG}]}

    def metadata(self) -> dict[str, Any]:
        """The transmitter configuration (SSF 1.0 section 7.1) at /.well-known/ssf-configuration."""
        return {
            "spec_version": "1_0",
            "issuer": self.issuer,
            "jwks_uri": self.issuer + JWKS_PATH,
            "delivery_methods_supported": [PUSH],
        }


def verify(token: str, jwks: Mapping[str, Any], issuer: str) -> dict[str, Any]:
    """A receiver's check of a SET: its signature against the JWKS, its type and issuer; the claims. Raises
    ValueError saying why not."""
    from joserfc.errors import JoseError

    try:
        decoded = jwt.decode(token, KeySet.import_key_set(dict(jwks)), algorithms=[ALG])  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"not a SET signed by a key of the JWKS: {exc}") from None
    if decoded.header.get("typ") != SET_TYPE:
        raise ValueError(f"typ {decoded.header.get('typ')!r}, not {SET_TYPE}")
    if decoded.claims.get("iss") != issuer:
        raise ValueError(f"iss {decoded.claims.get('iss')!r}, not {issuer}")
    return dict(decoded.claims)
