"""The scenario generator: deterministic, realistic in shape, and renamable without changing its story."""

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tools import REPO_ROOT
from tools.scenarios import (
    LABELS,
    TOPICS,
    default_inventory_path,
    default_params,
    generate,
    identities_yaml,
    inventory,
    read_ndjson,
    variant_params,
    write_inventory,
    write_ndjson,
)
from tools.scenarios.__main__ import main as cli_main

NONPUBLIC_TAGS = {"internal", "confidential", "restricted", "draft", "embargoed"}
PUBLIC_HOSTS = {
    "assets.ctfassets.net",
    "images.ctfassets.net",
    "videos.ctfassets.net",
    "downloads.ctfassets.net",
}
PROHIBITED_SUFFIXES = (".map", ".pem", ".key", ".p12")
PROHIBITED_NAMES = (".env", "id_rsa", ".npmrc")
VARIANT_SEEDS = (1, 7, 42)


@pytest.fixture(scope="module")
def default_records():
    return generate(default_params())


@pytest.fixture(scope="module")
def variants():
    return {seed: generate(variant_params(seed), ordinary=300) for seed in VARIANT_SEEDS}


def body(rec):
    return json.loads(rec.value)


def by_label(records, label):
    return [r for r in records if r.label == label]


def cms_tags(b):
    return {t["sys"]["id"] for t in b["metadata"]["tags"]}


def cms_host(b):
    file = (b.get("fields", {}).get("file") or {}).get("en-US") or {}
    return urlsplit(file["url"]).hostname if file.get("url") else None


def stream_text(records):
    return "\n".join(
        (r.key or b"").decode()
        + "|"
        + r.value.decode()
        + "|"
        + "".join(k + "=" + v.decode() for k, v in r.headers)
        for r in records
    )


def actor_of(rec):
    """The canonical identity of a record as docs/sources.md defines it; None for a human."""
    b = body(rec)
    if rec.topic == "audit.cms":
        s = b["sys"]
        link = (s.get("publishedBy") if rec.header("X-Contentful-Topic").endswith(".publish") else None) or s[
            "updatedBy"
        ]
        lt, ident = link["sys"]["linkType"], link["sys"]["id"]
        return None if lt == "User" else f"contentful:{s['space']['sys']['id']}/{lt}/{ident}"
    if rec.topic == "audit.ci":
        if b.get("gate") == "npm-publish":
            repo = b["github"]["repository"]
            return f"github:{repo}/{b['github']['workflow_ref'].split('@')[0].removeprefix(repo + '/')}"
        if rec.header("X-GitHub-Event") == "workflow_run":
            return f"github:{b['repository']['full_name']}/{b['workflow_run']['path']}"
        sender = b["sender"]
        return None if sender["type"] == "User" else f"github:bot/{sender['login']}"
    if b.get("event") == "package:publish":
        return f"npm:{b['payload']['versions'][b['change']['version']]['_npmUser']['name']}"
    return f"verdaccio:{b['user']}"


def stream_digest(records):
    h = hashlib.sha256()
    for r in records:
        h.update(repr((r.topic, r.key, r.value, r.headers, r.timestamp_ms, r.label)).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ determinism


def test_same_params_give_identical_bytes(default_records):
    again = generate(default_params())
    assert again == default_records
    assert generate(default_params(), ordinary=200) == generate(default_params(), ordinary=200)


def test_identical_across_processes_and_hash_seeds():
    code = (
        "import hashlib,sys\n"
        "from tools.scenarios import default_params, generate\n"
        "h = hashlib.sha256()\n"
        "for r in generate(default_params(), ordinary=200):\n"
        "    h.update(repr((r.topic, r.key, r.value, r.headers, r.timestamp_ms, r.label)).encode())\n"
        "print(h.hexdigest())\n"
    )
    outs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO_ROOT))
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    assert outs == {stream_digest(generate(default_params(), ordinary=200))}


