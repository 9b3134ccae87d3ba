"""`nhiguard ingest` through the real broker into a sandbox: one decision or dead letter per record of a mixed
file, the unreadable ones naming their file and line."""

import gzip
import json
import subprocess
import sys

import pytest

from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)
from tools import REPO_ROOT
from tools.demo import worker_env

pytestmark = pytest.mark.integration

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "sources"


def _body(source: str, name: str) -> dict:
    return json.loads((FIXTURES / source / name).read_text())["body"]


def test_ingest_of_a_mixed_file_yields_one_outcome_per_record(pipeline, tmp_path):  # noqa: F811
    settings, start, _ = pipeline
    k8s = _body("k8s.audit", "sa-reads-secret.json")
    trail = _body("aws.cloudtrail", "assumed-role-reads-secret.json")
    lines = [json.dumps(k8s), json.dumps({"Records": [trail, trail]}), "{not json", json.dumps({"who": 1})]
    path = tmp_path / "mixed.ndjson.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    done = subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", "ingest", "--sandbox", settings.sandbox, str(path)],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "written:" in done.stdout
    start()
    out = collect(settings, 5)
    decided = sorted(d["event"]["source"] for d in out["decisions"])
    assert decided == ["aws.cloudtrail", "aws.cloudtrail", "k8s.audit"]
    unread = sorted((x["topic"], x["offset"], x["reason"]) for x in out["deadletters"])
    assert unread == [(f"file:{path}", 3, "malformed_json"), (f"file:{path}", 4, "unknown_shape")]
    assert all(d["input"]["topic"] == settings.topics.runtime for d in out["decisions"])
