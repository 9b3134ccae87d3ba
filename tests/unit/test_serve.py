"""`nhiguard serve`'s webhook receiver over HTTP (aiohttp's test server), with deliveries in each vendor's own
format (tests/fixtures/webhooks/): right and wrong proofs, size and content-type refusals, what reaches Kafka,
and a produce failure. Contentful's request signatures were made by Contentful's own signer
(contentful-signatures.json, see contentful-signatures.mjs): the verifier is checked against it, not itself.

Accepted deliveries go to a recorder here (no broker in unit tests); tests/integration/test_serve.py runs the
same deliveries through the real `nhiguard serve` process, the real broker and a worker.
"""

import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from nhiguard.settings import SettingsError, load_settings
from nhiguard.streams.acks import AckedProducer
from nhiguard.streams.server import build_app, serve_until_signalled
from nhiguard.streams.webhooks import contentful_signature
from tools import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "webhooks"
SIGNED = json.loads((FIXTURES / "contentful-signatures.json").read_text())

GITHUB_SECRET = "gh-webhook-secret-0123456789"
GITLAB_TOKEN = "gl-webhook-token-0123456789"
CONTENTFUL_TOKEN = "shared-token-0123456789"  # the Authorization header the second signed vector carries
STRAPI_TOKENS = {"docs-site": "strapi-docs-token-0123456789", "shop": "strapi-shop-token-0123456789"}
VERDACCIO_TOKEN = "verdaccio-notify-token-0123456789"

ENV = {
    "NHIGUARD_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
    "NHIGUARD_GITLAB_WEBHOOK_TOKEN": GITLAB_TOKEN,
    "NHIGUARD_CONTENTFUL_SIGNING_SECRET": SIGNED["secret"],
}


def delivery(name):
    d = json.loads((FIXTURES / name).read_text())
    return d["path"], dict(d["headers"]), d["body"].encode()


