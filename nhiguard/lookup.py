"""The fetch step before the pure core: the registry documents a decision wants and the stream did not carry.

An install names a package version; a publish names its new dependencies (a notified publish, a Verdaccio's:
who published which version, wants its own package's document first, which completes it). Nobody subscribes a
hook to an attacker's package, so the stream rarely carries their documents: the age of the version and its
install scripts are never seen. This step gets each document (npm's `GET /<name>`) from the configured
registry, cached and within a deadline per batch, and puts what it says into the event's facts as `LookedUp`
evidence (`found`, `not_found`, or `unavailable` when no answer came in time) before the core runs. The core
never fetches: what it decided on is in the event, so the decision can be reproduced from the event, and
`eval` and `replay` use no network unless given `--registry URL` or `--registry-docs DIR` (one document per
file, `<name>.json`, a scoped name's `/` written `%2f`, as the registry answers `GET /<name>`).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from nhiguard.decision.adapters.npm import looked_up
from nhiguard.decision.adapters.verdaccio_notify import completed, wants_document
from nhiguard.decision.looked_up import LookedUp, NeedsDocuments
from nhiguard.decision.records import AdapterError, CanonicalEvent, DeadLetter, RawRecord
from nhiguard.decision.registry_facts import Publish
from nhiguard.settings import RegistryLookupSettings

Read = tuple[RawRecord, CanonicalEvent | DeadLetter]
NOT_FOUND = {"error": "Not found"}  # what the npm registry answers (404) for a name it does not have
RETRY_S = 30.0  # a name that got no answer is asked again after this long
_EXACT = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?")


class Unavailable(Exception):
    """No document this time (an error, a timeout, a recording that does not have it)."""


class DocumentSource(Protocol):
    def fetch(self, name: str, timeout_s: float) -> Any:
        """The package document, NOT_FOUND, or raise Unavailable."""


def document_name(name: str) -> str:
    """How npm names a package in a URL path or a recorded file: a scoped name's `/` as `%2f`."""
    return name.replace("/", "%2f")


