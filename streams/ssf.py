"""The SSF/CAEP transmitter of `nhiguard serve` (README "SSF / CAEP"): its metadata
(`/.well-known/ssf-configuration`) and JWKS, and a consumer of the commands topic that turns each signed
REVOKE into a Security Event Token (nhiguard/secevent.py) pushed to every configured receiver
(streams/ssf_push.py).

Like `nhiguard enforce verdaccio`, it reads the commands topic in its own committed consumer group
(`<app id>-ssf`), verifies each record's signature against NHIGUARD_COMMAND_KEYS (an unsigned or forged
command is never transmitted), passes over DENYs, HELD records and expired commands, and commits a record's
offset only once every receiver has acknowledged its SET or refused it for good. Which receiver answered which
SET is kept in a state file, so a command delivered again (a restart, a rebalance, the worker deciding an
event again: the same command id) is not pushed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from aiohttp import web

from nhiguard.avro import AvroCodec
from nhiguard.secevent import JWKS_PATH, WELL_KNOWN, NotTransmitted, SetSigner, event_of, set_id
from nhiguard.settings import Settings
from nhiguard.signing import Jwks, load_signer, verify_record
from nhiguard.streams.ssf_push import ACKNOWLEDGED, Delivered, Pusher, PushResult

log = logging.getLogger("nhiguard.ssf")

ACTIONABLE = ("ISSUED", "RELEASED")  # as for every enforcement point: a HELD record does nothing


class SsfStartError(Exception):
    """The transmitter cannot start (one line for the CLI)."""


class Transmitter:
    def __init__(
        self,
        settings: Settings,
        signer: SetSigner,
        jwks: Jwks,
        delivered: Delivered,
        retry_base_s: float = 1.0,
    ) -> None:
        self.settings, self.signer, self.jwks, self.delivered = settings, signer, jwks, delivered
        self.codec = AvroCodec(settings.schemas_dir)
        self.pusher = Pusher(settings.ssf.timeout_s, settings.ssf.retry_max_s, retry_base_s)

    def routes(self) -> list[web.RouteDef]:
        metadata, jwks = self.signer.metadata(), self.signer.jwks()

        async def configuration(_request: web.Request) -> web.Response:
            return web.json_response(metadata)

        async def keys(_request: web.Request) -> web.Response:
            return web.json_response(jwks, content_type="application/jwk-set+json")

        return [web.get(WELL_KNOWN, configuration), web.get(JWKS_PATH, keys)]

    def command(
        self, value: bytes | None, headers: Any, now_ms: int
    ) -> tuple[dict[str, Any] | None, str, str]:
        """(the command to transmit, or None; "refused" or "passed"; why)."""
        verdict = verify_record(value, headers, self.jwks)
        if not verdict.ok:
            return None, "refused", verdict.reason
        try:
            if self.codec.schema_name(value or b"") != "EnforcementCommand":
                return None, "refused", "not an EnforcementCommand record"
            cmd = self.codec.decode(value or b"")
        except Exception as exc:  # the signer's own bytes that do not decode: never a crash of the loop
            return None, "refused", f"undecodable command: {type(exc).__name__}"
        expires = cmd["expires_at"]
        expires_ms = int(expires.timestamp() * 1000) if isinstance(expires, datetime) else int(expires)
        try:
            event_of(cmd, self.signer.issuer)
        except NotTransmitted as exc:
            return None, "passed", str(exc)
        if cmd["status"] not in ACTIONABLE:
            return None, "passed", f"status {cmd['status']}: not to be applied"
        if expires_ms <= now_ms:
            return None, "passed", "expired"
        return cmd, "", ""

    async def transmit(self, cmd: dict[str, Any], stop: asyncio.Event) -> bool:
        """Push the command's SET to every receiver that has not answered it yet; False when stopped first."""
        cid = str(cmd["command_id"])
        jti = set_id(cid)
        pending = [r for r in self.settings.ssf.receivers if (r.name, jti) not in self.delivered]
        if not pending:
            log.info("ALREADY %s (SET %s): every receiver has answered it", cid, jti)
            return True
        now = int(time.time())

        async def one(receiver: Any) -> PushResult | None:
            result = await self.pusher.deliver(receiver, self.signer.token(cmd, receiver.audience, now), stop)
            if result is not None:
                self.delivered.add(result.receiver, jti, result.outcome, cid)
                level = logging.INFO if result.outcome == ACKNOWLEDGED else logging.ERROR
                log.log(
                    level,
                    "SET %s of %s %s by %s: %s",
                    jti,
                    cid,
                    result.outcome,
                    receiver.name,
                    result.detail,
                )
            return result

        results = await asyncio.gather(*(one(r) for r in pending))
        return all(r is not None for r in results)

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        from nhiguard.kafka_clients import confluent_config

        group = f"{self.settings.app_id}-ssf"
        conf = {"group.id": group, "client.id": group, "enable.auto.commit": False, "log_level": 3}
        return Consumer(confluent_config(self.settings, **conf, **{"auto.offset.reset": "earliest"}))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume the commands topic until `stop`; each record handled, then its offset committed."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(1, "nhiguard-ssf")  # the consumer is used from one thread only
        consumer = await loop.run_in_executor(pool, self._consumer)
        topic = self.settings.topics.commands
        await loop.run_in_executor(pool, consumer.subscribe, [topic])
        names = ", ".join(r.name for r in self.settings.ssf.receivers)
        log.info("SSF: transmitting the REVOKEs of %s to %s", topic, names)
        try:
            while not stop.is_set():
                msg = await loop.run_in_executor(pool, consumer.poll, 0.5)
                if msg is None:
                    continue
                if msg.error():
                    log.warning("Kafka: %s", msg.error())
                    continue
                where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
                cmd, what, why = self.command(msg.value(), msg.headers() or [], int(time.time() * 1000))
                if cmd is None:
                    log.log(
                        logging.WARNING if what == "refused" else logging.INFO,
                        "%s %s: %s",
                        what.upper(),
                        where,
                        why,
                    )
                elif not await self.transmit(cmd, stop):
                    break  # stopped before every receiver answered: not committed, pushed again on restart
                await loop.run_in_executor(pool, _commit, consumer, msg)
        finally:
            await loop.run_in_executor(pool, consumer.close)
            pool.shutdown(wait=False)
            await self.pusher.close()


