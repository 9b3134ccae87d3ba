"""Verdaccio's publish notifications through the core: who published which version (the notification), the
rest from the package's document as Verdaccio answers it (no `_npmUser`: Verdaccio keeps no publisher), and
the publishers the notifications named remembered in package state, so an account new to a package is seen."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from nhiguard.decision.adapters import adapt
from nhiguard.decision.codec import decode_package_state, encode_package_state
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.package_state import MAX_PUBLISHERS, PackageFacts
from nhiguard.decision.records import Decision, RawRecord
from nhiguard.decision.registry_facts import Publish
from nhiguard.lookup import NOT_FOUND, RegistryLookup
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT

BUNDLE = load_bundle(REPO_ROOT / "policies")
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
PUBLISHER = {
    "kind": "package_publisher",
    "allowed_actions": ["registry.*"],
    "expected_publisher": {"mechanism": "token"},
}
INVENTORY = {
    "identities": [
        {"id": "verdaccio:publisher-bot", **PUBLISHER, "credential_ids": ["verdaccio:publisher-bot"]},
        {"id": "verdaccio:release-bot-2", **PUBLISHER, "credential_ids": ["verdaccio:release-bot-2"]},
        {"id": "verdaccio:ci-bot", "kind": "ci_bot", "credential_ids": ["verdaccio:ci-bot"],
         "allowed_actions": ["registry.package.install", "registry.proxy.*"]},
    ]
}  # fmt: skip


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Verdaccio:
    """Package documents as Verdaccio 6.8.0 answers `GET /<name>` (its versions name no `_npmUser`), and the
    records nhiguard reads: notifications and access-log lines."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.records: list[RawRecord] = []

    def fetch(self, name: str, timeout_s: float) -> Any:
        return self.docs.get(name, NOT_FOUND)

    def _emit(self, body: dict[str, Any], at: datetime) -> None:
        value = json.dumps(body).encode()
        ms = int(at.timestamp() * 1000)
        self.records.append(RawRecord("audit.registry", 0, len(self.records), value, None, (), ms))

    def publish(self, user: str, name: str, version: str, at: datetime, *, notify: bool = True, **kw) -> None:
        doc = self.docs.setdefault(name, {"name": name, "versions": {}, "time": {"created": iso(at)}})
        doc["versions"][version] = {
            "name": name,
            "version": version,
            "main": "index.js",
            "dependencies": kw.get("deps") or {},
            "scripts": kw.get("scripts") or {},
            "_id": f"{name}@{version}",
            "_nodeVersion": "20.20.2",
            "_npmVersion": "11.19.1",
            "dist": {"shasum": "47be", "tarball": f"http://127.0.0.1:4873/{name}/-/{name}-{version}.tgz"},
            "contributors": [],
        }
        doc["time"] |= {"modified": iso(at), version: iso(at)}
        if notify:
            event = {"event": "publish", "name": name, "package": f"{name}@{version}", "user": user}
            self._emit(event, at + timedelta(seconds=1))

    def install(self, user: str, name: str, version: str, at: datetime) -> None:
        url = f"/{name}/-/{name}-{version}.tgz"
        self._emit(
            {"level": 25, "time": int(at.timestamp() * 1000), "pid": 7, "hostname": "vm", "sub": "in",
             "request": {"method": "GET", "url": url}, "user": user, "remoteIP": "127.0.0.1", "status": 200,
             "bytes": {"in": 0, "out": 300}, "msg": f"200, user: {user}(127.0.0.1), req: 'GET {url}'"},
            at,
        )  # fmt: skip


def decide(v: Verdaccio, documents: bool = True) -> dict[tuple[str, str], Decision]:
    lookup = RegistryLookup(v, 5.0, float("inf")) if documents else None
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(INVENTORY), lookup=lookup)
    try:
        return {(d.event.actor.id, d.event.resource_id): d for d in core.process(v.records).decisions}
    finally:
        if lookup is not None:
            lookup.close()


def rules(d: Decision) -> set[str]:
    return {f.rule.rsplit(".", 1)[1] for f in d.findings if f.effect != "alert"}


def test_a_notified_publish_is_completed_from_the_verdaccio_document():
    v = Verdaccio()
    v.publish("publisher-bot", "exp-b", "1.0.0", T0, deps={"left-pad": "^1.3.0"})
    v.publish("release-bot-2", "exp-b", "1.1.0", T0 + timedelta(hours=1), scripts={"postinstall": "node x"})
    lookup = RegistryLookup(v, 5.0, float("inf"))
    read = [(r, adapt(r, "registry")) for r in v.records]
    facts = [ev.facts for _, ev in lookup.annotate(read)]
    lookup.close()
    second = facts[1]
    assert isinstance(second, Publish) and second.notified and second.history_known
    assert second.publisher.name == "release-bot-2"  # the notification's: the document names nobody
    assert (second.dependencies, second.added_dependencies) == ((), ())
    assert (second.install_scripts, second.added_install_scripts) == (("postinstall",), ("postinstall",))
    assert [(r.version, r.publisher.name) for r in second.history] == [("1.0.0", "")]
    assert second.package_created_ms == int(T0.timestamp() * 1000)
    # A document that does not have the version leaves the publish as the notification said it.
    v.docs["exp-b"]["versions"].pop("1.1.0")
    lookup = RegistryLookup(v, 5.0, float("inf"))
    incomplete = lookup.annotate(read[1:])[0][1].facts
    lookup.close()
    assert isinstance(incomplete, Publish) and not incomplete.history_known and not incomplete.install_scripts