class HttpRegistry:
    """A registry's HTTP API (the public registry, or the proxy)."""

    def __init__(self, url: str, token: str = "") -> None:
        self.url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token:  # a registry that lets only its users read (a team's Verdaccio)
            self._headers["Authorization"] = f"Bearer {token}"

    def fetch(self, name: str, timeout_s: float) -> Any:
        req = urllib.request.Request(f"{self.url}/{document_name(name)}", headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=max(timeout_s, 0.05)) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return NOT_FOUND
            raise Unavailable(f"{name}: HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:
            raise Unavailable(f"{name}: {exc}") from exc


class RecordedRegistry:
    """Recorded documents in a directory: `<name>.json` each; a name without a file is unavailable."""

    def __init__(self, root: Path) -> None:
        if not Path(root).is_dir():
            raise ValueError(f"{root}: not a directory of registry documents")
        self.root = Path(root)

    def fetch(self, name: str, timeout_s: float) -> Any:
        path = self.root / f"{document_name(name)}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Unavailable(f"{name}: {exc}") from exc


class RegistryLookup:
    """Annotates a batch of read records: each event whose facts want documents gets them, as evidence."""

    def __init__(
        self,
        source: DocumentSource,
        deadline_s: float = 2.0,
        ttl_s: float = 300.0,
        max_cached: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.deadline_s = deadline_s
        self.ttl_s = ttl_s
        self.max_cached = max_cached
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()  # name -> (fetched at, document)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def annotate(self, read: list[Read]) -> list[Read]:
        read = self._complete(read)
        wanted: dict[int, tuple[CanonicalEvent, NeedsDocuments]] = {
            i: (ev, ev.facts)
            for i, (_, ev) in enumerate(read)
            if isinstance(ev, CanonicalEvent) and isinstance(ev.facts, NeedsDocuments)
        }
        docs = self._documents({pair for _, facts in wanted.values() for pair in facts.wanted()})
        out = list(read)
        for i, (ev, facts) in wanted.items():
            at = ev.occurred_at_ms
            found = tuple(self._judge(name, spec, docs.get(name), at) for name, spec in facts.wanted())
            out[i] = (read[i][0], replace(ev, facts=facts.with_lookups(found)))
        return out

    def _complete(self, read: list[Read]) -> list[Read]:
        """A notified publish (who published which version, nothing more) completed from its package's
        document, before its new dependencies are looked up like any publish's."""
        todo = {
            i: ev
            for i, (_, ev) in enumerate(read)
            if isinstance(ev, CanonicalEvent) and wants_document(ev.facts)
        }
        if not todo:
            return read
        pairs = {(p.package, p.version) for p in (ev.facts for ev in todo.values()) if isinstance(p, Publish)}
        docs = self._documents(pairs)
        out = list(read)
        for i, ev in todo.items():
            assert isinstance(ev.facts, Publish)
            out[i] = (read[i][0], replace(ev, facts=completed(ev.facts, docs.get(ev.facts.package))))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -----------------------------------------------------------------------------------------------------
    def _documents(self, wanted: set[tuple[str, str]]) -> dict[str, Any]:
        """Each wanted package's document: cached while fresh, else fetched (in parallel) before the
        deadline; a name without an answer by then is missing (unavailable) and asked again a little later."""
        now = self.clock()
        docs: dict[str, Any] = {}
        todo: set[str] = set()
        with self._lock:
            for name, spec in wanted:
                fresh, doc = self._cached(name, spec, now)
                if not fresh:
                    todo.add(name)
                elif doc is not None:
                    docs[name] = doc
        if todo:
            docs |= self._fetch(todo, now)
        return docs

    def _cached(self, name: str, spec: str, now: float) -> tuple[bool, Any]:
        hit = self._cache.get(name)
        if hit is None:
            return False, None
        at, doc = hit
        if doc is None:  # no answer a moment ago: not asked again at once (a registry down costs once)
            return now - at < min(self.ttl_s, RETRY_S), None
        return now - at < self.ttl_s and _covers(doc, spec), doc

    def _fetch(self, names: set[str], now: float) -> dict[str, Any]:
        pool = self._pool = self._pool or ThreadPoolExecutor(8, thread_name_prefix="nhiguard-lookup")
        timeout = self.deadline_s
        futures: dict[str, Future[Any]] = {n: pool.submit(self.source.fetch, n, timeout) for n in names}
        wait(futures.values(), timeout=timeout)
        docs = {}
        with self._lock:
            for name, fut in futures.items():
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    docs[name] = fut.result()
                else:
                    fut.cancel()
                self._cache[name] = (now, docs.get(name))
                self._cache.move_to_end(name)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        return docs

    @staticmethod
    def _judge(name: str, spec: str, doc: Any, at_ms: int) -> LookedUp:
        if doc is None:
            return LookedUp(name, "unavailable")
        try:
            return looked_up(name, spec, doc, at_ms)
        except (AdapterError, TypeError, ValueError):
            return LookedUp(name, "unavailable")  # a document we cannot read says nothing


def _covers(doc: Any, spec: str) -> bool:
    """A cached document answers for an exact version only if it has it (a version published since needs a
    newer document); a range, or a name the registry does not have, is answered by what is cached."""
    versions = doc.get("versions") if isinstance(doc, dict) else None
    return not isinstance(versions, dict) or not _EXACT.fullmatch(spec) or spec in versions


def registry_lookup(
    settings: RegistryLookupSettings, url: str | None = None, docs: Path | None = None
) -> RegistryLookup | None:
    """The fetch step for a registry URL or a directory of recorded documents; None (no lookups, no network)
    without either. The worker passes the configured URL (settings.url)."""
    if docs is not None:
        return RegistryLookup(RecordedRegistry(docs), settings.deadline_s, float("inf"))
    if not url:
        return None
    # The configured token is for the configured registry: never sent to a URL given on the command line.
    token = settings.token if url.rstrip("/") == settings.url.rstrip("/") else ""
    return RegistryLookup(HttpRegistry(url, token), settings.deadline_s, settings.cache_ttl_s)