def _commit(consumer: Any, msg: Any) -> None:
    """Commit past `msg`; a commit the group refuses (a rebalance took the partition) is not fatal: the record
    comes again to whoever has it, and its SETs are in the state file already."""
    from confluent_kafka import KafkaException

    try:
        consumer.commit(message=msg, asynchronous=False)
    except KafkaException as exc:
        log.warning("commit of %s[%d]@%d refused: %s", msg.topic(), msg.partition(), msg.offset(), exc)


def start_ssf(settings: Settings) -> Transmitter:
    """The transmitter of these settings; SsfStartError (one line) without its key or trusted keys."""
    from nhiguard.signing import SigningError

    key, kid = settings.ssf.signing_key, settings.ssf.signing_kid
    if key is None:  # the commands' key signs the SETs too
        key, kid = settings.signing_key, settings.signing_kid
    if key is None:
        raise SsfStartError(
            "NHIGUARD_SSF_ISSUER is set but no NHIGUARD_SSF_SIGNING_KEY or NHIGUARD_SIGNING_KEY signs SETs"
        )
    if settings.command_keys is None:
        raise SsfStartError(
            "NHIGUARD_SSF_ISSUER is set but no NHIGUARD_COMMAND_KEYS (the JWKS commands are verified with)"
        )
    try:
        signer = SetSigner(settings.ssf.issuer, load_signer(key, kid or None))
        jwks = Jwks.load(settings.command_keys)
    except SigningError as exc:
        raise SsfStartError(str(exc)) from None
    path = settings.data_dir / "ssf-delivered"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.open("a").close()  # unwritable: said now, in one line, not at the first REVOKE
        delivered = Delivered(path)
    except OSError as exc:
        raise SsfStartError(f"the SSF state file {path}: {exc.strerror or exc}") from None
    return Transmitter(settings, signer, jwks, delivered)
