"""Push delivery of Security Event Tokens (RFC 8935) to one receiver, with retries, and the record of what
each receiver has answered (so a command delivered again is not pushed again).

A receiver's 202 acknowledges the SET. A 400 refuses it for good (RFC 8935 section 2.3: its body says why,
`{"err", "description"}`): logged, not retried. Anything else (no answer in time, a connection refused, 401,
403, 5xx) is retried, the wait doubling from `retry_base_s` up to the configured maximum, until the receiver
answers or the transmitter stops (then nothing is recorded and the command is pushed again after a restart:
the same `jti`, which a receiver drops when it has it already).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from nhiguard.ledger import Ledger
from nhiguard.ssf_config import SsfReceiver

log = logging.getLogger("nhiguard.ssf")

CONTENT_TYPE = "application/secevent+jwt"
ACKNOWLEDGED, REFUSED = "acknowledged", "refused"


@dataclass(frozen=True)
class PushResult:
    receiver: str
    outcome: str  # ACKNOWLEDGED or REFUSED
    detail: str
    attempts: int


class Delivered(Ledger):
    """Which receiver answered which SET: `<receiver>\t<jti>\t<outcome>\t<command id>\t<at>`, synced before
    the command's offset is committed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, key_fields=2)

    def __contains__(self, receiver_jti: tuple[str, str]) -> bool:
        return self.done(*receiver_jti)


def _refusal(body: bytes) -> str:
    """A 400's RFC 8935 error, `err: description`, or what the body was instead."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("err"), str):
            return f"{data['err']}: {str(data.get('description', ''))[:300]}"
    except ValueError:
        pass
    return f"no RFC 8935 error body ({body[:120]!r})"


class Pusher:
    """Pushes SETs over one aiohttp session (opened in the serving loop, closed with it)."""

    def __init__(self, timeout_s: float, retry_max_s: float, retry_base_s: float = 1.0) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry_max_s, self.retry_base_s = retry_max_s, min(retry_base_s, retry_max_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def attempt(self, receiver: SsfReceiver, token: str) -> tuple[str | None, str]:
        """One POST: (ACKNOWLEDGED | REFUSED, detail), or (None, why) to retry."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}
        headers["Authorization"] = receiver.authorization
        try:
            async with self._session.post(
                receiver.endpoint, data=token.encode(), headers=headers, allow_redirects=False
            ) as resp:
                body = await resp.content.read(4096)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if resp.status == 202:
            return ACKNOWLEDGED, "202"
        if 200 <= resp.status < 300:  # not what RFC 8935 says, but the receiver has it
            return ACKNOWLEDGED, f"{resp.status} (RFC 8935 answers 202)"
        if resp.status == 400:
            return REFUSED, "400 " + _refusal(body)
        return None, f"HTTP {resp.status}"

    async def deliver(self, receiver: SsfReceiver, token: str, stop: asyncio.Event) -> PushResult | None:
        """Push until the receiver acknowledges or refuses the SET; None when `stop` is set first."""
        wait, attempts = self.retry_base_s, 0
        while not stop.is_set():
            attempts += 1
            outcome, detail = await self.attempt(receiver, token)
            if outcome is not None:
                return PushResult(receiver.name, outcome, detail, attempts)
            log.warning(
                "push to %s failed (%s): attempt %d, again in %.1fs", receiver.name, detail, attempts, wait
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            wait = min(wait * 2, self.retry_max_s)
        return None
