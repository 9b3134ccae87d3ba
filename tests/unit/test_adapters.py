"""Adapters on the project's own fixtures, written in the sources' real formats (docs/sources.md)."""

import json

import pytest

from nhiguard.decision.adapters import adapt
from nhiguard.decision.records import AdapterError, RawRecord
from nhiguard.decision.registry_facts import Install, Publisher


def rec(topic, body, headers=()):
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawRecord(topic, 0, 7, value, None, tuple((k, v.encode()) for k, v in headers), 1774500000000)


def link(kind, id_):
    return {"sys": {"type": "Link", "linkType": kind, "id": id_}}


def contentful_asset(url, tags=(), published=False, by=("AppDefinition", "asset-sync")):
    sys = {
        "type": "Asset",
        "id": "4bXq1kTq",
        "version": 3,
        "space": link("Space", "k8x2"),
        "environment": link("Environment", "master"),
        "createdAt": "2026-03-26T08:01:02.000Z",
        "updatedAt": "2026-03-26T08:01:02.000Z",
        "createdBy": link(*by),
        "updatedBy": link(*by),
    }
    if published:
        sys |= {"publishedVersion": 2, "publishedAt": "2026-03-26T08:00:00.000Z"}
    return {
        "metadata": {"tags": [link("Tag", t) for t in tags]},
        "sys": sys,
        "fields": {
            "title": {"en-US": "Roadmap"},
            "file": {
                "en-US": {
                    "url": url,
                    "fileName": "r.pdf",
                    "contentType": "application/pdf",
                    "details": {"size": 48211},
                }
            },
        },
    }


def test_contentful_default_public_upload():
    ev = adapt(
        rec(
            "audit.cms",
            contentful_asset("//assets.ctfassets.net/k8x2/4bXq1kTq/9f/r.pdf", ["internal"]),
            [("X-Contentful-Topic", "ContentManagement.Asset.create")],
        ),
        "cms",
    )
    assert ev.actor.id == "contentful:k8x2/AppDefinition/asset-sync" and not ev.actor.human
    assert ev.action == "cms.asset.create"
    assert ev.facts.exposed_without_publish and ev.facts.publicly_reachable and ev.facts.tags == ("internal",)
    assert ev.occurred_at_ms == 1774512062000


def test_contentful_embargoed_upload_is_not_reachable_and_humans_are_humans():
    body = contentful_asset("//images.secure.ctfassets.net/k8x2/x/y/r.png", by=("User", "editor-1"))
    ev = adapt(rec("audit.cms", body, [("X-Contentful-Topic", "ContentManagement.Asset.save")]), "cms")
    assert ev.actor.human and not ev.facts.publicly_reachable and not ev.facts.exposed_without_publish


def test_contentful_public_tag_is_not_an_unintended_exposure():
    body = contentful_asset("//assets.ctfassets.net/k8x2/x/y/r.png", ["public"])
    ev = adapt(rec("audit.cms", body, [("X-Contentful-Topic", "ContentManagement.Asset.create")]), "cms")
    assert ev.facts.publicly_reachable and not ev.facts.exposed_without_publish


def test_contentful_deny_targets_follow_the_entity_type():
    """A DENY names what the enforcement point unpublishes: an entry is not an asset."""
    body = contentful_asset("//assets.ctfassets.net/k8x2/x/y/r.png", ["internal"])
    asset = adapt(rec("audit.cms", body, [("X-Contentful-Topic", "ContentManagement.Asset.publish")]), "cms")
    body["sys"]["type"] = "Entry"
    del body["fields"]["file"]
    entry = adapt(rec("audit.cms", body, [("X-Contentful-Topic", "ContentManagement.Entry.publish")]), "cms")
    assert asset.facts.deny_target(asset.resource_id) == ("asset", "k8x2/4bXq1kTq")
    assert entry.facts.deny_target(entry.resource_id) == ("entry", "k8x2/4bXq1kTq")


def test_contentful_without_actor_is_missing_identity():
    body = contentful_asset("//assets.ctfassets.net/a")
    del body["sys"]["updatedBy"], body["sys"]["createdBy"]
    with pytest.raises(AdapterError) as e:
        adapt(rec("audit.cms", body, [("X-Contentful-Topic", "ContentManagement.Asset.create")]), "cms")
    assert e.value.reason == "missing_identity"


