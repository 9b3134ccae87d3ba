"""Network-scoped credentials: the inventory's `networks` (CIDRs), judged against the client address the
registry proxy logged, through the whole core (identity.networks)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from nhiguard.decision.context import Identity, Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import Decision, RawRecord
from nhiguard.settings import load_settings
from tests.unit.test_registry import BUNDLE, T0, World, kinds
from tools import REPO_ROOT

CI_WEB = {
    "id": "verdaccio:ci-web",
    "kind": "ci_bot",
    "credential_ids": ["verdaccio-token:ci-web"],
    "allowed_actions": ["registry.package.install", "registry.proxy.request"],
}
SCOPED = CI_WEB | {"networks": ["10.0.0.0/8", "fd00:ac::/32"]}
TARBALL = "/left-pad/-/left-pad-1.3.0.tgz"


def decide(world: World, identity: dict) -> list[Decision]:
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict([identity]))
    return core.process(world.records).decisions


def network_rules(d: Decision) -> set[str]:
    return {f.rule for f in d.findings if f.policy == "identity.networks"}


# -- the inventory field ----------------------------------------------------------------------------------
def test_networks_load_normalised_from_every_format_and_round_trip():
    a = Identity.from_dict(CI_WEB | {"networks": "10.0.0.0/8; FD00:AC:0::/32;192.0.2.7"})  # as a CSV cell
    b = Identity.from_dict(CI_WEB | {"networks": ["10.0.0.0/8", "fd00:ac::/32", "192.0.2.7/32"]})
    assert a == b and a.networks == ("10.0.0.0/8", "fd00:ac::/32", "192.0.2.7/32")
    assert Identity.from_dict(a.to_dict()) == a
    assert a.expectations()["networks"] == list(a.networks)
    assert "networks" not in Identity.from_dict(CI_WEB).expectations()


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "ci-runners", "10.0.3.7/8", "fd00::zz/64"])
def test_an_invalid_cidr_refuses_the_record_with_the_identity_named(bad):
    with pytest.raises(ValueError, match=r"identity verdaccio:ci-web: networks: .*"):
        Identity.from_dict(CI_WEB | {"networks": ["10.0.0.0/8", bad]})


def test_an_address_is_judged_against_every_network_of_its_ip_version():
    ident = Identity.from_dict(SCOPED)
    assert ident.admits_address("10.200.7.9") is True
    assert ident.admits_address("::ffff:10.0.3.7") is True  # IPv4 as a dual-stack proxy logs it
    assert ident.admits_address("fd00:ac:1::5") is True
    assert ident.admits_address("185.220.4.8") is False
    assert ident.admits_address("2001:db8::1") is False
    assert ident.admits_address("runner-7") is None and ident.admits_address("unknown") is None
    assert Identity.from_dict(CI_WEB).admits_address("185.220.4.8") is True  # no networks: anywhere


# -- through the core --------------------------------------------------------------------------------------
def test_a_token_used_from_outside_its_networks_is_revoked_once_and_each_request_denied():
    w = World()
    w.install("ci-web", "left-pad", "1.3.0", T0)  # 10.0.3.7: inside
    w.proxy("ci-web", "GET", "/left-pad", 200, T0 + timedelta(hours=1), ip="fd00:ac:0:1::20")
    w.proxy("ci-web", "GET", TARBALL, 200, T0 + timedelta(hours=2), ip="185.220.4.8")
    w.proxy("ci-web", "GET", "/is-odd", 200, T0 + timedelta(hours=2, minutes=1), ip="185.220.4.8")
    inside, inside6, first, second = decide(w, SCOPED)
    assert (inside.verdict, inside6.verdict) == ("ALLOW", "ALLOW")
    assert not network_rules(inside) and not network_rules(inside6)
    assert first.verdict == "REVOKE" and network_rules(first) == {"identity.networks.outside_networks"}
    by_kind = {c.kind: c for c in first.commands}
    assert by_kind["REVOKE"].target == "verdaccio-token:ci-web"
    # The request itself is denied, not the package version for everyone.
    assert (by_kind["DENY"].target_type, by_kind["DENY"].target) == ("request", first.event.event_id)
    assert by_kind["REVOKE"].evidence["client_address"] == ["185.220.4.8"]
    # The same reason within the hour: no second REVOKE, but the request is refused.
    assert second.verdict == "REVOKE" and kinds(second) == {"DENY"}
    # A proxy request names the address it came from too (the analyst's first question).
    assert second.commands[0].evidence["client_address"] == ["185.220.4.8"]


def test_an_unreadable_address_alerts_and_a_missing_one_or_an_unscoped_identity_is_not_judged():
    w = World()
    w.proxy("ci-web", "GET", TARBALL, 200, T0, ip="runner-7")
    w.proxy("ci-web", "GET", TARBALL, 200, T0 + timedelta(minutes=5), ip="")
    unreadable, missing = decide(w, SCOPED)
    assert unreadable.verdict == "ALLOW" and not unreadable.commands
    assert network_rules(unreadable) == {"identity.networks.address_unreadable"}
    assert missing.verdict == "ALLOW" and not network_rules(missing)
    w = World()
    w.proxy("ci-web", "GET", TARBALL, 200, T0, ip="185.220.4.8")
    (unscoped,) = decide(w, CI_WEB)
    assert unscoped.verdict == "ALLOW" and not network_rules(unscoped)


def test_networks_reach_the_identities_topic_and_back():
    from nhiguard.avro import AvroCodec
    from nhiguard.streams.identities import decode_identity, encode_identity

    codec = AvroCodec(load_settings(env={}).schemas_dir)
    ident = Identity.from_dict(SCOPED)
    assert decode_identity(codec, encode_identity(codec, ident)) == ident


def test_a_github_token_cloning_from_outside_its_networks_is_revoked_and_from_inside_allowed():
    """The GitHub audit log's actor_ip (platform_access facts) is judged like any source's client address."""
    path = REPO_ROOT / "tests/fixtures/sources/github.audit/git-clone-by-fine-grained-token.json"
    body = json.loads(path.read_text())["body"]
    token = {
        "id": "github:pat/90023311",
        "kind": "service_account",
        "credential_ids": ["github-pat:90023311"],
        "networks": ["198.51.100.0/24"],
    }
    core = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict([token]))

    def clone(n: int, address: str) -> Decision:
        value = json.dumps(body | {"_document_id": f"doc-{n}", "actor_ip": address}).encode()
        [d] = core.process([RawRecord("audit.ci", 0, n, value, None, ())]).decisions
        return d

    inside = clone(1, "198.51.100.20")
    assert inside.verdict == "ALLOW" and not network_rules(inside)
    outside = clone(2, "203.0.113.17")
    assert outside.verdict == "REVOKE" and network_rules(outside)
    assert [c.target for c in outside.commands if c.kind == "REVOKE"] == ["github-pat:90023311"]
