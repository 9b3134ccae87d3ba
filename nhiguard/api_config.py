"""What the decision API of `nhiguard serve` (POST /v1/decisions, streams/decision_api.py) is configured with:
read by load_settings (kept as `Settings.api`), apart from settings.py only because that is at the module size
limit.

The bearer token clients present comes from NHIGUARD_API_TOKEN or NHIGUARD_API_TOKEN_FILE (a mounted secret,
which wins), never from the command line; without one the route is not served. NHIGUARD_API_DEADLINE_S (30 s)
is the longest a request waits for its decision (a request may ask for less); past it the answer is the
domain's failure mode (policies/manifest.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nhiguard.config_values import settings_error as _error
from nhiguard.webhook_config import MIN_SECRET_CHARS


@dataclass(frozen=True)
class ApiSettings:
    token: str = field(default="", repr=False)  # "" : the decision API is not served
    deadline_s: float = 30.0
    # NHIGUARD_API_FORMATS: the formats the API takes (none listed: every format nhiguard reads). A request is
    # produced to an input topic like a shipper's record, so the token is a shipper's power over those topics.
    formats: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.token)


def load_api(env: Mapping[str, str]) -> ApiSettings:
    token = env.get("NHIGUARD_API_TOKEN", "")
    if path := env.get("NHIGUARD_API_TOKEN_FILE", "").strip():
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise _error(f"NHIGUARD_API_TOKEN_FILE: cannot read {path}: {exc.strerror}") from None
    if token and (len(token) < MIN_SECRET_CHARS or any(c.isspace() for c in token)):
        raise _error(f"the decision API token: {MIN_SECRET_CHARS} characters or more, no spaces (guessable)")
    text = env.get("NHIGUARD_API_DEADLINE_S", "").strip()
    try:
        deadline = float(text) if text else ApiSettings.deadline_s
    except ValueError:
        raise _error(f"NHIGUARD_API_DEADLINE_S: not a number of seconds: {text!r}") from None
    if not 0 < deadline <= 600:
        raise _error(f"NHIGUARD_API_DEADLINE_S: between 0 and 600 seconds, got {text}")
    formats = _formats(env.get("NHIGUARD_API_FORMATS", ""))
    return ApiSettings(token=token, deadline_s=deadline, formats=formats)


def _formats(text: str) -> tuple[str, ...]:
    from nhiguard.decision.adapters.registry import REGISTRY  # adapters are imported only when configured

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if unknown := [n for n in names if REGISTRY.get(n) is None]:
        raise _error(f"NHIGUARD_API_FORMATS: unknown format(s) {unknown} (docs/sources.md)")
    return names
