"""Stored state is versioned: values written by earlier formats are read into the same facts, unknown formats
are refused with an error that names them.

tests/unit/state_v1/ holds table values written by the first format (how: make_fixtures.py there), each with
what that format's own decoder read from it; tests/unit/state_v2/ the tables a format-2 worker wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from nhiguard.decision.codec import (
    StateFormatError,
    decode_identity_state,
    decode_package_state,
    encode_identity_state,
    encode_package_state,
    package_json,
)
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.package_state import PackageFacts
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.delivery import VALUE_FORMAT, Delivery, Legacy, decode_value, encode_value
from nhiguard.streams.state import StatefulStage, TableStore
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

V1 = Path(__file__).with_name("state_v1")


def _cases(prefix: str) -> list[Path]:
    return sorted(V1.glob(f"{prefix}-*.bin"))


@pytest.mark.parametrize("path", _cases("identity"), ids=lambda p: p.stem)
def test_format_1_identity_values_read_into_the_same_facts(path):
    doc = json.loads(path.with_suffix(".json").read_text())
    want = doc["facts"]
    core, delivery = decode_value(path.read_bytes())
    state = decode_identity_state(core)
    f = state.facts
    got = (f.revoked, f.first_seen_ms, f.last_seen_ms, f.events)
    assert got == (want["r"], want["f"], want["l"], want["n"])
    # Format 1's exposure times counted every default-public upload not tagged public, not restricted
    # exposures: they are not carried over (codec.py).
    assert not f.exposure_minutes and not f.exposure_days
    assert hashlib.sha256(state.model.to_bytes()).hexdigest() == doc["model_sha256"]
    raw = base64.b64decode(want["o"])
    hashes = frozenset(struct.unpack(f"<{len(raw) // 8}Q", raw))
    assert delivery.legacy == Legacy(want["a"], hashes) and not delivery.marks
    # Written again, it is format 3 and reads back the same facts; the old delivery facts stay in memory only.
    value = encode_value(encode_identity_state(state), delivery)
    again_core, again_delivery = decode_value(value)
    again = decode_identity_state(again_core)
    assert value[0] == VALUE_FORMAT == 3
    assert again.facts == state.facts and again.model.to_bytes() == state.model.to_bytes()
    assert again_delivery == Delivery()


@pytest.mark.parametrize("path", _cases("package"), ids=lambda p: p.stem)
def test_format_1_package_values_read_into_the_same_facts(path):
    want = json.loads(path.with_suffix(".json").read_text())["facts"]
    facts = decode_package_state(path.read_bytes())
    # Format 1 denied versions without a grade: they read as denied for compromise (installs denied, no
    # revoke without evidence of harm); the registry proxy's counts start empty. It listed every install:
    # each installer is read once, at its latest, and the package's first install is the earliest listed.
    latest = {
        v: sorted({w: max(t for u, t in xs if u == w) for w, _ in xs}.items(), key=lambda x: x[1])
        for v, xs in want["i"].items()
    }
    first = min((t for xs in want["i"].values() for _, t in xs), default=None)
    now = dict(want, d=dict.fromkeys(want["d"], "compromise"), a=None, v=-1, p=0, t=None, n=0, u=[])
    now |= {"i": {v: [list(x) for x in xs] for v, xs in latest.items()}, "fi": first}
    assert package_json(facts) == now
    assert package_json(decode_package_state(encode_package_state(facts))) == now


def test_a_format_this_version_does_not_know_is_refused_with_its_number():
    core = encode_identity_state(decode_identity_state(decode_value(_cases("identity")[0].read_bytes())[0]))
    value = encode_value(core, Delivery())
    with pytest.raises(StateFormatError, match="identity state value format 9; this version reads 1 to 3"):
        decode_value(b"\x09" + value[1:])
    with pytest.raises(StateFormatError, match="identity state format 9"):
        decode_identity_state(b"\x09" + core[1:])
    with pytest.raises(StateFormatError, match="package state format 9"):
        decode_package_state(b"\x09" + encode_package_state(PackageFacts())[1:])


def test_a_worker_reading_format_1_state_recognises_what_format_1_applied():
    """The cms identity's value was written with the demo stream applied up to its last event: after an
    upgrade, its records redelivered (at their positions) are skipped, not decided twice."""
    doc = json.loads((V1 / "identity-cms.json").read_text())
    params = default_params()
    store = TableStore({doc["identity"].encode(): (V1 / "identity-cms.bin").read_bytes()}, {}, partitions=1)
    inv = Inventory.load_dict(inventory(params))
    core = DecisionCore(load_settings(env={}), load_bundle(REPO_ROOT / "policies"), inv, store=store)
    offsets: Counter[str] = Counter()
    mine = []
    for i, r in enumerate(generate(params, ordinary=1000)):  # positions as make_fixtures.py gave them
        raw = RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms, position=i)
        offsets[r.topic] += 1
        if core.read(raw).actor.id == doc["identity"]:
            mine.append(raw)
    res = StatefulStage(core, store).process(mine[-20:])
    assert res.skipped == 20 and not res.decisions and not res.identity_state


V2 = Path(__file__).with_name("state_v2")


def test_a_worker_upgraded_from_format_2_state_applies_each_record_once():
    """Tables a format-2 worker wrote up to position 299 (state_v2/), its offsets committed up to 250: after
    the upgrade the redelivered 250..299 are skipped (the old applied position), copies route forwarded again
    from among an identity's last 64 records are skipped (the old hashes), and the rest is decided as by a
    worker that never stopped. The values it writes are format 3, with watermarks that know what the old
    format applied: after another restart, a copy of an old record is still skipped."""
    from tests.unit.test_state import Tables, actor, outcome

    doc = json.loads((V2 / "tables.json").read_text())
    applied = doc["applied_up_to"]
    records = _stream()
    ref = Tables().worker()
    reference = {}
    for i in range(0, len(records), 100):
        res = ref.process(records[i : i + 100])
        reference |= outcome(_nonhuman(res)) if i > applied else {}
    tables = Tables()
    tables.identities.update({k.encode(): base64.b64decode(v) for k, v in doc["identities"].items()})
    tables.packages.update({k.encode(): base64.b64decode(v) for k, v in doc["packages"].items()})
    stage = tables.worker()
    res = stage.process(records[250 : applied + 1])
    assert not _nonhuman(res) and res.skipped > 0 and not res.identity_state
    copies = [replace(r, position=10_000 + r.position) for r in records[280 : applied + 1]]
    res = stage.process(copies)
    assert not _nonhuman(res) and res.skipped == len(copies) - len(res.decisions) > 0
    got = {}
    for i in range(applied + 1, len(records), 100):
        res = stage.process(records[i : i + 100])
        tables.write(stage, res)
        got |= outcome(_nonhuman(res))
    assert got and got == reference
    upgraded = {k.decode() for k, v in tables.identities.items() if v[0] == VALUE_FORMAT}
    assert upgraded and all(decode_value(tables.identities[k.encode()])[1].marks for k in upgraded)
    old = [r for r in records[: applied + 1] if actor(r) in upgraded]
    assert old
    res = tables.worker().process([replace(r, position=20_000 + i) for i, r in enumerate(old)])
    assert res.skipped == len(old) and not res.decisions


def _stream() -> list[RawRecord]:
    """The records state_v2/tables.json was made from, with the positions make_fixtures.py gave them."""
    offsets: Counter[str] = Counter()
    out = []
    for i, r in enumerate(generate(default_params(), ordinary=600)):
        raw = RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms, position=i)
        out.append(raw)
        offsets[r.topic] += 1
    return out


def _nonhuman(res) -> list:
    return [d for d in res.decisions if d.identity_kind != "human"]
