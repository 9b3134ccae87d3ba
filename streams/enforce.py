"""`nhiguard enforce verdaccio`: a reference enforcement point. It consumes `enforcement.commands`, verifies
each record's signature against the trusted JWKS (README "Signed commands"; unsigned records are refused
unless `--allow-unsigned`), and applies each REVOKE of a Verdaccio account's credential by revoking the
account in Verdaccio's htpasswd file (nhiguard/htpasswd.py says why that, and not removing the line), once per
command id: the ids applied are kept in a state file, so a command delivered again (a restart, a rebalance,
another consumer group) changes nothing.

Which account a REVOKE names: its target is a credential id of the inventory (`credential_ids`), taken as
`<prefix><user>` (`--credential-prefix`, default `verdaccio:`), or `identity:verdaccio:<user>` for an identity
the inventory lists without credential ids. Anything else (a DENY, another system's credential, a HELD record,
an expired command) is not this enforcer's to apply: it is logged and passed over. Offsets are committed only
after a record was handled, so nothing is skipped by a crash.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nhiguard.avro import AvroCodec
from nhiguard.htpasswd import HtpasswdError, revoke
from nhiguard.ledger import Ledger
from nhiguard.settings import Settings
from nhiguard.signing import Jwks, SigningError, Verdict, verify_record

log = logging.getLogger("nhiguard.enforce")

COMMAND_SCHEMA = "EnforcementCommand"
ACTIONABLE = ("ISSUED", "RELEASED")  # a HELD record (copied to this topic, or replayed) does nothing


class EnforceError(Exception):
    """The enforcer cannot start or go on (one line for the CLI)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one record: applied, already (applied before), passed (not this enforcer's), refused."""

    what: str
    command_id: str
    detail: str


class AppliedIds(Ledger):
    """The command ids already applied: `<id>\t<target>\t<applied at>`, synced before the record's offset is
    committed."""

    def __init__(self, path: Path) -> None:
        try:
            super().__init__(path)
        except OSError as exc:
            raise EnforceError(f"the state file: {exc}") from None

    def __contains__(self, command_id: str) -> bool:
        return self.done(command_id)


class VerdaccioEnforcer:
    """Handles command records one at a time (the consumer loop, or a test, gives them)."""

    def __init__(
        self,
        htpasswd: Path,
        applied: AppliedIds,
        codec: AvroCodec,
        jwks: Jwks | None,
        allow_unsigned: bool = False,
        prefix: str = "verdaccio:",
    ) -> None:
        self.htpasswd, self.applied, self.codec = htpasswd, applied, codec
        self.jwks, self.allow_unsigned, self.prefix = jwks, allow_unsigned, prefix

    def account(self, target: str) -> str | None:
        """The Verdaccio account a credential id names, or None when it names none of ours."""
        for prefix in (self.prefix, "identity:verdaccio:"):
            if prefix and target.startswith(prefix) and len(target) > len(prefix):
                return target[len(prefix) :]
        return None

    def _signature(self, value: bytes | None, headers: Any) -> Verdict:
        verdict = verify_record(value, headers, self.jwks) if self.jwks else Verdict(False, None, "unsigned")
        if verdict.ok or (verdict.reason == "unsigned" and self.allow_unsigned):
            return Verdict(True, verdict.kid, verdict.reason)
        return verdict

    def handle(self, value: bytes | None, headers: Any, now_ms: int | None = None) -> Outcome:
        verdict = self._signature(value, headers)
        if not verdict.ok:
            return Outcome("refused", "", verdict.reason)
        try:
            if self.codec.schema_name(value or b"") != COMMAND_SCHEMA:
                return Outcome("refused", "", "not an EnforcementCommand record")
            cmd = self.codec.decode(value or b"")
        except Exception as exc:  # the signer's own bytes that do not decode: never a crash of the loop
            return Outcome("refused", "", f"undecodable command: {type(exc).__name__}")
        return self._apply(cmd, int(time.time() * 1000) if now_ms is None else now_ms)

    def _apply(self, cmd: dict[str, Any], now_ms: int) -> Outcome:
        cid, target = str(cmd["command_id"]), str(cmd["target"])
        user = self.account(target) if cmd["target_type"] == "credential" else None
        why = ""
        if cmd["status"] not in ACTIONABLE:
            why = f"status {cmd['status']}: not to be applied"
        elif cmd["kind"] != "REVOKE" or user is None:
            why = f"{cmd['kind']} of {cmd['target_type']} {target}: not a Verdaccio credential"
        elif _ms(cmd["expires_at"]) <= now_ms:
            why = "expired"
        if why:
            return Outcome("passed", cid, why)
        if cid in self.applied:
            return Outcome("already", cid, f"account {user}")
        rules = ",".join(r.rsplit(".", 1)[-1] for r in cmd["rule_ids"])[:120]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ms / 1000))
        found = revoke(self.htpasswd, user, f"revoked by nhiguard {stamp} command {cid} ({rules})")
        self.applied.add(cid, target)
        return Outcome(
            "applied", cid, f"account {user}" + ("" if found else " (not in the file: nothing to revoke)")
        )


