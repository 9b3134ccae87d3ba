"""The webhook routes of `nhiguard serve`: one per source, served only when its secret is configured
(nhiguard/webhook_config.py): `POST /webhooks/github`, `/webhooks/gitlab`, `/webhooks/contentful`,
`/webhooks/strapi/<integration>`, `/webhooks/verdaccio` (its publish notifications).

A delivery is checked in this order, and the first failure answers: 413 (over NHIGUARD_MAX_RECORD_BYTES: not
read further), 401 (the sender's proof, before anything about the content is said), 415 (not JSON). Then its
raw body, unchanged, goes to the source's input topic with the headers that carry meaning (the allow-list of
nhiguard/decision/headers.py), keyed as docs/sources.md says. The sender gets 202 only once Kafka acknowledged
the record, and 503 when it did not: it sends it again, and nothing is acknowledged that is not on Kafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from nhiguard.decision.headers import kept
from nhiguard.settings import Settings
from nhiguard.streams.acks import DeliveryFailed
from nhiguard.streams.webhooks import (
    SOURCES,
    STRAPI_INTEGRATION_HEADER,
    Delivery,
    Source,
    Unauthorized,
    parse_json,
    verify_contentful,
    verify_github,
    verify_gitlab,
    verify_strapi,
    verify_verdaccio,
)

log = logging.getLogger("nhiguard.serve")


class Sender(Protocol):
    """Where accepted deliveries go: streams/acks.AckedProducer (the unit tests give a recorder)."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> tuple[int, int]: ...


class Refused(Exception):
    """A delivery answered with an error status and one message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> web.Response:
    """Every error nhiguard serve answers: a JSON body with one message."""
    return web.json_response({"error": message, "status": status}, status=status)


async def _body(request: web.Request, limit: int) -> bytes:
    """The raw body, read no further than `limit` bytes: a larger one is refused, never buffered."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, f"body of {request.content_length} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(request: web.Request, body: bytes) -> Any:
    # aiohttp's parse of Content-Type, without its parameters (and application/octet-stream when absent).
    ctype = request.content_type if "Content-Type" in request.headers else "missing"
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise Refused(415, f"Content-Type {ctype}: send application/json")
    try:
        return parse_json(body)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise Refused(415, f"body is not JSON: {exc}") from None


class Receiver:
    """The webhook routes of one process: what verifies each source, and where its records go."""

    def __init__(self, settings: Settings, sender: Sender, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.sender = sender
        self.clock = clock  # what Contentful's signed timestamp is checked against

    def routes(self) -> list[web.RouteDef]:
        # Strapi has one route per integration: the path names whose webhook a delivery is.
        paths = {name: f"/webhooks/{name}" for name in self.settings.webhooks.sources}
        if "strapi" in paths:
            paths["strapi"] += "/{integration}"
        return [web.post(path, self._handler(name)) for name, path in paths.items()]

    def _handler(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        source = SOURCES[name]

        async def handle(request: web.Request) -> web.Response:
            try:
                return await self.receive(source, request)
            except Refused as exc:
                log.warning("%s webhook from %s refused (%d): %s", name, request.remote, exc.status, exc)
                return error(exc.status, str(exc))

        return handle

    def _verify(self, source: Source, request: web.Request, delivery: Delivery) -> None:
        """Refused(401) unless the delivery proves it comes from the source."""
        secrets = self.settings.webhooks
        try:
            if source.name == "github":
                verify_github(secrets.github or "", delivery)
            elif source.name == "gitlab":
                verify_gitlab(secrets.gitlab or "", delivery)
            elif source.name == "contentful":
                verify_contentful(secrets, delivery, int(self.clock() * 1000))
            elif source.name == "verdaccio":
                verify_verdaccio(secrets.verdaccio or "", delivery)
            else:
                integration = request.match_info["integration"]
                token = secrets.strapi_token(integration)
                if token is None:
                    raise Refused(404, f"no Strapi webhook is configured for integration {integration!r}")
                verify_strapi(token, delivery)
        except Unauthorized as exc:
            raise Refused(401, str(exc)) from None

    async def receive(self, source: Source, request: web.Request) -> web.Response:
        body = await _body(request, self.settings.max_record_bytes)
        self._verify(source, request, Delivery(request.method, request.raw_path, request.raw_headers, body))
        key = source.key(_json(request, body))
        headers = list(kept(tuple((k.decode("latin-1"), v) for k, v in request.raw_headers)))
        if source.name == "strapi":
            # The route names the integration (Strapi's payload names no actor): whatever the sender put in
            # this header is replaced, and the integration is the record's key.
            key = request.match_info["integration"]
            headers = [(k, v) for k, v in headers if k.lower() != STRAPI_INTEGRATION_HEADER.lower()]
            headers.append((STRAPI_INTEGRATION_HEADER, key.encode()))
        topic = getattr(self.settings.topics, source.topic_field)
        try:
            partition, offset = await self.sender.send(topic, key.encode() if key else None, body, headers)
        except DeliveryFailed as exc:
            raise Refused(503, f"not accepted, send it again: Kafka did not take it ({exc})") from None
        log.info("%s webhook accepted: %s[%d]@%d", source.name, topic, partition, offset)
        return web.json_response(
            {"accepted": True, "topic": topic, "partition": partition, "offset": offset}, status=202
        )
