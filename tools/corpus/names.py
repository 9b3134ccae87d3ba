"""Name pools and drawing helpers: organisations, people, repositories, packages, addresses.

Names are combinations drawn by the seed, so another seed gives other names, never a fixed cast.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_ORG_HEAD = (
    "north", "blue", "iron", "silver", "bright", "quanta", "cedar", "harbor", "lumen", "nova", "orbit",
    "pixel", "stone", "swift", "terra", "vertex", "zen", "atlas", "beacon", "coral", "delta", "ember",
    "fjord", "granite", "helix", "indigo", "juniper", "kestrel", "lyra", "maple",
)  # fmt: skip
_ORG_TAIL = (
    "works",
    "labs",
    "soft",
    "stack",
    "forge",
    "base",
    "hq",
    "cloud",
    "ware",
    "systems",
    "data",
    "io",
)
_FIRST = (
    "ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jules", "kofi", "lena", "mateo",
    "nia", "omar", "paula", "quinn", "rosa", "sven", "tara", "umar", "vera", "wei", "yara", "zoe", "aiko",
    "bruno", "carmen", "dmitri", "esme", "farid", "greta", "hugo", "ines", "jonas", "kira", "luca", "maya",
)  # fmt: skip
_LAST = (
    "alvarez", "bauer", "costa", "dubois", "eriksen", "fischer", "garcia", "haddad", "ito", "jensen",
    "kowalski", "lindqvist", "moreau", "nakamura", "okafor", "petrov", "quintero", "rossi", "schmidt",
    "tanaka", "usman", "varga", "weber", "xu", "yilmaz", "zhou", "banerjee", "novak", "oconnor", "silva",
)  # fmt: skip
_LIB_REPOS = (
    "sdk-js", "cli", "ui-kit", "design-system", "client", "toolkit", "widgets", "charts", "auth-js",
    "forms", "icons", "analytics-js", "config", "tracing-js", "feature-flags",
)  # fmt: skip
_APP_REPOS = ("web", "api", "docs", "admin", "storefront", "dashboard", "gateway", "mobile-web", "portal")
_DEP_HEAD = (
    "fast", "tiny", "micro", "nano", "simple", "pretty", "smart", "quick", "easy", "light", "hyper",
    "mini", "neat", "lean", "deep", "safe",
)  # fmt: skip
_DEP_CORE = (
    "json", "yaml", "date", "color", "glob", "path", "http", "fetch", "stream", "queue", "cache", "log",
    "env", "argv", "mime", "uuid", "semver", "debounce", "retry", "parse", "merge", "diff", "table", "form",
)  # fmt: skip
_DEP_TAIL = ("", "", "-lite", "-js", "-utils", "-core", "-kit", "2", "-x", "ify")
_PHANTOM_HEAD = ("plain", "pure", "safe", "clean", "native", "core", "secure", "basic")
_PHANTOM_CORE = ("crypto", "hash", "cipher", "encode", "buffer", "random", "digest", "sign")
_MAIL_PERSONAL = ("gmail.com", "fastmail.com", "hey.com", "posteo.de", "outlook.com", "icloud.com")
_MAIL_THROWAWAY = ("proton.me", "tutanota.com", "tuta.io", "onionmail.org", "protonmail.com")
_CODENAMES = (
    "Aurora", "Basalt", "Cobalt", "Dynamo", "Eclipse", "Falcon", "Glacier", "Halo", "Ion", "Jade", "Krypton",
    "Lumen", "Monsoon", "Nimbus", "Onyx", "Prism", "Quartz", "Raven", "Sable", "Tempest",
)  # fmt: skip
_PUBLIC_PREFIXES = ("185.220", "45.137", "103.75", "142.11", "91.243", "23.94", "194.26", "5.183")


def pick_unique(make: Callable[[], str], taken: set[str], tries: int = 200) -> str:
    """Call `make()` until it gives a name not in `taken`; adds it to `taken`."""
    for _ in range(tries):
        name = make()
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("name pool exhausted")


def org_slug(rng: random.Random) -> str:
    return rng.choice(_ORG_HEAD) + rng.choice(_ORG_TAIL)


def person(rng: random.Random) -> tuple[str, str]:
    """(login, display name)."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    style = rng.randrange(4)
    login = (first + last[:1], f"{first}-{last}", f"{first[0]}{last}", f"{first}{rng.randint(2, 99)}")[style]
    return login, f"{first.title()} {last.title()}"


def personal_email(rng: random.Random, login: str, own_domain: str | None = None) -> str:
    domain = own_domain if own_domain and rng.random() < 0.4 else rng.choice(_MAIL_PERSONAL)
    return f"{login}@{domain}"


def throwaway_email(rng: random.Random, login: str) -> str:
    mangled = login[: max(3, len(login) - 2)] + rng.choice(("x", "0", "_", "1", "dev"))
    return f"{mangled}@{rng.choice(_MAIL_THROWAWAY)}"


def lib_repos(rng: random.Random, n: int) -> list[str]:
    return rng.sample(_LIB_REPOS, n)


def app_repos(rng: random.Random, n: int) -> list[str]:
    return rng.sample(_APP_REPOS, n)


def dep_name(rng: random.Random) -> str:
    if rng.random() < 0.35:
        return rng.choice(_DEP_CORE) + rng.choice(_DEP_TAIL)
    return f"{rng.choice(_DEP_HEAD)}-{rng.choice(_DEP_CORE)}{rng.choice(_DEP_TAIL)}"


def phantom_name(rng: random.Random) -> str:
    return f"{rng.choice(_PHANTOM_HEAD)}-{rng.choice(_PHANTOM_CORE)}-js"


def codename(rng: random.Random) -> str:
    return rng.choice(_CODENAMES)


def public_ip(rng: random.Random) -> str:
    return f"{rng.choice(_PUBLIC_PREFIXES)}.{rng.randint(1, 254)}.{rng.randint(2, 254)}"
