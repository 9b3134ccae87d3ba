"""The reference Verdaccio enforcer without Kafka: which command records it applies (signed, ISSUED or
RELEASED, a REVOKE of a Verdaccio credential, not expired), once per command id, and how it revokes an account
in Verdaccio's htpasswd file (the hash replaced, the line kept: Verdaccio merges a re-read file into the users
it knows, so a removed line would keep working).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from nhiguard.avro import AvroCodec
from nhiguard.htpasswd import HtpasswdError, locked, revoke
from nhiguard.settings import load_settings
from nhiguard.signing import Jwks, load_signer, new_key_pem
from nhiguard.streams.enforce import AppliedIds, VerdaccioEnforcer
from tools.verdaccio import htpasswd_line

CODEC = AvroCodec(load_settings(env={}).schemas_dir)
NOW = int(time.time() * 1000)


def command(**kw: object) -> dict:
    base = {
        "command_id": "c0ffee",
        "kind": "REVOKE",
        "identity": "verdaccio:ci-bot",
        "target_type": "credential",
        "target": "verdaccio:ci-bot",
        "reasons": ["installed a version denied for harm"],
        "policy_ids": ["registry.publisher_integrity"],
        "rule_ids": ["registry.publisher_integrity.installed_harmful_version"],
        "bundle_revision": "r1",
        "event_id": "verdaccio:ab",
        "issued_at": NOW - 1000,
        "expires_at": NOW + 3_600_000,
        "status": "ISSUED",
        "held_reason": "",
        "released_at": None,
        "released_by": "",
        "evidence": {"version": ["1.1.0"]},
    }
    return base | kw


@pytest.fixture
def world(tmp_path: Path):
    """An htpasswd file of two accounts, a signer (kid w1) the JWKS trusts, and an enforcer over them."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_line("publisher-bot", "p-secret") + htpasswd_line("ci-bot", "c-secret"))
    for name in ("worker.pem", "attacker.pem"):
        (tmp_path / name).write_bytes(new_key_pem())
    signer = load_signer(tmp_path / "worker.pem", "w1")
    jwks = Jwks.parse(json.dumps({"keys": [signer.jwk()]}))
    enforcer = VerdaccioEnforcer(htpasswd, AppliedIds(tmp_path / "applied"), CODEC, jwks)
    return htpasswd, signer, load_signer(tmp_path / "attacker.pem", "w1"), enforcer


def signed(signer, record: dict, schema: str = "EnforcementCommand") -> tuple[bytes, list]:
    value = CODEC.encode(schema, record)
    return value, signer.headers(value)


def verifies(htpasswd: Path, user: str, password: str) -> bool:
    """As Verdaccio's htpasswd plugin checks a {SHA} entry."""
    for line in htpasswd.read_text().splitlines():
        name, hashed = line.split(":")[:2]
        if name == user:
            return hashed == "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return False


def test_a_signed_revoke_revokes_the_account_once(world):
    htpasswd, signer, _, enforcer = world
    out = enforcer.handle(*signed(signer, command()), now_ms=NOW)
    assert (out.what, out.command_id, out.detail) == ("applied", "c0ffee", "account ci-bot")
    assert not verifies(htpasswd, "ci-bot", "c-secret") and verifies(htpasswd, "publisher-bot", "p-secret")
    line = next(x for x in htpasswd.read_text().splitlines() if x.startswith("ci-bot:"))
    assert line.count(":") == 2 and "command c0ffee (installed_harmful_version)" in line  # why, no colons
    after = htpasswd.read_text()
    # Delivered again (a restart, another consumer group): nothing changes, and the state says why.
    again = VerdaccioEnforcer(htpasswd, AppliedIds(enforcer.applied.path), CODEC, enforcer.jwks)
    assert again.handle(*signed(signer, command()), now_ms=NOW).what == "already"
    assert htpasswd.read_text() == after
    assert enforcer.applied.path.read_text().count("c0ffee\tverdaccio:ci-bot\t") == 1


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (command(status="HELD"), "status HELD"),
        (command(kind="DENY", target_type="package_version", target="exp-http@1.1.0"), "not a Verdaccio"),
        (command(target="aws-key:AKIA1"), "not a Verdaccio credential"),
        (command(expires_at=NOW - 1), "expired"),
    ],
)
def test_what_is_not_this_enforcers_to_apply_is_passed_over(world, record, why):
    htpasswd, signer, _, enforcer = world
    before = htpasswd.read_text()
    out = enforcer.handle(*signed(signer, record), now_ms=NOW)
    assert out.what == "passed" and why in out.detail
    assert htpasswd.read_text() == before and "c0ffee" not in enforcer.applied


