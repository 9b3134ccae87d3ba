"""Verdaccio through the whole pipeline: the real npm client publishes to and installs from a real Verdaccio
6.8.0, whose access-log lines a shipper sends to the registry topic and whose publish notifications reach
`nhiguard serve`'s /webhooks/verdaccio; a worker on the real broker decides them, reading package documents
from the same Verdaccio. The axios pattern, as far as a local registry carries it (another account than the
package's earlier release, adding a dependency first published minutes before with a postinstall), is DENIED,
the CI bot that installed it is REVOKED, and `nhiguard enforce verdaccio` applies the worker's signed REVOKE:
the bot's next install is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from nhiguard.avro import AvroCodec
from nhiguard.signing import load_signer, new_key_pem
from nhiguard.streams.identities import load_identities
from tests.integration.npm_packages import install, publish, write_package
from tests.integration.test_enforce import Enforcer, installs, refused
from tests.integration.test_gates import gate
from tests.integration.test_pipeline import pipeline, reader  # noqa: F401  (the fixture)
from tests.integration.test_serve import _free_port
from tools.broker import default_cache_dir
from tools.demo import worker_env
from tools.ship_log import follow
from tools.verdaccio import LocalVerdaccio

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "nhiguard.streams.cli"]
USERS = {
    "publisher-bot": "publisher-secret-1",
    "release-bot-2": "release-secret-2",
    "ci-bot": "ci-secret-3",
    "nhiguard-reader": "reader-secret-4",
}
NOTIFY_TOKEN = "verdaccio-notify-token-0123456789"
API_TOKEN = "decision-api-token-0123456789"
INVENTORY = """
- {id: 'verdaccio:publisher-bot', kind: package_publisher, owner: web@acme.example, team: web,
   credential_ids: ['verdaccio:publisher-bot'], allowed_actions: ['registry.*'],
   expected_publisher: {mechanism: token}}
- {id: 'verdaccio:release-bot-2', kind: package_publisher, owner: platform@acme.example, team: platform,
   credential_ids: ['verdaccio:release-bot-2'], allowed_actions: ['registry.*'],
   expected_publisher: {mechanism: token}}
- {id: 'verdaccio:ci-bot', kind: ci_bot, owner: web@acme.example, team: web,
   credential_ids: ['verdaccio:ci-bot'],
   allowed_actions: ['registry.package.install', 'registry.proxy.*']}
- {id: 'verdaccio:nhiguard-reader', kind: service_account, owner: security@acme.example, team: security,
   allowed_actions: ['registry.proxy.*']}
