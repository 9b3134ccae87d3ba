"""What `nhiguard serve` verifies webhook senders with: one secret per source, read by load_settings.

nhiguard/settings.py stays the one place that reads configuration: it calls `load_webhooks(env)` with the
environment it was given and keeps the result as `Settings.webhooks`. This module is apart only because
settings.py is at the module size limit.

Secrets come from a YAML file (NHIGUARD_WEBHOOK_SECRETS_FILE) or per source from a variable or a file (the
`_FILE` variant: a mounted secret), never from the command line, where every user of the host can read them
in the process list. A per-source variable wins over the YAML file. A source without a secret is not served:
nothing is ever accepted unsigned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nhiguard.config_values import seconds, settings_error

# Shorter than this, a shared secret can be guessed online; every vendor's own generator makes longer ones.
MIN_SECRET_CHARS = 16
# Contentful's own rule for a webhook signing secret (its docs, "Webhook signing secrets").
_CONTENTFUL_SIGNING = re.compile(r"[0-9a-zA-Z+/=_-]{64}")
# A Strapi integration's name is a route segment and the identity `strapi:<name>`.
_INTEGRATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# YAML key (a dotted path) -> (per-source variable, WebhookSecrets field).
_SECRETS = {
    "github": ("NHIGUARD_GITHUB_WEBHOOK_SECRET", "github"),
    "gitlab": ("NHIGUARD_GITLAB_WEBHOOK_TOKEN", "gitlab"),
    "contentful.signing_secret": ("NHIGUARD_CONTENTFUL_SIGNING_SECRET", "contentful_signing"),
    "contentful.token": ("NHIGUARD_CONTENTFUL_WEBHOOK_TOKEN", "contentful_token"),
    "verdaccio": ("NHIGUARD_VERDACCIO_WEBHOOK_TOKEN", "verdaccio"),
}
_FILE_KEYS = {"github", "gitlab", "contentful", "strapi", "verdaccio"}


@dataclass(frozen=True)
class WebhookSecrets:
    """Per source, what its deliveries must prove (None: the source is not served). Never printed."""

    github: str | None = field(default=None, repr=False)  # X-Hub-Signature-256 HMAC key
    gitlab: str | None = field(default=None, repr=False)  # X-Gitlab-Token
    contentful_signing: str | None = field(default=None, repr=False)  # x-contentful-signature HMAC key
    contentful_token: str | None = field(default=None, repr=False)  # Authorization: Bearer <token>
    strapi: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (integration, Authorization token)
    verdaccio: str | None = field(default=None, repr=False)  # Authorization: Bearer <token> (notify headers)
    # A signed Contentful request older (or newer) than this is refused: a replay. Contentful's own verifier
    # defaults to 30 s.
    signature_ttl_s: float = 30.0
    # How long a delivery waits for Kafka's acknowledgement before its sender is answered 503 (and retries).
    ack_timeout_s: float = 10.0

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources that are served, in route order."""
        have = {
            "github": self.github,
            "gitlab": self.gitlab,
            "contentful": self.contentful_signing or self.contentful_token,
            "strapi": self.strapi,
            "verdaccio": self.verdaccio,
        }
        return tuple(name for name, secret in have.items() if secret)

    def strapi_token(self, integration: str) -> str | None:
        return dict(self.strapi).get(integration)


def _read(var: str, path: str) -> str:
    try:
        return Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise settings_error(f"{var}: cannot read {path}: {exc.strerror}") from None


def _from_env(env: Mapping[str, str], var: str) -> str | None:
    """VAR_FILE (a mounted secret, without its final newline) wins over VAR; empty means not configured."""
    if path := env.get(var + "_FILE", "").strip():
        return _read(var + "_FILE", path) or None
    return env.get(var) or None


