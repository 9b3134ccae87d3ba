"""Where the fetch step before the core (nhiguard/lookup.py) gets registry documents: read by load_settings
(kept as `Settings.registry_lookup`), apart from settings.py only because that is at the module size limit.

NHIGUARD_REGISTRY_URL (none: no lookups), NHIGUARD_REGISTRY_DEADLINE_S (per batch),
NHIGUARD_REGISTRY_CACHE_TTL_S (how long a document is reused), and NHIGUARD_REGISTRY_TOKEN or
NHIGUARD_REGISTRY_TOKEN_FILE (a mounted secret, which wins): a bearer token for a registry that lets only its
users read, such as a team's Verdaccio. The token is sent to that URL only, never from the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nhiguard.config_values import seconds, settings_error


@dataclass(frozen=True)
class RegistryLookupSettings:
    """Where the fetch step gets registry documents the stream did not carry: a registry's URL ("" for none:
    no lookups), how long a batch waits for them, how long a document is reused, and the token it reads with
    ("" for none). Never printed with the token."""

    url: str = ""
    deadline_s: float = 2.0
    cache_ttl_s: float = 300.0
    token: str = field(default="", repr=False)


def _token(env: Mapping[str, str]) -> str:
    if path := env.get("NHIGUARD_REGISTRY_TOKEN_FILE", "").strip():
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise settings_error(
                f"NHIGUARD_REGISTRY_TOKEN_FILE: cannot read {path}: {exc.strerror}"
            ) from None
    return env.get("NHIGUARD_REGISTRY_TOKEN", "").strip()


def load_registry_lookup(env: Mapping[str, str]) -> RegistryLookupSettings:
    d = RegistryLookupSettings()
    token = _token(env)
    url = env.get("NHIGUARD_REGISTRY_URL", d.url).strip()
    if token and not url:
        raise settings_error(
            "NHIGUARD_REGISTRY_TOKEN is set without NHIGUARD_REGISTRY_URL: the registry it is for"
        )
    return RegistryLookupSettings(
        url=url,
        deadline_s=seconds(env, "NHIGUARD_REGISTRY_DEADLINE_S", d.deadline_s),
        cache_ttl_s=seconds(env, "NHIGUARD_REGISTRY_CACHE_TTL_S", d.cache_ttl_s),
        token=token,
    )