def _ms(value: Any) -> int:
    """An Avro timestamp-millis as decoded (a datetime), in milliseconds."""
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(value)


# ---------------------------------------------------------------------------------------------------------
def _consumer(settings: Settings, group: str) -> Any:
    from confluent_kafka import Consumer

    from nhiguard.kafka_clients import confluent_config

    return Consumer(
        confluent_config(
            settings,
            **{
                "group.id": group,
                "enable.auto.commit": False,  # committed once a record is handled
                "auto.offset.reset": "earliest",  # a new enforcer applies what it has not seen, unexpired
                "client.id": group,
                "log_level": 3,
            },
        )
    )


def run(settings: Settings, enforcer: VerdaccioEnforcer, group: str) -> int:
    """Consume until SIGTERM or SIGINT; each record handled, then its offset committed."""
    consumer = _consumer(settings, group)
    stop = False

    def on_signal(_sig: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    consumer.subscribe([settings.topics.commands])
    log.info("enforcing %s on %s (group %s)", settings.topics.commands, enforcer.htpasswd, group)
    try:
        while not stop:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                log.warning("Kafka: %s", msg.error())
                continue
            where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
            out = enforcer.handle(msg.value(), msg.headers() or [])
            level = logging.WARNING if out.what == "refused" else logging.INFO
            log.log(level, "%s %s %s: %s", out.what.upper(), where, out.command_id or "-", out.detail)
            consumer.commit(message=msg, asynchronous=False)
    except HtpasswdError as exc:
        raise EnforceError(str(exc)) from None  # not committed: applied again after the file is fixed
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return 0


def _enforce_verdaccio(args: argparse.Namespace) -> int:
    from nhiguard.settings import load_settings

    name = "nhiguard enforce verdaccio"
    try:
        settings = load_settings()
        htpasswd = Path(args.htpasswd)
        if not htpasswd.is_file():
            raise EnforceError(f"{htpasswd}: no such htpasswd file (Verdaccio's auth.htpasswd.file)")
        keys = Path(args.keys) if args.keys else settings.command_keys
        if keys is None and not args.allow_unsigned:
            raise EnforceError(
                "give --keys JWKS_FILE (or NHIGUARD_COMMAND_KEYS), or --allow-unsigned to test"
            )
        jwks = Jwks.load(keys) if keys else None
        state = Path(args.state) if args.state else settings.data_dir / "enforce-verdaccio.applied"
        enforcer = VerdaccioEnforcer(
            htpasswd,
            AppliedIds(state),
            AvroCodec(settings.schemas_dir),
            jwks,
            args.allow_unsigned,
            args.prefix,
        )
        if args.allow_unsigned:
            log.warning(
                "--allow-unsigned: unsigned commands are applied (anyone who can write the topic can revoke)"
            )
        return run(settings, enforcer, args.group or f"{settings.app_id}-enforce-verdaccio")
    except (EnforceError, SigningError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register `nhiguard enforce verdaccio`."""
    e = sub.add_parser("enforce", help="reference enforcement points for the commands nhiguard issues")
    e_sub = e.add_subparsers(dest="enforce_command", required=True)
    v = e_sub.add_parser(
        "verdaccio",
        parents=parents,
        help="apply signed REVOKEs of Verdaccio credentials: revoke the account in Verdaccio's htpasswd file",
    )
    v.add_argument("--htpasswd", required=True, metavar="FILE", help="Verdaccio's htpasswd file")
    v.add_argument(
        "--keys", metavar="JWKS", help="the JWKS commands are verified with (NHIGUARD_COMMAND_KEYS)"
    )
    v.add_argument("--allow-unsigned", action="store_true", help="apply unsigned commands too (tests only)")
    v.add_argument(
        "--state",
        metavar="FILE",
        help="the command ids applied (default: $NHIGUARD_DATA_DIR/enforce-verdaccio.applied)",
    )
    v.add_argument(
        "--credential-prefix",
        dest="prefix",
        default="verdaccio:",
        help="credential ids naming a Verdaccio account start with this (default verdaccio:)",
    )
    v.add_argument("--group", help="the Kafka consumer group (default: <app id>-enforce-verdaccio)")
    v.set_defaults(func=_enforce_verdaccio)
