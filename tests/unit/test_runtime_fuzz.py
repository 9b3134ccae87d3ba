"""Hostile input on audit.runtime: the runtime sources' own fixtures with one value replaced by something
hostile (as tests/unit/test_fuzz.py does for the scenario generator's records), through route and decide with
an inventory that joins the fixtures' workloads and declares destinations and networks. Every record is
decided or dead-lettered with a reason, every output encodes, nothing raises."""

import json
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.settings import load_settings
from nhiguard.streams.agents import forward_headers, from_forwarded
from tests.unit.test_fuzz import HOLE, HOSTILE_JSON, JSON, _encodes, _paths, _put
from tests.unit.test_runtime_egress import BUNDLE, RELEASE
from tools import REPO_ROOT

FIXTURES = sorted((REPO_ROOT / "tests" / "fixtures" / "sources").glob("*/*.json"))
RUNTIME = [d["body"] for d in (json.loads(p.read_text()) for p in FIXTURES) if d["topic"] == "audit.runtime"]
IDENTITIES = [
    RELEASE,
    {"id": "k8s:sa/ci/release-bot", "kind": "k8s_service_account", "networks": ["10.42.0.0/16"]},
    {"id": "arn:aws:iam::210987654321:role/ci/gha-release", "kind": "cloud_role", "networks": ["20.0.0.0/8"]},
]
CORE = DecisionCore(load_settings(env={}), BUNDLE, Inventory.load_dict(IDENTITIES))


@st.composite
def values(draw):
    body = json.loads(json.dumps(draw(st.sampled_from(RUNTIME))))
    kind = draw(st.sampled_from(["hostile", "json", "bytes", "real"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    path = draw(st.sampled_from(list(_paths(body))))
    if kind == "json":
        return json.dumps(_put(body, path, draw(JSON))).encode()
    if kind == "real":
        return json.dumps(body).encode()
    text = json.dumps(_put(body, path, HOLE)).encode()
    return text.replace(json.dumps(HOLE).encode(), draw(st.sampled_from(HOSTILE_JSON)), 1)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values(), min_size=1, max_size=3))
def test_every_hostile_runtime_record_is_decided_or_dead_lettered_with_a_reason(batch):
    records = [RawRecord("audit.runtime", 0, i, v, None, (), 1775500000000) for i, v in enumerate(batch)]
    routed, deadletters = CORE.route(records)
    assert len(routed) + len(deadletters) == len(records)
    assert all(x.reason and x.detail for x in deadletters)
    forwarded = [from_forwarded(r.value, tuple(forward_headers(r)), i) for i, (_, r) in enumerate(routed)]
    result = CORE.process(forwarded)
    assert len(result.decisions) + len(result.deadletters) == len(forwarded)
    _encodes(result)
    _encodes(CORE.process([replace(r, position=-1) for r in records]))
