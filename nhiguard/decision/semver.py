"""npm version order and the dependency ranges npm resolves, loosely: registry data is what it is.

Enough of npm's semver for judging dependencies: exact versions, `^`, `~`, comparators (`>=1.2.0 <2`),
x-ranges (`1.x`, `1.2`, `*`), hyphen ranges (`1.2.3 - 2.0.0`) and `||`. A pre-release satisfies a range only
when the range names a pre-release of the same major.minor.patch, as in npm. A range this module cannot read
satisfies nothing (`satisfies` is False): callers that must stay on the safe side say so.
"""

from __future__ import annotations

import re

Key = tuple[tuple[int, int, int], int, tuple[str, ...]]

_PART = re.compile(
    r"^[vV=]?\s*(?P<nums>[0-9xX*]+(?:\.[0-9xX*]+){0,2})(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+\S*)?$"
)
_COMPARATOR = re.compile(r"^(?P<op><=|>=|<|>|=|\^|~>?|)\s*(?P<ver>\S+)$")


def version_key(version: str) -> Key:
    """Sort key for npm versions: a release sorts after its pre-releases."""
    core, _, pre = version.partition("+")[0].lstrip("vV=").partition("-")
    nums = [int(p) if p.isdigit() else 0 for p in core.split(".")[:3]]
    nums += [0] * (3 - len(nums))
    return (nums[0], nums[1], nums[2]), (0 if pre else 1), tuple(pre.split(".")) if pre else ()


def _partial(text: str) -> tuple[list[int], str] | None:
    """`1.2` -> ([1, 2], ""); `1.x` -> ([1], ""); `*` -> ([], ""); `1.2.3-rc.1` -> ([1, 2, 3], "rc.1")."""
    m = _PART.match(text.strip())
    if not m:
        return None
    nums: list[int] = []
    for p in m.group("nums").split("."):
        if not p.isdigit():
            break
        nums.append(int(p))
    return nums, m.group("pre") or "" if len(nums) == 3 else ""


def _bounds(op: str, nums: list[int], pre: str) -> list[tuple[str, Key]]:
    """A comparator as (operator, key) bounds; an x-range or a caret/tilde range becomes two."""
    full = [*nums, 0, 0, 0][:3]
    low: Key = ((full[0], full[1], full[2]), 0 if pre else 1, tuple(pre.split(".")) if pre else ())
    if op in ("", "=") and len(nums) == 3:
        return [("=", low)]
    if op in (">", "<=") and len(nums) < 3:  # >1.2 is >=1.3.0; <=1.2 is <1.3.0
        up = _next(nums, len(nums) - 1) if nums else None
        return [] if up is None else [(">=" if op == ">" else "<", up)]
    if op in (">", ">=", "<", "<="):
        return [(op, _floor(low, nums, pre))]
    upper = _upper(op, nums, full)
    floor = _floor(low, nums, pre)
    return [(">=", floor)] + ([("<", upper)] if upper else [])


def _floor(low: Key, nums: list[int], pre: str) -> Key:
    # `>=1.2` and `^1.2` start at 1.2.0-0: the lowest version of that line, pre-releases included.
    return low if pre or len(nums) == 3 else (low[0], 0, ("0",))


def _next(nums: list[int], i: int) -> Key | None:
    if i < 0:
        return None
    bumped = [*nums[:i], nums[i] + 1, 0, 0, 0][:3]
    return ((bumped[0], bumped[1], bumped[2]), 0, ("0",))


def _upper(op: str, nums: list[int], full: list[int]) -> Key | None:
    if op == "^":
        # ^1.2.3 < 2.0.0-0; ^0.2.3 < 0.3.0-0; ^0.0.3 < 0.0.4-0; ^1.x < 2.0.0-0
        i = next((j for j, n in enumerate(full[: max(len(nums), 1)]) if n != 0), max(len(nums), 1) - 1)
        return _next(full, min(i, len(nums) - 1) if nums else -1)
    if op in ("~", "~>"):
        return _next(full, 1 if len(nums) >= 2 else 0) if nums else None
    return _next(nums, len(nums) - 1) if nums else None  # an x-range: 1.2 < 1.3.0-0


def _check(op: str, key: Key, bound: Key) -> bool:
    return {
        "=": key == bound,
        ">=": key >= bound,
        ">": key > bound,
        "<": key < bound,
        "<=": key <= bound,
    }[op]


def _set(text: str) -> list[tuple[list[tuple[str, Key]], set[tuple[int, int, int]]]] | None:
    """A range as alternatives, each a list of bounds and the versions whose pre-releases it admits."""
    out = []
    for alt in text.split("||"):
        alt = alt.strip()
        if " - " in alt:
            lo, _, hi = alt.partition(" - ")
            alt = f">={lo.strip()} <={hi.strip()}"
        bounds: list[tuple[str, Key]] = []
        pre_ok: set[tuple[int, int, int]] = set()
        for tok in re.sub(r"(<=|>=|<|>|=|\^|~>?)\s+", r"\1", alt).split() or ["*"]:
            m = _COMPARATOR.match(tok)
            parsed = _partial(m.group("ver")) if m else None
            if m is None or parsed is None:
                return None
            nums, pre = parsed
            if pre:
                pre_ok.add((nums[0], nums[1], nums[2]))
            bounds += _bounds(m.group("op"), nums, pre)
        out.append((bounds, pre_ok))
    return out


def satisfies(version: str, spec: str) -> bool:
    """Whether npm would let `spec` (a dependency's range) resolve to `version`."""
    alternatives = _set(spec.strip() or "*")
    if alternatives is None or _partial(version) is None:
        return False
    key = version_key(version)
    for bounds, pre_ok in alternatives:
        if key[1] == 0 and key[0] not in pre_ok:
            continue
        if all(_check(op, key, b) for op, b in bounds):
            return True
    return False


def max_satisfying(versions: list[str], spec: str) -> str | None:
    """The version npm would pick for `spec` among `versions` (the greatest that satisfies it)."""
    ok = [v for v in versions if satisfies(v, spec)]
    return max(ok, key=version_key) if ok else None
