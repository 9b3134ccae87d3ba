"""Time the actor cannot move: a live event is decided on its body's time only within the bound of the time
nhiguard received it; a sandbox (history) decides on body time; a time without a zone is refused."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from nhiguard.avro import AvroCodec, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import DeadLetter, RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import SettingsError, Topics, load_settings
from tools import REPO_ROOT

REPO = "acme/cli"
WORKFLOW = f"github:{REPO}/.github/workflows/release.yml"
INVENTORY = [{"id": WORKFLOW, "kind": "package_publisher", "owner": "cli@acme.example", "trust_tier": 1}]
RECEIVED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MS = int(RECEIVED.timestamp() * 1000)


def _gate(requested_at: str, n: int = 1, files: tuple[str, ...] = ("dist/index.js", "dist/index.js.map")):
    body = {
        "gate": "npm-publish",
        "request_id": f"req-{n}",
        "requested_at": requested_at,
        "registry": "https://registry.npmjs.org/",
        "tag": "latest",
        "access": "public",
        "github": {
            "repository": REPO,
            "workflow_ref": f"{REPO}/.github/workflows/release.yml@refs/tags/v1.0.{n}",
            "event_name": "push",
            "ref": f"refs/tags/v1.0.{n}",
            "head_ref": "",
            "base_ref": "",
        },
        "pack": {
            "name": "@acme/cli",
            "version": f"1.0.{n}",
            "size": 1000,
            "unpackedSize": 4000,
            "files": [{"path": p, "size": 400} for p in files],
        },
    }
    return RawRecord("audit.ci", 0, n, json.dumps(body).encode(), REPO.encode(), (), MS)


def _waived_bundle(tmp_path, expires: datetime):
    """The shipped policies with a waiver for source maps from the release workflow until `expires`."""
    shutil.copytree(REPO_ROOT / "policies", tmp_path / "p")
    (tmp_path / "p" / "waivers.yaml").write_text(
        "waivers:\n"
        "  - id: W-maps\n    rule: ci.release_artifacts.prohibited_source_map\n"
        f'    identity: "{WORKFLOW}"\n    owner: cli@acme.example\n    reason: maps ship on purpose\n'
        f"    expires: {expires.isoformat()}\n"
    )
    return load_bundle(tmp_path / "p")


def _core(bundle=None, **settings):
    bundle = bundle or load_bundle(REPO_ROOT / "policies")
    return DecisionCore(load_settings(env={}, **settings), bundle, Inventory.load_dict(INVENTORY))


def test_a_body_time_inside_an_expired_waiver_is_decided_on_the_receive_time(tmp_path):
    # The waiver ran out a day before the request reached nhiguard; the job writes a time inside it.
    bundle = _waived_bundle(tmp_path, RECEIVED - timedelta(days=1))
    claimed = (RECEIVED - timedelta(days=2)).isoformat()
    (d,) = _core(bundle).process([_gate(claimed)]).decisions
    assert d.verdict == "DENY"
    assert [f.mode for f in d.findings if f.rule.endswith("prohibited_source_map")] == ["enforce"]
    assert d.event.occurred_at_ms == d.event.received_at_ms == MS
    assert d.event.claimed_at_ms == MS - 2 * 86_400_000
    out = AvroCodec(load_settings(env={}).schemas_dir).decode(
        AvroCodec(load_settings(env={}).schemas_dir).encode("Decision", decision_record(d, 0))
    )
    assert out["flags"] == ["time_skew"]
    assert out["event"]["claimed_at"] is not None and out["event"]["received_at"] is not None


def test_commands_expire_from_the_receive_time_not_a_claimed_one():
    # A request dated a month back would carry a DENY that had expired before it was issued.
    claimed = (RECEIVED - timedelta(days=30)).isoformat()
    (d,) = _core().process([_gate(claimed)]).decisions
    (cmd,) = d.commands
    assert cmd.issued_at_ms == MS and cmd.expires_at_ms > MS


def test_a_body_time_within_the_bound_is_the_time_decided_and_not_flagged(tmp_path):
    bundle = _waived_bundle(tmp_path, RECEIVED - timedelta(minutes=5))
    # Ten minutes before receipt (within the default 15), when the waiver was still in force.
    claimed = RECEIVED - timedelta(minutes=10)
    (d,) = _core(bundle).process([_gate(claimed.isoformat())]).decisions
    assert d.event.occurred_at_ms == int(claimed.timestamp() * 1000)
    assert d.event.claimed_at_ms is None and d.event.received_at_ms == MS
    assert [f.mode for f in d.findings if f.rule.endswith("prohibited_source_map")] == ["waived"]
    # The bound is a setting: at five minutes the same request is out of bounds.
    (d,) = _core(bundle, max_time_skew_s=300).process([_gate(claimed.isoformat())]).decisions
    assert d.event.claimed_at_ms is not None and d.verdict == "DENY"


def test_a_body_time_in_the_future_is_bounded_too():
    # A time days ahead would keep its command alive days longer than its ttl.
    claimed = (RECEIVED + timedelta(days=3)).isoformat()
    (d,) = _core().process([_gate(claimed)]).decisions
    assert d.event.occurred_at_ms == MS and d.event.claimed_at_ms == MS + 3 * 86_400_000


def test_a_sandbox_and_an_offline_replay_decide_on_body_time(tmp_path):
    bundle = _waived_bundle(tmp_path, RECEIVED - timedelta(days=1))
    claimed = RECEIVED - timedelta(days=2)
    for core in (
        _core(bundle, sandbox="history"),
        DecisionCore(load_settings(env={}), bundle, Inventory.load_dict(INVENTORY), body_time=True),
    ):
        rec = replace(_gate(claimed.isoformat()), topic=core.settings.topics.ci)  # the sandbox's own topic
        (d,) = core.process([rec]).decisions
        assert d.event.occurred_at_ms == int(claimed.timestamp() * 1000) and d.event.claimed_at_ms is None
        assert [f.mode for f in d.findings if f.rule.endswith("prohibited_source_map")] == ["waived"]


def test_a_record_without_a_broker_time_keeps_its_body_time():
    claimed = RECEIVED - timedelta(days=30)
    rec = replace(_gate(claimed.isoformat()), timestamp_ms=0)
    (d,) = _core().process([rec]).decisions
    assert d.event.occurred_at_ms == int(claimed.timestamp() * 1000) and d.event.received_at_ms is None


@pytest.mark.parametrize("when", ["2026-11-30T12:00:00", "2026-11-30 12:00:00", "2026-11-30"])
def test_a_time_without_a_zone_is_refused_not_read_in_the_hosts_zone(when):
    (x,) = _core().process([_gate(when)]).deadletters
    assert isinstance(x, DeadLetter) and x.reason == "bad_time" and "zone" in x.detail


def test_a_time_that_is_no_time_is_a_bad_time():
    (x,) = _core().process([_gate("yesterday at noon")]).deadletters
    assert x.reason == "bad_time"


def test_a_sandbox_puts_every_topic_and_the_app_id_under_its_prefix():
    s = load_settings(
        env={"NHIGUARD_SANDBOX": "incident-42", "NHIGUARD_TOPIC_COMMANDS": "enforcement.commands"}
    )
    assert all(t.startswith("incident-42.") for t in vars(s.topics).values())
    assert s.topics.commands == "incident-42.enforcement.commands" != Topics().commands
    assert s.app_id == "incident-42.nhiguard" and s.body_time
    # Names already under the prefix are kept; a replace() keeps the rule.
    again = replace(s, app_id="other", topics=Topics(commands="incident-42.cmds"))
    assert again.app_id == "incident-42.other" and again.topics.commands == "incident-42.cmds"
    assert again.topics.cms == "incident-42.audit.cms"
    assert not load_settings(env={}).body_time


@pytest.mark.parametrize("bad", ["a b", "x.", "../live", "a/b"])
def test_a_sandbox_name_that_is_no_topic_prefix_is_refused(bad):
    with pytest.raises(SettingsError, match="sandbox prefix"):
        load_settings(env={"NHIGUARD_SANDBOX": bad})


def test_the_bound_must_be_positive():
    with pytest.raises(SettingsError, match="NHIGUARD_MAX_TIME_SKEW_S"):
        load_settings(env={"NHIGUARD_MAX_TIME_SKEW_S": "0"})
