"""Contentful webhook deliveries (audit.cms). See docs/sources.md."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from nhiguard.decision.adapters.common import get, iso_ms, need
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import CmsChange
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord

SOURCE = "contentful.webhook"
TOPIC_HEADER = "X-Contentful-Topic"
# Hosts that serve asset files to anyone holding the URL, published or not.
_PUBLIC_ASSET_HOSTS = (
    "assets.ctfassets.net",
    "images.ctfassets.net",
    "videos.ctfassets.net",
    "downloads.ctfassets.net",
)
# The link and the time an operation sets on the entity's `sys` (the rest set updatedBy / updatedAt).
_OWN_LINK = {"publish": "publishedBy", "archive": "archivedBy", "delete": "deletedBy"}
_OWN_TIME = {"publish": "publishedAt", "archive": "archivedAt", "delete": "deletedAt"}
_NON_HUMAN_LINKS = {"AppDefinition", "PersonalAccessToken", "ApiKey", "PreviewApiKey", "Bot"}
# Tag ids that mark content as not for the public (compared without case). Untagged content is ordinary media:
# the catalog syncs and asset bridges upload it to the public host and publish it minutes later.
RESTRICTED_TAGS = frozenset(
    {"internal", "confidential", "restricted", "draft", "embargoed", "embargo", "private", "secret"}
)


def _public_url(url: str | None) -> bool:
    if not url:
        return False
    host = urlsplit(url if "//" in url else "//" + url).hostname or ""
    return host in _PUBLIC_ASSET_HOSTS


def _file(fields: Any) -> tuple[str | None, str]:
    """(URL, content type) of the asset's file. The field is localised: {"en-US": {...}}; the first locale
    with a URL counts."""
    files = fields.get("file") if isinstance(fields, dict) else None
    for loc in files.values() if isinstance(files, dict) else ():
        if isinstance(loc, dict) and loc.get("url"):
            return str(loc["url"]), str(loc.get("contentType") or "")
    return None, ""


@source(SOURCE, domains=("cms",), recognise=Recogniser(headers=(TOPIC_HEADER,)))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    topic = rec.header(TOPIC_HEADER)
    if not topic or not topic.startswith("ContentManagement."):
        raise AdapterError("unknown_shape", f"{TOPIC_HEADER} header missing or not ContentManagement.*")
    parts = topic.split(".")
    if len(parts) != 3:
        raise AdapterError("unknown_shape", f"unexpected {TOPIC_HEADER} {topic!r}")
    _, entity_type, operation = parts
    sys = need(body, "sys")
    entity_id = need(sys, "id")
    space = get(sys, "space", "sys", "id", default="-")
    version = get(sys, "version", default=get(sys, "revision", default=0))
    # Who did it: the link the operation sets (a delete arrives as a tombstone, `DeletedEntry`/`DeletedAsset`,
    # naming `deletedBy` and nothing else), else the last update's author, else the creator.
    own = _OWN_LINK.get(operation, "updatedBy")
    link = get(sys, own, "sys") or get(sys, "updatedBy", "sys") or get(sys, "createdBy", "sys")
    if not isinstance(link, dict) or not link.get("id"):
        raise AdapterError("missing_identity", f"sys.{own}/updatedBy/createdBy has no id")
    link_type = str(link.get("linkType", "User"))
    actor = Actor(
        id=f"contentful:{space}/{link_type}/{link['id']}",
        display=f"{link_type}:{link['id']}",
        human=link_type not in _NON_HUMAN_LINKS,
        source_principal=str(link["id"]),
    )
    tags = tuple(
        sorted(
            {
                str(t["sys"]["id"])
                for t in get(body, "metadata", "tags", default=[])
                if isinstance(t, dict) and get(t, "sys", "id")
            }
        )
    )
    url, content_type = _file(get(body, "fields", default={}))
    published = bool(get(sys, "publishedVersion") or get(sys, "publishedAt"))
    if operation == "publish":
        reachable_after, via = True, "publish"
    elif operation in {"unpublish", "archive", "delete"}:
        reachable_after, via, published = False, "none", False
    else:
        # An upload/save of an asset file on a public host is reachable without any publish.
        reachable_after = entity_type == "Asset" and _public_url(url)
        via = "upload" if reachable_after and not published else "none"
    cms = CmsChange(
        entity_type=entity_type,
        operation=operation,
        tags=tags,
        published_before=published and operation != "publish",
        publicly_reachable=reachable_after,
        via=via,
        # Reachable without any publish, and not marked as meant to be public: an unintended exposure.
        exposed_without_publish=via == "upload" and "public" not in tags,
        file_public_url=_public_url(url),
        restricted_tags=tuple(t for t in tags if t.lower() in RESTRICTED_TAGS),
        content_type=content_type,
    )
    ts = iso_ms(get(sys, _OWN_TIME.get(operation, "updatedAt")), rec.timestamp_ms)
    return CanonicalEvent(
        event_id=f"{space}/{entity_type}/{entity_id}@{version}:{topic}",
        source=SOURCE,
        domain="cms",
        action=f"cms.{entity_type.lower()}.{operation}",
        occurred_at_ms=ts,
        actor=actor,
        resource_type=f"cms.{entity_type.lower()}",
        resource_id=f"{space}/{entity_id}",
        facts=cms,
    )
