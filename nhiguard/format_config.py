"""Which source formats an input topic holds (NHIGUARD_TOPIC_FORMATS), read by load_settings and kept as
`Settings.formats`; apart from settings.py only because that is near the module size limit.

By default every source registered for a topic's domain may be on it, and each record's format is found as
README "Adding a source" says: a format header names it, else the most specific recogniser decides. A platform
team that knows what it ships to a topic says so here, and that is then all the topic is read as:

    NHIGUARD_TOPIC_FORMATS="audit.runtime=falco.alert,tetragon.event; audit.cms=strapi.webhook"

A topic with one format has every record read by that format's adapter (no recogniser, no header: a record it
cannot read gets the adapter's reason); one with several has the recognisers of those formats decide, and a
format header may only pick among them. A key is an input topic's configured name (before any sandbox prefix)
or its domain (cms, ci, registry, runtime).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nhiguard.config_values import settings_error

VAR = "NHIGUARD_TOPIC_FORMATS"
DOMAINS = ("cms", "ci", "registry", "runtime")


@dataclass(frozen=True)
class TopicFormats:
    """Per input domain, the formats its topic holds (a domain not listed: every format serving it)."""

    by_domain: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def of(self, domain: str | None) -> tuple[str, ...]:
        return next((formats for d, formats in self.by_domain if d == domain), ())


def load_topic_formats(env: Mapping[str, str], topic_names: Mapping[str, str]) -> TopicFormats:
    """TopicFormats from NHIGUARD_TOPIC_FORMATS; `topic_names` maps each domain to its input topic's name.
    A SettingsError names what cannot be used: an unknown topic or format, a format of another domain."""
    from nhiguard.decision.adapters.registry import REGISTRY  # adapters are imported only when configured

    text = env.get(VAR, "").strip()
    by_name = {name: domain for domain, name in topic_names.items()} | {d: d for d in DOMAINS}
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        domain = by_name.get(key.strip())
        if not sep or domain is None:
            known = ", ".join(sorted(topic_names.values()))
            raise settings_error(f"{VAR}: expected <input topic>=<format>,… ({known}), got {part!r}")
        if domain in out:
            raise settings_error(f"{VAR}: topic {topic_names[domain]} is configured twice")
        formats = tuple(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
        if not formats:
            raise settings_error(f"{VAR}: no format given for {key.strip()}")
        for name in formats:
            source = REGISTRY.get(name)
            if source is None:
                raise settings_error(f"{VAR}: unknown format {name!r} (one of docs/sources.md)")
            if domain not in source.domains:
                raise settings_error(
                    f"{VAR}: {name} records are not read on {topic_names[domain]} (it serves"
                    f" {', '.join(topic_names.get(d, d) for d in source.domains)})"
                )
        out[domain] = formats
    return TopicFormats(tuple(sorted(out.items())))