GATE = {
    "gate": "npm-publish",
    "request_id": "7a1c",
    "requested_at": "2026-03-30T22:30:00Z",
    "registry": "https://registry.npmjs.org/",
    "tag": "latest",
    "access": "public",
    "github": {
        "repository": "acme/cli",
        "workflow_ref": "acme/cli/.github/workflows/release.yml@refs/tags/v3.0.1",
        "run_id": "1234",
        "run_attempt": "1",
        "actor": "release-bot",
        "event_name": "push",
        "ref": "refs/tags/v3.0.1",
        "sha": "9e1f",
    },
    "pack": {
        "id": "@acme/cli@3.0.1",
        "name": "@acme/cli",
        "version": "3.0.1",
        "size": 1500,
        "unpackedSize": 7000,
        "shasum": "ab",
        "integrity": "sha512-x",
        "filename": "acme-cli-3.0.1.tgz",
        "files": [
            {"path": "cli.js", "size": 6000, "mode": 420},
            {"path": "cli.js.map", "size": 900, "mode": 420},
        ],
        "entryCount": 2,
        "bundled": [],
    },
}


def test_publish_gate_identity_is_the_workflow():
    ev = adapt(rec("audit.ci", GATE), "ci")
    assert ev.actor.id == "github:acme/cli/.github/workflows/release.yml"
    assert ev.facts.files[1].path == "cli.js.map" and ev.facts.request_id == "7a1c"
    assert ev.event_id == "gate:7a1c"


def test_github_workflow_run_and_human_sender():
    body = {
        "action": "completed",
        "repository": {"full_name": "acme/cli"},
        "sender": {"login": "octocat", "type": "User"},
        "workflow_run": {"path": ".github/workflows/test.yml", "updated_at": "2026-03-20T10:00:00Z"},
    }
    ev = adapt(
        rec("audit.ci", body, [("X-GitHub-Event", "workflow_run"), ("X-GitHub-Delivery", "d-1")]), "ci"
    )
    assert ev.actor.id == "github:acme/cli/.github/workflows/test.yml" and ev.event_id == "d-1"
    push = {
        "ref": "refs/heads/main",
        "repository": {"full_name": "acme/cli"},
        "sender": {"login": "octocat", "type": "User"},
    }
    ev = adapt(rec("audit.ci", push, [("X-GitHub-Event", "push")]), "ci")
    assert ev.actor.human and ev.action == "ci.github.push"


def test_github_workflow_job_identity_is_the_workflow_not_who_triggered_it():
    body = {
        "action": "completed",
        "repository": {"full_name": "acme/cli"},
        "sender": {"login": "renovate[bot]", "type": "Bot"},
        "workflow_job": {"run_id": 7, "workflow_name": "CI", "started_at": "2026-03-20T10:00:00Z"},
    }
    ev = adapt(rec("audit.ci", body, [("X-GitHub-Event", "workflow_job")]), "ci")
    assert ev.actor.id == "github:acme/cli/workflow:CI" and not ev.actor.human
    # An older payload without workflow_name falls back to the sender.
    del body["workflow_job"]["workflow_name"]
    ev = adapt(rec("audit.ci", body, [("X-GitHub-Event", "workflow_job")]), "ci")
    assert ev.actor.id == "github:bot/renovate[bot]"


def manifest(version, user, email, trusted, deps=None, scripts=None):
    m = {
        "name": "httpclient",
        "version": version,
        "dependencies": deps or {},
        "scripts": scripts or {},
        "_npmUser": {"name": user, "email": email},
        "dist": {"tarball": "t", "integrity": "i", "unpackedSize": 1},
    }
    if trusted:
        m["_npmUser"]["trustedPublisher"] = {"id": "github", "oidcConfigId": "oidc:1"}
        m["dist"]["attestations"] = {
            "url": "u",
            "provenance": {"predicateType": "https://slsa.dev/provenance/v1"},
        }
    return m


