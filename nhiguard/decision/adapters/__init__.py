"""Adapters: one per source format, pure functions from a raw record to a canonical event.

`adapt` never lets an exception escape except AdapterError, whose reason code becomes the dead-letter reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nhiguard.decision.adapters import contentful, github, npm
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

# A \uD800-\uDFFF escape: either half of a surrogate pair (fine) or a lone surrogate (not Unicode).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(value: bytes) -> Any:
    try:
        body = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AdapterError("malformed_json", str(exc)[:200]) from exc
    if _SURROGATE_ESCAPE.search(value):
        # Lone surrogates parse, but neither the policy engine nor Avro carries them: a poison pill if let in.
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise AdapterError("malformed_json", f"invalid Unicode: {exc.reason}") from exc
    return body


def adapt(rec: RawRecord, domain: str | None) -> CanonicalEvent:
    """Map one raw record from the given input domain to a canonical event, or raise AdapterError."""
    body = parse_json(rec.value)
    if not isinstance(body, dict):
        raise AdapterError("unknown_shape", f"top-level JSON {type(body).__name__}, expected an object")
    try:
        if domain == "cms" and rec.header(contentful.TOPIC_HEADER):
            return contentful.adapt(rec, body)
        if domain == "ci" and body.get("gate") == "npm-publish":
            return github.adapt_gate(rec, body)
        if domain == "ci" and rec.header("X-GitHub-Event"):
            return github.adapt_webhook(rec, body)
        if domain == "registry" and body.get("event") == "package:publish" and "hookOwner" in body:
            return npm.adapt_hook(rec, body)
        if domain == "registry" and {"level", "msg", "request"} <= body.keys():
            return npm.adapt_proxy_log(rec, body)
    except AdapterError:
        raise
    except Exception as exc:
        # A known source whose body has the wrong types somewhere: still a record we cannot read, never a
        # crash of the agent loop.
        raise AdapterError("unknown_shape", f"{type(exc).__name__}: {exc}"[:200]) from exc
    raise AdapterError("unknown_shape", f"no adapter for this record on domain {domain!r}")
