"""Sources: every registered source has fixtures in its real format and a section in docs/sources.md, and each
fixture adapts to the canonical event it names (or is refused with its reason). Adding a source is a module,
its fixtures and its docs section: the README's walkthrough is run here as written."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from nhiguard.decision.adapters import adapt
from nhiguard.decision.adapters import registry as registry_module
from nhiguard.decision.adapters.registry import REGISTRY, Registry
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord
from nhiguard.settings import load_settings
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"
TOPICS = load_settings(env={}).topics


def canonical(ev: CanonicalEvent) -> dict:
    a = ev.actor
    return {
        "source": ev.source,
        "event_id": ev.event_id,
        "action": ev.action,
        "occurred_at_ms": ev.occurred_at_ms,
        "actor": {"id": a.id, "display": a.display, "human": a.human, "source_principal": a.source_principal},
        "resource_type": ev.resource_type,
        "resource_id": ev.resource_id,
        "facts": None if ev.facts is None else {ev.facts.family: ev.facts.record()},
    }


def record(doc: dict) -> RawRecord:
    body = doc["body"]
    value = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    headers = tuple((k, v.encode()) for k, v in doc.get("headers", {}).items())
    return RawRecord(doc["topic"], 0, 0, value, None, headers, doc.get("timestamp_ms", 0))


FIXTURE_PATHS = sorted(FIXTURES.glob("*/*.json"))


def _name(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=_name)
def test_every_fixture_becomes_the_event_it_names(path: Path):
    doc = json.loads(path.read_text())
    rec = record(doc)
    if "error" in doc:
        with pytest.raises(AdapterError) as e:
            adapt(rec, TOPICS.domain_of(rec.topic))
        assert e.value.reason == doc["error"]
        # The dead letter says what is missing, in the words the fixture names (when it names them).
        assert doc.get("error_says", "") in e.value.detail
        return
    ev = adapt(rec, TOPICS.domain_of(rec.topic))
    assert ev.source == path.parent.name  # a fixture lives under its source's name
    assert canonical(ev) == doc["expect"]


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=_name)
def test_exactly_one_source_is_the_most_specific_for_every_fixture(path: Path):
    # Among the sources of the fixture's domain that recognise it (refused ones included: a source that
    # refuses a record must be the one that recognised it), one alone is the most specific, and it is the
    # source the fixture is filed under: the choice never falls to names or import order.
    doc = json.loads(path.read_text())
    rec = record(doc)
    domain = TOPICS.domain_of(rec.topic)
    body = json.loads(rec.value)
    matching = [s for s in REGISTRY.sources() if domain in s.domains and s.recognise.matches(rec, body)]
    assert matching, f"{_name(path)}: no source of domain {domain!r} recognises it"
    top = max(s.recognise.specificity for s in matching)
    assert [s.name for s in matching if s.recognise.specificity == top] == [path.parent.name]


def test_every_source_has_fixtures_and_a_section_in_the_docs():
    docs = (REPO_ROOT / "docs" / "sources.md").read_text()
    for s in REGISTRY.sources():
        assert any((FIXTURES / s.name).glob("*.json")), f"{s.name}: no fixtures in {FIXTURES / s.name}"
        assert re.search(rf"^## .*`{re.escape(s.name)}`", docs, re.M), (
            f"{s.name}: no section in docs/sources.md"
        )


def _readme_walkthrough() -> tuple[str, dict]:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Adding a source\n", 1)[1].split("\n## ", 1)[0]
    body = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    code = textwrap.dedent(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    return code, body


def test_the_readme_walkthrough_adds_a_source_and_nothing_else(monkeypatch):
    code, body = _readme_walkthrough()
    fresh = Registry()
    for s in REGISTRY.sources():
        if s.name != "dockerhub.webhook":  # should the walkthrough's source ship one day, as written here
            fresh.register(s)
    monkeypatch.setattr(registry_module, "REGISTRY", fresh)
    exec(compile(code, "dockerhub.py", "exec"), {"__name__": "nhiguard.decision.adapters.dockerhub"})
    rec = RawRecord("audit.registry", 0, 0, json.dumps(body).encode())
    ev = fresh.adapt(rec, "registry")
    assert (ev.source, ev.action, ev.actor.id, ev.resource_id) == (
        "dockerhub.webhook",
        "registry.image.push",
        "dockerhub:ci-builder",
        "acme/api:v4.2.0",
    )
    assert ev.occurred_at_ms == 1774917000000 and ev.facts is None
    # The sources that were there still read their records: the new one changed nothing else.
    for path in sorted(FIXTURES.glob("*/*.json")):
        doc = json.loads(path.read_text())
        if "expect" in doc:
            assert canonical(fresh.adapt(record(doc), TOPICS.domain_of(doc["topic"]))) == doc["expect"]