def test_npm_hook_compares_with_previous_release():
    body = {
        "event": "package:publish",
        "name": "httpclient",
        "type": "package",
        "version": "1.10.1",
        "hookOwner": {"username": "acme-sec"},
        "change": {"version": "1.10.1"},
        "time": 1774916460000,
        "payload": {
            "_id": "httpclient",
            "name": "httpclient",
            "time": {
                "created": "2015-01-01T00:00:00.000Z",
                "1.9.0": "2026-01-01T00:00:00.000Z",
                "1.10.0": "2026-02-01T00:00:00.000Z",
                "1.10.1": "2026-03-31T00:21:00.000Z",
            },
            "versions": {
                "1.9.0": manifest("1.9.0", "GitHub Actions", "npm-oidc-no-reply@github.com", True),
                "1.10.0": manifest(
                    "1.10.0", "GitHub Actions", "npm-oidc-no-reply@github.com", True, {"a": "^1"}
                ),
                "1.10.1": manifest(
                    "1.10.1",
                    "lead",
                    "Lead@Mailbox.example",
                    False,
                    {"a": "^1", "fresh-dep": "^4.2.1"},
                    {"postinstall": "node x"},
                ),
            },
        },
    }
    ev = adapt(rec("audit.registry", body), "registry")
    p = ev.facts
    assert p.previous.version == "1.10.0"  # semver order, not string order
    assert p.previous.publisher.mechanism == "trusted_publishing" and p.previous.publisher.provenance
    assert p.publisher == Publisher(
        name="lead", email="lead@mailbox.example", mechanism="token", provenance=False
    )
    assert p.added_dependencies == ("fresh-dep",) and p.added_install_scripts == ("postinstall",)
    assert ev.resource_id == "httpclient@1.10.1" and ev.occurred_at_ms == 1774916460000


@pytest.mark.parametrize(
    ("url", "pkg", "version"),
    [
        ("/httpclient/-/httpclient-1.10.1.tgz", "httpclient", "1.10.1"),
        ("/@acme%2fcli/-/cli-3.0.1.tgz", "@acme/cli", "3.0.1"),
    ],
)
def test_verdaccio_tarball_get_is_an_install(url, pkg, version):
    line = {
        "level": 30,
        "time": 1774917000000,
        "pid": 7,
        "hostname": "verdaccio-0",
        "sub": "out",
        "request": {"method": "GET", "url": url},
        "user": "ci-deploy",
        "remoteIP": "10.0.3.7",
        "status": 200,
        "error": None,
        "bytes": {"in": 0, "out": 2400},
        "msg": "@{status}, user: @{user}",
    }
    ev = adapt(rec("audit.registry", line), "registry")
    assert ev.action == "registry.package.install"
    assert ev.facts == Install(pkg, version, "verdaccio", client_address="10.0.3.7")
    assert ev.actor.id == "verdaccio:ci-deploy"


@pytest.mark.parametrize(
    ("topic", "domain", "body", "headers", "reason"),
    [
        ("audit.cms", "cms", b"{not json", (), "malformed_json"),
        ("audit.cms", "cms", b"\xff\xfe", (), "malformed_json"),
        ("audit.ci", "ci", b"[1, 2]", (), "unknown_shape"),
        ("audit.ci", "ci", b'{"hello": "world"}', (), "unknown_shape"),
        ("audit.runtime", "runtime", b'{"kind": "Event"}', (), "unknown_shape"),
        (
            "audit.ci",
            "ci",
            json.dumps(dict(GATE, github={"repository": "a/b"})).encode(),
            (),
            "missing_identity",
        ),
        ("audit.registry", "registry", b'{"level": 30, "msg": "x", "request": {}}', (), "missing_identity"),
    ],
)
def test_bad_input_gets_a_reason(topic, domain, body, headers, reason):
    with pytest.raises(AdapterError) as e:
        adapt(rec(topic, body, headers), domain)
    assert e.value.reason == reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"gate": "npm-publish", "x": "\\ud800"}', "malformed_json"),  # lone surrogate: not Unicode
        (
            json.dumps(dict(GATE, pack=dict(GATE["pack"], size=10**30))).encode(),
            "unknown_shape",
        ),  # not an Avro long
        (json.dumps(dict(GATE, pack=dict(GATE["pack"], size=-1))).encode(), "unknown_shape"),
        (json.dumps(dict(GATE, pack=dict(GATE["pack"], files="cli.js"))).encode(), "unknown_shape"),
        (json.dumps(dict(GATE, pack=dict(GATE["pack"], files=[{"size": "big"}]))).encode(), "unknown_shape"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed_json"),  # deep nesting
    ],
)
def test_inputs_that_would_poison_the_engine_or_the_output_are_rejected(body, reason):
    with pytest.raises(AdapterError) as e:
        adapt(rec("audit.ci", body), "ci")
    assert e.value.reason == reason


def test_surrogate_pairs_are_fine():
    body = json.dumps(dict(GATE, request_id="\U0001f600"))  # json.dumps escapes it as a surrogate pair
    assert "\\ud83d" in body
    assert adapt(rec("audit.ci", body.encode()), "ci").facts.request_id == "\U0001f600"


