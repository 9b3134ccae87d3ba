"""Which package versions exist when: the public registry and each org's Verdaccio, as installs see them.

Also the documents of third-party versions (for the npm hook packuments) and which class an install of a
given version belongs to (an install of a hijacked version is an attack record, whoever makes it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tools.corpus.cast import Dep
from tools.scenarios._util import earlier_versions, version_key
from tools.scenarios.formats import NPM_OIDC_USER, NpmVersion


@dataclass
class Registry:
    # name -> [(published, version, tarball bytes, removed at or None)]
    entries: dict[str, list[tuple[datetime, str, int, datetime | None]]] = field(default_factory=dict)
    docs: dict[str, list[NpmVersion]] = field(default_factory=dict)  # third-party versions, time order
    created: dict[str, datetime] = field(default_factory=dict)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, version) -> install label
    pulls: dict[tuple[str, str], tuple[str, str]] = field(
        default_factory=dict
    )  # a new dependency npm fetches

    def add(
        self,
        name: str,
        at: datetime,
        version: str,
        size: int,
        *,
        removed: datetime | None = None,
        label: str | None = None,
    ) -> None:
        self.entries.setdefault(name, []).append((at, version, size, removed))
        if label is not None:
            self.labels[(name, version)] = label

    def add_doc(self, v: NpmVersion, removed: datetime | None = None, label: str | None = None) -> None:
        self.docs.setdefault(v.package, []).append(v)
        self.docs[v.package].sort(key=lambda x: x.published_at)
        self.add(v.package, v.published_at, v.version, tarball_size(v), removed=removed, label=label)

    def resolve(self, name: str, at: datetime, legacy: bool = False) -> tuple[str, int] | None:
        """The newest version up at `at`; `legacy` picks the 0.x line of a package that has one."""
        up = [
            (version_key(v), v, s)
            for t, v, s, gone in self.entries.get(name, ())
            if t <= at and (gone is None or at < gone)
        ]
        line = [c for c in up if (c[0][0] == 0) == legacy]
        candidates = line if (legacy or line) else up
        if not candidates:
            return None
        _, version, size = max(candidates)
        return version, size

    def visible(self, name: str, at: datetime) -> list[NpmVersion]:
        """Versions in the packument at `at` (published by then and not yet removed)."""
        gone = {v: r for _, v, _, r in self.entries.get(name, ()) if r is not None}
        return [
            d
            for d in self.docs.get(name, ())
            if d.published_at <= at and (d.version not in gone or at < gone[d.version])
        ]


def tarball_size(v: NpmVersion) -> int:
    return int(v.unpacked_size * 0.31)


def dep_version(
    dep: Dep,
    version: str,
    at: datetime,
    *,
    publisher: tuple[str, str] | None = None,
    trusted: bool | None = None,
    deps: tuple[tuple[str, str], ...] | None = None,
) -> NpmVersion:
    """One version of a third-party package, by its usual publisher unless told otherwise."""
    trusted = dep.trusted if trusted is None else trusted
    if publisher is None:
        publisher = (NPM_OIDC_USER["name"], NPM_OIDC_USER["email"]) if trusted else dep.maintainers[0]
    legacy = version_key(version)[0] == 0
    return NpmVersion(
        dep.name,
        version,
        at,
        publisher[0],
        publisher[1],
        trusted,
        dep.deps if deps is None else deps,
        (("test", "node --test"),) if not legacy else (("test", "mocha"),),
        dep.unpacked // 2 if legacy else dep.unpacked,
        dep.files,
        dep.description,
        dep.maintainers,
        f"{dep.maintainers[0][0]}/{dep.name}",
    )


def seed_history(rng: random.Random, dep: Dep, start: datetime, history: int) -> list[NpmVersion]:
    """Versions before the window: the first long ago by token, later ones the package's usual way.

    A multi-maintainer package alternates its two maintainers' token publishes; the package the registry
    attack hijacks also has a 0.x legacy line, published the same way.
    """
    versions = [*earlier_versions(dep.version, history - 1), dep.version]
    span = (start - timedelta(days=3) - dep.created).total_seconds()
    times = sorted(dep.created + timedelta(seconds=span * rng.uniform(0.2, 1.0)) for _ in versions[1:])
    out = [dep_version(dep, versions[0], dep.created, trusted=False)]
    for i, (v, at) in enumerate(zip(versions[1:], times, strict=True)):
        if dep.role == "multi":
            out.append(dep_version(dep, v, at, publisher=dep.maintainers[(i + 1) % 2], trusted=False))
        else:
            out.append(dep_version(dep, v, at))
    if dep.role == "hijack":
        legacy = f"0.{rng.randint(18, 31)}.{rng.randint(1, 9)}"
        for j, lv in enumerate([*earlier_versions(legacy, 2), legacy]):
            at = start - timedelta(days=rng.randint(20, 90) + 200 * (2 - j))
            out.append(dep_version(dep, lv, max(at, dep.created + timedelta(days=1))))
    return sorted(out, key=lambda v: v.published_at)


def next_version(rng: random.Random, current: str) -> str:
    major, minor, patch = version_key(current)
    return f"{major}.{minor + 1}.0" if rng.random() < 0.2 else f"{major}.{minor}.{patch + 1}"
