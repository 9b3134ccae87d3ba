"""Parity: the real OPA (built by `make opa`) and regopy give the same findings for the same inputs."""

from collections import defaultdict

import pytest

from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.cases import load_cases
from nhiguard.policy.engines.opa import export_bundle, opa_eval
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.opa import ensure_opa

BUNDLE = load_bundle(REPO_ROOT / "policies")


@pytest.fixture(scope="module")
def opa(tmp_path_factory):
    # Built once by `make opa` (make test depends on it); building here if missing keeps a bare pytest honest.
    return ensure_opa(load_settings(env={}).cache_dir), export_bundle(
        BUNDLE, tmp_path_factory.mktemp("bundle")
    )


def key(findings):
    return sorted((f["policy"], f["rule"], f["effect"], f["reason"]) for f in findings)


@pytest.mark.parametrize(
    ("policy_id", "case"),
    [(p, c) for p, cases in load_cases(BUNDLE).items() for c in cases],
    ids=lambda v: v if isinstance(v, str) else v["name"],
)
def test_every_case_gives_the_same_findings_in_opa_and_regopy(opa, policy_id, case):
    binary, bundle_dir = opa
    inp = case["input"]
    assert key(opa_eval(binary, bundle_dir, inp["domain"], [inp])[0]) == key(
        RegoEvaluator(BUNDLE).evaluate(inp["domain"], [inp])[0]
    )


def test_the_worker_inputs_of_a_whole_stream_give_the_same_findings(opa):
    from bench.policy import policy_inputs
    from nhiguard.decision.context import Inventory
    from tools.scenarios import default_params, generate, inventory

    binary, bundle_dir = opa
    params = default_params()
    inputs = policy_inputs(load_settings(env={}), generate(params), Inventory.load_dict(inventory(params)))
    by_domain = defaultdict(list)
    for i in inputs:
        by_domain[i["domain"]].append(i)
    evaluator = RegoEvaluator(BUNDLE)
    fired = 0
    for domain, items in by_domain.items():
        ours = evaluator.evaluate(domain, items)
        theirs = opa_eval(binary, bundle_dir, domain, items)
        assert [key(x) for x in ours] == [key(x) for x in theirs], domain
        fired += sum(1 for x in ours if x)
    assert fired > 100  # the comparison covers firing rules, not only silence


@pytest.fixture(scope="module")
def opa_server(opa):
    import socket
    import subprocess
    import time
    import urllib.request

    binary, _ = opa
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(binary), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error"]
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


def test_the_opa_server_backend_decides_the_incident_stream_like_regopy(opa_server):
    """The optional engine for teams that run OPA: same bundle pushed over REST, same decisions."""
    from nhiguard.decision.context import Inventory
    from nhiguard.decision.core import DecisionCore
    from nhiguard.policy.engines.opa import OpaServerEvaluator
    from tests.unit.test_core import raw_records
    from tools.scenarios import default_params, generate, inventory

    params = default_params()
    raws = raw_records(generate(params))

    def run(evaluator):
        core = DecisionCore(
            load_settings(env={}), BUNDLE, Inventory.load_dict(inventory(params)), evaluator=evaluator
        )
        res = core.process(raws)
        return [(d.decision_id, d.verdict, [c.command_id for c in d.commands]) for d in res.decisions]

    ours = run(None)
    theirs = run(OpaServerEvaluator(opa_server, BUNDLE))
    assert theirs == ours
    assert sum(1 for _, v, _ in ours if v != "ALLOW") > 100