def github_signature(body, secret=GITHUB_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Recorder:
    """Stands in for Kafka: acknowledges every record at the next offset, and keeps it."""

    def __init__(self):
        self.records = []
        self.hold = None  # an asyncio.Event: acknowledge only once it is set

    async def send(self, topic, key, value, headers):
        self.records.append((topic, key, value, headers))
        if self.hold is not None:
            await self.hold.wait()
        return 0, len(self.records) - 1


def settings_with(tmp_path, env=ENV, **overrides):
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(json.dumps({"strapi": STRAPI_TOKENS}))  # JSON is YAML
    return replace(load_settings(env={**env, "NHIGUARD_WEBHOOK_SECRETS_FILE": str(secrets)}), **overrides)


def serve(settings, scenario, sender=None, clock=None):
    """Run `scenario(client, sender)` against the application; its result."""
    sender = sender or Recorder()
    clock = clock or (lambda: SIGNED["timestamp"] / 1000 + 1)

    async def main():
        async with TestClient(TestServer(build_app(settings, sender, clock))) as client:
            return await scenario(client, sender)

    return asyncio.run(main())


async def post(client, path, headers, body):
    # The path as given, never re-encoded: a signed request's path is part of what was signed.
    url = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    # Without a Content-Type of its own, aiohttp's client would add one.
    skip = () if "Content-Type" in headers else ("Content-Type",)
    async with client.session.post(url, headers=headers, data=body, skip_auto_headers=skip) as resp:
        return resp.status, await resp.json()


def kafka_headers(record):
    return {k: v.decode() for k, v in record[3]}


# --- GitHub -----------------------------------------------------------------------------------------------


def test_a_signed_github_delivery_goes_to_kafka_unchanged_with_its_meaningful_headers(tmp_path):
    path, headers, body = delivery("github-workflow_run.json")

    async def scenario(client, sender):
        return await post(client, path, headers | {"X-Hub-Signature-256": github_signature(body)}, body)

    sender = Recorder()
    status, answer = serve(settings_with(tmp_path), scenario, sender)
    assert status == 202 and answer == {"accepted": True, "topic": "audit.ci", "partition": 0, "offset": 0}
    [(topic, key, value, _)] = sender.records
    assert (topic, key, value) == ("audit.ci", b"acme/cli", body)  # the raw bytes, keyed by repository
    assert kafka_headers(sender.records[0]) == {
        "Content-Type": "application/json",
        "X-GitHub-Delivery": headers["X-GitHub-Delivery"],
        "X-GitHub-Event": "workflow_run",
        "X-GitHub-Hook-ID": "292430182",
        "X-GitHub-Hook-Installation-Target-ID": "79929171",
        "X-GitHub-Hook-Installation-Target-Type": "organization",
    }  # the signature, User-Agent and Accept stay behind


@pytest.mark.parametrize(
    "signature, message",
    [
        (None, "missing X-Hub-Signature-256"),
        (github_signature(b"{}"), "does not match"),  # another body's
        ("sha256=" + "0" * 64, "does not match"),
        ("sha1=2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", "does not match"),
    ],
)
def test_a_github_delivery_without_the_right_signature_is_401_and_goes_nowhere(tmp_path, signature, message):
    path, headers, body = delivery("github-workflow_run.json")
    if signature:
        headers["X-Hub-Signature-256"] = signature

    async def scenario(client, sender):
        return await post(client, path, headers, body)

    sender = Recorder()
    status, answer = serve(settings_with(tmp_path), scenario, sender)
    assert status == 401 and message in answer["error"] and answer["status"] == 401
    assert not sender.records


def test_a_github_signature_made_with_another_secret_is_401(tmp_path):
    path, headers, body = delivery("github-workflow_run.json")
    headers["X-Hub-Signature-256"] = github_signature(body, "another-secret-0123456789")

    async def scenario(client, sender):
        return await post(client, path, headers, body)

    assert serve(settings_with(tmp_path), scenario)[0] == 401


# --- GitLab -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token, status", [(GITLAB_TOKEN, 202), (GITLAB_TOKEN + "x", 401), (None, 401)])
def test_gitlab_deliveries_carry_the_webhook_token(tmp_path, token, status):
    path, headers, body = delivery("gitlab-pipeline.json")
    if token:
        headers["X-Gitlab-Token"] = token

    async def scenario(client, sender):
        return await post(client, path, headers, body)

    sender = Recorder()
    assert serve(settings_with(tmp_path), scenario, sender)[0] == status
    if status == 202:
        [(topic, key, value, _)] = sender.records
        assert (topic, key, value) == ("audit.ci", b"acme/api", body)
        kept = kafka_headers(sender.records[0])
        assert kept["X-Gitlab-Event"] == "Pipeline Hook"
        assert kept["X-Gitlab-Event-UUID"] == headers["X-Gitlab-Event-UUID"]
        assert "X-Gitlab-Token" not in kept and "Idempotency-Key" not in kept
    else:
        assert not sender.records


# --- Contentful -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", SIGNED["vectors"], ids=lambda v: v["path"])
def test_the_contentful_signature_is_the_one_contentfuls_own_signer_makes(vector):
    signed = {k.strip().lower(): v.strip() for k, v in vector["headers"].items()}
    assert (
        contentful_signature(
            SIGNED["secret"], "POST", vector["path"], signed, SIGNED["timestamp"], vector["body"].encode()
        )
        == vector["signed"]["x-contentful-signature"]
    )


def contentful_request(vector):
    return vector["path"], vector["headers"] | vector["signed"], vector["body"].encode()


@pytest.mark.parametrize(
    "vector, env",
    [
        (SIGNED["vectors"][0], {}),
        (SIGNED["vectors"][1], {"NHIGUARD_CONTENTFUL_WEBHOOK_TOKEN": CONTENTFUL_TOKEN}),
    ],
    ids=("signed", "signed-with-query-and-authorization"),
)
def test_a_request_contentful_signed_is_accepted_keyed_by_space(tmp_path, vector, env):
    async def scenario(client, sender):
        return await post(client, *contentful_request(vector))

    sender = Recorder()
    status, answer = serve(settings_with(tmp_path, ENV | env), scenario, sender)
    assert status == 202, answer
    [(topic, key, value, _)] = sender.records
    assert (topic, key, value) == ("audit.cms", b"k8x2qv7m3np1", vector["body"].encode())
    assert kafka_headers(sender.records[0]) == {
        "Content-Type": "application/vnd.contentful.management.v1+json",
        "X-Contentful-Topic": "ContentManagement.Asset.create",
        "X-Contentful-Webhook-Name": "nhiguard audit",
    }


def _changed(what):
    path, headers, body = contentful_request(SIGNED["vectors"][0])
    if what == "topic":
        headers["X-Contentful-Topic"] = "ContentManagement.Asset.delete"
    elif what == "body":
        body = body.replace(b"asset-sync", b"asset-sink")
    elif what == "path":
        path += "?replayed=1"
    elif what == "unsigned":
        headers = {k: v for k, v in headers.items() if not k.startswith("x-contentful-")}
    return path, headers, body


@pytest.mark.parametrize(
    "what, message",
    [
        ("topic", "does not match"),
        ("body", "does not match"),
        ("path", "does not match"),
        ("unsigned", "missing x-contentful-signature"),
    ],
)
def test_a_contentful_request_changed_after_signing_is_401(tmp_path, what, message):
    async def scenario(client, sender):
        return await post(client, *_changed(what))

    sender = Recorder()
    status, answer = serve(settings_with(tmp_path), scenario, sender)
    assert status == 401 and message in answer["error"]
    assert not sender.records


@pytest.mark.parametrize("late_s", [31, -31])
def test_a_contentful_signature_outside_its_time_to_live_is_401(tmp_path, late_s):
    async def scenario(client, sender):
        return await post(client, *contentful_request(SIGNED["vectors"][0]))

    status, answer = serve(
        settings_with(tmp_path), scenario, clock=lambda: SIGNED["timestamp"] / 1000 + late_s
    )
    assert status == 401 and "replay" in answer["error"]


@pytest.mark.parametrize("authorization, status", [(f"Bearer {CONTENTFUL_TOKEN}", 202), ("Bearer x", 401)])
def test_contentful_with_a_shared_secret_header_only(tmp_path, authorization, status):
    env = {"NHIGUARD_CONTENTFUL_WEBHOOK_TOKEN": CONTENTFUL_TOKEN}
    path, headers, body = delivery("contentful-asset-create.json")

    async def scenario(client, sender):
        return await post(client, path, headers | {"Authorization": authorization}, body)

    assert serve(settings_with(tmp_path, env), scenario)[0] == status


def test_with_both_contentful_checks_configured_both_must_pass(tmp_path):
    env = ENV | {"NHIGUARD_CONTENTFUL_WEBHOOK_TOKEN": "a-different-token-0123456789"}

    async def scenario(client, sender):  # signed, with another Authorization than the configured one
        return await post(client, *contentful_request(SIGNED["vectors"][1]))

    status, answer = serve(settings_with(tmp_path, env), scenario)
    assert status == 401 and "Authorization" in answer["error"]


# --- Strapi -----------------------------------------------------------------------------------------------


def test_a_strapi_delivery_names_the_integration_of_its_route(tmp_path):
    path, headers, body = delivery("strapi-entry-publish.json")
    forged = headers | {
        "X-Webhook-Integration": "shop",
        "Authorization": f"Bearer {STRAPI_TOKENS['docs-site']}",
    }

    async def scenario(client, sender):
        return await post(client, path, forged, body)

    sender = Recorder()
    assert serve(settings_with(tmp_path), scenario, sender)[0] == 202
    [(topic, key, value, kafka)] = sender.records
    assert (topic, key, value) == ("audit.cms", b"docs-site", body)
    # The sender's own value is replaced by the route's: one header, the integration the token belongs to.
    assert [(k, v) for k, v in kafka if k.lower() == "x-webhook-integration"] == [
        ("X-Webhook-Integration", b"docs-site")
    ]
    assert kafka_headers(sender.records[0])["X-Strapi-Event"] == "entry.publish"


@pytest.mark.parametrize(
    "route, token, status",
    [
        ("/webhooks/strapi/docs-site", STRAPI_TOKENS["docs-site"], 202),  # the token alone, as configured
        ("/webhooks/strapi/docs-site", f"Bearer {STRAPI_TOKENS['shop']}", 401),  # another integration's
        ("/webhooks/strapi/docs-site", None, 401),
        ("/webhooks/strapi/blog", f"Bearer {STRAPI_TOKENS['docs-site']}", 404),  # no such integration
    ],
)
def test_strapi_authorization_is_per_integration(tmp_path, route, token, status):
    _, headers, body = delivery("strapi-entry-publish.json")
    if token:
        headers["Authorization"] = token

    async def scenario(client, sender):
        return await post(client, route, headers, body)

    assert serve(settings_with(tmp_path), scenario)[0] == status


# --- Verdaccio --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization, status",
    [
        (f"Bearer {VERDACCIO_TOKEN}", 202),
        (VERDACCIO_TOKEN, 202),  # the token alone, as a notify header may be set
        ("Bearer not-the-token-0123456789", 401),
        (None, 401),
    ],
)
def test_a_verdaccio_notification_goes_to_the_registry_topic_by_package(tmp_path, authorization, status):
    path, headers, body = delivery("verdaccio-publish.json")
    if authorization:
        headers["Authorization"] = authorization

    async def scenario(client, sender):
        return await post(client, path, headers, body)

    sender = Recorder()
    env = ENV | {"NHIGUARD_VERDACCIO_WEBHOOK_TOKEN": VERDACCIO_TOKEN}
    answer = serve(settings_with(tmp_path, env), scenario, sender)
    assert answer[0] == status, answer
    if status != 202:
        assert not sender.records
        return
    [(topic, key, value, _)] = sender.records
    assert (topic, key, value) == ("audit.registry", b"exp-b", body)
    assert kafka_headers(sender.records[0]) == {"Content-Type": "application/json"}  # no token on Kafka


