"""The registry classes through the whole core: a publisher judged against the package's own publisher
history, denials graded by their evidence (a REVOKE only for harm), publishes through the registry proxy,
versions of our own packages no allowed publish accounts for, and the registry documents the fetch step looks
up (recorded documents under tests/fixtures/registry-docs/, as the registry answers `GET /<name>`)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nhiguard.avro import AvroCodec, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import Decision, RawRecord
from nhiguard.decision.semver import max_satisfying, satisfies
from nhiguard.lookup import NOT_FOUND, RecordedRegistry, RegistryLookup, Unavailable, registry_lookup
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import RegistryLookupSettings, load_settings
from tools import REPO_ROOT

BUNDLE = load_bundle(REPO_ROOT / "policies")
DOCS = REPO_ROOT / "tests" / "fixtures" / "registry-docs"
T0 = datetime(2026, 4, 10, 1, 0, tzinfo=UTC)
OIDC = ("GitHub Actions", "npm-oidc-no-reply@github.com")
INVENTORY = {
    "identities": [
        {"id": "verdaccio:ci-web", "kind": "ci_bot", "credential_ids": ["verdaccio-token:ci-web"],
         "allowed_actions": ["registry.package.install", "registry.proxy.request"]},
        {"id": "verdaccio:ci-api", "kind": "ci_bot", "credential_ids": ["verdaccio-token:ci-api"],
         "allowed_actions": ["registry.package.install", "registry.proxy.request"]},
        {"id": "verdaccio:release-bot", "kind": "package_publisher", "credential_ids": ["verdaccio-token:rb"],
         "allowed_actions": ["registry.*"], "expected_publisher": {"mechanism": "token"}},
        {"id": "verdaccio:web-release", "kind": "package_publisher", "credential_ids": ["npm-tp:web"],
         "allowed_actions": ["registry.*"], "expected_publisher": {"mechanism": "trusted_publishing"}},
    ]
}  # fmt: skip


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def version_doc(name: str, v: str, who: tuple[str, str], *, deps=None, scripts=None) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "version": v,
        "dependencies": deps or {},
        "scripts": scripts or {"test": "node --test"},
        "_npmUser": {"name": who[0], "email": who[1]},
        "dist": {"tarball": f"https://registry.npmjs.org/{name}/-/{name}-{v}.tgz", "unpackedSize": 2000},
    }
    if who == OIDC:
        m["_npmUser"]["trustedPublisher"] = {"id": "github", "oidcConfigId": "oidc:1"}
        m["dist"]["attestations"] = {
            "url": "u",
            "provenance": {"predicateType": "https://slsa.dev/provenance/v1"},
        }
    return m


class World:
    """A package registry and a proxy, as the stream sees them: npm hooks and Verdaccio log lines."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.versions: dict[str, dict[str, tuple[datetime, dict[str, Any]]]] = {}
        self.offsets: Counter[str] = Counter()

    def _emit(self, body: dict[str, Any], at: datetime) -> None:
        topic = "audit.registry"
        ms = int(at.timestamp() * 1000)
        self.records.append(RawRecord(topic, 0, self.offsets[topic], json.dumps(body).encode(), None, (), ms))
        self.offsets[topic] += 1

    def release(self, name: str, v: str, who, at: datetime, *, hook: bool = True, **kw) -> None:
        self.versions.setdefault(name, {})[v] = (at, version_doc(name, v, who, **kw))
        if hook:
            self._emit(self.hook(name, v, at), at + timedelta(seconds=3))

    def document(self, name: str) -> dict[str, Any]:
        vs = self.versions[name]
        times = {"created": iso(min(t for t, _ in vs.values()))} | {v: iso(t) for v, (t, _) in vs.items()}
        return {"_id": name, "name": name, "time": times, "versions": {v: m for v, (_, m) in vs.items()}}

    def hook(self, name: str, v: str, at: datetime) -> dict[str, Any]:
        doc = self.document(name)
        doc["versions"] = {k: m for k, m in doc["versions"].items() if self.versions[name][k][0] <= at}
        return {
            "event": "package:publish",
            "name": name,
            "type": "package",
            "version": v,
            "hookOwner": {"username": "acme-sec"},
            "change": {"version": v},
            "time": int(at.timestamp() * 1000),
            "payload": doc,
        }

    def proxy(self, user: str, method: str, url: str, status: int, at: datetime, ip="10.0.3.7") -> None:
        self._emit(
            {
                "level": 30,
                "time": int(at.timestamp() * 1000),
                "pid": 7,
                "hostname": "verdaccio-0",
                "sub": "out",
                "request": {"method": method, "url": url},
                "user": user,
                "remoteIP": ip,
                "status": status,
                "error": None,
                "bytes": {"in": 30_000 if method == "PUT" else 0, "out": 2400},
                "msg": "@{status}, user: @{user}(@{remoteIP}), req: '@{request.method} @{request.url}'",
            },
            at,
        )

    def install(self, user: str, name: str, v: str, at: datetime) -> None:
        base = name.rsplit("/", 1)[-1]
        self.proxy(user, "GET", f"/{name.replace('/', '%2f')}/-/{base}-{v}.tgz", 200, at)


