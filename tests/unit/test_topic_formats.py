"""Topic → format is configuration (NHIGUARD_TOPIC_FORMATS): a topic configured with one format is read
only by it (no recogniser, no header steers it), one with several by their recognisers (a header may pick
only among them), and a setting nhiguard cannot use is one clear SettingsError."""

from __future__ import annotations

import json

import pytest

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import DeadLetter, RawRecord
from nhiguard.format_config import TopicFormats
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import SettingsError, load_settings
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"
BUNDLE = load_bundle(REPO_ROOT / "policies")


def _fixture(source: str, name: str) -> dict:
    return json.loads((FIXTURES / source / f"{name}.json").read_text())["body"]


def _record(topic: str, body: dict, headers: dict[str, str] | None = None) -> RawRecord:
    hdrs = tuple((k, v.encode()) for k, v in (headers or {}).items())
    return RawRecord(topic, 0, 0, json.dumps(body).encode(), None, hdrs)


def _core(formats: str, **env: str) -> DecisionCore:
    settings = load_settings(env={"NHIGUARD_TOPIC_FORMATS": formats, **env})
    return DecisionCore(settings, BUNDLE, Inventory.load_dict([]))


FALCO = _fixture("falco.alert", "shell-in-container")
TETRAGON = _fixture("tetragon.event", "process-exec")


def test_by_default_every_format_of_the_domain_is_read_on_its_topic():
    core = _core("")
    assert core.read(_record("audit.runtime", FALCO)).source == "falco.alert"
    assert core.read(_record("audit.runtime", TETRAGON)).source == "tetragon.event"


def test_a_topic_of_one_format_reads_every_record_by_it_and_no_header_steers_it():
    core = _core("audit.runtime=falco.alert")
    assert core.read(_record("audit.runtime", FALCO)).source == "falco.alert"
    forged = core.read(_record("audit.runtime", FALCO, {"X-Nhiguard-Format": "tetragon.event"}))
    assert forged.source == "falco.alert"
    # A Tetragon event on a Falco topic is read by the Falco adapter, which says what it lacks.
    out = core.read(_record("audit.runtime", TETRAGON))
    assert isinstance(out, DeadLetter)
    assert "no adapter" not in out.detail and "recognises" not in out.detail


def test_a_topic_of_several_formats_recognises_among_them_only():
    core = _core("runtime = falco.alert, tetragon.event")  # a key may be the domain; spaces are trimmed
    assert core.read(_record("audit.runtime", FALCO)).source == "falco.alert"
    assert core.read(_record("audit.runtime", TETRAGON)).source == "tetragon.event"
    k8s = _fixture("k8s.audit", "exec-by-admin")
    out = core.read(_record("audit.runtime", k8s))
    assert isinstance(out, DeadLetter) and out.reason == "unknown_shape"
    assert "falco.alert, tetragon.event" in out.detail
    named = core.read(_record("audit.runtime", k8s, {"X-Nhiguard-Format": "k8s.audit"}))
    assert isinstance(named, DeadLetter) and "not one of the formats" in named.detail
    picked = core.read(_record("audit.runtime", FALCO, {"X-Nhiguard-Format": "falco.alert"}))
    assert picked.source == "falco.alert"


def test_keys_name_the_configured_topic_before_the_sandbox_prefix():
    env = {"NHIGUARD_TOPIC_RUNTIME": "sensors", "NHIGUARD_SANDBOX": "lab"}
    core = _core("sensors=tetragon.event", **env)
    assert core.settings.topics.runtime == "lab.sensors"
    assert core.settings.formats == TopicFormats((("runtime", ("tetragon.event",)),))
    assert core.read(_record("lab.sensors", TETRAGON)).source == "tetragon.event"
    assert isinstance(core.read(_record("lab.sensors", FALCO)), DeadLetter)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("audit.nope=falco.alert", "expected <input topic>=<format>"),
        ("audit.runtime", "expected <input topic>=<format>"),
        ("audit.runtime=", "no format given"),
        ("audit.runtime=falco.nope", "unknown format 'falco.nope'"),
        ("audit.cms=falco.alert", "falco.alert records are not read on audit.cms"),
        ("runtime=falco.alert;audit.runtime=tetragon.event", "configured twice"),
    ],
)
def test_a_setting_that_cannot_be_used_is_one_clear_error(text: str, says: str):
    with pytest.raises(SettingsError, match="NHIGUARD_TOPIC_FORMATS") as info:
        load_settings(env={"NHIGUARD_TOPIC_FORMATS": text})
    assert says in str(info.value)
