"""The rule index (policies/index.yaml, nhiguard/policy/rule_index.py) spares engine queries, never decisions.

Parity: the scenario stream (the demo and renamed variants) and the labelled corpus (the frozen slice and a
fresh seed) decided with and without the index give byte-identical output records, while the index keeps
most events away from the engine. And the entries themselves: what they admit, what the bundle refuses.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from nhiguard.decision.context import Inventory
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.policy.rule_index import parse_guards
from nhiguard.streams.replayfile import read_replay
from tests.unit.parity import encoded_outputs
from tools import REPO_ROOT
from tools.corpus import generate_corpus
from tools.scenarios import default_params, generate, inventory, variant_params

SEED = int(os.environ.get("NHIGUARD_CORPUS_SEED") or random.SystemRandom().randrange(1, 1_000_000))
FROZEN = REPO_ROOT / "tests" / "corpus" / "frozen"


class Counting(RegoEvaluator):
    """The in-process engine, counting the inputs that reach a Rego query."""

    queried = 0

    def _query(self, domain, inputs):
        self.queried += len(inputs)
        return super()._query(domain, inputs)


def _copy(tmp_path: Path) -> Path:
    """A copy of the shipped bundle to change."""
    root = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", root)
    return root


def _outputs(records: list, inv: Inventory, indexed: bool) -> tuple[list[bytes], int]:
    bundle = load_bundle(REPO_ROOT / "policies")
    engine = Counting(bundle, rule_index=indexed)
    return encoded_outputs(records, inv, bundle, engine), engine.queried


def _assert_parity(records: list, inv: Inventory) -> None:
    without, asked_all = _outputs(records, inv, indexed=False)
    with_index, asked = _outputs(records, inv, indexed=True)
    assert len(with_index) == len(without)
    for a, b in zip(with_index, without, strict=True):
        assert a == b
    assert asked < asked_all  # the index did spare queries: the comparison is not between two equal runs


@pytest.mark.parametrize("seed", [None, 7])
def test_scenario_stream_same_outputs_with_and_without_the_index(seed):
    params = default_params() if seed is None else variant_params(seed)
    _assert_parity(generate(params, ordinary=1000), Inventory.load_dict(inventory(params)))


def test_labelled_corpus_same_outputs_with_and_without_the_index():
    print(f"corpus seed {SEED} (NHIGUARD_CORPUS_SEED={SEED} repeats it)")
    records, inv = generate_corpus(SEED)
    _assert_parity(records, Inventory.load_dict(inv))


def test_frozen_corpus_same_outputs_with_and_without_the_index():
    _assert_parity(read_replay(FROZEN / "stream.ndjson"), Inventory.load(FROZEN / "identities.yaml"))


def test_every_domain_of_the_shipped_bundle_is_indexed():
    index = load_bundle(REPO_ROOT / "policies").rule_index()
    for domain in ("cms", "ci", "registry", "runtime"):
        assert index.split(domain, [{"action": "x.y", "identity": {}}]) == []


def test_conditions_admit_only_what_they_say():
    data = {"nhiguard": {"params": {"sensitive": ["cms.asset.publish"]}}}
    doc = {
        "p.a": [{"actions_in_data": "nhiguard.params.sensitive"}, {"facts": {"cms.exposed": True}}],
        "p.b": {"actions": ["registry.package.install"], "nonempty": ["context.denied_grade"]},
    }
    g = parse_guards(doc, data, {"p.a", "p.b"})
    assert g["p.a"].admits({"action": "cms.asset.publish"})
    assert g["p.a"].admits({"action": "cms.asset.save", "cms": {"exposed": True}})
    assert not g["p.a"].admits({"action": "cms.asset.save", "cms": {"exposed": 1}})  # typed, as Rego compares
    assert not g["p.a"].admits({"action": "cms.asset.save", "cms": {"exposed": "true"}})
    assert g["p.b"].admits({"action": "registry.package.install", "context": {"denied_grade": "harm"}})
    assert not g["p.b"].admits({"action": "registry.package.install", "context": {"denied_grade": ""}})
    assert not g["p.b"].admits({"action": "registry.package.publish", "context": {"denied_grade": "harm"}})


@pytest.mark.parametrize(
    "entry, says",
    [
        ("nosuch.policy: {actions: [x]}", "no such policy"),
        ("identity.networks: {when: x}", "a condition maps"),
        ("identity.networks: {facts: {identity.x: 1}}", "true, false or a string"),
        ("identity.networks: {actions_in_data: nhiguard.params.nothing}", "actions_in_data"),
        ("identity.networks: []", "no condition"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_a_wrong_entry_is_refused_naming_it(tmp_path: Path, entry: str, says: str):
    root = _copy(tmp_path)
    (root / "index.yaml").write_text(entry + "\n")
    with pytest.raises(BundleError, match=says):
        load_bundle(root)


def test_the_index_is_part_of_the_revision(tmp_path: Path):
    """A decision names the index it was made with: a wrong entry could change decisions (see below)."""
    root = _copy(tmp_path)
    before = load_bundle(root)
    (root / "index.yaml").unlink()
    after = load_bundle(root)
    assert before.revision != after.revision and before.guards and not after.guards


def test_an_entry_that_leaves_out_what_its_policy_fires_on_fails_the_policys_cases(tmp_path: Path):
    from nhiguard.policy.cases import run_cases

    root = _copy(tmp_path)
    assert all(r.passed for r in run_cases(load_bundle(root)))
    index = root / "index.yaml"
    # Forget that an address outside the identity's networks is what identity.networks revokes on.
    index.write_text(index.read_text().replace("  - facts: {identity.address_in_networks: false}\n", ""))
    failed = [r for r in run_cases(load_bundle(root)) if not r.passed]
    assert failed and {r.policy_id for r in failed} == {"identity.networks"}
