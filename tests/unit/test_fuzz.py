"""Hostile input through the pure core, as route and decide run it: every record is decided or dead-lettered
with a reason, every output encodes, and nothing raises (an exception there stops the worker, and the same
record stops it again after the restart).

Records are real ones from the scenario generator with one value replaced by something hostile (an integer
over Python's 4,300-digit limit, deep nesting, infinities, lone surrogates, a URL built to make a pattern
backtrack, random JSON), or random bytes; headers are random, with nhiguard's own among them."""

import json
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nhiguard.avro import AvroCodec, alert_record, command_record, deadletter_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.agents import forward_headers, from_forwarded
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

SETTINGS = load_settings(env={})
CORE = DecisionCore(
    SETTINGS, load_bundle(REPO_ROOT / "policies"), Inventory.load_dict(inventory(default_params()))
)
CODEC = AvroCodec(REPO_ROOT / "schemas")
RENAME = {t: getattr(SETTINGS.topics, f) for f, t in vars(type(SETTINGS.topics)()).items()}
REAL = [r for r in generate(default_params(), ordinary=80) if r.value[:1] == b"{"]
HOLE = "\x00hostile\x00"

HOSTILE_JSON = [
    b"9" * 4301,
    b"-" + b"1" * 5000,
    b"1" + b"0" * 4400 + b".5",
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"[" * 3000 + b"]" * 3000,
    b'{"a":' * 900 + b"1" + b"}" * 900,
    b'"\\ud800"',
    b'"/@' + b"%2f" * 30_000 + b'"',
    b'"/@' + b"a%2f" * 20_000 + b'@"',
    b'"' + b"\\u0000" * 100 + b'"',
    b"true",
    b"null",
    b"-0",
    b"18446744073709551616",
]
KEYS = [
    "nhiguard-origin",
    "NHIGUARD-ORIGIN-KEY",
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-Contentful-Topic",
    "Content-Type",
    "Authorization",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*path, i))


def _put(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


@st.composite
def values(draw):
    real = draw(st.sampled_from(REAL))
    kind = draw(st.sampled_from(["hostile", "json", "bytes", "real"]))
    if kind == "bytes":
        return real.topic, draw(st.binary(max_size=200))
    body = json.loads(real.value)
    path = draw(st.sampled_from(list(_paths(body))))
    if kind == "json":
        return real.topic, json.dumps(_put(body, path, draw(JSON))).encode()
    if kind == "real":
        return real.topic, real.value
    text = json.dumps(_put(body, path, HOLE)).encode()
    return real.topic, text.replace(json.dumps(HOLE).encode(), draw(st.sampled_from(HOSTILE_JSON)), 1)


@st.composite
def records(draw):
    out = []
    for offset in range(draw(st.integers(1, 3))):
        topic, value = draw(values())
        real_headers = next(r.headers for r in REAL if r.topic == topic)
        extra = draw(
            st.lists(
                st.tuples(st.sampled_from(KEYS) | st.text(max_size=12), st.binary(max_size=40)), max_size=4
            )
        )
        headers = real_headers + tuple(extra) if draw(st.booleans()) else tuple(extra)
        key = draw(st.none() | st.binary(max_size=8))
        out.append(RawRecord(RENAME[topic], 0, offset, value, key, headers, 1774500000000))
    return out


def _encodes(result):
    for d in result.decisions:
        CODEC.encode("Decision", decision_record(d, 1))
    for c in result.commands:
        CODEC.encode("EnforcementCommand", command_record(c))
    for a in result.alerts:
        CODEC.encode("Alert", alert_record(a))
    for x in result.deadletters:
        CODEC.encode("DeadLetter", deadletter_record(x))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_every_hostile_record_is_decided_or_dead_lettered_with_a_reason(batch):
    routed, deadletters = CORE.route(batch)
    assert len(routed) + len(deadletters) == len(batch)
    assert all(x.reason and x.detail for x in deadletters)
    # What decide reads back of what route forwarded, then decided: one decision or dead letter each.
    forwarded = [from_forwarded(r.value, tuple(forward_headers(r)), i) for i, (_, r) in enumerate(routed)]
    assert [(r.topic, r.offset, r.key) for r in forwarded] == [(r.topic, r.offset, r.key) for _, r in routed]
    result = CORE.process(forwarded)
    assert len(result.decisions) + len(result.deadletters) == len(forwarded)
    assert all(x.reason for x in result.deadletters)
    _encodes(result)
    _encodes(CORE.process([replace(r, position=-1) for r in batch]))
