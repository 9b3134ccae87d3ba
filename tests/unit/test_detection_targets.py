"""Issue 10's targets on the frozen slice (written from the class descriptions alone, before the rule work):
every attack class caught with per-class record recall >= 0.9, no REVOKE on a benign record, at most one
command per 1,000 benign records. (On freshly seeded corpus slices one class, anomalous_workflow_activity,
is still below 0.9: README, Detection quality.)"""

from __future__ import annotations

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.evaluate import evaluate
from nhiguard.streams.replayfile import read_replay
from tools import REPO_ROOT

FROZEN = REPO_ROOT / "tests" / "corpus" / "frozen"


def test_the_frozen_slice_meets_the_detection_targets():
    settings = load_settings(env={})
    inventory = Inventory.load(FROZEN / "identities.yaml")
    core = DecisionCore(settings, load_bundle(settings.policies_dir), inventory)
    s = evaluate(core, read_replay(FROZEN / "stream.ndjson")).summary()
    attack = {k: c for k, c in s["classes"].items() if k.startswith("attack:")}
    assert len(attack) >= 12 and s["attack_classes_caught"] == s["attack_classes"]
    low = {k: c["recall"] for k, c in attack.items() if c["recall"] < 0.9}
    assert not low, f"classes below 0.9 record recall: {low}"
    assert s["benign_revokes"] == 0
    assert s["benign_commands_per_1000"] <= 1.0, s["benign_commands_per_1000"]