def test_the_most_specific_source_wins_whatever_the_import_order():
    # A gate request a webhook bridge delivered with GitHub's headers is still a gate request (a body value
    # beats a header), and a hook body with a log line's keys is still a hook (it has more of the hook's).
    ev = adapt(rec("audit.ci", GATE, [("X-GitHub-Event", "workflow_run")]), "ci")
    assert ev.source == "npm.publish_gate"
    hook = {
        "event": "package:publish",
        "hookOwner": {"username": "x"},
        "level": 30,
        "msg": "m",
        "request": {},
        "name": "left-pad",
        "change": {"version": "1.0.0"},
        "payload": {"versions": {"1.0.0": {"_npmUser": {"name": "m"}}}},
    }
    assert adapt(rec("audit.registry", hook), "registry").source == "npm.hook"


def test_sources_register_their_name_domains_and_whether_principals_are_external():
    from nhiguard.decision.adapters import external_principals
    from nhiguard.decision.adapters.registry import REGISTRY, Recogniser, Registry, Source

    names = {s.name: s for s in REGISTRY.sources()}
    ours = ("contentful.webhook", "github.webhook", "npm.publish_gate", "npm.hook", "verdaccio.log")
    assert set(ours) <= set(names)  # and any source added since
    assert [n for n in ours if external_principals(n)] == ["npm.hook"]
    again = Registry()
    again.register(names["npm.hook"])
    with pytest.raises(ValueError, match="registered twice"):
        again.register(names["npm.hook"])
    with pytest.raises(ValueError, match="recognises every record"):
        again.register(Source("any", ("ci",), Recogniser(), names["npm.hook"].adapt))


@pytest.mark.parametrize(
    "body",
    [
        b'{"gate": "npm-publish", "n": ' + b"9" * 5000 + b"}",  # over Python's int conversion limit
        b'{"level": 30, "msg": "m", "request": {}, "t": -' + b"1" * 4301 + b"}",
        b'{"a": ' * 5000 + b"1" + b"}" * 5000,  # deep nesting of objects
        b'{"gate": "npm-publish"} trailing',
        b"\x00\x00\x00{",  # bytes json.loads takes for UTF-32
        b"",
    ],
)
def test_json_that_python_refuses_is_malformed_json_with_its_reason(body):
    for topic, domain in (("audit.ci", "ci"), ("audit.registry", "registry")):
        with pytest.raises(AdapterError) as e:
            adapt(rec(topic, body), domain)
        assert e.value.reason == "malformed_json" and e.value.detail


def test_a_size_beyond_an_avro_long_in_a_proxy_log_is_refused():
    line = {"level": 30, "msg": "m", "user": "ci", "sub": "out", "status": 201, "time": 1774500000000}
    line |= {"request": {"method": "PUT", "url": "/left-pad"}, "bytes": {"in": 10**30, "out": 0}}
    line |= {"remoteIP": "10.1.2.3"}  # a client's line
    with pytest.raises(AdapterError) as e:
        adapt(rec("audit.registry", line), "registry")
    assert e.value.reason == "unknown_shape"


# Runs of scope separators: the old package-name pattern backtracked quadratically over them (about 1 s for
# 24 KB; at the 1 MiB record limit, far longer). Only the answers are asserted here, never the time.
_SEPARATORS = 20_000


@pytest.mark.parametrize(
    "url",
    [
        "/@" + "%2f" * _SEPARATORS,
        "/@" + "a%2f" * _SEPARATORS + "@",
        "/-/package/@" + "%2F" * _SEPARATORS + "/dist-tags/x/y",
        "/@s/" + "%2f" * _SEPARATORS + "/-/x.tgz/",
    ],
)
def test_a_url_built_to_make_the_path_pattern_backtrack_is_read_as_a_plain_request(url):
    line = {"level": 30, "msg": "m", "user": "ci", "sub": "out", "status": 200, "time": 1774500000000}
    for method in ("GET", "PUT"):
        ev = adapt(rec("audit.registry", line | {"request": {"method": method, "url": url}}), "registry")
        assert ev.action == "registry.proxy.request"


@pytest.mark.parametrize(
    ("url", "package", "version"),
    [
        ("/left-pad/-/left-pad-1.3.0.tgz", "left-pad", "1.3.0"),
        ("/@acme%2fhelpers/-/helpers-2.0.0.tgz", "@acme/helpers", "2.0.0"),
        ("/@acme%2Fhelpers/-/helpers-2.0.0.tgz?token=x", "@acme/helpers", "2.0.0"),
        ("/@acme/helpers/-/helpers-2.0.0.tgz", "@acme/helpers", "2.0.0"),
    ],
)
def test_tarball_urls_still_name_their_package_and_version(url, package, version):
    line = {"level": 30, "msg": "m", "user": "ci", "sub": "out", "status": 200, "time": 1774500000000}
    line |= {"remoteIP": "10.1.2.3", "bytes": {"in": 0, "out": 4096}}
    ev = adapt(rec("audit.registry", line | {"request": {"method": "GET", "url": url}}), "registry")
    assert (ev.facts.package, ev.facts.version) == (package, version)