def decide(world: World, lookup: RegistryLookup | None = None) -> list[Decision]:
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(INVENTORY), lookup=lookup)
    return core.process(world.records).decisions


def rules(d: Decision) -> set[str]:
    return {f.rule.rsplit(".", 1)[1] for f in d.findings if f.policy.startswith("registry.")}


def kinds(d: Decision) -> set[str]:
    return {c.kind for c in d.commands}


def history(world: World, name: str, n: int, who_at: list[tuple[str, str]], start: datetime, **kw) -> None:
    for i in range(n):
        world.release(
            name, f"2.{i}.0", who_at[i % len(who_at)], start + timedelta(days=30 * i), hook=False, **kw
        )


# -- publisher history -----------------------------------------------------------------------------------
def test_maintainers_who_take_turns_change_nothing_and_their_installs_are_plain():
    w = World()
    a, b = ("okonkwo", "chidi@okonkwo.example"), ("mlindqvist", "m.lindqvist@mail.example")
    history(w, "yamlette", 6, [a, b], T0 - timedelta(days=400))
    for i, who in enumerate([a, a, b, a]):  # the same maintainer twice in a row is no change either
        at = T0 + timedelta(days=i)
        w.release("yamlette", f"3.0.{i}", who, at)
        w.install("ci-web", "yamlette", f"3.0.{i}", at + timedelta(hours=1))
    for d in decide(w):
        assert d.verdict == "ALLOW" and not rules(d), (d.event.resource_id, rules(d))


def test_the_axios_pattern_is_denied_and_so_are_its_installs_and_its_new_dependency():
    w = World()
    lead = ("rvance", "r.vance@kestrel.example")
    history(w, "kestrel-http", 3, [lead], T0 - timedelta(days=300))
    history(w, "kestrel-http", 0, [OIDC], T0)
    w.release("kestrel-http", "2.8.3", OIDC, T0 - timedelta(days=3))
    hijacker = ("rvance", "rvance.dev@proton.me")
    w.release("kestrel-http", "2.8.4", hijacker, T0, deps={"hashify-crypto-js": "^3.1.0"})
    w.install("ci-web", "kestrel-http", "2.8.4", T0 + timedelta(seconds=90))
    w.install("ci-web", "hashify-crypto-js", "3.1.1", T0 + timedelta(seconds=91))
    w.install("ci-api", "kestrel-http", "2.8.4", T0 + timedelta(minutes=20))
    w.install("ci-api", "kestrel-http", "2.8.3", T0 + timedelta(minutes=21))  # the good one: nothing
    d = {(x.event.actor.id, x.event.resource_id): x for x in decide(w)}
    hijack = d[("npm:rvance", "kestrel-http@2.8.4")]
    assert rules(hijack) >= {"trusted_publishing_dropped", "publisher_changed_adds_dependency"}
    assert kinds(hijack) == {"DENY"}
    # Denied for compromise: installs are denied at the proxy, nobody is revoked (no evidence of harm).
    assert kinds(d[("verdaccio:ci-web", "kestrel-http@2.8.4")]) == {"DENY"}
    assert kinds(d[("verdaccio:ci-api", "kestrel-http@2.8.4")]) == {"DENY"}
    assert rules(d[("verdaccio:ci-web", "hashify-crypto-js@3.1.1")]) == {"dependency_of_denied_version"}
    assert not d[("verdaccio:ci-api", "kestrel-http@2.8.3")].commands


