"""nhiguard's one HTTP process (`nhiguard serve`): the application and its lifecycle. It serves the webhook
receiver (streams/receiver.py), the decision API (streams/decision_api.py, when its token is configured) and
`GET /healthz`, and the SSF/CAEP transmitter (streams/ssf.py, when its issuer is configured): its metadata and
JWKS, and its push of each signed REVOKE to the receivers.

It stops on SIGTERM or SIGINT: it stops listening, lets the deliveries in flight get Kafka's answer (and their
senders theirs), then flushes the producer.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nhiguard.settings import Settings
from nhiguard.streams.acks import AckedProducer, DeliveryFailed
from nhiguard.streams.decision_api import ApiStartError, DecisionApi, start_api
from nhiguard.streams.receiver import Receiver, Sender, error
from nhiguard.streams.ssf import SsfStartError, Transmitter, start_ssf
from nhiguard.streams.webhooks import SOURCES

log = logging.getLogger("nhiguard.serve")


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
    """aiohttp's own answers (404, 405, a malformed request) and any failure of ours, in the JSON shape of
    every other error."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, f"{exc.reason}: {request.method} {request.path}")
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error(500, "internal error (logged)")


def build_app(
    settings: Settings,
    sender: Sender,
    clock: Callable[[], float] = time.time,
    api: DecisionApi | None = None,
    ssf: Transmitter | None = None,
) -> web.Application:
    """The HTTP application: the webhook routes of the configured sources, the decision API, the SSF
    transmitter's metadata and JWKS, /healthz."""
    # aiohttp's own body limit is never what answers: the receiver stops reading at max_record_bytes (413).
    app = web.Application(middlewares=[json_errors], client_max_size=settings.max_record_bytes + 1)
    sources = list(settings.webhooks.sources)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "webhooks": sources, "decision_api": api is not None, "ssf": ssf is not None}
        )

    app.add_routes([web.get("/healthz", healthz), *Receiver(settings, sender, clock).routes()])
    if api is not None:
        app.add_routes(api.routes())
    if ssf is not None:
        app.add_routes(ssf.routes())
    return app


async def serve_until_signalled(
    settings: Settings,
    producer: AckedProducer,
    host: str,
    port: int,
    api: DecisionApi | None = None,
    ssf: Transmitter | None = None,
) -> int:
    """Serve on host:port until SIGTERM or SIGINT, then stop listening, let the deliveries in flight be
    answered, and flush the producer. 1 when the SSF transmitter failed (so the process is restarted)."""
    runner = web.AppRunner(
        build_app(settings, producer, api=api, ssf=ssf),
        # In-flight deliveries get Kafka's answer (at most the ack timeout) before the process goes.
        shutdown_timeout=producer.timeout_s + 5.0,
        access_log=None,
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses)
    api_on = " and the decision API (POST /v1/decisions)" if api is not None else ""
    api_on += f", SSF transmitter {ssf.signer.issuer}" if ssf is not None else ""
    log.info("serving on %s: webhooks %s%s", bound, ", ".join(settings.webhooks.sources) or "none", api_on)
    transmitting = _transmit(ssf, stop)
    await stop.wait()
    log.info("stopping: finishing the deliveries in flight")
    failed = await transmitting if transmitting is not None else False
    await runner.cleanup()
    await loop.run_in_executor(None, producer.close, producer.timeout_s)
    log.info("stopped")
    return 1 if failed else 0


def _transmit(ssf: Transmitter | None, stop: asyncio.Event) -> Awaitable[bool] | None:
    """The SSF transmitter's consumer as a task (when it has receivers); it stops with `stop`, and a failure
    of it stops the server: logged, exit 1."""
    if ssf is None or not ssf.settings.ssf.receivers:
        if ssf is not None:
            log.warning("SSF: no receiver is configured: only the metadata and the JWKS are served")
        return None

    async def run() -> bool:
        try:
            await ssf.run(stop)
            return False
        except Exception:
            log.exception("the SSF transmitter failed: stopping")
            stop.set()
            return True

    return asyncio.ensure_future(run())


def run_serve(settings: Settings, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT; exit 2 with one line on stderr when it cannot start."""
    hooks = settings.webhooks
    if not hooks.sources and not settings.api.enabled and not settings.ssf.enabled:
        print(
            "nhiguard serve: no webhook source has a secret, the decision API has no token and no SSF issuer"
            " is set, so nothing would be served (README: Webhook receiver, Gates, SSF / CAEP)",
            file=sys.stderr,
        )
        return 2
    try:
        ssf = start_ssf(settings) if settings.ssf.enabled else None
    except SsfStartError as exc:
        print(f"nhiguard serve: {exc}", file=sys.stderr)
        return 2
    producer = AckedProducer(settings, hooks.ack_timeout_s)
    topics = sorted({getattr(settings.topics, SOURCES[s].topic_field) for s in hooks.sources})
    if settings.api.enabled:
        topics = sorted({*topics, *settings.topics.inputs})
    try:
        missing = producer.check(topics)
        api = start_api(settings, producer) if settings.api.enabled else None
    except (DeliveryFailed, ApiStartError) as exc:
        print(f"nhiguard serve: Kafka at {settings.bootstrap}: {exc}", file=sys.stderr)
        producer.close(0)
        return 2
    if missing:
        # Not fatal: the worker (or `nhiguard topics create`) creates them; until then deliveries get 503.
        log.warning("input topics %s do not exist yet: deliveries to them are answered 503", missing)
    try:
        return asyncio.run(serve_until_signalled(settings, producer, host, port, api, ssf))
    except OSError as exc:  # the address is in use, or not this host's
        print(f"nhiguard serve: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        producer.close(0)
        return 2
    finally:
        if api is not None:
            api.waiter.close()