# Real lines of Verdaccio 6.8.0 (the test registry, tools/verdaccio.py), as the real npm client made them.
V6_INSTALL = [
    {"level": 25, "time": 1796033832399, "pid": 4406, "hostname": "vm", "sub": "in",
     "request": {"method": "GET", "url": "/gate-clean/-/gate-clean-1.0.0.tgz"}, "user": None,
     "remoteIP": "127.0.0.1", "status": 200, "bytes": {"in": 0, "out": 0},
     "msg": "200, user: null(127.0.0.1), req: 'GET /gate-clean/-/gate-clean-1.0.0.tgz', bytes: 0/0"},
    {"level": 25, "time": 1796033832406, "pid": 4406, "hostname": "vm", "sub": "in",
     "request": {"method": "GET", "url": "/gate-clean/-/gate-clean-1.0.0.tgz"}, "user": "ci-bot",
     "remoteIP": "127.0.0.1", "status": 200, "bytes": {"in": 0, "out": 213},
     "msg": "200, user: ci-bot(127.0.0.1), req: 'GET /gate-clean/-/gate-clean-1.0.0.tgz', bytes: 0/213"},
]  # fmt: skip
V6_PUBLISH = [
    {"level": 25, "time": 1796033831962, "pid": 4406, "hostname": "vm", "sub": "in",
     "request": {"method": "PUT", "url": "/gate-clean"}, "user": "publisher-bot", "remoteIP": "127.0.0.1",
     "status": 200, "bytes": {"in": 925, "out": 0},
     "msg": "200, user: publisher-bot(127.0.0.1), req: 'PUT /gate-clean', bytes: 925/0"},
    {"level": 25, "time": 1796033831973, "pid": 4406, "hostname": "vm", "sub": "in",
     "request": {"method": "PUT", "url": "/gate-clean"}, "user": "publisher-bot", "remoteIP": "127.0.0.1",
     "status": 201, "bytes": {"in": 925, "out": 53},
     "msg": "201, user: publisher-bot(127.0.0.1), req: 'PUT /gate-clean', bytes: 925/53"},
]  # fmt: skip
V6_RECEIVED = {
    "level": 30, "time": 1796033831960, "pid": 4406, "hostname": "vm", "sub": "in",
    "req": {"method": "PUT", "url": "/gate-clean", "query": {}, "params": {}, "headers": {}},
    "ip": "127.0.0.1", "msg": "127.0.0.1 requested 'PUT /gate-clean'",
}  # fmt: skip


def test_verdaccio_6_lines_are_read_once_each_as_what_they_did():
    # 6.x marks a client's lines `sub: "in"` and logs each request twice (early, then finished): the install
    # and the publish are each one event, by their users; the early lines are plain requests.
    early, done = (adapt(rec("audit.registry", x), "registry") for x in V6_INSTALL)
    assert (done.action, done.actor.id, done.resource_id) == (
        "registry.package.install",
        "verdaccio:ci-bot",
        "gate-clean@1.0.0",
    )
    assert (early.action, early.actor.id) == ("registry.proxy.request", "verdaccio:anonymous")
    early, done = (adapt(rec("audit.registry", x), "registry") for x in V6_PUBLISH)
    assert (done.action, done.facts.accepted, done.actor.id) == (
        "registry.package.publish",
        True,
        "verdaccio:publisher-bot",
    )
    assert early.action == "registry.proxy.request"


def test_a_verdaccio_request_received_line_is_dead_lettered_saying_which_line_to_ship():
    with pytest.raises(AdapterError) as e:
        adapt(rec("audit.registry", V6_RECEIVED), "registry")
    assert e.value.reason == "missing_identity" and "ship only lines with a `request` field" in e.value.detail


def test_an_uplink_line_installs_nothing():
    # The registry's own fetch from its uplink (no client address): never an install by anyone.
    line = {k: v for k, v in V6_INSTALL[1].items() if k not in ("remoteIP",)} | {"sub": "out"}
    assert adapt(rec("audit.registry", line), "registry").action == "registry.proxy.request"
