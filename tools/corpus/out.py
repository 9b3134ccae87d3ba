"""Emitting labelled records in the sources' formats, on top of the demo generator's builders.

`Out` wraps the scenario `Sink`; the scenario helpers that label everything "ordinary" (pushes, workflow
runs) run into a captured sink whose records are relabelled (and, where a class needs it, edited) on exit.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from tools.corpus.cast import Cast, Org, ProxyUser
from tools.corpus.classes import label
from tools.corpus.registry import Registry
from tools.scenarios._util import dumps, stable_int
from tools.scenarios.emit import CfDoc, Sink
from tools.scenarios.formats import NpmVersion, cf_headers, npm_hook, verdaccio_line, verdaccio_url
from tools.scenarios.records import SourceRecord
from tools.scenarios.world import CmsActor

CMS, CI, REGISTRY = "audit.cms", "audit.ci", "audit.registry"
JSON_HEADERS = (("Content-Type", b"application/json"),)
ORDINARY = label("ordinary")
CONTEXT = label("attack_context")


@dataclass
class Session:
    """One `npm ci` through Verdaccio, as a job on a runner (or, with `runner` false, a client elsewhere):
    what the runtime sensor on the runner saw is generated from it (tools/corpus/runtime.py)."""

    org: Org
    user: ProxyUser
    at: datetime
    end: datetime
    label: str  # the session's label (ordinary, or the class of the run it is part of)
    address: str  # the client address Verdaccio logged
    runner: bool  # false: the credential was used from an address given outside any runner
    fetched: list[tuple[str, str, str]] = field(default_factory=list)  # (package, version, tarball label)


class Out:
    def __init__(self, cast: Cast, registry: Registry) -> None:
        self.cast, self.reg = cast, registry
        self.sink = Sink()
        # Verdaccio user -> (from, new address): the new_runner_or_address class.
        self.moved: dict[str, tuple[datetime, str]] = {}
        self.sessions: list[Session] = []

    @property
    def records(self) -> list[SourceRecord]:
        return self.sink.records

    def emit(
        self,
        topic: str,
        key: str,
        body: dict[str, Any],
        at: datetime,
        lab: str,
        headers: tuple[tuple[str, bytes], ...] = JSON_HEADERS,
    ) -> None:
        self.sink.emit(topic, key, body, at, lab, headers)

    @contextlib.contextmanager
    def captured(self, lab: str, edit: Callable[[str, dict[str, Any]], None] | None = None) -> Iterator[Sink]:
        """A sink for the scenario helpers; its records get `lab` and `edit(event, body)` on exit."""
        tmp = Sink()
        yield tmp
        for rec in tmp.records:
            if edit is not None:
                body = json.loads(rec.value)
                edit(rec.header("X-GitHub-Event") or "", body)
                rec = replace(rec, value=dumps(body))
            self.sink.records.append(replace(rec, label=lab))

    # ------------------------------------------------------------------------------------------- CMS
    def cms(self, org: Org, doc: CfDoc, op: str, actor: CmsActor, at: datetime, lab: str = ORDINARY) -> None:
        topic, body = doc.apply(op, actor, at)
        self.emit(CMS, org.space, body, at, lab, cf_headers(topic))

    # -------------------------------------------------------------------------------------- registry
    def hook(self, published: NpmVersion, lab: str, dist_tags: dict[str, str] | None = None) -> None:
        """The npm hook for `published`: the packument as it is right after the publish."""
        name = published.package
        versions = [v for v in self.reg.visible(name, published.published_at) if v != published]
        body = npm_hook(
            [*versions, published],
            just_published=published,
            dist_tags=dist_tags or {"latest": published.version},
            hook_owner=self.cast.hook_owner,
            created=self.reg.created.get(name, published.published_at),
            at=published.published_at,
        )
        at = published.published_at + timedelta(seconds=3)  # hooks arrive a few seconds after the publish
        self.emit(REGISTRY, name, body, at, lab)

    def address(self, user: ProxyUser, at: datetime) -> tuple[str, bool]:
        """The user's client address at `at`, and whether it is the new one."""
        moved = self.moved.get(user.name)
        if moved is not None and at >= moved[0]:
            return moved[1], True
        return user.ip, False

    def fetch(
        self,
        org: Org,
        user: ProxyUser,
        package: str,
        version: str | None,
        size: int,
        at: datetime,
        lab: str,
        *,
        ip: str | None = None,
        status: int = 200,
    ) -> None:
        """One Verdaccio access line: a tarball GET (an install) with a version, else a metadata GET."""
        line = verdaccio_line(
            at=at,
            user=user.name,
            ip=ip or user.ip,
            url=verdaccio_url(package, version),
            status=status,
            bytes_out=size if status == 200 else 0,
            pod=stable_int(org.slug, user.name, digits=2) % 2,
        )
        self.emit(REGISTRY, package, line, at, lab, ())

    def put(self, org: Org, user: str, ip: str, package: str, tarball: int, at: datetime, lab: str) -> None:
        """A publish through Verdaccio: `npm publish` PUTs the package document with the tarball attached
        (base64, so about 4/3 of its size), answered 201."""
        line = verdaccio_line(
            at=at, user=user, ip=ip, url=verdaccio_url(package), status=201, bytes_out=38, pod=0
        )
        line["request"]["method"] = "PUT"
        line["bytes"]["in"] = tarball * 4 // 3 + 1_200 + len(package) * 3
        self.emit(REGISTRY, package, line, at, lab, ())

    def install(
        self,
        rng: random.Random,
        org: Org,
        user: ProxyUser,
        specs: list[str],
        at: datetime,
        session: str = ORDINARY,
        ip: str | None = None,
    ) -> datetime:
        """An `npm ci` through Verdaccio: metadata then tarball per package, and what a new dependency pulls.

        A record's label: an attack version's own, else an attack session's (every GET of a stolen token is
        the attack), else the version's benign class, else the session's; a metadata GET before the tarball
        of an attack version is context.
        """
        t = at
        addr, moved = (ip, False) if ip else self.address(user, at)
        if moved and session == ORDINARY:
            session = label("new_runner_or_address")
        job = Session(org, user, at, at, session, addr, ip is None)
        self.sessions.append(job)
        todo = list(specs)
        while todo:
            name, _, line = todo.pop(0).partition("#")
            found = self.reg.resolve(name, t, legacy=line == "legacy")
            if found is None:
                continue
            version, size = found
            own = self.reg.labels.get((name, version)) or ""
            if own.startswith("attack:"):
                meta, tar = CONTEXT, own
            elif session.startswith("attack:"):
                meta = tar = session
            else:
                meta = tar = own or session
            status = 200 if rng.random() < 0.7 else 304
            self.fetch(org, user, name, None, _packument_bytes(name), t, meta, ip=addr, status=status)
            t += timedelta(seconds=rng.uniform(0.05, 0.6))
            self.fetch(org, user, name, version, size, t, tar, ip=addr)
            job.fetched.append((name, version, tar))
            t += timedelta(seconds=rng.uniform(0.2, 2.0))
            pulled = self.reg.pulls.get((name, version))
            if pulled is not None:
                todo.insert(0, pulled[0])
        job.end = t
        return t


def _packument_bytes(name: str) -> int:
    return 12_000 + stable_int("packument", name, digits=6) % 180_000
