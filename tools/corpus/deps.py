"""Third-party packages: their history before the window, and their publishes in it (the npm hook reports
each), including the multi-maintainer packages whose two maintainers take turns."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.corpus.cast import Cast
from tools.corpus.classes import Draws, label
from tools.corpus.out import ORDINARY, Out
from tools.corpus.registry import Registry, dep_version, next_version, seed_history
from tools.scenarios._util import version_key


def seed_registry(cast: Cast, reg: Registry, rng: random.Random) -> None:
    for dep in cast.deps:
        n = (
            Draws(rng, "multi_maintainer").int("history_versions")
            if dep.role == "multi"
            else rng.randint(3, 5)
        )
        reg.created[dep.name] = dep.created
        for v in seed_history(rng, dep, cast.start, n):
            reg.add_doc(v)


def emit_dep_publishes(cast: Cast, out: Out, rng: random.Random, hijack_at: datetime) -> None:
    span = cast.end - cast.start
    for dep in cast.deps:
        if dep.role == "multi":
            n, lab = Draws(rng, "multi_maintainer").int("releases"), label("multi_maintainer")
            times = sorted(cast.start + span * rng.uniform(0.05, 0.95) for _ in range(n))
        elif dep.role == "hijack":
            # The usual trusted release a few days before the hijack, when the window reaches that far back.
            lab = ORDINARY
            back = timedelta(days=Draws(rng, "hijacked_publisher").uniform("good_release_days_before"))
            times = [hijack_at - back] if hijack_at - back > cast.start else []
        else:
            n, lab = Draws(rng, "ordinary").int("third_party_releases"), ORDINARY
            # One early in the window, so its packument is seen before anything depends on it.
            times = sorted(cast.start + span * rng.uniform(0.02, 0.95) for _ in range(n))
        for at in times:
            docs = out.reg.docs[dep.name]
            latest = max((d for d in docs if not d.version.startswith("0.")), key=lambda d: d.published_at)
            version = next_version(rng, latest.version)
            if dep.role == "multi":
                # The maintainer who did not publish the last release publishes this one.
                last = (latest.publisher, latest.publisher_email)
                who = next(m for m in dep.maintainers if m != last)
                doc = dep_version(dep, version, at, publisher=who, trusted=False)
            else:
                doc = dep_version(dep, version, at)
            out.reg.add_doc(doc, label=lab if dep.role == "multi" else None)
            tags = {"latest": version}
            if dep.role == "hijack":
                legacy = max(
                    (d for d in docs if d.version.startswith("0.")), key=lambda d: version_key(d.version)
                )
                tags["legacy"] = legacy.version
            out.hook(doc, lab, tags)
