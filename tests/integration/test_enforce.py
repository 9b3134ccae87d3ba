"""`nhiguard enforce verdaccio` as a process, on the real broker, against a real Verdaccio 6.8.0: a CI bot's
`npm install` works before and is refused after the enforcer applies a signed REVOKE of its credential;
unsigned and forged commands change nothing; a command delivered again is not applied again. And why the
enforcer does not just delete the account's htpasswd line: Verdaccio keeps accepting it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Producer

from nhiguard.avro import AvroCodec
from nhiguard.settings import Topics, load_settings
from nhiguard.signing import load_signer, new_key_pem
from nhiguard.streams.topics import ensure_topics
from tests.integration.npm_packages import publish, write_package
from tools.broker import default_cache_dir
from tools.demo import worker_env
from tools.verdaccio import LocalVerdaccio, VerdaccioError, htpasswd_line

pytestmark = pytest.mark.integration

USERS = {"publisher-bot": "publisher-secret-1", "ci-bot": "ci-secret-2"}


def installs(
    registry: LocalVerdaccio, tmp_path: Path, spec: str = "exp-a@1.0.0"
) -> subprocess.CompletedProcess:
    """`npm install` as ci-bot in a fresh project, with a fresh npm cache (nothing served from an old one)."""
    run = tmp_path / f"install-{uuid.uuid4().hex[:6]}"
    (run / "app").mkdir(parents=True)
    (run / "app" / "package.json").write_text(
        json.dumps({"name": "app", "version": "0.0.0", "private": True})
    )
    return registry.npm("ci-bot", ["install", "--ignore-scripts", spec], run / "app", run / "home")


def refused(done: subprocess.CompletedProcess) -> bool:
    return done.returncode != 0 and ("E401" in done.stderr or "E403" in done.stderr)


def command(target: str, command_id: str) -> dict:
    now = int(time.time() * 1000)
    return {
        "command_id": command_id,
        "kind": "REVOKE",
        "identity": "verdaccio:ci-bot",
        "target_type": "credential",
        "target": target,
        "reasons": ["installed a version denied for harm: its install scripts ran under this credential"],
        "policy_ids": ["registry.publisher_integrity"],
        "rule_ids": ["registry.publisher_integrity.installed_harmful_version"],
        "bundle_revision": "test",
        "event_id": "verdaccio:test",
        "issued_at": now,
        "expires_at": now + 3_600_000,
        "status": "ISSUED",
        "held_reason": "",
        "released_at": None,
        "released_by": "",
        "evidence": {},
    }


class Enforcer:
    """`nhiguard enforce verdaccio` processes, each with its log file."""

    def __init__(self, settings, registry: LocalVerdaccio, jwks: Path, state: Path, tmp_path: Path) -> None:
        self.settings, self.registry, self.jwks, self.state, self.tmp = (
            settings,
            registry,
            jwks,
            state,
            tmp_path,
        )
        self.proc: subprocess.Popen | None = None
        self.log = tmp_path / "enforce-0.log"

    def start(self, group: str) -> None:
        self.log = self.tmp / f"enforce-{group}.log"
        args = [
            "enforce",
            "verdaccio",
            "--htpasswd",
            str(self.registry.htpasswd_path),
            "--keys",
            str(self.jwks),
        ]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nhiguard.streams.cli",
                *args,
                "--state",
                str(self.state),
                "--group",
                group,
            ],
            env=worker_env(self.settings),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def wait_log(self, text: str, count: int = 1, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.log.read_text().count(text) < count:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"no {text!r} x{count}: {self.log.read_text()}"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(60) == 0, self.log.read_text()


def test_a_ci_bots_install_works_before_and_is_refused_after_the_enforcer_applies_a_revoke(
    kafka_bootstrap, tmp_path
):
    run = uuid.uuid4().hex[:8]
    topics = Topics(**{k: f"e{run}.{v}" for k, v in vars(Topics()).items()})
    settings = replace(
        load_settings(env={}),
        bootstrap=kafka_bootstrap,
        topics=topics,
        app_id=f"enforce-{run}",
        data_dir=tmp_path / "data",
    )
    ensure_topics(settings)
    codec = AvroCodec(settings.schemas_dir)
    (tmp_path / "worker.pem").write_bytes(new_key_pem())
    (tmp_path / "attacker.pem").write_bytes(new_key_pem())
    signer, attacker = (
        load_signer(tmp_path / "worker.pem", "w1"),
        load_signer(tmp_path / "attacker.pem", "w1"),
    )
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}))
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})

    def produce(record: dict, headers: list) -> None:
        producer.produce(
            settings.topics.commands, value=codec.encode("EnforcementCommand", record), headers=headers
        )
        assert producer.flush(30) == 0

    with LocalVerdaccio(default_cache_dir(), USERS) as registry:
        publish(
            registry, "publisher-bot", write_package(tmp_path / "pkg", "exp-a", "1.0.0"), tmp_path / "pub"
        )
        assert installs(registry, tmp_path).returncode == 0  # before: it works
        enforcer = Enforcer(settings, registry, jwks, tmp_path / "applied", tmp_path)
        try:
            enforcer.start("g1")
            unsigned = command("verdaccio:ci-bot", "cmd-unsigned")
            produce(unsigned, [])
            forged = command("verdaccio:ci-bot", "cmd-forged")
            forged_value = codec.encode("EnforcementCommand", forged)
            produce(forged, attacker.headers(forged_value))
            enforcer.wait_log("REFUSED", count=2)
            assert installs(registry, tmp_path).returncode == 0  # nothing applied
            genuine = command("verdaccio:ci-bot", "cmd-genuine")
            produce(genuine, signer.headers(codec.encode("EnforcementCommand", genuine)))
            enforcer.wait_log("APPLIED")
            done = installs(registry, tmp_path)
            assert refused(done), done.stderr[-1500:]  # after: refused, the token it had included
            assert "revoked by nhiguard" in registry.htpasswd_path.read_text()
            enforcer.stop()

            # The operator restores the account with a new password; a new consumer group reads every command
            # again, and the one applied is not applied again.
            registry.set_password("ci-bot", "ci-secret-rotated-3")
            assert installs(registry, tmp_path).returncode == 0
            enforcer.start("g2")
            enforcer.wait_log("ALREADY")
            enforcer.wait_log("REFUSED", count=2)
            assert installs(registry, tmp_path).returncode == 0
            assert (tmp_path / "applied").read_text().count("cmd-genuine") == 1
        finally:
            enforcer.stop()


def test_verdaccio_keeps_an_account_whose_htpasswd_line_was_removed(tmp_path):
    """Why the enforcer replaces the hash: Verdaccio 6.8.0 merges the re-read file into the users it knows."""
    with LocalVerdaccio(default_cache_dir(), USERS) as registry:
        publish(
            registry, "publisher-bot", write_package(tmp_path / "pkg", "exp-a", "1.0.0"), tmp_path / "pub"
        )
        assert registry.request("GET", "exp-a", user="ci-bot")["name"] == "exp-a"
        registry.htpasswd_path.write_text(htpasswd_line("publisher-bot", USERS["publisher-bot"]))
        time.sleep(1.5)  # a new mtime, whatever the file system's resolution
        assert registry.request("GET", "exp-a", user="ci-bot")["name"] == "exp-a"  # still in
        registry.htpasswd_path.write_text(
            htpasswd_line("publisher-bot", USERS["publisher-bot"])
            + htpasswd_line("ci-bot", "nobody-knows-it")
        )
        with pytest.raises(VerdaccioError, match="HTTP 401"):
            registry.request("GET", "exp-a", user="ci-bot")
