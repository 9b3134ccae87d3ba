"""When things happen: each org works in its own time zone (UTC + offset), people on weekdays by day."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.corpus.cast import Cast, Org


def local_midnight(cast: Cast, org: Org, day: int) -> datetime:
    """UTC time of the org's local midnight starting day `day` of the window."""
    return cast.start + timedelta(days=day, hours=-org.offset_h)


def is_workday(cast: Cast, day: int) -> bool:
    return (cast.start.date() + timedelta(days=day)).weekday() < 5


def at_local(cast: Cast, org: Org, day: int, hour: float) -> datetime:
    return local_midnight(cast, org, day) + timedelta(hours=hour)


def work_time(rng: random.Random, cast: Cast, org: Org, day: int) -> datetime:
    """A moment of a working day, local 08-19 with a midday peak."""
    return at_local(cast, org, day, 8 + 11 * rng.betavariate(2.2, 2.2))


def any_time(rng: random.Random, cast: Cast, org: Org, day: int) -> datetime:
    return at_local(cast, org, day, rng.uniform(0, 24))


def next_workday(cast: Cast, day: int) -> int:
    while not is_workday(cast, day):
        day += 1
    return day


def days(cast: Cast) -> int:
    return (cast.end - cast.start).days


def in_window(cast: Cast, lo: float, hi: float, rng: random.Random) -> datetime:
    """A moment between fractions lo and hi of the window."""
    return cast.start + (cast.end - cast.start) * rng.uniform(lo, hi)


def day_of(cast: Cast, org: Org, at: datetime) -> int:
    return (org.local(at) - cast.start).days


def count(rng: random.Random, mean: float) -> int:
    """A count around `mean` (a binomial spread, so a day can be quiet or busy)."""
    n = max(1, round(mean * 2))
    return sum(1 for _ in range(n) if rng.random() < mean / n) if mean > 0 else 0
