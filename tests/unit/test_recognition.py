"""Shape detection: on every fixture of every source, the most specific recogniser of the record's domain is
one source, the one the fixture is filed under. Two sources that tie on a real record would make the choice
depend on their names, not on the record: that is a failure here, not a coin toss in production."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nhiguard.decision.adapters.registry import REGISTRY, parse_json
from nhiguard.decision.records import RawRecord
from nhiguard.settings import load_settings
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"
TOPICS = load_settings(env={}).topics


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_one_source_is_the_most_specific_for_each_fixture_and_it_is_the_fixtures_own(path: Path):
    doc = json.loads(path.read_text())
    value = doc["body"].encode() if isinstance(doc["body"], str) else json.dumps(doc["body"]).encode()
    headers = tuple((k, v.encode()) for k, v in doc.get("headers", {}).items())
    rec = RawRecord(doc["topic"], 0, 0, value, None, headers)
    body = parse_json(value)
    domain = TOPICS.domain_of(doc["topic"])
    matching = [
        s
        for s in REGISTRY.sources()
        if domain in s.domains and isinstance(body, dict) and s.recognise.matches(rec, body)
    ]
    assert matching, f"no source recognises {path.name}"
    best = max(s.recognise.specificity for s in matching)
    top = [s.name for s in matching if s.recognise.specificity == best]
    assert top == [path.parent.name], f"most specific for {path.name}: {top}"