def test_does_not_use_the_global_random_state(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("scenario used the global random state")

    for name in ("random", "randint", "choice", "choices", "sample", "uniform", "shuffle", "getrandbits"):
        monkeypatch.setattr(random, name, boom)
    assert generate(default_params(), ordinary=100)


def test_incidents_do_not_depend_on_the_amount_of_ordinary_activity():
    small = [r for r in generate(default_params(), ordinary=100) if r.label != "ordinary"]
    large = [r for r in generate(default_params(), ordinary=1500) if r.label != "ordinary"]
    assert small == large


# ------------------------------------------------------------------------------------------ stream shape


def test_counts_labels_topics_and_order(default_records):
    p = default_params()
    labels = Counter(r.label for r in default_records)
    assert set(labels) == set(LABELS)
    assert labels["ordinary"] >= 1000
    assert labels["incident:cms"] == p.cms_leak_assets
    assert labels["incident:ci"] == 1 and labels["twin:ci"] == 1 and labels["twin:cms"] == 1
    assert {r.topic for r in default_records} == set(TOPICS)
    for topic in TOPICS:
        assert sum(r.topic == topic and r.label == "ordinary" for r in default_records) >= 150
    ts = [r.timestamp_ms for r in default_records]
    assert ts == sorted(ts)
    ordinary = [r.timestamp_ms for r in default_records if r.label == "ordinary"]
    assert (max(ordinary) - min(ordinary)) / 86_400_000 >= 7  # a week before the incidents and during them


def test_every_value_is_compact_json_with_the_documented_key(default_records):
    for r in default_records:
        b = body(r)
        assert isinstance(b, dict)
        assert r.value == json.dumps(b, separators=(",", ":"), ensure_ascii=False).encode()
        key = r.key.decode()
        if r.topic == "audit.cms":
            assert r.header("X-Contentful-Topic").startswith("ContentManagement.")
            assert key == b["sys"]["space"]["sys"]["id"]
        elif r.topic == "audit.ci":
            if b.get("gate") == "npm-publish":
                assert key == b["github"]["repository"]
            else:
                assert r.header("X-GitHub-Event") and r.header("X-GitHub-Delivery")
                assert key == b["repository"]["full_name"]
                assert {"login", "type"} <= b["sender"].keys()
        elif b.get("event") == "package:publish":
            assert "hookOwner" in b and key == b["name"]
        else:
            assert {"level", "msg", "request"} <= b.keys()
            url = b["request"]["url"]
            pkg = unquote(url.split("/-/")[0].lstrip("/"))
            assert key == pkg


def test_github_bodies_keep_the_real_keys(default_records):
    events = Counter()
    for r in default_records:
        event = r.header("X-GitHub-Event")
        if not event:
            continue
        events[event] += 1
        b = body(r)
        assert {"full_name", "owner", "private"} <= b["repository"].keys()
        if event == "workflow_run":
            assert {"path", "name", "actor", "event", "status", "conclusion", "head_sha"} <= b[
                "workflow_run"
            ].keys()
            assert b["workflow"]["path"] == b["workflow_run"]["path"]
        elif event == "workflow_job":
            assert {"run_id", "workflow_name", "steps", "conclusion"} <= b["workflow_job"].keys()
        elif event == "push":
            assert {"ref", "before", "after", "commits", "pusher"} <= b.keys()
        elif event == "release":
            assert b["action"] == "published" and b["release"]["tag_name"].startswith("v")
    assert set(events) == {"workflow_run", "workflow_job", "push", "release"}
    senders = Counter(body(r)["sender"]["type"] for r in default_records if r.header("X-GitHub-Event"))
    assert senders["Bot"] > 0 and senders["User"] > 0


# --------------------------------------------------------------------------------------------- ordinary


def test_ordinary_cms_never_puts_nonpublic_content_on_a_public_host(default_records):
    for r in by_label(default_records, "ordinary"):
        if r.topic != "audit.cms":
            continue
        b = body(r)
        tags, host, op = cms_tags(b), cms_host(b), r.header("X-Contentful-Topic").rsplit(".", 1)[1]
        if host in PUBLIC_HOSTS or op == "publish":
            assert not tags & NONPUBLIC_TAGS, (op, tags, host)
        if host in PUBLIC_HOSTS and op != "publish" and "publishedVersion" not in b["sys"]:
            assert "public" in tags  # an unpublished upload is public only when meant to be
        if host is not None and host not in PUBLIC_HOSTS:
            assert host.endswith(".secure.ctfassets.net")


def test_ordinary_releases_are_normal(default_records):
    last = {}
    for r in default_records:
        b = body(r)
        if b.get("gate") != "npm-publish" or r.label != "ordinary":
            if b.get("gate") == "npm-publish":
                last[b["pack"]["name"]] = b["pack"]["size"]
            continue
        pack = b["pack"]
        for f in pack["files"]:
            name = f["path"].rsplit("/", 1)[-1]
            assert not name.endswith(PROHIBITED_SUFFIXES) and not name.startswith(PROHIBITED_NAMES), f
            assert "debug" not in f["path"].lower()
        if pack["name"] in last:
            assert 0.8 <= pack["size"] / last[pack["name"]] <= 1.2
        last[pack["name"]] = pack["size"]


def test_ordinary_npm_publishes_look_like_their_previous_release(default_records):
    first_seen = {}
    for r in default_records:
        b = body(r)
        if b.get("event") != "package:publish":
            continue
        pk = b["payload"]
        first_seen.setdefault(b["name"], r.timestamp_ms)
        if r.label != "ordinary":
            continue
        versions = pk["versions"]
        new = versions[b["change"]["version"]]
        prev = versions[
            max((v for v in versions if v != new["version"]), key=lambda v: tuple(map(int, v.split("."))))
        ]
        assert new["_npmUser"] == prev["_npmUser"]
        assert ("attestations" in new["dist"]) == ("attestations" in prev["dist"])
        assert not {"preinstall", "install", "postinstall"} & new["scripts"].keys()
        for dep in new["dependencies"].keys() - prev["dependencies"].keys():
            assert (
                first_seen.get(dep, r.timestamp_ms) < r.timestamp_ms
            )  # the dependency's packument came first
        assert pk["time"]["created"] < "2024"


def test_ordinary_installs_only_fetch_good_versions(default_records):
    p = default_params()
    bad = {f"{p.registry_package}-{v}.tgz" for v in p.bad_versions} | {p.phantom_package}
    for r in by_label(default_records, "ordinary"):
        b = body(r)
        if "request" in b:
            assert not any(x in b["request"]["url"] for x in bad)
            assert b["status"] in (200, 304) and b["sub"] == "out"


# --------------------------------------------------------------------------------------- twins/incidents


def test_cms_incident_and_twin(default_records):
    p = default_params()
    app = ("AppDefinition", p.cms_app_id)
    leak = by_label(default_records, "incident:cms")
    for r in leak:
        b = body(r)
        assert r.header("X-Contentful-Topic") == "ContentManagement.Asset.create"
        assert (b["sys"]["updatedBy"]["sys"]["linkType"], b["sys"]["updatedBy"]["sys"]["id"]) == app
        assert cms_host(b) == p.cms_public_host and cms_tags(b) <= NONPUBLIC_TAGS and cms_tags(b)
        assert "publishedVersion" not in b["sys"]
    assert {cms_tags(body(r)).pop() for r in leak} >= {"internal", "draft"}
    assert leak[-1].timestamp_ms - leak[0].timestamp_ms <= p.cms_leak_minutes * 60_000
    (twin,) = by_label(default_records, "twin:cms")
    tb = body(twin)
    assert twin.header("X-Contentful-Topic") == "ContentManagement.Asset.publish"
    assert cms_tags(tb) == {"public"} and tb["sys"]["publishedBy"]["sys"]["id"] == p.cms_app_id


def test_ci_incident_and_twin(default_records):
    p = default_params()
    (twin,) = [body(r)["pack"] for r in by_label(default_records, "twin:ci")]
    (leak,) = [body(r) for r in by_label(default_records, "incident:ci")]
    pack = leak["pack"]
    assert twin["version"] == p.ci_previous_version and pack["version"] == p.ci_leak_version
    files = {f["path"]: f["size"] for f in pack["files"]}
    assert files[p.ci_bundle_file] == p.ci_bundle_size and files[p.ci_map_file] == p.ci_map_size
    assert not any(f["path"].endswith(".map") for f in twin["files"])
    assert 5 <= pack["size"] / twin["size"] <= 8
    assert leak["access"] == "public" and leak["registry"] == "https://registry.npmjs.org/"
    assert leak["github"]["workflow_ref"].startswith(f"{p.ci_repository}/{p.ci_workflow_path}@")


def test_registry_incident_and_twin(default_records):
    p = default_params()
    hooks = {
        (b["name"], b["change"]["version"]): (r, b)
        for r in default_records
        if (b := body(r)).get("event") == "package:publish"
    }
    twin_r, twin = hooks[(p.registry_package, p.registry_good_latest)]
    assert twin_r.label == "twin:registry"
    tv = twin["payload"]["versions"][p.registry_good_latest]
    assert "trustedPublisher" in tv["_npmUser"] and "attestations" in tv["dist"]

    decoy_r, decoy = hooks[(p.phantom_package, p.phantom_decoy_version)]
    drop_r, drop = hooks[(p.phantom_package, p.phantom_bad_version)]
    assert decoy["payload"]["time"]["created"] == decoy["payload"]["time"][p.phantom_decoy_version]
    gap = drop_r.timestamp_ms - decoy_r.timestamp_ms
    assert abs(gap - p.phantom_lead_hours * 3_600_000) < 60_000
    assert "postinstall" in drop["payload"]["versions"][p.phantom_bad_version]["scripts"]
    assert "postinstall" not in decoy["payload"]["versions"][p.phantom_decoy_version]["scripts"]

    bad_times = []
    for bad, good in (
        (p.registry_bad_latest, p.registry_good_latest),
        (p.registry_bad_legacy, p.registry_good_legacy),
    ):
        r, b = hooks[(p.registry_package, bad)]
        assert r.label == "incident:registry"
        versions = b["payload"]["versions"]
        new, prev = versions[bad], versions[good]
        assert new["_npmUser"] == {"name": p.registry_maintainer, "email": p.attacker_email}
        assert "attestations" not in new["dist"]
        assert "trustedPublisher" in prev["_npmUser"] and "attestations" in prev["dist"]
        assert new["dependencies"].keys() - prev["dependencies"].keys() == {p.phantom_package}
        assert new["scripts"] == prev["scripts"]
        bad_times.append(r.timestamp_ms)
    assert (
        abs(bad_times[1] - bad_times[0] - p.registry_legacy_delay_minutes * 60_000) < 2_000
    )  # + delivery lag

    ids = {i["id"] for i in inventory(p)["identities"]}
    installs = [
        (r.timestamp_ms, body(r)["user"])
        for r in by_label(default_records, "incident:registry")
        if "request" in body(r)
        and f"{p.registry_package}-{p.registry_bad_latest}.tgz" in body(r)["request"]["url"]
    ]
    between = {u for t, u in installs if bad_times[0] < t < bad_times[1]}
    assert between == set(p.registry_victims) and {f"verdaccio:{u}" for u in between} <= ids
    assert any(t > bad_times[1] for t, _ in installs)


def test_incident_counts_are_stable_across_variants(default_records, variants):
    expected = Counter(r.label for r in default_records if r.label != "ordinary")
    for records in variants.values():
        assert Counter(r.label for r in records if r.label != "ordinary") == expected


# ------------------------------------------------------------------------------------------------ variants


def test_variant_contains_no_default_incident_name(variants):
    names = default_params().incident_names()
    for seed, records in variants.items():
        text = stream_text(records)
        assert not [n for n in names if n in text], seed


def test_variant_changes_names_sizes_and_times_but_keeps_ratios():
    d = default_params()
    for seed in VARIANT_SEEDS:
        v = variant_params(seed)
        assert v == variant_params(seed) and v.seed == seed
        assert not set(v.incident_names()) & set(d.incident_names())
        shift = v.start - d.start
        assert abs(shift) >= timedelta(days=30)
        assert v.ci_leak_at - v.start == d.ci_leak_at - d.start
        assert v.ci_bundle_size != d.ci_bundle_size and v.ci_map_size / v.ci_bundle_size >= 4
        assert v.ci_map_file == v.ci_bundle_file + ".map"
        assert v.cms_leak_assets == d.cms_leak_assets and len(v.registry_victims) == len(d.registry_victims)


def test_variant_records_are_shifted_in_time(default_records, variants):
    d0 = by_label(default_records, "incident:ci")[0].timestamp_ms
    for records in variants.values():
        assert abs(by_label(records, "incident:ci")[0].timestamp_ms - d0) >= 30 * 86_400_000


# ------------------------------------------------------------------------------------------------ inventory


def test_inventory_covers_every_nonhuman_actor_of_ours(default_records):
    p = default_params()
    inv = inventory(p)
    ids = {i["id"] for i in inv["identities"]}
    actors = {a for r in default_records if (a := actor_of(r))}
    ours = {a for a in actors if not a.startswith("npm:")}
    assert ours <= ids, ours - ids
    assert not {a for a in actors if a.startswith("npm:")} & ids  # external publishers are not ours
    from nhiguard.decision.context import IDENTITY_KINDS as kinds

    for ident in inv["identities"]:
        assert ident["kind"] in kinds and 1 <= ident["trust_tier"] <= 3 and ident["credential_ids"]
        assert set(ident) == {
            "id",
            "kind",
            "owner",
            "team",
            "credential_ids",
            "allowed_actions",
            "trust_tier",
            "expected_publisher",
        }
    release = next(
        i for i in inv["identities"] if i["id"] == f"github:{p.ci_repository}/{p.ci_workflow_path}"
    )
    assert release["expected_publisher"] == {
        "mechanism": "trusted_publishing",
        "repository": p.ci_repository,
        "workflow": p.ci_workflow_path,
    }


def test_inventory_yaml_and_packaged_file(tmp_path):
    assert yaml.safe_load(identities_yaml()) == inventory(default_params())
    path = write_inventory(variant_params(3), tmp_path / "ids.yaml")
    assert yaml.safe_load(path.read_text()) == inventory(variant_params(3))
    assert default_inventory_path().read_text() == identities_yaml(default_params())


# ------------------------------------------------------------------------------------------------ replay file


def test_replay_file_round_trips(default_records, tmp_path):
    path = tmp_path / "scenario.ndjson"
    assert write_ndjson(default_records, path) == len(default_records)
    assert read_ndjson(path) == default_records
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"topic", "key", "headers", "value", "timestamp_ms", "label"}
    assert isinstance(first["value"], dict) and isinstance(first["headers"], dict)


def test_cli_writes_replay_and_inventory(tmp_path, capsys):
    out, inv = tmp_path / "s.ndjson", tmp_path / "i.yaml"
    assert cli_main(["--out", str(out), "--inventory", str(inv), "--variant", "5", "--ordinary", "50"]) == 0
    assert read_ndjson(out) == generate(variant_params(5), ordinary=50)
    assert yaml.safe_load(inv.read_text()) == inventory(variant_params(5))
    assert "wrote" in capsys.readouterr().out