def test_the_verdaccio_route_exists_only_with_its_token(tmp_path):
    path, headers, body = delivery("verdaccio-publish.json")

    async def scenario(client, sender):
        return await post(client, path, headers | {"Authorization": f"Bearer {VERDACCIO_TOKEN}"}, body)

    assert serve(settings_with(tmp_path), scenario)[0] == 404


# --- size, content type, routes ---------------------------------------------------------------------------


def _github(body, content_type="application/json"):
    _, headers, _ = delivery("github-workflow_run.json")
    headers |= {"Content-Type": content_type, "X-Hub-Signature-256": github_signature(body)}
    return {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize("chunked", [False, True], ids=("content-length", "chunked"))
def test_a_body_over_the_record_limit_is_413_signed_or_not(tmp_path, chunked):
    body = json.dumps({"pad": "x" * 5000}).encode()

    async def scenario(client, sender):
        data = body
        if chunked:  # no Content-Length: the limit holds while reading

            async def chunks():
                for i in range(0, len(body), 1000):
                    yield body[i : i + 1000]

            data = chunks()
        return await post(client, "/webhooks/github", _github(body), data)

    sender = Recorder()
    status, answer = serve(settings_with(tmp_path, max_record_bytes=4096), scenario, sender)
    assert status == 413 and "over the limit of 4096 bytes" in answer["error"]
    assert not sender.records


@pytest.mark.parametrize(
    "content_type, body, message",
    [
        (
            "application/x-www-form-urlencoded",
            b"payload=%7B%7D",
            "Content-Type application/x-www-form-urlencoded",
        ),
        ("text/plain", b"{}", "send application/json"),
        (None, b"{}", "Content-Type missing"),
        ("application/json", b'{"action": "completed",', "body is not JSON"),
        ("application/json", b"\xff\xfe{}", "body is not JSON"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
    ],
)
def test_a_signed_body_that_is_not_json_is_415(tmp_path, content_type, body, message):
    async def scenario(client, sender):
        return await post(client, "/webhooks/github", _github(body, content_type), body)

    sender = Recorder()
    status, answer = serve(settings_with(tmp_path, max_record_bytes=300_000), scenario, sender)
    assert status == 415 and message in answer["error"]
    assert not sender.records


def test_the_signature_is_checked_before_anything_is_said_about_the_content(tmp_path):
    headers = _github(b"{}", "text/plain") | {"X-Hub-Signature-256": "sha256=00"}

    async def scenario(client, sender):
        return await post(client, "/webhooks/github", headers, b"not json")

    assert serve(settings_with(tmp_path), scenario)[0] == 401


def test_a_source_without_a_secret_is_not_served_and_errors_are_json(tmp_path):
    env = {"NHIGUARD_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET}

    async def scenario(client, sender):
        gitlab = await post(client, *delivery("gitlab-pipeline.json"))
        get = await client.get("/webhooks/github")
        health = await client.get("/healthz")
        return gitlab, (get.status, await get.json()), (health.status, await health.json())

    gitlab, get, health = serve(settings_with(tmp_path, env), scenario)
    assert gitlab[0] == 404 and gitlab[1]["error"].startswith("Not Found")
    assert get[0] == 405 and get[1]["status"] == 405
    assert health == (
        200,
        {"status": "ok", "webhooks": ["github", "strapi"], "decision_api": False, "ssf": False},
    )


# --- Kafka's acknowledgement ------------------------------------------------------------------------------


def test_the_answer_waits_for_kafkas_acknowledgement(tmp_path):
    path, headers, body = delivery("github-workflow_run.json")
    headers["X-Hub-Signature-256"] = github_signature(body)

    async def scenario(client, sender):
        sender.hold = asyncio.Event()
        answer = asyncio.create_task(post(client, path, headers, body))
        while not sender.records:  # the record is with Kafka, not yet acknowledged
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        pending = not answer.done()
        sender.hold.set()
        return pending, await answer

    pending, (status, _) = serve(settings_with(tmp_path), scenario)
    assert pending and status == 202


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_record_kafka_does_not_acknowledge_is_503_never_2xx(tmp_path):
    """The real producer, pointed at a broker that is not there: librdkafka gives up at the ack timeout."""
    env = ENV | {"KAFKA_BOOTSTRAP": f"127.0.0.1:{_closed_port()}", "NHIGUARD_SERVE_ACK_TIMEOUT_S": "1"}
    settings = settings_with(tmp_path, env)
    path, headers, body = delivery("github-workflow_run.json")
    headers["X-Hub-Signature-256"] = github_signature(body)
    producer = AckedProducer(settings, settings.webhooks.ack_timeout_s)

    async def scenario(client, sender):
        return await post(client, path, headers, body)

    try:
        status, answer = serve(settings, scenario, producer)
    finally:
        producer.close(0)
    assert status == 503 and "send it again" in answer["error"]


# --- configuration ----------------------------------------------------------------------------------------


def test_secrets_come_from_a_yaml_file_or_variables_and_are_never_printed(tmp_path):
    f = tmp_path / "secrets.yaml"
    f.write_text(
        "github: from-the-file-0123456789\n"
        f"contentful: {{signing_secret: {SIGNED['secret']}, token: ctf-token-0123456789}}\n"
        "strapi: {docs-site: strapi-token-0123456789}\n"
    )
    mounted = tmp_path / "gitlab-token"
    mounted.write_text("gl-from-a-mounted-file-0123\n")
    s = load_settings(
        env={
            "NHIGUARD_WEBHOOK_SECRETS_FILE": str(f),
            "NHIGUARD_GITLAB_WEBHOOK_TOKEN": "gl-from-the-variable-0123",
            "NHIGUARD_GITLAB_WEBHOOK_TOKEN_FILE": str(mounted),
        }
    )
    hooks = s.webhooks
    assert hooks.sources == ("github", "gitlab", "contentful", "strapi")
    assert hooks.github == "from-the-file-0123456789"
    assert hooks.gitlab == "gl-from-a-mounted-file-0123"  # the _FILE wins, without its newline
    assert (hooks.contentful_signing, hooks.contentful_token) == (SIGNED["secret"], "ctf-token-0123456789")
    assert hooks.strapi_token("docs-site") == "strapi-token-0123456789"
    assert not [x for x in ("0123456789", SIGNED["secret"]) if x in repr(s)]
    # A variable wins over the file.
    over = load_settings(
        env={"NHIGUARD_WEBHOOK_SECRETS_FILE": str(f), "NHIGUARD_GITHUB_WEBHOOK_SECRET": "from-the-var-012345"}
    )
    assert over.webhooks.github == "from-the-var-012345"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"NHIGUARD_GITHUB_WEBHOOK_SECRET": "short"}, "shorter than 16"),
        ({"NHIGUARD_CONTENTFUL_SIGNING_SECRET": "x" * 63}, "exactly 64 characters"),
        ({"NHIGUARD_STRAPI_WEBHOOK_TOKEN": "strapi-token-0123456789"}, "NHIGUARD_STRAPI_INTEGRATION"),
        (
            {
                "NHIGUARD_STRAPI_WEBHOOK_TOKEN": "strapi-token-0123456789",
                "NHIGUARD_STRAPI_INTEGRATION": "a/b",
            },
            "letters, digits",
        ),
        ({"NHIGUARD_GITHUB_WEBHOOK_SECRET_FILE": "/nonexistent/secret"}, "cannot read /nonexistent/secret"),
        ({"NHIGUARD_SERVE_ACK_TIMEOUT_S": "0"}, "must be positive"),
        ({"NHIGUARD_WEBHOOK_SECRETS_FILE": "FILE:gihub: x0123456789abcdef"}, "expected a mapping with keys"),
        ({"NHIGUARD_WEBHOOK_SECRETS_FILE": "FILE:gitlab: 12345678901234567890"}, "quote it"),
        ({"NHIGUARD_WEBHOOK_SECRETS_FILE": "FILE:contentful: {secret: x}"}, "signing_secret and token"),
        ({"NHIGUARD_WEBHOOK_SECRETS_FILE": "FILE:github: [unclosed"}, "not YAML"),
    ],
)
def test_a_webhook_secret_nhiguard_cannot_use_is_a_settings_error(tmp_path, env, message):
    for var, value in env.items():
        if value.startswith("FILE:"):
            (tmp_path / "s.yaml").write_text(value.removeprefix("FILE:"))
            env = env | {var: str(tmp_path / "s.yaml")}
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