def test_a_released_revoke_and_an_identity_target_are_applied(world):
    htpasswd, signer, _, enforcer = world
    record = command(status="RELEASED", target="identity:verdaccio:publisher-bot")
    assert enforcer.handle(*signed(signer, record), now_ms=NOW).what == "applied"
    assert not verifies(htpasswd, "publisher-bot", "p-secret") and verifies(htpasswd, "ci-bot", "c-secret")


def test_unsigned_forged_and_foreign_records_are_refused(world, tmp_path):
    htpasswd, signer, attacker, enforcer = world
    before = htpasswd.read_text()
    value = CODEC.encode("EnforcementCommand", command())
    assert enforcer.handle(value, [], now_ms=NOW).detail == "unsigned"
    assert enforcer.handle(*signed(attacker, command()), now_ms=NOW).detail.startswith("bad signature")
    altered = value.replace(b"ci-bot", b"ci-bob")
    assert enforcer.handle(altered, signer.headers(value), now_ms=NOW).what == "refused"
    # A validly signed record of another schema is no command.
    other = CODEC.encode("DeadLetter", _deadletter())
    assert enforcer.handle(other, signer.headers(other), now_ms=NOW).detail.startswith("not an")
    assert enforcer.handle(b"\x00junk", signer.headers(b"\x00junk"), now_ms=NOW).what == "refused"
    assert htpasswd.read_text() == before
    # --allow-unsigned applies an unsigned command; a signed one that does not verify is still refused.
    lax = VerdaccioEnforcer(htpasswd, AppliedIds(tmp_path / "lax"), CODEC, enforcer.jwks, allow_unsigned=True)
    assert lax.handle(*signed(attacker, command()), now_ms=NOW).what == "refused"
    assert lax.handle(value, [], now_ms=NOW).what == "applied"
    assert not verifies(htpasswd, "ci-bot", "c-secret")


def _deadletter() -> dict:
    return {
        "topic": "audit.registry",
        "partition": 0,
        "offset": 1,
        "reason": "malformed_json",
        "detail": "x",
        "original": b"{",
        "original_length": 1,
        "original_sha256": "x",
        "truncated": False,
        "headers": [],
        "timestamp": NOW,
    }


def test_revoke_keeps_every_other_line_and_says_when_there_is_no_such_account(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text("# comment\nalice:$2y$10$abc:created\nbob:{SHA}x=\n")
    assert revoke(f, "carol", "why") is False
    assert f.read_text() == "# comment\nalice:$2y$10$abc:created\nbob:{SHA}x=\n"
    assert revoke(f, "bob", "revoked: by nhiguard") is True
    lines = f.read_text().splitlines()
    assert lines[:2] == ["# comment", "alice:$2y$10$abc:created"]
    assert lines[2].startswith("bob:{SHA}") and lines[2].endswith(":revoked by nhiguard")
    with pytest.raises(HtpasswdError, match="no htpasswd account"):
        revoke(f, "a:b", "why")
    with pytest.raises(HtpasswdError, match="cannot read"):
        revoke(tmp_path / "missing", "bob", "why")


def test_revoke_waits_for_verdaccios_lock_and_clears_a_stale_one(tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text(htpasswd_line("bob", "b"))
    done = threading.Event()
    with locked(f):
        t = threading.Thread(target=lambda: (revoke(f, "bob", "why"), done.set()))
        t.start()
        time.sleep(0.3)
        assert not done.is_set()  # held: it waits
    t.join(10)
    assert done.is_set() and not verifies(f, "bob", "b")
    lock = tmp_path / "htpasswd.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 3600, time.time() - 3600))  # left by a process that died
    assert revoke(f, "bob", "again") is True and not lock.exists()
    lock.write_text("")
    with pytest.raises(HtpasswdError, match="held by another process"):
        with locked(f, wait_s=0.2):
            pass
