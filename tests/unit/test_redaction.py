"""Secrets out of what nhiguard writes: dead letters keep the original bytes but not the headers outside the
allow-list, nor a secret in their detail; decisions, commands and alerts carry no token from a URL."""

import hashlib
import json

import pytest

from nhiguard.avro import AvroCodec, deadletter_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore, dead_letter
from nhiguard.decision.records import RawRecord
from nhiguard.decision.redact import REDACTED, redact, redact_headers
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.scenarios import default_params, inventory

NPM = "npm_" + "a1B2c3D4e5" * 4
GHP = "ghp_" + "Zx9Yw8Vu7T" * 4
PAT = "github_pat_11ABCDEFG0" + "x_Y" * 10
AWS = "AKIAIOSFODNN7EXAMPLE"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA==\n-----END OPENSSH PRIVATE KEY-----"
)
SECRETS = [NPM, GHP, PAT, AWS, "s3cr3t-bearer-value", "hunter2pass", "p4ssw0rd", "tok-123456", "b3BlbnNzaC1"]


R = REDACTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {NPM} rejected", f"token {R} rejected"),
        (f"push by {GHP}", f"push by {R}"),
        (f"pat={PAT}", f"pat={R}"),
        (f"key {AWS} used", f"key {R} used"),
        (f"found {KEY} in log", "found [REDACTED PRIVATE KEY] in log"),
        ("Authorization: Bearer s3cr3t-bearer-value", f"Authorization: Bearer {R}"),
        ("GET /p/-/p-1.3.0.tgz?token=tok-123456&page=2", f"GET /p/-/p-1.3.0.tgz?token={R}&page=2"),
        ("https://ci:hunter2pass@registry.example/pkg", f"https://{R}@registry.example/pkg"),
        (
            "https://registry.example/?user=ci&password=p4ssw0rd",
            f"https://registry.example/?user=ci&password={R}",
        ),
    ],
)
def test_known_secret_shapes_are_redacted_and_the_rest_kept(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://registry.npmjs.org/",
        "reqflow@1.14.1",
        "credential:verdaccio-token:ci-deploy",
        "GET /x?page=2",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_headers_that_carry_credentials_by_name_are_redacted_whatever_their_value():
    headers = (
        ("Authorization", b"Basic dXNlcjpwYXNz"),
        ("Cookie", b"session=abc"),
        ("X-Api-Token", b"plain"),
        ("X-Hub-Signature-256", b"sha256=deadbeef"),
        ("X-Trace", b"abc"),
        ("Content-Type", b"application/json"),
    )
    assert redact_headers(headers) == (
        ("Authorization", b"[REDACTED]"),
        ("Cookie", b"[REDACTED]"),
        ("X-Api-Token", b"[REDACTED]"),
        ("X-Hub-Signature-256", b"[REDACTED]"),
        ("X-Trace", b"abc"),
        ("Content-Type", b"application/json"),
    )


def test_a_dead_letter_keeps_the_original_bytes_but_no_header_outside_the_allow_list_nor_a_secret():
    value = json.dumps({"token": NPM, "key": KEY}).encode() + b"{broken"
    headers = (
        ("Authorization", f"Bearer {GHP}".encode()),
        ("X-Npm-Signature", b"sha256=0123"),
        ("Cookie", b"s=1"),
        ("traceparent", b"00-abc-def-01"),
        ("Content-Type", f"application/json; token={NPM}".encode()),
        ("nhiguard-origin", b"audit.ci|0|1|0"),
    )
    rec = RawRecord("audit.ci", 0, 4, value, headers=headers)
    x = dead_letter(rec, "malformed_json", f"could not read {NPM} near {AWS}", 1 << 20)
    assert x.original == value and x.original_sha256 == hashlib.sha256(value).hexdigest()  # nothing lost
    assert [k for k, _ in x.headers] == ["traceparent", "Content-Type"]
    stored = json.dumps(
        deadletter_record(x) | {"original": "", "headers": [(k, v.decode()) for k, v in x.headers]}
    )
    assert not [s for s in SECRETS if s in stored] and "could not read" in stored


def test_a_token_in_a_requests_url_is_not_in_its_decision():
    core = DecisionCore(
        load_settings(env={}),
        load_bundle(REPO_ROOT / "policies"),
        Inventory.load_dict(inventory(default_params())),
    )
    line = {"level": 30, "msg": "m", "user": "ci-deploy", "sub": "out", "status": 404, "time": 1774500000000}
    line["request"] = {"method": "GET", "url": f"/left-pad?token={NPM}&_authToken=tok-123456"}
    res = core.process([RawRecord("audit.registry", 0, 0, json.dumps(line).encode())])
    (d,) = res.decisions
    rec = decision_record(d, 1)
    AvroCodec(REPO_ROOT / "schemas").encode("Decision", rec)  # still a valid output
    assert rec["event"]["resource_id"] == f"GET /left-pad?token={REDACTED}&_authToken={REDACTED}"
    assert not [s for s in SECRETS if s in json.dumps(rec, default=str)]
