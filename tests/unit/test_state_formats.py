"""Stored state is versioned: values written by earlier formats are read into the same facts.

tests/unit/state_v1/ holds table values written by the first format (how: make_fixtures.py there), each with
what that format's own decoder read from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nhiguard.decision.context import PackageFacts, decode_identity_state

V1 = Path(__file__).with_name("state_v1")


def _cases(prefix: str) -> list[Path]:
    return sorted(V1.glob(f"{prefix}-*.bin"))


@pytest.mark.parametrize("path", _cases("identity"), ids=lambda p: p.stem)
def test_format_1_identity_values_read_into_the_same_facts(path):
    want = json.loads(path.with_suffix(".json").read_text())
    facts, model = decode_identity_state(path.read_bytes())
    assert facts.to_json() == want["facts"]
    assert hashlib.sha256(model).hexdigest() == want["model_sha256"]


@pytest.mark.parametrize("path", _cases("package"), ids=lambda p: p.stem)
def test_format_1_package_values_read_into_the_same_facts(path):
    want = json.loads(path.with_suffix(".json").read_text())
    assert PackageFacts.from_json(json.loads(path.read_bytes())).to_json() == want["facts"]
