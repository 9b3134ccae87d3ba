"""The soak (tools/soak.py) in short: every fault kind once while a steady input runs, then the exact count.

`make soak` runs the same code with 50,000 records and every fault kind several times."""

import json
import os
import subprocess
import sys

import pytest

from tools import REPO_ROOT

pytestmark = pytest.mark.integration


def test_every_record_is_decided_once_through_every_kind_of_fault(tmp_path):
    # Its own broker (it restarts it), so it does not disturb the session's.
    cmd = [sys.executable, "-m", "tools.soak", "--records", "900", "--rate", "15", "--rounds", "1"]
    cmd += ["--max-rounds", "1", "--interval", "2", "--progress", "30", "--stuck", "60"]
    cmd += ["--session-timeout", "6"]
    cmd += ["--broker-down", "1", "--drain-timeout", "300", "--keep", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    run = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    reports = list(tmp_path.glob("*/report.json"))
    assert reports, f"no report; exit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    r = json.loads(reports[0].read_text())
    # Every fault kind happened, and happened to a pipeline that was deciding.
    assert all(n >= 1 for n in r["faults"].values()) and len(r["faults"]) == 7, r["faults"]
    assert r["records"] == 900
    assert r["lost"] == 0 and r["conflicting"] == 0, (r["examples"], run.stdout[-3000:])
    assert r["decided"] + r["dead_lettered"] == 900
    assert r["commands"] > 0 and r["commands_conflicting"] == 0 and r["commands_missing"] == 0
    assert r["commit_samples"] > 0 and r["committed_over_unprocessed"] == 0, r["examples"]
    assert run.returncode == 0, run.stdout[-3000:]