def _from_file(env: Mapping[str, str]) -> dict[str, Any]:
    path = env.get("NHIGUARD_WEBHOOK_SECRETS_FILE", "").strip()
    if not path:
        return {}
    try:
        data = yaml.safe_load(_read("NHIGUARD_WEBHOOK_SECRETS_FILE", path))
    except yaml.YAMLError as exc:
        raise settings_error(f"NHIGUARD_WEBHOOK_SECRETS_FILE {path}: not YAML: {exc}") from None
    if data is None:
        return {}
    if isinstance(data, dict):  # an empty section (`strapi:` and nothing under it) configures nothing
        data = {k: v for k, v in data.items() if v is not None}
    if not isinstance(data, dict) or set(data) - _FILE_KEYS:
        unknown = sorted(map(str, set(data) - _FILE_KEYS)) if isinstance(data, dict) else type(data).__name__
        raise settings_error(
            f"NHIGUARD_WEBHOOK_SECRETS_FILE {path}: expected a mapping with keys {sorted(_FILE_KEYS)},"
            f" got {unknown}"
        )
    for key in ("contentful", "strapi"):
        if not isinstance(data.get(key, {}), dict):
            raise settings_error(f"NHIGUARD_WEBHOOK_SECRETS_FILE {path}: {key} must be a mapping")
    unknown = set(data.get("contentful", {})) - {"signing_secret", "token"}
    if unknown:
        raise settings_error(
            f"NHIGUARD_WEBHOOK_SECRETS_FILE {path}: contentful takes signing_secret and token, "
            f"not {sorted(map(str, unknown))}"
        )
    return data


def _checked(name: str, value: object) -> str:
    if not isinstance(value, str):  # a YAML number or date: its text is not what the sender was given
        raise settings_error(f"webhook secret {name}: must be a string (quote it in YAML)")
    if len(value) < MIN_SECRET_CHARS:
        raise settings_error(f"webhook secret {name}: shorter than {MIN_SECRET_CHARS} characters (guessable)")
    return value


def _strapi(env: Mapping[str, str], from_file: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    integrations = dict(from_file.get("strapi", {}))
    token = _from_env(env, "NHIGUARD_STRAPI_WEBHOOK_TOKEN")
    name = env.get("NHIGUARD_STRAPI_INTEGRATION", "").strip()
    if token and not name:
        raise settings_error(
            "NHIGUARD_STRAPI_WEBHOOK_TOKEN needs NHIGUARD_STRAPI_INTEGRATION: the integration the webhook"
            " belongs to (Strapi's payload names no actor)"
        )
    if token:
        integrations[name] = token
    for integration in integrations:
        if not isinstance(integration, str) or not _INTEGRATION.fullmatch(integration):
            raise settings_error(
                f"Strapi integration name {integration!r}: letters, digits, '.', '_' and '-' only"
                " (up to 128, not starting with a punctuation mark)"
            )
    return tuple(sorted((k, _checked(f"strapi.{k}", v)) for k, v in integrations.items()))


def load_webhooks(env: Mapping[str, str]) -> WebhookSecrets:
    """The webhook secrets from `env` (and the files it names); SettingsError for one nhiguard cannot use."""
    from_file = _from_file(env)
    found: dict[str, Any] = {}
    for key, (var, attr) in _SECRETS.items():
        section, _, sub = key.partition(".")
        value = _from_env(env, var) or (from_file.get(section, {}).get(sub) if sub else from_file.get(key))
        if value is not None:
            found[attr] = _checked(key, value)
    signing = found.get("contentful_signing")
    if signing is not None and not _CONTENTFUL_SIGNING.fullmatch(signing):
        raise settings_error(
            "Contentful signing secret: Contentful's are exactly 64 characters of letters, digits and +/=_-"
        )
    return WebhookSecrets(
        **found,
        strapi=_strapi(env, from_file),
        signature_ttl_s=seconds(env, "NHIGUARD_CONTENTFUL_SIGNATURE_TTL_S", 30.0),
        ack_timeout_s=seconds(env, "NHIGUARD_SERVE_ACK_TIMEOUT_S", 10.0),
    )
