"""Strapi webhook deliveries (audit.cms): entries, media and releases. See docs/sources.md.

A Strapi webhook names no actor (its payload omits who made the change), so the identity is the webhook's
configured integration: the `X-Webhook-Integration` header, which the receiver sets from the route the
delivery came in on (or the webhook's own headers carry, set in Strapi's admin). Without it a delivery is
dead-lettered: nhiguard does not guess whose change it was.
"""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import body_hash, get, iso_ms, text
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import CmsChange
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord

SOURCE = "strapi.webhook"
EVENT_HEADER = "X-Strapi-Event"
INTEGRATION_HEADER = "X-Webhook-Integration"
_GONE = ("unpublish", "delete")
# Strapi's event kinds as the CMS entities of the canonical actions (media files are assets, as Contentful's).
_ENTITIES = {"entry": "entry", "media": "asset", "releases": "release", "review-workflows": "review_workflow"}


def _integration(rec: RawRecord) -> Actor:
    name = (rec.header(INTEGRATION_HEADER) or "").strip()
    if not name:
        raise AdapterError(
            "missing_identity",
            f"Strapi webhooks name no actor and the delivery has no {INTEGRATION_HEADER} header "
            "(the receiver's route sets it to the webhook's integration)",
        )
    return Actor(id=f"strapi:{name}", display=name, human=False, source_principal=name)


def _entry(body: dict[str, Any], operation: str) -> tuple[CmsChange, str]:
    entry = body.get("entry")
    if not isinstance(entry, dict):
        raise AdapterError("unknown_shape", "Strapi entry event without an entry object")
    live = bool(entry.get("publishedAt") or entry.get("published_at"))
    reachable = operation == "publish" or (live and operation not in _GONE)
    change = CmsChange(
        entity_type="Entry",
        operation=operation,
        tags=(),  # Strapi has no classification of its own: nothing is marked restricted
        published_before=live and operation != "publish",
        publicly_reachable=reachable,
        via="publish" if operation == "publish" else "none",
        exposed_without_publish=False,
        file_public_url=False,
    )
    model = text(body, "uid") or text(body, "model") or "-"
    return change, f"{model}/{entry.get('documentId') or entry.get('id', '-')}"


def _media(body: dict[str, Any], operation: str) -> tuple[CmsChange, str]:
    media = body.get("media")
    if not isinstance(media, dict):
        raise AdapterError("unknown_shape", "Strapi media event without a media object")
    # Media has no draft: the upload provider serves the file to anyone holding its URL (the local
    # provider under /uploads/) from the upload on, with no publish to come.
    reachable = bool(text(media, "url")) and operation != "delete"
    change = CmsChange(
        entity_type="Asset",
        operation=operation,
        tags=(),
        published_before=False,
        publicly_reachable=reachable,
        via="upload" if reachable else "none",
        exposed_without_publish=reachable,
        file_public_url=reachable,
        content_type=text(media, "mime"),
    )
    return change, f"media/{media.get('documentId') or media.get('id', '-')}"


@source(SOURCE, domains=("cms",), recognise=Recogniser(headers=(EVENT_HEADER,)))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    event = rec.header(EVENT_HEADER) or ""
    kind, _, operation = event.partition(".")
    if not operation or text(body, "event") not in ("", event):
        detail = f"{EVENT_HEADER} {event[:60]!r} is not the body's <kind>.<operation>"
        raise AdapterError("unknown_shape", detail)
    actor = _integration(rec)
    facts: CmsChange | None = None
    entity = _ENTITIES.get(kind, kind.replace("-", "_"))
    if kind == "entry":
        facts, resource = _entry(body, operation)
    elif kind == "media":
        facts, resource = _media(body, operation)
    else:  # a release published, a review stage changed: no content of its own in the payload
        resource = f"{entity}/{get(body, 'release', 'id', default='-')}"
    return CanonicalEvent(
        event_id=f"strapi:{actor.source_principal}:{body_hash(rec.value)}",
        source=SOURCE,
        domain="cms",
        action=f"cms.{entity}.{operation}",
        occurred_at_ms=iso_ms(text(body, "createdAt") or text(body, "created_at"), rec.timestamp_ms),
        actor=actor,
        resource_type=f"cms.{entity}",
        resource_id=resource,
        facts=facts,
    )
