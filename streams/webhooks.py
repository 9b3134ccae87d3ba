"""How each webhook source proves a delivery is its own, and how its record is keyed: pure functions of the
request as received (method, raw path, raw headers, raw body), so the tests can drive them without a server.

A verifier raises Unauthorized with a message that says what is wrong (missing, malformed, no match, expired)
and never what was expected. Every comparison with a secret is constant-time (hmac.compare_digest).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from nhiguard.webhook_config import WebhookSecrets

RawHeaders = tuple[tuple[bytes, bytes], ...]

# The header the Strapi adapter (nhiguard/decision/adapters/strapi.py) reads the integration from: Strapi's
# payload names no actor. The receiver sets it from the route, overwriting any the sender sent. Not an
# `nhiguard-*` name: route strips those from input records as forgeries.
STRAPI_INTEGRATION_HEADER = "X-Webhook-Integration"


class Unauthorized(Exception):
    """The delivery does not prove it comes from the source (401)."""


@dataclass(frozen=True)
class Delivery:
    method: str
    raw_path: str  # the request target as received, query included (Contentful signs it)
    headers: RawHeaders
    body: bytes

    def header(self, name: str) -> str | None:
        """The one value of a header (latin-1, as HTTP carries it); Unauthorized when it is repeated: which
        copy was signed would be ambiguous."""
        values = [v for k, v in self.headers if k.decode("latin-1").strip().lower() == name]
        if len(values) > 1:
            raise Unauthorized(f"header {name} is repeated")
        return values[0].decode("latin-1").strip() if values else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def verify_github(secret: str, d: Delivery) -> None:
    """X-Hub-Signature-256: `sha256=` and the hex HMAC-SHA256 of the raw body under the webhook's secret."""
    given = d.header("x-hub-signature-256")
    if not given:
        raise Unauthorized("missing X-Hub-Signature-256 (set a secret on the GitHub webhook)")
    expected = "sha256=" + hmac.new(secret.encode(), d.body, hashlib.sha256).hexdigest()
    if not _same(given, expected):
        raise Unauthorized("X-Hub-Signature-256 does not match the body")


def verify_gitlab(token: str, d: Delivery) -> None:
    """X-Gitlab-Token: the webhook's secret token itself (GitLab does not sign the body)."""
    given = d.header("x-gitlab-token")
    if not given:
        raise Unauthorized("missing X-Gitlab-Token (set a secret token on the GitLab webhook)")
    if not _same(given, token):
        raise Unauthorized("X-Gitlab-Token is wrong")


def _bearer(token: str, d: Delivery) -> None:
    """Authorization: `Bearer <token>`, or the token alone (what a webhook's custom header was set to)."""
    given = d.header("authorization")
    if not given:
        raise Unauthorized("missing Authorization header")
    # Both compared, always: which form matched must not show in the time taken.
    if not (_same(given, "Bearer " + token) | _same(given, token)):
        raise Unauthorized("Authorization header is wrong")


verify_strapi = _bearer
verify_verdaccio = _bearer  # Verdaccio's notify sends the headers its configuration lists


# Contentful request verification (x-contentful-signature), as Contentful's own verifier computes it
# (@contentful/node-apps-toolkit verifyRequest/signRequest): HMAC-SHA256, hex, of
#   METHOD \n normalised path \n signed headers as `name:value` joined by `;`, sorted by name \n body
# where the signed headers are the ones x-contentful-signed-headers lists (names lower-cased, names and values
# trimmed), with x-contentful-timestamp and x-contentful-signed-headers themselves among them.
_SIGNATURE = "x-contentful-signature"
_SIGNED_HEADERS = "x-contentful-signed-headers"
_TIMESTAMP = "x-contentful-timestamp"
_EARLIEST_MS = 1_577_836_800_000  # the toolkit refuses timestamps before 2020
# What each JavaScript function leaves unescaped besides letters, digits and -_.~ (which quote keeps anyway).
_QUERY_SAFE = "!'()*"
_URI_SAFE = ";,/?:@&=+$!*'()#"