def test_an_account_new_to_the_package_adding_a_young_dependency_with_a_postinstall_is_denied():
    v = Verdaccio()
    v.publish("publisher-bot", "exp-http", "1.0.0", T0 - timedelta(days=90))
    v.publish("release-bot-2", "exp-crypto", "4.2.1", T0 - timedelta(minutes=5), scripts={"postinstall": "x"})
    v.publish("release-bot-2", "exp-http", "1.1.0", T0, deps={"exp-crypto": "^4.2.0"})
    v.install("ci-bot", "exp-http", "1.1.0", T0 + timedelta(minutes=2))
    v.install("ci-bot", "exp-http", "1.0.0", T0 + timedelta(minutes=3))  # the good one: nothing
    d = decide(v)
    bad = d[("verdaccio:release-bot-2", "exp-http@1.1.0")]
    assert bad.verdict == "DENY"
    assert rules(bad) >= {
        "publisher_changed_adds_dependency",  # 1.0.0 was publisher-bot's, as its notification said
        "malicious_dependency_added",
        "young_dependency_added",
    }
    assert d[("verdaccio:release-bot-2", "exp-crypto@4.2.1")].verdict == "DENY"  # install_script_added
    installed = d[("verdaccio:ci-bot", "exp-http@1.1.0")]
    assert installed.verdict == "REVOKE" and "installed_harmful_version" in rules(installed)
    assert [c.target for c in installed.commands if c.kind == "REVOKE"] == ["verdaccio:ci-bot"]
    assert d[("verdaccio:ci-bot", "exp-http@1.0.0")].verdict == "ALLOW"


def test_the_same_publisher_adding_an_old_dependency_is_no_publisher_change():
    v = Verdaccio()
    v.publish("release-bot-2", "exp-util", "2.0.0", T0 - timedelta(days=400), notify=False)
    v.publish("publisher-bot", "exp-http", "1.0.0", T0 - timedelta(days=90))
    v.publish("publisher-bot", "exp-http", "1.1.0", T0, deps={"exp-util": "^2.0.0"})
    d = decide(v)[("verdaccio:publisher-bot", "exp-http@1.1.0")]
    assert d.verdict == "ALLOW" and not rules(d)


def test_releases_nobody_named_count_neither_way():
    # 1.0.0 was published before nhiguard followed the notifications: its publisher is not known, so another
    # account's release is no publisher change (nor evidence that it is the usual one).
    v = Verdaccio()
    v.publish("release-bot-2", "exp-util", "2.0.0", T0 - timedelta(days=400), notify=False)
    v.publish("publisher-bot", "exp-http", "1.0.0", T0 - timedelta(days=90), notify=False)
    v.publish("release-bot-2", "exp-http", "1.1.0", T0, deps={"exp-util": "^2.0.0"})
    d = decide(v)[("verdaccio:release-bot-2", "exp-http@1.1.0")]
    assert d.verdict == "ALLOW" and not {f.rule for f in d.findings if "publisher" in f.rule}


def test_without_documents_only_who_published_is_judged():
    v = Verdaccio()
    v.publish("publisher-bot", "exp-http", "1.0.0", T0 - timedelta(days=90))
    v.publish("stranger", "exp-http", "1.1.0", T0, scripts={"postinstall": "x"})
    d = decide(v, documents=False)
    assert d[("verdaccio:publisher-bot", "exp-http@1.0.0")].verdict == "ALLOW"
    unknown = d[("verdaccio:stranger", "exp-http@1.1.0")]
    assert unknown.verdict == "DENY" and rules(unknown) == {"unknown_identity"}  # its scripts unseen
    assert not unknown.event.facts.history_known


def test_remembered_publishers_are_stored_merged_in_any_order_and_bounded():
    a, b = PackageFacts(), PackageFacts()
    a.published_by("1.0.0", "publisher-bot")
    b.published_by("1.1.0", "release-bot-2")
    b.published_by("1.0.0", "another")  # never given by a registry; the merge is one answer anyway
    ab, ba = a.copy(), b.copy()
    ab.merge(b)
    ba.merge(a)
    assert ab.publishers == ba.publishers == {"1.0.0": "another", "1.1.0": "release-bot-2"}
    assert decode_package_state(encode_package_state(ab)).publishers == ab.publishers
    assert b'"pb"' not in encode_package_state(PackageFacts())  # as written before it was kept
    for i in range(MAX_PUBLISHERS + 10):
        ab.published_by(f"3.{i}.0", "publisher-bot")
    assert (
        len(ab.publishers) == MAX_PUBLISHERS and "3.0.0" not in ab.publishers and "1.0.0" not in ab.publishers
    )
