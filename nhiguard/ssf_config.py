"""What the SSF/CAEP transmitter of `nhiguard serve` (streams/ssf.py) is configured with: read by
load_settings (kept as `Settings.ssf`), apart from settings.py only because that is at the module size limit.

NHIGUARD_SSF_ISSUER (the URL `nhiguard serve` is reached at, `https://host[:port]`) turns the transmitter on:
its metadata and JWKS are served, and each signed REVOKE on the commands topic is pushed (RFC 8935) to every
receiver. Receivers come from a YAML file (NHIGUARD_SSF_RECEIVERS_FILE: a list of `name`, `endpoint`,
`authorization` or `authorization_file`, optional `audience`) and/or one from the environment
(NHIGUARD_SSF_PUSH_URL with NHIGUARD_SSF_PUSH_AUTHORIZATION or its _FILE variant, NHIGUARD_SSF_AUDIENCE): the
Authorization header a receiver gave for its push endpoint is a secret, never an argument.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from nhiguard.config_values import seconds, settings_error

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RECEIVER_KEYS = {"name", "endpoint", "authorization", "authorization_file", "audience"}


@dataclass(frozen=True)
class SsfReceiver:
    """One push receiver: where SETs go, the Authorization header it asked for, the `aud` of its SETs."""

    name: str
    endpoint: str
    authorization: str = field(repr=False)
    audience: str


@dataclass(frozen=True)
class SsfSettings:
    issuer: str = ""  # "": the transmitter is off
    receivers: tuple[SsfReceiver, ...] = ()
    timeout_s: float = 10.0  # one push request's deadline
    retry_max_s: float = 300.0  # the longest wait between two attempts (the backoff doubles up to it)
    # NHIGUARD_SSF_SIGNING_KEY (and _KID): a key of its own for the SETs, so the internet-facing serve process
    # need not hold the key enforcement points trust for commands (None: NHIGUARD_SIGNING_KEY signs both).
    signing_key: Path | None = None
    signing_kid: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url(what: str, text: str, path_allowed: bool) -> str:
    """An https URL (http only to this host: tests, a sidecar), without query or fragment."""
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise settings_error(f"{what}: not an absolute http(s) URL: {text!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise settings_error(f"{what}: https is required (RFC 8935) except to localhost: {text!r}")
    if parts.query or parts.fragment or (not path_allowed and parts.path not in ("", "/")):
        shape = "scheme://host[:port]/path" if path_allowed else "scheme://host[:port], no path"
        raise settings_error(f"{what}: expected {shape}, got {text!r}")
    return text.rstrip("/") if not path_allowed else text


def _read(what: str, path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise settings_error(f"{what}: cannot read {path}: {exc.strerror}") from None


def _receiver(item: Any, where: str) -> SsfReceiver:
    if not isinstance(item, dict) or set(item) - _RECEIVER_KEYS or "endpoint" not in item:
        raise settings_error(
            f"{where}: expected a mapping with endpoint and {sorted(_RECEIVER_KEYS - {'endpoint'})}"
        )
    name = item.get("name", "default")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise settings_error(f"{where}: name {name!r}: letters, digits, '.', '_' and '-' (up to 64)")
    auth = item.get("authorization")
    if item.get("authorization_file"):
        auth = _read(f"{where} authorization_file", str(item["authorization_file"]))
    if not isinstance(auth, str) or not auth.strip() or any(c in auth for c in "\r\n"):
        raise settings_error(f"{where}: authorization: the receiver's Authorization header value, one line")
    endpoint = _url(f"{where} endpoint", str(item["endpoint"]), path_allowed=True)
    parts = urlsplit(endpoint)
    audience = item.get("audience") or f"{parts.scheme}://{parts.netloc}"
    if not isinstance(audience, str):
        raise settings_error(f"{where}: audience must be a string")
    return SsfReceiver(name=name, endpoint=endpoint, authorization=auth.strip(), audience=audience)


def _from_file(path: str) -> list[SsfReceiver]:
    where = f"NHIGUARD_SSF_RECEIVERS_FILE {path}"
    try:
        data = yaml.safe_load(_read("NHIGUARD_SSF_RECEIVERS_FILE", path))
    except yaml.YAMLError as exc:
        raise settings_error(f"{where}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) != {"receivers"} or not isinstance(data["receivers"], list):
        raise settings_error(f"{where}: expected a mapping with one key, receivers (a list)")
    return [_receiver(item, f"{where} receivers[{i}]") for i, item in enumerate(data["receivers"])]


def load_ssf(env: Mapping[str, str]) -> SsfSettings:
    """The transmitter's settings from `env` (and the files it names); SettingsError for one it cannot use."""
    issuer = env.get("NHIGUARD_SSF_ISSUER", "").strip()
    receivers = []
    if path := env.get("NHIGUARD_SSF_RECEIVERS_FILE", "").strip():
        receivers = _from_file(path)
    if url := env.get("NHIGUARD_SSF_PUSH_URL", "").strip():
        item = {"endpoint": url, "authorization": env.get("NHIGUARD_SSF_PUSH_AUTHORIZATION", "")}
        if auth_file := env.get("NHIGUARD_SSF_PUSH_AUTHORIZATION_FILE", "").strip():
            item["authorization_file"] = auth_file
        if audience := env.get("NHIGUARD_SSF_AUDIENCE", "").strip():
            item["audience"] = audience
        receivers.append(_receiver(item, "NHIGUARD_SSF_PUSH_URL"))
    names = [r.name for r in receivers]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise settings_error(f"SSF receivers: names must be unique, {dup} repeated")
    if not issuer:
        if receivers:
            raise settings_error(
                "SSF receivers are configured but NHIGUARD_SSF_ISSUER is not (README: SSF / CAEP)"
            )
        return SsfSettings()
    return SsfSettings(
        issuer=_url("NHIGUARD_SSF_ISSUER", issuer, path_allowed=False),
        receivers=tuple(receivers),
        timeout_s=seconds(env, "NHIGUARD_SSF_TIMEOUT_S", 10.0),
        retry_max_s=seconds(env, "NHIGUARD_SSF_RETRY_MAX_S", 300.0),
        signing_key=Path(key) if (key := env.get("NHIGUARD_SSF_SIGNING_KEY", "").strip()) else None,
        signing_kid=env.get("NHIGUARD_SSF_SIGNING_KID", "").strip(),
    )
