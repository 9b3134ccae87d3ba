"""Adapters: one module per source format, pure functions from a raw record to a canonical event.

Every module of this package is imported here, and each registers the sources it reads (registry.py), so a
new source is a new module (with its fixtures and its section in docs/sources.md) and nothing else. `adapt`
never lets an exception escape except AdapterError, whose reason code becomes the dead-letter reason.
"""

from __future__ import annotations

import importlib
import pkgutil

from nhiguard.decision.adapters.registry import REGISTRY
from nhiguard.decision.records import CanonicalEvent, RawRecord

_HELPERS = {"common", "registry"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _HELPERS:
        importlib.import_module(f"{__name__}.{_module}")


def adapt(rec: RawRecord, domain: str | None, formats: tuple[str, ...] = ()) -> CanonicalEvent:
    """Map one raw record from the given input domain (whose topic holds only `formats`, when configured:
    Settings.formats) to a canonical event, or raise AdapterError."""
    return REGISTRY.adapt(rec, domain, formats)


def external_principals(source: str) -> bool:
    """Whether the principals of this source are accounts outside the organisation."""
    return REGISTRY.external_principals(source)


__all__ = ["adapt", "external_principals"]
