"""Identity records: the inventory file formats and the Avro record on the identities topic."""

import pytest

from nhiguard.avro import AvroCodec
from nhiguard.decision.context import Identity, Inventory
from nhiguard.settings import load_settings
from nhiguard.streams.identities import TableInventory, decode_identity, encode_identity

CODEC = AvroCodec(load_settings(env={}).schemas_dir)


def test_csv_yaml_and_json_give_the_same_identity(tmp_path):
    (tmp_path / "i.csv").write_text(
        "id,kind,owner,team,credential_ids,allowed_actions,trust_tier,expires\n"
        "svc:a,ai_agent,o@x,t,k1;k2,ci.release.*;registry.package.publish,2,2027-01-01T00:00:00Z\n"
    )
    (tmp_path / "i.yaml").write_text(
        "identities:\n- id: svc:a\n  kind: ai_agent\n  owner: o@x\n  team: t\n  credential_ids: [k1, k2]\n"
        "  allowed_actions: [ci.release.*, registry.package.publish]\n  trust_tier: 2\n"
        "  expires: 2027-01-01T00:00:00Z\n"
    )
    (tmp_path / "i.json").write_text(
        '[{"id": "svc:a", "kind": "ai_agent", "owner": "o@x", "team": "t", "credential_ids": ["k1", "k2"],'
        ' "allowed_actions": ["ci.release.*", "registry.package.publish"], "trust_tier": 2,'
        ' "expires_ms": 1798761600000}]'
    )
    got = {Inventory.load(tmp_path / f"i.{ext}").get("svc:a") for ext in ("csv", "yaml", "json")}
    assert len(got) == 1
    ident = got.pop()
    assert ident.credential_ids == ("k1", "k2") and ident.expires_ms == 1798761600000
    assert ident.allows("ci.release.publish_request") and not ident.allows("cms.asset.publish")


def test_bad_records_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="kind must be one of"):
        Identity.from_dict({"id": "x", "kind": "robot"})
    with pytest.raises(ValueError, match="needs id and kind"):
        Identity.from_dict({"kind": "ci_bot"})
    with pytest.raises(ValueError, match="zone"):
        Identity.from_dict({"id": "x", "kind": "ci_bot", "expires": "2027-01-01T00:00:00"})


def test_identity_round_trips_through_the_avro_record_and_the_table_view():
    ident = Identity.from_dict(
        {
            "id": "github:acme/cli/.github/workflows/release.yml",
            "kind": "package_publisher",
            "credential_ids": ["npm:cli"],
            "expected_publisher": {
                "mechanism": "trusted_publishing",
                "repository": "acme/cli",
                "workflow": "w",
                "ref": "refs/tags/v*",
            },
            "allowed_destinations": ["registry.npmjs.org"],
            "created": "2026-01-01T00:00:00Z",
        }
    )
    raw = encode_identity(CODEC, ident)
    assert decode_identity(CODEC, raw) == ident
    table = {ident.id.encode(): raw}
    view = TableInventory(table, CODEC)
    assert view.get(ident.id) == ident and view.get("nobody") is None
    with pytest.raises(ValueError):
        decode_identity(CODEC, b"not avro")


def test_a_bare_date_and_tier_zero_read_the_same_in_every_format():
    a = Identity.from_dict({"id": "x", "kind": "ci_bot", "expires": "2025-06-01", "trust_tier": "0"})
    assert a.expires_ms == 1748736000000 and a.trust_tier == 0
