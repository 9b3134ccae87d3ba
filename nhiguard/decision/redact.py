"""Secrets out of what nhiguard writes: known secret shapes are replaced by `[REDACTED]` in dead letters'
details and headers and in decisions, commands and alerts (a resource id or evidence can carry a URL with a
token in it). A dead letter's ORIGINAL bytes are never touched: nothing is lost.

Every pattern is linear in the text's length (no nested or overlapping quantifiers): the text may be hostile.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_HEADER_WORDS = ("token", "signature", "secret", "password", "auth", "key", "session")

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*"
    r"(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)?"
)
_TOKENS = re.compile(
    r"\bnpm_[A-Za-z0-9]{20,}"  # npm access tokens
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens: personal, OAuth, user-to-server, server, refresh
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub fine-grained personal tokens
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
)
_SCHEME_CREDENTIALS = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,20}://)[^\s/?#@\"'<>]{1,512}@")
_QUERY_PARAM = re.compile(r"([?&;])([A-Za-z0-9_.\-\[\]]{1,64})=([^&#\s\"'<>]*)")
_SECRET_PARAM = re.compile(
    r"(?i)token|passw|pwd|secret|signature|^sig$|key|auth|credential|session|^code$|jwt|bearer"
)


def _param(m: re.Match[str]) -> str:
    sep, name, value = m.groups()
    return f"{sep}{name}={REDACTED}" if value and _SECRET_PARAM.search(name) else m.group(0)


_GITHUB_PREFIX = re.compile(r"gh[pousr]_")
_MARKS = ("=", "@", "-----", "AKIA", "ASIA", "eyJ", "npm_", "github_pat_")


def _suspect(text: str) -> bool:
    """Whether the text has something one of the shapes needs (most strings do not: one cheap pass)."""
    if any(m in text for m in _MARKS) or _GITHUB_PREFIX.search(text):
        return True
    low = text.lower()
    return "bearer" in low or "basic" in low or "token" in low


def redact(text: str) -> str:
    """The text with every known secret shape replaced."""
    if not _suspect(text):
        return text
    text = _PRIVATE_KEY.sub("[REDACTED PRIVATE KEY]", text)
    text = _TOKENS.sub(REDACTED, text)
    text = _SCHEME_CREDENTIALS.sub(rf"\1\2{REDACTED}", text)
    text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    return _QUERY_PARAM.sub(_param, text)


def secret_header(name: str) -> bool:
    """A header that carries a credential by its name (Authorization, Cookie, X-*-Token, X-Hub-Signature…)."""
    lname = name.lower()
    return lname in _SECRET_HEADERS or (
        lname.startswith("x-") and any(w in lname for w in _SECRET_HEADER_WORDS)
    )


def redact_headers(headers: tuple[tuple[str, bytes], ...]) -> tuple[tuple[str, bytes], ...]:
    out = []
    for k, v in headers:
        if secret_header(k):
            out.append((k, REDACTED.encode()))
        else:
            text = v.decode("utf-8", "replace")
            clean = redact(text)
            out.append((k, v if clean == text else clean.encode()))
    return tuple(out)


def redact_tree(obj: Any) -> Any:
    """Every string in a record (dicts, lists, tuples) redacted; keys and other values as they are."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_tree(v) for v in obj]
    return obj
