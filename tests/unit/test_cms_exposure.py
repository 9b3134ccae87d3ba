"""The CMS classes end to end: what makes content an unintended exposure (restricted tags) versus ordinary
untagged media, per-item DENYs typed by entity, and the exposure windows that escalate to a REVOKE (a burst by
upload or by publish, a slow exposure), judged against the identity's own typical day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from nhiguard.decision.adapters import adapt
from nhiguard.decision.codec import decode_identity_state, encode_identity_state
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.identity_state import (
    EXPOSURE_HISTORY_DAYS,
    EXPOSURE_RECENT_MINUTES,
    IdentityFacts,
    IdentityState,
)
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT

SPACE, APP = "sp4ce0000001", "catalog-sync"
ACTOR = f"contentful:{SPACE}/AppDefinition/{APP}"
START = datetime(2026, 4, 6, 6, 0, tzinfo=UTC)  # a Monday
BUNDLE = load_bundle(REPO_ROOT / "policies")
POLICY = "cms.public_exposure"


def _link(kind: str, id_: str) -> dict:
    return {"sys": {"type": "Link", "linkType": kind, "id": id_}}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def cf(kind, op, n, at, tags=(), host="images.ctfassets.net", ctype="image/jpeg", app=APP):
    """A Contentful webhook delivery as the adapter reads it: an Asset or Entry `create` or `publish`."""
    sys = {
        "type": kind,
        "id": f"id{n:06d}",
        "version": 2 if op == "publish" else 1,
        "space": _link("Space", SPACE),
        "environment": _link("Environment", "master"),
        "createdAt": _iso(at),
        "updatedAt": _iso(at),
        "createdBy": _link("AppDefinition", app),
        "updatedBy": _link("AppDefinition", app),
    }
    if op == "publish":
        sys |= {"publishedVersion": 1, "publishedAt": _iso(at), "publishedBy": _link("AppDefinition", app)}
    fields: dict = {"title": {"en-US": f"item {n}"}}
    if kind == "Asset":
        url = f"//{host}/{SPACE}/id{n:06d}/0f/f{n}.bin"
        fields["file"] = {"en-US": {"url": url, "fileName": f"f{n}", "contentType": ctype}}
    body = {"metadata": {"tags": [_link("Tag", t) for t in tags]}, "sys": sys, "fields": fields}
    headers = (("X-Contentful-Topic", f"ContentManagement.{kind}.{op}".encode()),)
    return body, headers, int(at.timestamp() * 1000)


def decide_all(events):
    inv = Inventory.load_dict(
        [
            {
                "id": f"contentful:{SPACE}/AppDefinition/{app}",
                "kind": "cms_integration",
                "owner": "web@example.com",
                "credential_ids": [f"contentful-app-key:{SPACE}/{app}"],
            }
            for app in (APP, "docs-publisher", "press-bridge")
        ]
    )
    core = DecisionCore(load_settings(env={}), BUNDLE, inv)
    raws = [
        RawRecord("audit.cms", 0, i, json.dumps(b).encode(), None, h, ts)
        for i, (b, h, ts) in enumerate(sorted(events, key=lambda e: e[2]))
    ]
    out = []
    for i in range(0, len(raws), 200):
        res = core.process(raws[i : i + 200])
        assert not res.deadletters
        out += res.decisions
    return out


def cms_commands(decisions, kind):
    return [c for d in decisions for c in d.commands if c.kind == kind and POLICY in c.policy_ids]


def test_a_catalog_sync_of_untagged_images_published_a_minute_later_draws_nothing():
    """bulk_cms_sync: three runs a day for two weeks, each uploading a dozen untagged product images to the
    public image host and publishing each about a minute later."""
    events, n = [], 0
    for day in range(14):
        for hour in (0, 5.5, 10):
            t = START + timedelta(days=day, hours=hour)
            for _ in range(12):
                events.append(cf("Asset", "create", n, t))
                events.append(cf("Asset", "publish", n, t + timedelta(seconds=70)))
                t += timedelta(seconds=8)
                n += 1
    decisions = decide_all(events)
    assert not [f for d in decisions for f in d.findings if f.policy == POLICY]


def test_an_untagged_document_reachable_before_a_publish_is_alerted_on_without_a_command():
    (d,) = decide_all([cf("Asset", "create", 1, START, host="assets.ctfassets.net", ctype="application/pdf")])
    assert [(f.rule, f.effect) for f in d.findings if f.policy == POLICY] == [
        ("cms.public_exposure.default_public_upload", "alert")
    ]
    assert d.verdict == "ALLOW" and not d.commands


def test_a_publish_burst_of_restricted_entries_denies_each_entry_and_revokes_once():
    """cms_publish_burst: restricted content made public by publishing, not by a default-public upload."""
    events = [
        cf("Entry", "publish", i, START + timedelta(seconds=20 * i), tags=("internal",), app="docs-publisher")
        for i in range(30)
    ]
    decisions = decide_all(events)
    denies = cms_commands(decisions, "DENY")
    assert len(denies) == 30 and {c.target_type for c in denies} == {"entry"}
    (revoke,) = cms_commands(decisions, "REVOKE")
    assert revoke.target == f"contentful-app-key:{SPACE}/docs-publisher"
    assert revoke.rule_ids == ("cms.public_exposure.exposure_rate",)
    first = next(i for i, d in enumerate(decisions) if any(c.kind == "REVOKE" for c in d.commands))
    assert first == 9  # the tenth within ten minutes


def test_a_slow_exposure_below_any_burst_threshold_revokes():
    """cms_slow_exposure: 25 restricted uploads to the public host over two hours, one every five minutes."""
    events = [
        cf("Asset", "create", i, START + timedelta(minutes=5 * i), ("confidential",), "assets.ctfassets.net")
        for i in range(25)
    ]
    decisions = decide_all(events)
    assert len(cms_commands(decisions, "DENY")) == 25
    revokes = cms_commands(decisions, "REVOKE")
    assert revokes and "within 120 minutes" in revokes[0].reasons[-1]
    first = next(i for i, d in enumerate(decisions) if any(c.kind == "REVOKE" for c in d.commands))
    assert first == 11  # the twelfth within two hours


def test_exposures_as_many_as_the_identity_s_typical_day_are_denied_not_revoked():
    """An identity that makes restricted content public every day (a waiver is its team's business) is not
    revoked for a burst its own typical day holds; one far beyond it is."""
    events, n = [], 0
    for day in range(10):
        for hour in range(8):  # eight a day, an hour apart: no window reaches a threshold
            events.append(cf("Entry", "publish", n, START + timedelta(days=day, hours=hour), ("draft",)))
            n += 1
    burst_at = START + timedelta(days=10, hours=2)
    burst = [
        cf("Entry", "publish", n + i, burst_at + timedelta(seconds=30 * i), ("draft",)) for i in range(12)
    ]
    decisions = decide_all(events + burst)
    assert not cms_commands(decisions, "REVOKE")  # 12 within ten minutes: not over 3 x 8
    big = [
        cf("Entry", "publish", n + 100 + i, burst_at + timedelta(hours=3, seconds=10 * i), ("draft",))
        for i in range(30)
    ]
    decisions = decide_all(events + burst + big)
    (revoke,) = cms_commands(decisions, "REVOKE")
    assert "its typical day: 8" in revoke.reasons[0]


def test_the_adapter_names_the_restricted_tags_and_the_entity():
    body, headers, ts = cf("Entry", "publish", 1, START, tags=("Internal", "product"))
    ev = adapt(RawRecord("audit.cms", 0, 0, json.dumps(body).encode(), None, headers, ts), "cms")
    assert ev.facts.restricted_tags == ("Internal",) and ev.facts.restricted_exposure
    assert ev.facts.deny_target(ev.resource_id) == ("entry", f"{SPACE}/id000001")
    body, headers, ts = cf("Asset", "create", 2, START)
    ev = adapt(RawRecord("audit.cms", 0, 1, json.dumps(body).encode(), None, headers, ts), "cms")
    assert ev.facts.restricted_tags == () and ev.facts.content_type == "image/jpeg"
    assert ev.facts.exposed_without_publish and not ev.facts.restricted_exposure
    assert ev.facts.deny_target(ev.resource_id)[0] == "asset"


# -- the exposure state -------------------------------------------------------------------------------------
MIN, DAY = 60_000, 24 * 3600 * 1000
T0 = 20_000 * DAY  # midnight UTC


def test_recent_exposures_count_per_minute_back_from_the_event_and_skip_later_ones():
    f = IdentityFacts()
    for t in (T0 + 10 * MIN, T0 + 10 * MIN + 5, T0 + 12 * MIN, T0 + 30 * MIN):
        f.expose(t)
    assert f.recent_exposures(T0 + 12 * MIN + 59_000) == [1, 0, 2]  # a late event: the 30th minute is later
    assert f.recent_exposures(T0 + 9 * MIN) == []


def test_minutes_age_into_days_and_the_typical_day_is_the_median_of_the_history():
    f = IdentityFacts()
    for day in range(8):  # 3 a day on 8 of the last 14 days
        for k in range(3):
            f.expose(T0 + day * DAY + k * 5 * 3600_000)
    assert len(f.exposure_minutes) <= EXPOSURE_RECENT_MINUTES
    now = T0 + 8 * DAY
    assert f.typical_exposure_day(now) == 3
    assert f.typical_exposure_day(now + (EXPOSURE_HISTORY_DAYS - 6) * DAY) == 0  # fewer than half the days
    g = IdentityFacts()
    for k in range(40):
        g.expose(T0 + k * 1000)
    assert g.typical_exposure_day(T0 + MIN) == 0  # the recent minutes never count as history


def test_the_exposure_state_stays_small_and_round_trips():
    f = IdentityFacts()
    for k in range(3000):  # 3,000 restricted exposures over four hours
        f.expose(T0 + k * 4800)
    for day in range(1, 14):
        f.expose(T0 - day * DAY)
    state = IdentityState(f)
    blob = encode_identity_state(state)
    assert len(blob) <= 2048
    again = decode_identity_state(blob).facts
    assert again == f
    assert sum(again.exposure_minutes.values()) + sum(again.exposure_days.values()) == 3013


@pytest.mark.parametrize(
    "windows", [BUNDLE.data["nhiguard"]["params"]["cms"]["public_exposure"]["exposure_windows"]]
)
def test_the_policy_windows_fit_in_what_the_state_keeps(windows):
    assert windows and all(0 < w["minutes"] <= EXPOSURE_RECENT_MINUTES for w in windows)