def test_a_dependency_an_allowed_release_keeps_is_no_longer_the_denied_versions_doing():
    w = World()
    history(w, "lib", 3, [("maint", "maint@example.org")], T0 - timedelta(days=300))
    w.release("lib", "3.0.0", ("other", "other@example.org"), T0, deps={"helper": "^1.0.0"})
    w.install("ci-web", "helper", "1.0.0", T0 + timedelta(minutes=1))
    w.release(
        "lib", "3.0.1", ("maint", "maint@example.org"), T0 + timedelta(days=1), deps={"helper": "^1.0.0"}
    )
    w.install("ci-web", "helper", "1.0.0", T0 + timedelta(days=1, minutes=1))
    ds = [x for x in decide(w) if x.event.resource_id.startswith("lib@3") or "helper" in x.event.resource_id]
    assert [(x.event.resource_id, x.verdict) for x in ds] == [
        ("lib@3.0.0", "DENY"),  # a new account adds a dependency
        ("helper@1.0.0", "DENY"),
        ("lib@3.0.1", "ALLOW"),  # the established maintainer keeps it: it vouches for the dependency
        ("helper@1.0.0", "ALLOW"),
    ]


def test_a_hijack_whose_dependency_was_seen_with_an_install_script_revokes_the_installers():
    w = World()
    owner = ("aurelie.b", "aurelie@tempo.example")
    history(w, "tempo-datefmt", 4, [owner], T0 - timedelta(days=200))
    taken = ("aurelie.b", "aurelie.b@tutamail.example")
    w.release("tempo-locale-data", "1.0.0", taken, T0 - timedelta(days=3))
    w.release(
        "tempo-locale-data", "1.0.2", taken, T0 - timedelta(minutes=30), scripts={"postinstall": "node x"}
    )
    w.release("tempo-datefmt", "4.3.2", taken, T0, deps={"tempo-locale-data": "^1.0.0"})
    w.install("ci-web", "tempo-datefmt", "4.3.2", T0 + timedelta(minutes=5))
    w.install("ci-web", "tempo-locale-data", "1.0.2", T0 + timedelta(minutes=5, seconds=1))
    ds = decide(w)
    d = {x.event.resource_id: x for x in ds if x.event.action == "registry.package.publish"}
    assert rules(d["tempo-locale-data@1.0.2"]) == {"install_script_added"}
    want = {"malicious_dependency_added", "publisher_changed_adds_dependency"}
    assert want <= rules(d["tempo-datefmt@4.3.2"]) and kinds(d["tempo-datefmt@4.3.2"]) == {"DENY"}
    # Installs of a version denied for harm: the install scripts ran under the CI credential (revoked once
    # an hour for the same reason; the second install is denied).
    installs = [x for x in ds if x.event.action == "registry.package.install"]
    assert [sorted(kinds(x)) for x in installs] == [["DENY", "REVOKE"], ["DENY"]]


def test_a_new_account_that_adds_nothing_is_an_alert_and_a_second_version_is_judged_without_the_first():
    w = World()
    history(w, "strpad-utils", 5, [("kjetil.h", "kjetil@hagen.example")], T0 - timedelta(days=300))
    intruder = ("pad-maint", "padmaint.ops@mail.example")
    w.release("strpad-utils", "3.1.0", intruder, T0, deps={"strpad-compat": "^1.1.0"})
    w.release("strpad-utils", "3.1.1", intruder, T0 + timedelta(hours=1), deps={"strpad-compat": "^1.1.0"})
    w.release("lone-lib", "1.0.0", ("a", "a@example.org"), T0 - timedelta(days=90), hook=False)
    w.release("lone-lib", "1.0.1", ("b", "b@example.org"), T0)
    d = {x.event.resource_id: x for x in decide(w) if x.event.action == "registry.package.publish"}
    # 3.1.0 is denied, so 3.1.1 is judged against 2.x: still a new account adding a dependency.
    assert "publisher_changed_adds_dependency" in rules(d["strpad-utils@3.1.0"])
    assert "publisher_changed_adds_dependency" in rules(d["strpad-utils@3.1.1"])
    assert kinds(d["strpad-utils@3.1.1"]) == {"DENY"}
    assert rules(d["lone-lib@1.0.1"]) == {"publisher_new"} and not d["lone-lib@1.0.1"].commands


