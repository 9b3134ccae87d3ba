"""Which input headers nhiguard keeps, and the namespace that is its own.

Webhook bridges copy HTTP headers into Kafka headers, tokens and signatures among them. nhiguard keeps only
the headers the adapters read (the vendors' event, delivery and topic headers), the content type and trace
context; everything else is dropped before a record is forwarded to the by-identity topic or copied into a
dead letter. Headers named `nhiguard-*` (any case) are the worker's own: on an input record they are a forgery
and never kept, so what the stateful stage trusts on the by-identity topic is only what `route` wrote.
"""

from __future__ import annotations

import re

INTERNAL_PREFIX = "nhiguard-"

# Lower case. The adapters' headers (a test checks every header a source recognises is here), then context.
ALLOWED = frozenset(
    {
        "x-github-event",
        "x-github-delivery",
        "x-github-hook-id",
        "x-github-hook-installation-target-type",
        "x-github-hook-installation-target-id",
        "x-contentful-topic",
        "x-contentful-webhook-name",
        "x-nhiguard-format",  # adapters/registry.py FORMAT_HEADER: decide must read it as route did
        "x-nhiguard-redriven-from",  # REDRIVEN_FROM
        "x-gitlab-event",
        "x-gitlab-event-uuid",
        "x-strapi-event",
        "x-webhook-integration",
        "content-type",
        "traceparent",
        "tracestate",
    }
)

Headers = tuple[tuple[str, bytes], ...]

# Where a record `nhiguard deadletters redrive` sent back was first read (`topic|partition|offset|ms`): kept
# with it, and named in its decision's flags. A claim like the format header: anyone may set it, and it moves
# nothing (the record is judged by where it is).
REDRIVEN_FROM = "X-Nhiguard-Redriven-From"
# What the claim must look like to be named at all (a Kafka topic name, then three numbers).
_REDRIVEN = re.compile(r"[A-Za-z0-9._-]{1,249}\|\d{1,10}\|\d{1,19}\|\d{1,19}")


def redriven_from(value: str | None) -> str | None:
    """The redrive claim when it has the form redrive writes, else None: a decision never carries a free
    string an input chose into its flags."""
    return value if value is not None and _REDRIVEN.fullmatch(value) else None


def is_internal(name: str) -> bool:
    return name.lower().startswith(INTERNAL_PREFIX)


def kept(headers: Headers) -> Headers:
    """The input headers nhiguard forwards and stores: the allow-list's, in their order."""
    return tuple((k, v) for k, v in headers if k.lower() in ALLOWED)
