"""Small deterministic helpers: time formats, ids and compact JSON.

Nothing here reads the clock or the global random state, so a scenario is a pure function of its params.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LOWER_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, the way webhook bridges forward bodies."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def to_ms(dt: datetime) -> int:
    # Integer arithmetic: float timestamps can be off by one millisecond.
    return (dt - EPOCH) // timedelta(milliseconds=1)


def iso_ms(dt: datetime) -> str:
    """Contentful / npm style: 2026-03-26T08:01:02.000Z."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_s(dt: datetime) -> str:
    """GitHub style: 2026-03-26T08:01:02Z."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_int(*parts: object, digits: int = 9) -> int:
    """A number derived from names, so ids stay stable whatever else the generator draws."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return 10 ** (digits - 1) + int(h, 16) % (9 * 10 ** (digits - 1))


def stable_hex(*parts: object, n: int = 40) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:n]


def integrity(*parts: object) -> str:
    """An npm-style sha512 SRI string for a (fake) tarball named by parts."""
    d = hashlib.sha512("\x1f".join(str(p) for p in parts).encode()).digest()
    return "sha512-" + base64.b64encode(d).decode()


def shasum(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode(), usedforsecurity=False).hexdigest()


def base62(rng: random.Random, n: int = 22) -> str:
    """Contentful entity ids are 22 base62 characters."""
    return "".join(rng.choice(_B62) for _ in range(n))


def lower_alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_LOWER_ALNUM) for _ in range(n))


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def sha40(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def node_id(kind: str, num: int) -> str:
    """GitHub's legacy global node id: base64 of '<len>:<Type><id>'."""
    raw = f"0{len(kind)}:{kind}{num}"
    return base64.b64encode(raw.encode()).decode()


def bump_patch(version: str, by: int = 1) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    return f"{major}.{minor}.{patch + by}"


def earlier_versions(version: str, n: int) -> list[str]:
    """n plain X.Y.Z versions below `version`, oldest first (a plausible release history)."""
    major, minor, patch = (int(x) for x in version.split("."))
    out: list[str] = []
    for _ in range(n):
        if patch > 0:
            patch -= 1
        elif minor > 0:
            minor, patch = minor - 1, 6
        elif major > 0:
            major, minor, patch = major - 1, 9, 4
        else:
            break
        out.append(f"{major}.{minor}.{patch}")
    return out[::-1]


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))