# -- the registry proxy -------------------------------------------------------------------------------------
def test_a_proxy_publish_by_an_install_token_is_denied_and_revoked_and_its_version_is_denied_on_install():
    w, pkg = World(), "@acme/build-utils"
    url = "/@acme%2fbuild-utils"
    w.install("ci-web", pkg, "1.8.0", T0)
    for i, v in enumerate(("1.8.1", "1.8.2")):
        w.proxy("release-bot", "PUT", url, 201, T0 + timedelta(days=1 + 2 * i))
        w.install("ci-web", pkg, v, T0 + timedelta(days=2 + 2 * i))
    w.proxy("ci-web", "PUT", url, 201, T0 + timedelta(days=6), ip="10.42.17.143")
    w.proxy("ci-web", "PUT", f"/-/package/{url[1:]}/dist-tags/latest", 201, T0 + timedelta(days=6, minutes=1))
    w.proxy("web-release", "PUT", url, 409, T0 + timedelta(days=6, minutes=2))
    w.install("ci-api", pkg, "1.8.3", T0 + timedelta(days=7))
    w.install("ci-web", pkg, "1.8.3", T0 + timedelta(days=7, hours=1))
    w.install("ci-web", pkg, "1.8.2", T0 + timedelta(days=7, hours=2))  # the vouched one: nothing
    ds = decide(w)
    publishes = [d for d in ds if d.event.action == "registry.package.publish"]
    assert [(d.event.actor.id, d.verdict) for d in publishes] == [
        ("verdaccio:release-bot", "ALLOW"),
        ("verdaccio:release-bot", "ALLOW"),
        ("verdaccio:ci-web", "REVOKE"),
        ("verdaccio:ci-web", "REVOKE"),
        ("verdaccio:web-release", "DENY"),  # expected to publish by trusted publishing; refused anyway
    ]
    assert "publisher_credential_misused" in rules(publishes[2])
    assert publishes[2].event.facts.client_address == "10.42.17.143"
    installs = [d for d in ds if d.event.action == "registry.package.install"]
    assert [sorted(kinds(d)) for d in installs] == [[], [], [], ["DENY"], ["DENY"], []]
    assert all(rules(d) == {"unvouched_internal_version"} for d in installs[3:5])


def test_a_dependency_confusion_version_served_from_the_public_registry_is_denied():
    w, pkg = World(), "hd-pricing-rules"
    w.install("ci-web", pkg, "2.3.1", T0)
    w.proxy("release-bot", "PUT", f"/{pkg}", 201, T0 + timedelta(days=1))
    w.install("ci-web", pkg, "2.3.2", T0 + timedelta(days=2))
    for h in range(3):
        w.install("ci-api", pkg, "9.9.9", T0 + timedelta(days=5, hours=h))
    w.proxy("release-bot", "PUT", f"/{pkg}", 201, T0 + timedelta(days=6))
    w.install("ci-web", pkg, "2.3.3", T0 + timedelta(days=7))  # the next real release is vouched for
    installs = [d for d in decide(w) if d.event.action == "registry.package.install"]
    assert [sorted(kinds(d)) for d in installs] == [[], [], ["DENY"], ["DENY"], ["DENY"], []]


def test_every_proxy_line_carries_the_client_address():
    w = World()
    w.proxy("ci-web", "GET", "/yamlette", 200, T0, ip="172.31.64.9")
    w.install("ci-web", "yamlette", "3.0.0", T0)
    for d in decide(w):
        assert d.event.facts.client_address in ("172.31.64.9", "10.0.3.7")
        assert d.event.facts.family in ("proxy_request", "install")