"""


@contextmanager
def serving(settings: Any, tmp_path: Path, **env: str) -> Iterator[str]:
    """`nhiguard serve` as a process on a free port (its URL), until the block ends."""
    port = _free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=worker_env(settings) | env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"nhiguard serve did not answer: {log.read_text()}"
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def shipping(registry: LocalVerdaccio, settings: Any) -> Iterator[None]:
    """The registry's log lines shipped to the registry topic while the block runs."""
    producer = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True, "acks": "all"})
    stop = threading.Event()
    thread = threading.Thread(
        target=follow, args=(registry.log_path, producer, settings.topics.registry, stop)
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


class Outputs:
    """Decisions and commands as they arrive, read by a consumer of our own from the start of each topic."""

    def __init__(self, settings: Any) -> None:
        self.codec = AvroCodec(settings.schemas_dir)
        self.topics = settings.topics
        self.consumer = reader(settings, [settings.topics.decisions, settings.topics.commands])
        self.decisions: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []

    def wait_for(self, what: str, found: Callable[[], Any], timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while not (hit := found()):
            assert time.monotonic() < deadline, f"no {what}: {[self.brief(d) for d in self.decisions]}"
            m = self.consumer.poll(0.5)
            if m is None or m.error():
                continue
            rec = self.codec.decode(m.value())
            (self.decisions if m.topic() == self.topics.decisions else self.commands).append(rec)
        return hit

    def decision(self, source: str, actor: str, resource: str) -> Callable[[], dict[str, Any] | None]:
        def found() -> dict[str, Any] | None:
            return next(
                (
                    d
                    for d in self.decisions
                    if (d["event"]["source"], d["event"]["actor"]["id"], d["event"]["resource_id"])
                    == (source, actor, resource)
                ),
                None,
            )

        return found

    def commands_of(self, decision: dict[str, Any]) -> Callable[[], list[dict[str, Any]] | None]:
        """Every command the decision names, once all of them are read."""

        def found() -> list[dict[str, Any]] | None:
            ids = set(decision["command_ids"])
            got = [c for c in self.commands if c["command_id"] in ids]
            return got if len(got) == len(ids) else None

        return found

    @staticmethod
    def brief(d: dict[str, Any]) -> str:
        e = d["event"]
        return f"{e['source']} {e['actor']['id']} {e['action']} {e['resource_id']} {d['verdict']}"

    def close(self) -> None:
        self.consumer.close()


def rules(d: dict[str, Any]) -> set[str]:
    return {f["rule"].rsplit(".", 1)[-1] for f in d["findings"] if f["effect"] != "alert"}


def test_the_axios_pattern_on_verdaccio_is_denied_and_its_installer_revoked(pipeline):  # noqa: F811
    settings, start, tmp_path = pipeline
    identities = tmp_path / "verdaccio-identities.yaml"
    identities.write_text(INVENTORY)
    load_identities(settings, identities)
    outputs = Outputs(settings)
    try:
        _axios_on_verdaccio(settings, start, tmp_path, outputs)
    finally:
        outputs.close()
    notified = [d for d in outputs.decisions if d["event"]["source"] == "verdaccio.notify"]
    assert json.dumps([d["event"]["actor"]["id"] for d in notified]).count("release-bot-2") == 2


def _axios_on_verdaccio(settings: Any, start: Callable[..., Any], tmp_path: Path, outputs: Outputs) -> None:
    with serving(
        settings, tmp_path, NHIGUARD_VERDACCIO_WEBHOOK_TOKEN=NOTIFY_TOKEN, NHIGUARD_API_TOKEN=API_TOKEN
    ) as base:
        registry = LocalVerdaccio(
            default_cache_dir(),
            USERS,
            notify_url=f"{base}/webhooks/verdaccio",
            notify_headers={"Authorization": f"Bearer {NOTIFY_TOKEN}"},
        )
        with registry, shipping(registry, settings):
            (tmp_path / "worker.pem").write_bytes(new_key_pem())
            jwks = tmp_path / "jwks.json"
            jwks.write_text(json.dumps({"keys": [load_signer(tmp_path / "worker.pem", "w1").jwk()]}))
            start(
                NHIGUARD_REGISTRY_URL=registry.url,
                NHIGUARD_REGISTRY_TOKEN=registry.token("nhiguard-reader"),
                NHIGUARD_REGISTRY_DEADLINE_S=30,
                NHIGUARD_SIGNING_KEY=tmp_path / "worker.pem",
                NHIGUARD_SIGNING_KID="w1",
            )
            enforcer = Enforcer(settings, registry, jwks, tmp_path / "applied", tmp_path)
            enforcer.start(f"{settings.app_id}-enforce")
            try:
                _publish_install_enforce(registry, tmp_path, outputs, enforcer)
            finally:
                enforcer.stop()
            _install_gate_asks_the_server(registry, tmp_path, base)


def _publish_install_enforce(
    registry: LocalVerdaccio, tmp_path: Path, outputs: Outputs, enforcer: Enforcer
) -> None:
    home = tmp_path / "home"
    clean = write_package(tmp_path / "http-1.0.0", "exp-http", "1.0.0")
    publish(registry, "publisher-bot", clean, home / "publisher")
    first = outputs.wait_for(
        "decision on exp-http@1.0.0",
        outputs.decision("verdaccio.notify", "verdaccio:publisher-bot", "exp-http@1.0.0"),
    )
    assert first["verdict"] == "ALLOW", first["findings"]
    dep = write_package(tmp_path / "crypto", "exp-crypto", "4.2.1", scripts={"postinstall": "node setup.js"})
    publish(registry, "release-bot-2", dep, home / "release")
    bad = write_package(tmp_path / "http-1.1.0", "exp-http", "1.1.0", dependencies={"exp-crypto": "^4.2.1"})
    publish(registry, "release-bot-2", bad, home / "release")
    denied = outputs.wait_for(
        "decision on exp-http@1.1.0",
        outputs.decision("verdaccio.notify", "verdaccio:release-bot-2", "exp-http@1.1.0"),
    )
    # Who published 1.0.0 came from its notification (Verdaccio's document names nobody); what
    # 1.1.0 adds, and how young its dependency is and what it runs, from Verdaccio's documents.
    assert denied["verdict"] == "DENY", denied["findings"]
    assert rules(denied) >= {
        "publisher_changed_adds_dependency",
        "malicious_dependency_added",
        "young_dependency_added",
    }
    publish_facts = denied["event"]["publish"]
    assert publish_facts["added_dependencies"] == ["exp-crypto"] and publish_facts["history_known"]
    # The PUT in the log is the same publish, judged as a publish through the proxy: allowed.
    put = outputs.wait_for(
        "the log's PUT of exp-http",
        lambda: [
            d
            for d in outputs.decisions
            if d["event"]["source"] == "verdaccio.log"
            and d["event"]["action"] == "registry.package.publish"
            and d["event"]["actor"]["id"] == "verdaccio:release-bot-2"
            and d["event"]["resource_id"] == "exp-http"
        ],
    )
    assert {d["verdict"] for d in put} == {"ALLOW"}

    lock = install(registry, "ci-bot", tmp_path / "app", home / "ci", "exp-http@1.1.0")
    assert lock["packages"]["node_modules/exp-crypto"]["version"] == "4.2.1"
    revoked = outputs.wait_for(
        "decision on ci-bot's install of exp-http@1.1.0",
        outputs.decision("verdaccio.log", "verdaccio:ci-bot", "exp-http@1.1.0"),
    )
    assert revoked["verdict"] == "REVOKE", revoked["findings"]
    assert "installed_harmful_version" in rules(revoked)
    # Its commands are on the enforcement topic: the version denied at the proxy, and a REVOKE of the
    # credential the inventory names, issued once (the decision on whichever of ci-bot's two installs, of
    # exp-http@1.1.0 and of the exp-crypto it brings, came first; the other finds it revoked already).
    commands = outputs.wait_for("the decision's commands", outputs.commands_of(revoked))
    assert ("DENY", "package_version", "exp-http@1.1.0") in {
        (c["kind"], c["target_type"], c["target"]) for c in commands
    }
    dep_install = outputs.wait_for(
        "decision on ci-bot's install of exp-crypto@4.2.1",
        outputs.decision("verdaccio.log", "verdaccio:ci-bot", "exp-crypto@4.2.1"),
    )
    assert dep_install["verdict"] == "REVOKE", dep_install["findings"]
    issued = set(revoked["command_ids"]) | set(dep_install["command_ids"])
    revoke = outputs.wait_for(
        "the REVOKE of ci-bot's credential",
        lambda: next(
            (c for c in outputs.commands if c["command_id"] in issued and c["kind"] == "REVOKE"), None
        ),
    )
    assert (revoke["target_type"], revoke["target"]) == ("credential", "verdaccio:ci-bot")
    # The reference enforcer verifies the worker's signature and applies the REVOKE: ci-bot's next
    # install is refused, whatever token it holds.
    enforcer.wait_log(f" {revoke['command_id']}: account ci-bot")
    assert "APPLIED" in enforcer.log.read_text()
    done = installs(registry, tmp_path, "exp-http@1.0.0")
    assert refused(done), done.stderr[-1500:]


def _install_gate_asks_the_server(registry: LocalVerdaccio, tmp_path: Path, base: str) -> None:
    """`nhiguard gate npm-install --url` on the lockfile of ci-bot's install: each locked version decided by
    the running worker (its lookups, its state), the bad version and its dependency denied."""
    home = tmp_path / "gate-home"
    home.mkdir()
    app = tmp_path / "app"
    reader = registry.token("nhiguard-reader")
    args = ("--url", base, "--registry", registry.url)
    done = gate("npm-install", *args, home=home, cwd=app, NPM_TOKEN=reader, NHIGUARD_API_TOKEN=API_TOKEN)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"asked {base}" in done.stdout and "2 denied, 0 allowed" in done.stdout
    assert "DENY registry.publisher_integrity.malicious_dependency_added:" in done.stdout  # exp-http@1.1.0
    assert "DENY registry.publisher_integrity.install_script_added:" in done.stdout  # exp-crypto@4.2.1
