"""Stored state is versioned: values written by earlier formats are read into the same facts, unknown formats
are refused with an error that names them.

tests/unit/state_v1/ holds table values written by the first format (how: make_fixtures.py there), each with
what that format's own decoder read from it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections import Counter
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
from nhiguard.streams.state import Delivery, StatefulStage, TableStore, decode_value, encode_value
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
    assert delivery.applied == want["a"] and delivery.recent == list(struct.unpack(f"<{len(raw) // 8}Q", raw))
    # Written again, it is format 2 and reads back the same.
    again_core, again_delivery = decode_value(encode_value(encode_identity_state(state), delivery))
    again = decode_identity_state(again_core)
    assert again.facts == state.facts and again.model.to_bytes() == state.model.to_bytes()
    assert (again_delivery.applied, again_delivery.recent) == (delivery.applied, delivery.recent)


@pytest.mark.parametrize("path", _cases("package"), ids=lambda p: p.stem)
def test_format_1_package_values_read_into_the_same_facts(path):
    want = json.loads(path.with_suffix(".json").read_text())["facts"]
    facts = decode_package_state(path.read_bytes())
    # Format 1 denied versions without a grade: they read as denied for compromise (installs denied, no
    # revoke without evidence of harm); the registry proxy's counts start empty.
    now = dict(want, d=dict.fromkeys(want["d"], "compromise"), a=None, v=-1, p=0, t=None, n=0, u=[])
    assert package_json(facts) == now
    assert package_json(decode_package_state(encode_package_state(facts))) == now


def test_a_format_this_version_does_not_know_is_refused_with_its_number():
    core = encode_identity_state(decode_identity_state(decode_value(_cases("identity")[0].read_bytes())[0]))
    value = encode_value(core, Delivery(7, [1, 2]))
    with pytest.raises(StateFormatError, match="identity state value format 9; this version reads 1 and 2"):
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
