"""What leaves the core is pinned on the demo stream: every policy input the engine is asked about, and every
output record as Avro bytes. Recorded before the core was reshaped (tests/unit/digest/outputs.json); a
refactoring leaves both unchanged. Re-record (NHIGUARD_RECORD_DIGEST=1) only in a commit that names the class
of behaviour that changed them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from nhiguard.avro import AvroCodec, alert_record, command_record, deadletter_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

PINNED = Path(__file__).with_name("digest") / "outputs.json"


class RecordingEvaluator:
    """The in-process engine, noting every input it is asked about (as canonical JSON, at the time asked)."""

    def __init__(self, bundle) -> None:
        self.inner = RegoEvaluator(bundle)
        self.asked: list[str] = []

    def evaluate_isolating(self, domain, inputs):
        self.asked += [f"{domain} {json.dumps(i, sort_keys=True)}" for i in inputs]
        return self.inner.evaluate_isolating(domain, inputs)


def _sha(items) -> str:
    h = hashlib.sha256()
    for x in items:
        h.update(len(x).to_bytes(8, "little"))
        h.update(x)
    return h.hexdigest()


def _now() -> dict[str, object]:
    params = default_params()
    offsets: Counter[str] = Counter()
    raws = []
    for r in generate(params, ordinary=1000):
        raws.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        offsets[r.topic] += 1
    raws.append(RawRecord("audit.ci", 0, 99_999, b"{broken", headers=(("h", b"v"),), timestamp_ms=5))
    settings = load_settings(env={})
    bundle = load_bundle(REPO_ROOT / "policies")
    evaluator = RecordingEvaluator(bundle)
    core = DecisionCore(settings, bundle, Inventory.load_dict(inventory(params)), evaluator=evaluator)
    codec = AvroCodec(settings.schemas_dir)
    encoded = []
    for i in range(0, len(raws), 500):
        res = core.process(raws[i : i + 500])
        encoded += [codec.encode("Decision", decision_record(d, 0)) for d in res.decisions]
        encoded += [codec.encode("EnforcementCommand", command_record(c)) for c in res.commands]
        encoded += [codec.encode("Alert", alert_record(a)) for a in res.alerts]
        encoded += [codec.encode("DeadLetter", deadletter_record(x)) for x in res.deadletters]
    inputs = DecisionCore(settings, bundle, Inventory.load_dict(inventory(params))).policy_inputs(raws)
    return {
        "outputs": len(encoded),
        "outputs_sha256": _sha(encoded),
        "engine_inputs": len(evaluator.asked),
        "engine_inputs_sha256": _sha(sorted(x.encode() for x in evaluator.asked)),
        "policy_inputs_sha256": _sha(json.dumps(p, sort_keys=True).encode() for p in inputs),
    }


@pytest.fixture(scope="module")
def recorded() -> dict[str, object]:
    if os.environ.get("NHIGUARD_RECORD_DIGEST"):
        PINNED.write_text(json.dumps(_now(), indent=1, sort_keys=True) + "\n")
    return json.loads(PINNED.read_text())


def test_engine_inputs_and_encoded_outputs_are_unchanged(recorded):
    assert _now() == recorded
