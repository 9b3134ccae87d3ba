"""Headers in nhiguard's namespace on an input record are forgeries: route never forwards them, and the
stateful stage trusts only the origin route wrote (a forged one could mark an identity's later real records
as already applied: no decision, no DENY)."""

from dataclasses import replace

import pytest

from nhiguard.decision.adapters.registry import REGISTRY
from nhiguard.decision.headers import ALLOWED, kept
from nhiguard.streams.agents import ORIGIN, ORIGIN_KEY, ForwardedError, forward_headers, from_forwarded
from tests.unit.test_state import Tables, records  # noqa: F401  (the module-scoped fixture)


def _through_route(rec, position):
    """What decide reads back of a record route forwarded (headers as the by-identity topic carries them)."""
    return from_forwarded(rec.value, tuple(forward_headers(rec)), position)


def test_a_forged_origin_on_an_input_record_is_not_what_decide_reads(records):  # noqa: F811
    real = records[120]
    forged = f"{real.topic}|{real.partition}|{real.offset + 1}|0".encode()
    rec = replace(real, headers=(*real.headers, ("NhiGuard-Origin", forged), (ORIGIN, forged)))
    got = _through_route(rec, 7)
    assert (got.topic, got.partition, got.offset, got.position) == (real.topic, 0, real.offset, 7)
    assert not [k for k, _ in got.headers if k.lower().startswith("nhiguard-")]
    assert got.headers == kept(real.headers)


def test_a_forged_origin_key_is_dropped_and_routes_own_kept(records):  # noqa: F811
    real = replace(records[5], key=b"k", headers=(*records[5].headers, (ORIGIN_KEY, b"forged")))
    assert _through_route(real, 0).key == b"k"
    assert _through_route(replace(real, key=None), 0).key is None


def test_forged_coordinates_do_not_make_an_identitys_real_records_look_applied(records):  # noqa: F811
    # The attack: a record carrying the coordinates of the next real records of the same identities.
    tables = Tables()
    stage = tables.worker()
    batch = records[:100]
    forgeries = [
        replace(r, offset=r.offset + 100_000, headers=(*r.headers, (ORIGIN, _origin(records[100 + i]))))
        for i, r in enumerate(batch)
    ]
    res = stage.process([_through_route(r, i) for i, r in enumerate(forgeries)])
    tables.write(stage, res)
    real = [_through_route(r, 100 + i) for i, r in enumerate(records[100:200])]
    res = stage.process(real)
    assert res.skipped == 0
    # Every record of the generated stream adapts: each real record gets its decision.
    assert {(d.topic, d.offset) for d in res.decisions} == {(r.topic, r.offset) for r in records[100:200]}


def _origin(rec):
    return f"{rec.topic}|{rec.partition}|{rec.offset}|{rec.timestamp_ms}".encode()


@pytest.mark.parametrize(
    "headers",
    [
        (),
        ((ORIGIN, b"junk"),),
        ((ORIGIN, b"\xff\xfe|0|0|0"),),
        ((ORIGIN, b"t|x|1|0"),),
        ((ORIGIN, b"t|0|-5|0"),),
        ((ORIGIN, b"|0|1|0"),),
        ((ORIGIN, b"t|" + b"9" * 5000 + b"|1|0"),),
        # Coordinates Kafka cannot have (a topic name it refuses, numbers beyond its ranges): never stored.
        ((ORIGIN, b"a topic|0|1|0"),),
        ((ORIGIN, b"t" * 250 + b"|0|1|0"),),
        ((ORIGIN, b"t|2147483648|1|0"),),
        ((ORIGIN, b"t|0|9223372036854775808|0"),),
        ((ORIGIN, b"t|0|1|9223372036854775808"),),
    ],
)
def test_a_by_identity_record_without_a_readable_origin_is_refused_with_a_reason(headers):
    with pytest.raises(ForwardedError, match=ORIGIN):
        from_forwarded(b"{}", headers, 0)


def test_every_header_a_source_recognises_is_forwarded():
    named = {h.lower() for s in REGISTRY.sources() for h in s.recognise.headers}
    assert named and named <= ALLOWED
    assert not [h for h in ALLOWED if h.startswith("nhiguard-")]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("audit.cms|0|41|1774400100123", True),
        ("lab.audit.ci|3|0|0", True),
        ("<script>alert(1)</script>", False),
        ("audit.cms|0|41", False),
        ("audit.cms|0|41|1774400100123|extra", False),
        ("", False),
        (None, False),
    ],
)
def test_a_redrive_claim_is_named_only_in_the_form_redrive_writes(value, named):
    from nhiguard.decision.headers import redriven_from

    assert redriven_from(value) == (value if named else None)