def test_serve_without_any_secret_says_so_in_one_line_and_exits_2():
    ours = (
        "NHIGUARD_WEBHOOK",
        "NHIGUARD_GITHUB",
        "NHIGUARD_GITLAB",
        "NHIGUARD_CONTENTFUL",
        "NHIGUARD_STRAPI",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    p = subprocess.run(
        [sys.executable, "-m", "nhiguard.streams.cli", "serve"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "no webhook source has a secret" in p.stderr


# --- shutdown -----------------------------------------------------------------------------------------------


def test_sigterm_lets_the_deliveries_in_flight_get_kafkas_answer_then_flushes(tmp_path):
    """The process's own shutdown path: SIGTERM while a delivery waits for its acknowledgement."""

    class Producer(Recorder):
        timeout_s = 10.0
        closed_after = None

        def close(self, timeout_s):
            self.closed_after = len(answers)
            return 0

    producer, answers = Producer(), []
    port = _closed_port()
    path, headers, body = delivery("github-workflow_run.json")
    headers["X-Hub-Signature-256"] = github_signature(body)

    async def deliver():
        async with (
            ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}{path}", headers=headers, data=body) as resp,
        ):
            answers.append(resp.status)

    async def main():
        producer.hold = asyncio.Event()
        server = asyncio.create_task(
            serve_until_signalled(settings_with(tmp_path), producer, "127.0.0.1", port)
        )
        while True:  # until it listens
            try:
                await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        client = asyncio.create_task(deliver())
        while not producer.records:
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # its handler: stop listening, finish what is in flight
        await asyncio.sleep(0.3)
        assert not server.done() and not answers
        producer.hold.set()  # Kafka acknowledges
        await asyncio.gather(server, client)

    asyncio.run(main())
    assert answers == [202]
    assert producer.closed_after == 1  # the producer is flushed after the last answer, not before