# -- the fetch step -----------------------------------------------------------------------------------------
def axios_world() -> World:
    w = World()
    w.release("kestrel-http", "2.8.3", OIDC, T0 - timedelta(days=3))
    w.release(
        "kestrel-http", "2.8.4", ("rvance", "rvance.dev@proton.me"), T0, deps={"hashify-crypto-js": "^3.1.0"}
    )
    w.install("ci-web", "kestrel-http", "2.8.4", T0 + timedelta(seconds=90))
    w.install("ci-web", "hashify-crypto-js", "3.1.1", T0 + timedelta(seconds=91))
    w.install("ci-api", "fastbuild", "0.25.1", T0 + timedelta(minutes=5))
    w.install("ci-api", "left-pad", "1.3.0", T0 + timedelta(minutes=6))  # no document recorded
    return w


def test_recorded_documents_make_an_unseen_dependency_malicious_and_its_installers_revoked():
    lookup = registry_lookup(RegistryLookupSettings(), docs=DOCS)
    ds = decide(axios_world(), lookup)
    d = {x.event.resource_id: x for x in ds if x.event.action == "registry.package.publish"}
    publish = d["kestrel-http@2.8.4"]
    assert "malicious_dependency_added" in rules(publish)  # 1.3 days old, with a postinstall script
    (dep,) = publish.event.facts.lookups
    assert (dep.name, dep.status, dep.version, dep.install_scripts) == (
        "hashify-crypto-js",
        "found",
        "3.1.1",  # ^3.1.0 at the time of the publish
        ("postinstall",),
    )
    assert kinds(d["kestrel-http@2.8.4"]) == {"DENY"}
    installs = [x for x in ds if x.event.action == "registry.package.install"]
    assert [sorted(kinds(x)) for x in installs] == [["DENY", "REVOKE"], ["DENY"], [], []]
    assert "young_package_install_script" in rules(installs[1])
    # An install script of a package years old is no finding; an unavailable document commands nothing.
    assert installs[3].event.facts.lookup.status == "unavailable" and not rules(installs[3])


def test_without_documents_the_unseen_dependency_is_not_judged_clean_but_nobody_is_revoked():
    installs = [x for x in decide(axios_world()) if x.event.action == "registry.package.install"]
    assert [sorted(kinds(x)) for x in installs] == [["DENY"], ["DENY"], [], []]
    assert all(x.event.facts.lookup is None for x in installs)


def test_the_looked_up_evidence_is_in_the_decision_record():
    lookup = registry_lookup(RegistryLookupSettings(), docs=DOCS)
    codec = AvroCodec(REPO_ROOT / "schemas")
    for d in decide(axios_world(), lookup):
        rec = codec.decode(codec.encode("Decision", decision_record(d, 0)))["event"]
        if d.event.action == "registry.package.install":
            assert rec["install"]["lookup"]["status"] in ("found", "unavailable")


def test_recorded_documents_are_named_as_the_registry_path_and_a_404_is_not_found():
    src = RecordedRegistry(DOCS)
    assert src.fetch("@acme/helpers", 1.0)["name"] == "@acme/helpers"
    assert src.fetch("acme-internal-only", 1.0) == NOT_FOUND
    with pytest.raises(Unavailable):
        src.fetch("never-recorded", 1.0)


class SlowSource:
    def __init__(self, delay_s: float) -> None:
        self.delay_s, self.calls = delay_s, Counter[str]()
        self.release = threading.Event()

    def fetch(self, name: str, timeout_s: float) -> Any:
        self.calls[name] += 1
        if self.release.wait(self.delay_s):
            return NOT_FOUND
        return json.loads((DOCS / "hashify-crypto-js.json").read_text())


def test_lookups_are_cached_within_a_deadline_and_a_new_version_fetches_again():
    clock = [0.0]
    src = SlowSource(0.0)
    lookup = RegistryLookup(src, deadline_s=1.0, ttl_s=60.0, clock=lambda: clock[0])
    w = World()
    w.install("ci-web", "hashify-crypto-js", "3.1.1", T0)
    w.install("ci-web", "hashify-crypto-js", "3.1.0", T0)
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(INVENTORY), lookup=lookup)
    core.process(w.records)
    core.process(w.records)
    assert src.calls["hashify-crypto-js"] == 1  # one fetch for both installs and both batches
    w.install("ci-web", "hashify-crypto-js", "3.1.2", T0)  # not in the cached document
    core.process(w.records[-1:])
    assert src.calls["hashify-crypto-js"] == 2
    clock[0] = 61.0
    core.process(w.records[:1])
    assert src.calls["hashify-crypto-js"] == 3  # expired


