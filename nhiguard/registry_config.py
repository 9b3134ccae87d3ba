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


@dataclass(frozen=True)
class RegistryLookupSettings:
    """Where the fetch step gets registry documents the stream did not carry: a registry's URL ("" for none:
    no lookups), how long a batch waits for them, how long a document is reused, and the token it reads with
    ("" for none). Never printed with the token."""

    url: str = ""
    deadline_s: float = 2.0
    cache_ttl_s: float = 300.0
    token: str = field(default="", repr=False)


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    text = env.get(var, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise _error(f"{var}: not a number of seconds: {text!r}") from None
    if not value > 0:
        raise _error(f"{var}: must be positive, got {text}")
    return value


def _error(message: str) -> Exception:
    from nhiguard.settings import SettingsError  # settings.py imports this module at its top

    return SettingsError(message)


def _token(env: Mapping[str, str]) -> str:
    if path := env.get("NHIGUARD_REGISTRY_TOKEN_FILE", "").strip():
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise _error(f"NHIGUARD_REGISTRY_TOKEN_FILE: cannot read {path}: {exc.strerror}") from None
    return env.get("NHIGUARD_REGISTRY_TOKEN", "").strip()


def load_registry_lookup(env: Mapping[str, str]) -> RegistryLookupSettings:
    d = RegistryLookupSettings()
    token = _token(env)
    url = env.get("NHIGUARD_REGISTRY_URL", d.url).strip()
    if token and not url:
        raise _error("NHIGUARD_REGISTRY_TOKEN is set without NHIGUARD_REGISTRY_URL: the registry it is for")
    return RegistryLookupSettings(
        url=url,
        deadline_s=_seconds(env, "NHIGUARD_REGISTRY_DEADLINE_S", d.deadline_s),
        cache_ttl_s=_seconds(env, "NHIGUARD_REGISTRY_CACHE_TTL_S", d.cache_ttl_s),
        token=token,
    )
