"""Input projection (nhiguard/policy/projection.py) sends the engine less, never decides differently.

Parity: the scenario stream, the frozen slice and a fresh labelled corpus decided with and without the
projection give byte-identical output records, while the projected inputs are smaller. And the derivation
itself: what it keeps, and the Rego it refuses to derive from (the plan then goes whole).
"""

from __future__ import annotations

import json
import os
import random

import pytest

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.policy.projection import derive, module_reads, project
from nhiguard.settings import load_settings
from nhiguard.streams.replayfile import read_replay
from tests.unit.parity import encoded_outputs
from tools import REPO_ROOT
from tools.corpus import generate_corpus
from tools.scenarios import default_params, generate, inventory, variant_params

SEED = int(os.environ.get("NHIGUARD_CORPUS_SEED") or random.SystemRandom().randrange(1, 1_000_000))
FROZEN = REPO_ROOT / "tests" / "corpus" / "frozen"


class Measuring(RegoEvaluator):
    """The in-process engine, adding up the JSON size of what reaches a Rego query."""

    sent = 0

    def _query(self, domain, inputs):
        self.sent += sum(len(json.dumps(i)) for i in inputs)
        return super()._query(domain, inputs)


def _outputs(records: list, inv: Inventory, projected: bool) -> tuple[list[bytes], int]:
    bundle = load_bundle(REPO_ROOT / "policies")
    engine = Measuring(bundle, projection=projected)
    return encoded_outputs(records, inv, bundle, engine), engine.sent


def _assert_parity(records: list, inv: Inventory) -> None:
    whole, sent_whole = _outputs(records, inv, projected=False)
    projected, sent = _outputs(records, inv, projected=True)
    assert len(projected) == len(whole)
    for a, b in zip(projected, whole, strict=True):
        assert a == b
    assert sent < 0.9 * sent_whole  # the projection did cut the input: not a comparison of two equal runs


@pytest.mark.parametrize("seed", [None, 7])
def test_scenario_stream_same_outputs_with_and_without_projection(seed):
    params = default_params() if seed is None else variant_params(seed)
    _assert_parity(generate(params, ordinary=1000), Inventory.load_dict(inventory(params)))


def test_labelled_corpus_same_outputs_with_and_without_projection():
    print(f"corpus seed {SEED} (NHIGUARD_CORPUS_SEED={SEED} repeats it)")
    records, inv = generate_corpus(SEED)
    _assert_parity(records, Inventory.load_dict(inv))


def test_frozen_corpus_same_outputs_with_and_without_projection():
    _assert_parity(read_replay(FROZEN / "stream.ndjson"), Inventory.load(FROZEN / "identities.yaml"))


def test_every_plan_of_the_shipped_bundle_is_projected():
    """A policy that reads the event under another name makes its plan go whole: slower, never wrong. This
    says which one did, so the slowdown is a choice."""
    bundle = load_bundle(REPO_ROOT / "policies")
    projection = bundle.projection()
    for plan in bundle.plans():
        whole = [m.policy_id for m in bundle.for_plan(plan) if module_reads(m.source) is None]
        assert plan in projection.trees, f"plan {plan} goes whole because of {whole}"


def test_reads_keep_each_referenced_path_whole_up_to_dynamic_access():
    src = """package p
f(ev) := x if {
	some i
	x := ev.release.files[i].path   # a comment naming ev.secret is not a read
	ev.identity.kind == "ci"
	g(ev.context.history)
	h("k", ev, 1)
}
g(c) if count(c) > 0
h("k", ev, _) if ev.identity.known
h("j", _, _) if true
"""
    assert module_reads(src) == {
        "release": {"files": True},
        "identity": {"kind": True, "known": True},
        "context": {"history": True},
    }


@pytest.mark.parametrize(
    "body",
    [
        "x := ev",  # an alias: its reads cannot be followed
        "x := ev[k]",  # dynamic access at the top
        "count(object.keys(ev)) > 0",  # a builtin sees it whole
        "g(ev)",  # g names the event otherwise
        "input.events[0].secret == 1",  # the batch itself
    ],
)
def test_reads_that_cannot_be_followed_make_the_module_underivable(body: str):
    src = f'package p\n\ng(e) if e.secret\n\nf(ev) if {{\n\tk := "a"\n\t{body}\n}}\n'
    assert module_reads(src) is None
    assert derive({"plan": [src, "package q\n\nh(ev) if ev.a\n"]}).trees == {}


def test_project_keeps_absence_and_values_that_are_not_objects():
    tree = {"a": {"b": True}, "c": True, "d": {"e": True}}
    doc = {"a": {"b": [1], "z": 2}, "c": {"deep": {"x": 1}}, "d": None, "y": 3}
    assert project(doc, tree) == {"a": {"b": [1]}, "c": {"deep": {"x": 1}}, "d": None}
    assert project({"y": 1}, tree) == {}


def test_the_pool_answers_the_same():
    """The worker's engine: its child projects (pickling whole inputs costs about the same as projecting them
    first: measured, README Performance), with the same findings as whole inputs."""
    from nhiguard.policy.engines.pool import EnginePool

    params = variant_params(3)
    records = generate(params, ordinary=300)
    settings = load_settings(env={})
    bundle = load_bundle(REPO_ROOT / "policies")
    core = DecisionCore(settings, bundle, Inventory.load_dict(inventory(params)))
    raws = [
        RawRecord(r.topic, 0, i, r.value, r.key, tuple(r.headers), r.timestamp_ms)
        for i, r in enumerate(records)
    ]
    by_domain: dict[str, list] = {}
    for pin in core.policy_inputs(raws):
        by_domain.setdefault(pin["domain"], []).append(pin)
    whole = RegoEvaluator(bundle, projection=False)
    pool = EnginePool(bundle, processes=1, timeout_s=30.0)
    try:
        assert set(by_domain) >= {"cms", "ci", "registry"}
        for domain, pins in by_domain.items():
            assert pool.evaluate(domain, pins) == whole.evaluate(domain, pins)
    finally:
        pool.close()
