"""Detection quality for `make bench`: `nhiguard eval` on the seeded labelled corpus (fixed seeds) and on the
frozen slice. The corpus seeds are fixed here so the figures compare between runs; the corpus test draws new
ones."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.evaluate import Evaluation, evaluate
from nhiguard.streams.replayfile import read_replay
from tools import REPO_ROOT
from tools.corpus import generate_corpus
from tools.corpus.classes import KNOWN_MISSES

SEEDS = (1, 2, 3)
FROZEN = REPO_ROOT / "tests" / "corpus" / "frozen"


def _core(inventory: Inventory) -> DecisionCore:
    settings = load_settings()
    return DecisionCore(settings, load_bundle(settings.policies_dir), inventory)


def detection_figures() -> dict[str, Any]:
    corpus = Evaluation()
    per_seed = {}
    for seed in SEEDS:
        records, inventory = generate_corpus(seed)
        ev = evaluate(_core(Inventory.load_dict(inventory)), records)
        per_seed[seed] = ev.summary()
        corpus.merge(ev)
    s = corpus.summary()
    frozen = evaluate(
        _core(Inventory.load(FROZEN / "identities.yaml")), read_replay(FROZEN / "stream.ndjson")
    ).summary()
    return {
        "eval_attack_classes": s["attack_classes"],
        "eval_attack_classes_caught": s["attack_classes_caught"],
        "eval_benign_commands_per_1000": s["benign_commands_per_1000"],
        "eval_benign_revokes": s["benign_revokes"],
        "eval_deny_precision": s["deny_precision"],
        "eval_revoke_precision": s["revoke_precision"],
        # Over the classes a shipped policy is meant to catch: a documented known miss is counted apart.
        "eval_min_class_recall": min(
            (
                c["recall"]
                for k, c in s["classes"].items()
                if k.startswith("attack:") and k.removeprefix("attack:") not in KNOWN_MISSES
            ),
            default=None,
        ),
        "eval_known_misses": sum(1 for k in s["classes"] if k.removeprefix("attack:") in KNOWN_MISSES),
        "eval_detail": {"seeds": list(SEEDS), "corpus": s, "per_seed": per_seed, "frozen": frozen},
    }


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in detection_figures().items() if k != "eval_detail"}, indent=1))
