"""Every schema round-trips, and a consumer written only from schemas/ decodes every output."""

import io
import json
from pathlib import Path

import fastavro

from nhiguard.avro import NAMES, AvroCodec, alert_record, command_record, deadletter_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

SCHEMAS = REPO_ROOT / "schemas"


def _batch():
    params = default_params()
    core = DecisionCore(
        load_settings(env={}), load_bundle(REPO_ROOT / "policies"), Inventory.load_dict(inventory(params))
    )
    raws = [
        RawRecord(r.topic, 0, i, r.value, r.key, r.headers, r.timestamp_ms)
        for i, r in enumerate(generate(params, ordinary=50))
    ]
    raws.append(RawRecord("audit.ci", 0, 99999, b"{broken", headers=(("h", b"v"),)))
    return core.process(raws)


def _outputs():
    res = _batch()
    out = [("Decision", decision_record(d, 1)) for d in res.decisions]
    out += [("EnforcementCommand", command_record(c)) for c in res.commands]
    out += [("Alert", alert_record(a)) for a in res.alerts]
    out += [("DeadLetter", deadletter_record(x)) for x in res.deadletters]
    return out


def test_every_output_kind_round_trips():
    codec = AvroCodec(SCHEMAS)
    outputs = _outputs()
    assert {n for n, _ in outputs} == {"Decision", "EnforcementCommand", "Alert", "DeadLetter"}
    for name, rec in outputs:
        data = codec.encode(name, rec)
        assert codec.schema_name(data) == name
        back = codec.decode(data)
        assert back.keys() == rec.keys()


def test_identity_and_event_schemas_round_trip():
    codec = AvroCodec(SCHEMAS)
    for ident in inventory(default_params())["identities"]:
        rec = {
            "owner": "",
            "team": "",
            "credential_ids": [],
            "allowed_actions": [],
            "trust_tier": 3,
            "expected_publisher": None,
            **ident,
        }
        assert codec.decode(codec.encode("Identity", rec))["id"] == ident["id"]
    res = _batch()
    ev = decision_record(res.decisions[0], 1)["event"]
    assert codec.decode(codec.encode("AuditEvent", ev))["event_id"] == ev["event_id"]


# --- an independent consumer: only the .avsc files, the Avro spec's Rabin fingerprint, and fastavro's reader.
def _rabin(data: bytes) -> bytes:
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp.to_bytes(8, "little")


def _standalone_readers():
    named = {}
    readers = {}
    for path in sorted(Path(SCHEMAS).glob("*.avsc")):
        named[json.loads(path.read_text())["name"]] = json.loads(path.read_text())
    for name in NAMES:
        schema = fastavro.schema.load_schema(SCHEMAS / f"nhiguard.{name}.avsc")
        expanded = fastavro.schema.expand_schema(schema)
        canonical = fastavro.schema.to_parsing_canonical_form(expanded)
        readers[_rabin(canonical.encode())] = (name, expanded)
    return readers


def test_consumer_from_schemas_only_decodes_every_output():
    codec = AvroCodec(SCHEMAS)
    readers = _standalone_readers()
    for name, rec in _outputs():
        data = codec.encode(name, rec)
        assert data[:2] == b"\xc3\x01"
        got_name, schema = readers[data[2:10]]
        assert got_name == name
        decoded = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)
        assert decoded.keys() == rec.keys()


# --- schema evolution: earlier versions are kept, expanded, so the records they wrote still decode.
V1 = Path(__file__).with_name("avro_v1")  # records the v1 schemas wrote (see make_fixtures.py there)


def test_every_kept_schema_version_is_expanded_and_named_like_its_current_one():
    codec = AvroCodec(SCHEMAS)
    for path in sorted(SCHEMAS.glob("nhiguard.*.v*.avsc")):
        name = path.name.split(".")[1]
        assert name in NAMES and json.loads(path.read_text())["name"] == name
    for name in ("Decision", "EnforcementCommand", "Alert"):
        data = (V1 / f"{name}.bin").read_bytes()
        assert codec.schema_name(data) == name
        then = json.loads((V1 / f"{name}.json").read_text())
        assert json.loads(json.dumps(codec.decode(data), default=str)).keys() >= then.keys()


# The fields added since v1 have defaults, so records of either version are read.
ADDED = {
    # and "evidence" on each finding, "received_at" and "claimed_at" (null) on the event
    "Decision": {"held_command_ids": [], "flags": []},
    "EnforcementCommand": {
        "evidence": {},
        "status": "ISSUED",
        "held_reason": "",
        "released_at": None,
        "released_by": "",
    },
    "Alert": {
        "evidence": {},
        "command_ids": [],
        "window_start": 0,
        "window_end": 0,
        "decision_ids": [],
        "command_ids_total": 0,
        "late": 0,
        "runbook": "",
    },
}