def contentful_path(raw_path: str) -> str:
    """The toolkit's getNormalizedEncodedURI: the query escaped as Node's querystring.escape does, then the
    whole as JavaScript's encodeURI (which escapes `%` again: that is what is signed)."""
    parts = raw_path.split("?")
    path, search = parts[0], parts[1] if len(parts) > 1 else ""
    if search:
        path = path + "?" + quote(search, safe=_QUERY_SAFE)
    return quote(path, safe=_URI_SAFE)


def contentful_signature(
    secret: str, method: str, raw_path: str, signed: dict[str, str], timestamp_ms: int, body: bytes
) -> str:
    """The hex signature of a request whose signed headers (normalised names -> values) are `signed`."""
    # Both are signed whether or not the list names them (as the toolkit's signer adds them).
    headers = {**signed, _TIMESTAMP: str(timestamp_ms), _SIGNED_HEADERS: ""}
    headers[_SIGNED_HEADERS] = ",".join(sorted(headers))
    lines = [method, contentful_path(raw_path), ";".join(f"{k}:{headers[k]}" for k in sorted(headers))]
    message = "\n".join([*lines, ""]).encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_contentful_signature(secret: str, d: Delivery, now_ms: int, ttl_s: float) -> None:
    normalised: dict[str, str] = {}
    for k, v in d.headers:
        name = k.decode("latin-1").strip().lower()
        if name in normalised:
            raise Unauthorized(f"header {name} is repeated")
        normalised[name] = v.decode("latin-1").strip()
    given = normalised.get(_SIGNATURE)
    if not given:
        raise Unauthorized("missing x-contentful-signature (enable request verification on the webhook)")
    listed = normalised.get(_SIGNED_HEADERS, "").split(",")
    stamp = re.match(r"[+-]?\d+", normalised.get(_TIMESTAMP, ""))
    timestamp = int(stamp.group()) if stamp else 0
    if len(given) != 64 or len(listed) < 2 or timestamp <= _EARLIEST_MS:
        raise Unauthorized("malformed x-contentful-signature, -signed-headers or -timestamp")
    if abs(now_ms - timestamp) >= ttl_s * 1000:
        raise Unauthorized(f"x-contentful-timestamp is more than {ttl_s:g} s away: a replay or a stale retry")
    try:
        signed = {k: v for k, v in normalised.items() if k in listed}
        expected = contentful_signature(secret, d.method, d.raw_path, signed, timestamp, d.body)
    except UnicodeEncodeError:  # a path JavaScript's encodeURI refuses too (a lone surrogate)
        raise Unauthorized("request path cannot be canonicalised") from None
    if not _same(given, expected):
        raise Unauthorized("x-contentful-signature does not match the request")


def verify_contentful(secrets: WebhookSecrets, d: Delivery, now_ms: int) -> None:
    """Every Contentful check that is configured: the signed request, and a shared Authorization token."""
    if secrets.contentful_signing:
        verify_contentful_signature(secrets.contentful_signing, d, now_ms, secrets.signature_ttl_s)
    if secrets.contentful_token:
        _bearer(secrets.contentful_token, d)


def _path(doc: Any, *keys: str) -> str | None:
    for k in keys:
        doc = doc.get(k) if isinstance(doc, dict) else None
    return doc if isinstance(doc, str) and doc else None


@dataclass(frozen=True)
class Source:
    """A webhook source the receiver serves: its input topic (a Topics field) and its record key."""

    name: str
    topic_field: str
    key: Callable[[Any], str | None]  # the parsed body -> the record key (docs/sources.md), None if absent


SOURCES = {
    s.name: s
    for s in (
        Source("github", "ci", lambda b: _path(b, "repository", "full_name")),
        Source("gitlab", "ci", lambda b: _path(b, "project", "path_with_namespace")),
        Source("contentful", "cms", lambda b: _path(b, "sys", "space", "sys", "id")),
        # Keyed by the integration (the route's), set by the receiver, not from the body.
        Source("strapi", "cms", lambda b: None),
        Source("verdaccio", "registry", lambda b: _path(b, "name")),
    )
}


def parse_json(body: bytes) -> Any:
    """The body as JSON; ValueError with the parser's reason for anything that is not."""
    try:
        return json.loads(body)
    except RecursionError:  # nesting past the parser's stack
        raise ValueError("nested too deeply") from None
