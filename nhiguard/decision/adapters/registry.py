"""The source registry: each adapter module registers the sources it reads, and `adapt` picks one by it.

A source says what it is (`name`, the canonical event's `source`), which input domains it serves (the topics
of settings.topics), how one of its records is recognised (headers it carries, body keys it has, body values
it has), whether its principals are external (accounts outside the organisation, such as the public npm
registry's: enriched as `external`, not `unknown`), and the pure function that maps a record to a canonical
event. Among the sources of a domain that recognise a record, the most specific wins: one that names a body
value beats one that only names keys or headers, then more conditions beat fewer (then the name decides, so
the choice never depends on import order).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

AdaptFn = Callable[[RawRecord, dict[str, Any]], CanonicalEvent]
# A header that names the source of a record whose body alone is not recognised (`nhiguard ingest --format`
# sets it). Not in nhiguard's own namespace: anyone may set it, and it only chooses which adapter reads.
FORMAT_HEADER = "X-Nhiguard-Format"


@dataclass(frozen=True, slots=True)
class Recogniser:
    """What a record of the source has: headers (present, not empty), top-level body keys, body values."""

    headers: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = ()

    def matches(self, rec: RawRecord, body: dict[str, Any]) -> bool:
        return (
            all(rec.header(h) for h in self.headers)
            and all(k in body for k in self.keys)
            and all(body.get(k) == v for k, v in self.values)
        )

    @property
    def specificity(self) -> tuple[int, int]:
        return len(self.values), len(self.headers) + len(self.keys)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    domains: tuple[str, ...]
    recognise: Recogniser
    adapt: AdaptFn
    external_principals: bool = False


class Registry:
    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}
        self._by_domain: dict[str, list[Source]] = {}

    def register(self, source: Source) -> Source:
        if source.name in self._sources:
            raise ValueError(f"source {source.name!r} is registered twice")
        if not source.recognise.specificity[1] and not source.recognise.values:
            raise ValueError(f"source {source.name!r} recognises every record")
        self._sources[source.name] = source
        for domain in source.domains:
            candidates = self._by_domain.setdefault(domain, [])
            candidates.append(source)
            candidates.sort(key=lambda s: (tuple(-n for n in s.recognise.specificity), s.name))
        return source

    def sources(self) -> list[Source]:
        return sorted(self._sources.values(), key=lambda s: s.name)

    def names(self) -> list[str]:
        return sorted(self._sources)

    def get(self, name: str) -> Source | None:
        return self._sources.get(name)

    def recognise(
        self, rec: RawRecord, body: dict[str, Any], domain: str | None = None, formats: tuple[str, ...] = ()
    ) -> Source | None:
        """The source of a record. On a topic configured with formats (format_config.py), one format is the
        source, whatever the record says; of several, the most specific that recognises it, or the one its
        format header names among them. Otherwise the one its format header (FORMAT_HEADER) names, if it
        serves the domain, else the most specific that recognises it among the domain's (every domain's for
        a record read from a file, which has no topic yet)."""
        named = rec.header(FORMAT_HEADER)
        if formats:
            if len(formats) == 1:
                return self._sources.get(formats[0])
            if named is not None:
                return self._sources.get(named.strip()) if named.strip() in formats else None
            listed = [s for s in self._by_domain.get(domain or "", []) if s.name in formats]
            return next((s for s in listed if s.recognise.matches(rec, body)), None)
        if named is not None:
            source = self._sources.get(named.strip())
            return source if source is not None and (domain is None or domain in source.domains) else None
        candidates = self._by_domain.get(domain, []) if domain is not None else self._everywhere()
        return next((s for s in candidates if s.recognise.matches(rec, body)), None)

    def _everywhere(self) -> list[Source]:
        return sorted(
            self._sources.values(), key=lambda s: (tuple(-n for n in s.recognise.specificity), s.name)
        )

    def external_principals(self, name: str) -> bool:
        source = self._sources.get(name)
        return source is not None and source.external_principals

    def adapt(self, rec: RawRecord, domain: str | None, formats: tuple[str, ...] = ()) -> CanonicalEvent:
        """Map one raw record from the given input domain (whose topic holds `formats`, if configured) to a
        canonical event, or raise AdapterError."""
        body = parse_json(rec.value)
        if not isinstance(body, dict):
            raise AdapterError("unknown_shape", f"top-level JSON {type(body).__name__}, expected an object")
        source = self.recognise(rec, body, domain or "", formats)
        if source is None:
            named = rec.header(FORMAT_HEADER)
            if formats and named is not None:
                why = f"format {named!r} is not one of the formats ({', '.join(formats)}) configured for"
            elif formats:
                why = f"none of the formats configured ({', '.join(formats)}) recognises this record on"
            elif named is not None:
                why = f"format {named!r} is no source of"
            else:
                why = "no adapter for this record on"
            raise AdapterError("unknown_shape", f"{why} domain {domain!r}")
        try:
            return source.adapt(rec, body)
        except AdapterError:
            raise
        except Exception as exc:
            # A known source whose body has the wrong types somewhere: still a record we cannot read, never a
            # crash of the agent loop.
            raise AdapterError("unknown_shape", f"{type(exc).__name__}: {exc}"[:200]) from exc


REGISTRY = Registry()


def source(
    name: str, domains: tuple[str, ...], recognise: Recogniser, external_principals: bool = False
) -> Callable[[AdaptFn], AdaptFn]:
    """Register the decorated function as the adapter of source `name` (see the module docstring)."""

    def register(fn: AdaptFn) -> AdaptFn:
        REGISTRY.register(Source(name, domains, recognise, fn, external_principals))
        return fn

    return register


# A \uD800-\uDFFF escape: either half of a surrogate pair (fine) or a lone surrogate (not Unicode).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(value: bytes) -> Any:
    try:
        body = json.loads(value)
    except (ValueError, RecursionError) as exc:
        # ValueError: syntax (JSONDecodeError), encoding (UnicodeDecodeError), and an integer literal over
        # Python's 4,300-digit conversion limit; RecursionError: nesting deeper than the parser's stack.
        raise AdapterError("malformed_json", str(exc)[:200]) from exc
    if _SURROGATE_ESCAPE.search(value):
        # Lone surrogates parse, but neither the policy engine nor Avro carries them: a poison pill if let in.
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AdapterError("malformed_json", f"invalid Unicode: {exc.reason}") from exc
    return body