def test_a_registry_that_does_not_answer_in_time_is_unavailable_and_not_asked_again_at_once():
    src = SlowSource(5.0)
    lookup = RegistryLookup(src, deadline_s=0.2, ttl_s=60.0)
    w = World()
    w.install("ci-web", "hashify-crypto-js", "3.1.1", T0)
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(INVENTORY), lookup=lookup)
    started = datetime.now(UTC)
    (d,) = core.process(w.records).decisions
    assert datetime.now(UTC) - started < timedelta(seconds=2)
    assert d.event.facts.lookup.status == "unavailable" and not d.commands
    core.process(w.records)
    assert src.calls["hashify-crypto-js"] == 1
    src.release.set()
    lookup.close()


def test_eval_and_replay_use_no_network_unless_asked(tmp_path: Path):
    assert registry_lookup(RegistryLookupSettings(url="http://registry.invalid")) is None
    assert registry_lookup(RegistryLookupSettings(), url="http://registry.invalid") is not None
    with pytest.raises(ValueError):
        registry_lookup(RegistryLookupSettings(), docs=tmp_path / "missing")
    env = {"NHIGUARD_REGISTRY_URL": "http://proxy:4873", "NHIGUARD_REGISTRY_DEADLINE_S": "0.5"}
    assert load_settings(env=env).registry_lookup == RegistryLookupSettings("http://proxy:4873", 0.5, 300.0)


# -- ranges ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "spec", "ok"),
    [
        ("1.2.3", "^1.0.0", True),
        ("2.0.0", "^1.0.0", False),
        ("0.2.5", "^0.2.3", True),
        ("0.3.0", "^0.2.3", False),
        ("1.2.9", "~1.2.3", True),
        ("1.3.0", "~1.2.3", False),
        ("1.5.0", "1.x", True),
        ("9.9.9", "*", True),
        ("1.0.0-rc.1", "*", False),
        ("1.0.0-rc.1", "^1.0.0-rc.0", True),
        ("1.9.0", ">=1.2.0 <2", True),
        ("1.5.0", "1.2.3 - 1.6", True),
        ("4.3.2", "^4.3.3", False),
        ("3.0.1", "^1.0.0 || ^3.0.0", True),
        ("1.0.0", "latest", False),
    ],
)
def test_ranges(version, spec, ok):
    assert satisfies(version, spec) is ok


def test_max_satisfying():
    assert max_satisfying(["3.1.0", "3.1.1", "4.0.0"], "^3.1.0") == "3.1.1"
    assert max_satisfying(["1.0.0"], "^2") is None


def test_the_registry_token_reads_the_configured_registry_only(tmp_path: Path):
    import http.server

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"name": "x", "versions": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    secret = tmp_path / "token"
    secret.write_text("verdaccio-read-token\n")
    try:
        s = load_settings(
            env={"NHIGUARD_REGISTRY_URL": url + "/", "NHIGUARD_REGISTRY_TOKEN_FILE": str(secret)}
        )
        assert s.registry_lookup.token == "verdaccio-read-token" and "read-token" not in repr(s)
        for given in (url, url.replace("127.0.0.1", "localhost")):  # the configured one, then another
            lookup = registry_lookup(s.registry_lookup, given)
            assert lookup is not None
            assert lookup.source.fetch("x", 5.0)["name"] == "x"
            lookup.close()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["Bearer verdaccio-read-token", None]
    with pytest.raises(ValueError, match="without NHIGUARD_REGISTRY_URL"):
        load_settings(env={"NHIGUARD_REGISTRY_TOKEN": "t"})
    with pytest.raises(ValueError, match="must be positive"):
        load_settings(env={"NHIGUARD_REGISTRY_DEADLINE_S": "0"})