def test_a_record_the_v1_schema_wrote_decodes_with_the_current_schemas_and_defaults():
    codec = AvroCodec(SCHEMAS)
    for name, added in ADDED.items():
        data = (V1 / f"{name}.bin").read_bytes()
        assert data[2:10] != codec.fingerprints[name]  # written by the earlier schema
        back = codec.decode(data)
        then = json.loads((V1 / f"{name}.json").read_text())
        assert {k: v for k, v in back.items() if k not in added}.keys() == then.keys()
        assert {k: back[k] for k in added} == added
        if name == "Decision":
            assert back["findings"] and all(f["evidence"] == {} for f in back["findings"])
            assert back["command_ids"] == then["command_ids"] and back["verdict"] == then["verdict"]
            assert back["event"]["received_at"] is None and back["event"]["claimed_at"] is None
        else:
            assert all(json.dumps(back[k], default=str) == json.dumps(then[k]) for k in then)


def _known_to(old, new):
    """`new` cut down to the fields `old` has, recursively."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _known_to(v, new.get(k)) for k, v in old.items()}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [_known_to(o, n) for o, n in zip(old, new, strict=True)]
    return new


def test_an_old_reader_given_the_new_schema_reads_a_new_record():
    codec = AvroCodec(SCHEMAS)
    for name, rec in _outputs():
        if name not in ADDED:
            continue
        old = fastavro.schema.load_schema(SCHEMAS / f"nhiguard.{name}.v1.avsc")
        data = codec.encode(name, rec)
        back = fastavro.schemaless_reader(io.BytesIO(data[10:]), codec.schemas[name], old)
        assert set(back) == set(rec) - set(ADDED[name])
        now = codec.decode(data)
        # What the old reader sees is what the new record says, less the fields added since (at any depth).
        assert back == _known_to(back, now)


def test_every_target_type_a_command_can_name_is_in_the_schema_and_encodes():
    from nhiguard.decision.records import TARGET_TYPES, Command

    schema = json.loads((SCHEMAS / "nhiguard.EnforcementCommand.avsc").read_text())
    (field,) = [f for f in schema["fields"] if f["name"] == "target_type"]
    assert tuple(field["type"]["symbols"]) == TARGET_TYPES
    codec = AvroCodec(SCHEMAS)
    for t in TARGET_TYPES:
        c = Command("c", "DENY", "i", t, "x", ("r",), ("p",), ("p.r",), "rev", "e", 1, 2)
        assert codec.decode(codec.encode("EnforcementCommand", command_record(c)))["target_type"] == t


def test_a_cms_entry_and_a_proxy_package_deny_encode():
    # Both named target types the schema lacked: the sink could not encode them and the worker stopped.
    from nhiguard.decision.decide import Enforcement, _command
    from nhiguard.decision.records import Actor, CanonicalEvent, Finding

    ev = CanonicalEvent("e", "s", "cms", "a", 1, Actor("i", "i", False, "i"), "t", "r")
    f = Finding("cms.p.r", "deny", "why", "cms.p", "high", "enforce")
    codec = AvroCodec(SCHEMAS)
    for target_type, kept in (("entry", "entry"), ("package", "package"), ("process", "request")):
        c = _command("DENY", ev, "i", target_type, "x", [f], 1000, Enforcement("rev", 1, 1))
        out = codec.decode(codec.encode("EnforcementCommand", command_record(c)))
        assert out["target_type"] == kept and out["target"].endswith("x")


def test_an_alert_the_schema_before_windows_wrote_still_decodes():
    """nhiguard.Alert.v2.avsc is the schema alerts were written with before alert windows (per batch): records
    it wrote, still on soc.alerts, decode into the current shape with the window fields at their defaults."""
    codec = AvroCodec(SCHEMAS)
    v2 = fastavro.schema.load_schema(SCHEMAS / "nhiguard.Alert.v2.avsc")
    fp = bytes.fromhex(
        fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(v2), "CRC-64-AVRO")
    )
    assert fp != codec.fingerprints["Alert"]
    record = {k: v for k, v in alert_record(_batch().alerts[0]).items() if k not in ADDED["Alert"]}
    record |= {"evidence": {"identity": ["x"]}, "command_ids": ["c"]}  # v2 had these two
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v2, record)
    back = codec.decode(b"\xc3\x01" + fp + buf.getvalue())
    times = ("first_seen", "last_seen")  # timestamp-millis: decoded as datetimes
    assert {k: v for k, v in back.items() if k in record and k not in times} == {
        k: v for k, v in record.items() if k not in times
    }
    assert [round(back[k].timestamp() * 1000) for k in times] == [record[k] for k in times]
    windows = {k: v for k, v in ADDED["Alert"].items() if k not in ("evidence", "command_ids")}
    assert {k: back[k] for k in windows} == windows
