"""Helpers the configuration modules share (settings.py and the modules it reads parts of the environment
through: kafka_security.py, registry_config.py, webhook_config.py)."""

from __future__ import annotations

from collections.abc import Mapping


def settings_error(message: str) -> Exception:
    """A SettingsError (imported here: settings.py imports the modules that call this at its top)."""
    from nhiguard.settings import SettingsError

    return SettingsError(message)


def seconds(env: Mapping[str, str], var: str, default: float) -> float:
    """A positive number of seconds from `var`, else the default; a SettingsError naming the variable."""
    text = env.get(var, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        raise settings_error(f"{var}: not a number of seconds: {text!r}") from None
    if not value > 0:
        raise settings_error(f"{var}: must be positive, got {text}")
    return value
