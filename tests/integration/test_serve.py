"""`nhiguard serve` as a process, on the real broker, with a worker: signed GitHub and Contentful deliveries
are acknowledged only once on Kafka, each becomes one decision, refused ones leave nothing, and SIGTERM stops
the receiver cleanly."""

import hashlib
import hmac
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from nhiguard.streams.topics import read_to_end
from nhiguard.streams.webhooks import contentful_signature
from tests.integration.test_pipeline import collect, pipeline  # noqa: F401  (the fixture)
from tools import REPO_ROOT
from tools.demo import worker_env

pytestmark = pytest.mark.integration

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "webhooks"
CLI = [sys.executable, "-m", "nhiguard.streams.cli"]
GITHUB_SECRET = "gh-integration-secret-0123456789"
CONTENTFUL_SECRET = json.loads((FIXTURES / "contentful-signatures.json").read_text())["secret"]


def _delivery(name):
    d = json.loads((FIXTURES / name).read_text())
    return d["path"], dict(d["headers"]), d["body"].encode()


def _github(body, headers, secret=GITHUB_SECRET):
    return headers | {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    }


def _contentful(path, headers, body, secret=CONTENTFUL_SECRET):
    """Signed now, as Contentful signs (the unit tests check contentful_signature against Contentful's own
    signer)."""
    ts = int(time.time() * 1000)
    signed = {k.lower(): v for k, v in headers.items()}
    names = ",".join(sorted([*signed, "x-contentful-signed-headers", "x-contentful-timestamp"]))
    return headers | {
        "x-contentful-signature": contentful_signature(secret, "POST", path, signed, ts, body),
        "x-contentful-signed-headers": names,
        "x-contentful-timestamp": str(ts),
    }


def _post(base, path, headers, body):
    req = urllib.request.Request(base + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_serve(settings, tmp_path):
    port = _free_port()
    env = worker_env(settings) | {
        "NHIGUARD_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "NHIGUARD_CONTENTFUL_SIGNING_SECRET": CONTENTFUL_SECRET,
    }
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--sandbox", settings.sandbox],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
                assert json.loads(resp.read())["webhooks"] == ["github", "contentful"]
                return proc, base, log
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"nhiguard serve did not answer: {log.read_text()}")


def test_signed_webhooks_through_serve_and_a_worker_get_one_decision_each(pipeline):  # noqa: F811
    settings, start, tmp_path = pipeline
    proc, base, log = _start_serve(settings, tmp_path)
    try:
        start()
        run_path, run_headers, run_body = _delivery("github-workflow_run.json")
        push = json.loads(
            (REPO_ROOT / "tests/fixtures/sources/github.webhook/push-by-person.json").read_text()
        )
        push_body = json.dumps(push["body"]).encode()
        push_headers = run_headers | {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "9f0a7e40-0000-4000-8000-1",
        }
        ctf_path, ctf_headers, ctf_body = _delivery("contentful-asset-create.json")
        accepted = [
            _post(base, run_path, _github(run_body, run_headers), run_body),
            _post(base, run_path, _github(push_body, push_headers), push_body),
            _post(base, ctf_path, _contentful(ctf_path, ctf_headers, ctf_body), ctf_body),
        ]
        refused = [
            _post(base, run_path, _github(run_body, run_headers, "not-the-secret-0123456789"), run_body),
            _post(base, run_path, run_headers, run_body),  # unsigned
            _post(base, ctf_path, _contentful(ctf_path, ctf_headers, b"{}"), ctf_body),  # another body's
        ]
        assert [s for s, _ in accepted] == [202, 202, 202], accepted
        assert [s for s, _ in refused] == [401, 401, 401], refused
        coordinates = {(a["topic"], a["partition"], a["offset"]) for _, a in accepted}
        assert {t for t, _, _ in coordinates} == {settings.topics.ci, settings.topics.cms}

        out = collect(settings, len(accepted))
        assert not out["deadletters"]
        # One decision per accepted delivery, for the record at the place its answer named.
        assert out["seen"] == coordinates
        assert len(out["decisions"]) == len(accepted)
        actors = {d["event"]["actor"]["id"] for d in out["decisions"]}
        assert actors == {
            "github:acme/cli/.github/workflows/build.yml",
            "github:user/octocat",
            "contentful:k8x2qv7m3np1/AppDefinition/asset-sync",
        }

        # The input topics hold exactly the accepted deliveries, unchanged, with their meaningful headers.
        records = [
            m for t in (settings.topics.ci, settings.topics.cms) for m in read_to_end(settings, t, "t")
        ]
        assert sorted(m.value() for m in records) == sorted([run_body, push_body, ctf_body])
        by_body = {m.value(): m for m in records}
        assert by_body[run_body].key() == b"acme/cli" and by_body[ctf_body].key() == b"k8x2qv7m3np1"
        names = {k.lower() for k, _ in by_body[run_body].headers()}  # urllib capitalises them its own way
        assert {"x-github-event", "x-github-delivery", "content-type"} <= names
        assert not {"x-hub-signature-256", "user-agent"} & names
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log.read_text()
    assert "stopped" in log.read_text()
