"""Signed commands and bundles (nhiguard/signing.py, streams/verify.py): what an enforcement point accepts and
rejects, the key files and JWKS it reads, and the exit codes of `nhiguard verify` and `nhiguard keys`."""

import base64
import json
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nhiguard.avro import AvroCodec, command_record
from nhiguard.decision.records import Command
from nhiguard.settings import load_settings
from nhiguard.signing import (
    KID_HEADER,
    SIG_HEADER,
    Jwks,
    SigningError,
    b64url,
    command_signer,
    load_signer,
    new_key_pem,
    thumbprint,
    verify_record,
)
from nhiguard.streams.cli import main
from nhiguard.streams.verify import Record


def _command_value() -> bytes:
    codec = AvroCodec(load_settings(env={}).schemas_dir)
    cmd = Command(
        command_id="cmd-1",
        kind="REVOKE",
        identity="verdaccio:ci-web-build",
        target_type="credential",
        target="verdaccio:ci-web-build",
        reasons=("forged install",),
        policy_ids=("registry.installs",),
        rule_ids=("registry.installs.denied_version",),
        bundle_revision="abc",
        event_id="ev-1",
        issued_at_ms=1_700_000_000_000,
        expires_at_ms=1_700_600_000_000,
    )
    return codec.encode("EnforcementCommand", command_record(cmd))


@pytest.fixture
def keys(tmp_path):
    """Two signing keys (PEM and JWK files) and a JWKS that trusts only the first."""
    pem = tmp_path / "signer.pem"
    pem.write_bytes(new_key_pem())
    other = Ed25519PrivateKey.generate()
    raw = other.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    jwk = tmp_path / "other.jwk"
    pub = other.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk.write_text(
        json.dumps({"kty": "OKP", "crv": "Ed25519", "d": b64url(raw), "x": b64url(pub), "kid": "k-old"})
    )
    signer = load_signer(pem, "k-2025")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}))
    return signer, load_signer(jwk), jwks


def test_a_signed_command_verifies(keys):
    signer, _, jwks = keys
    value = _command_value()
    verdict = verify_record(value, signer.headers(value), Jwks.load(jwks))
    assert verdict.ok and verdict.kid == "k-2025" and verdict.reason == "valid"
    # The headers are plain ASCII: base64url signature, key id.
    headers = dict(signer.headers(value))
    assert (
        headers[KID_HEADER] == b"k-2025" and len(base64.urlsafe_b64decode(headers[SIG_HEADER] + b"==")) == 64
    )


def test_a_tampered_value_is_rejected(keys):
    signer, _, jwks = keys
    value = _command_value()
    headers = signer.headers(value)
    forged = value.replace(b"verdaccio:ci-web-build", b"verdaccio:ci-web-buile")
    assert forged != value
    verdict = verify_record(forged, headers, Jwks.load(jwks))
    assert not verdict.ok and verdict.reason.startswith("bad signature")


def test_an_unsigned_command_is_rejected(keys):
    _, _, jwks = keys
    for headers in (None, [], [("x-other", b"1")]):
        verdict = verify_record(_command_value(), headers, Jwks.load(jwks))
        assert not verdict.ok and verdict.reason == "unsigned"


def test_an_unknown_key_id_is_rejected(keys):
    _, other, jwks = keys
    value = _command_value()
    verdict = verify_record(value, other.headers(value), Jwks.load(jwks))
    assert not verdict.ok and verdict.kid == "k-old" and "unknown key id" in verdict.reason


def test_a_signature_by_another_key_under_a_trusted_key_id_is_rejected(keys):
    signer, other, jwks = keys
    value = _command_value()
    headers = [(SIG_HEADER, b64url(other.sign(value)).encode()), (KID_HEADER, signer.kid.encode())]
    verdict = verify_record(value, headers, Jwks.load(jwks))
    assert not verdict.ok and verdict.reason.startswith("bad signature")


def test_two_signature_headers_or_junk_in_them_are_rejected(keys):
    signer, other, jwks = keys
    value = _command_value()
    doubled = [*signer.headers(value), (SIG_HEADER, b64url(other.sign(value)).encode())]
    assert "malformed" in verify_record(value, doubled, Jwks.load(jwks)).reason
    junk = [(SIG_HEADER, b"\xff\xfe"), (KID_HEADER, signer.kid.encode())]
    assert "malformed" in verify_record(value, junk, Jwks.load(jwks)).reason
    short = [(SIG_HEADER, b"AAAA"), (KID_HEADER, signer.kid.encode())]
    assert not verify_record(value, short, Jwks.load(jwks)).ok


def test_rotation_both_keys_in_the_jwks_verify_and_kid_selects(keys, tmp_path):
    signer, other, _ = keys
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"keys": [signer.jwk(), other.jwk()]}))
    value = _command_value()
    jwks = Jwks.load(both)
    assert verify_record(value, signer.headers(value), jwks).kid == "k-2025"
    assert verify_record(value, other.headers(value), jwks).kid == "k-old"


def test_a_key_without_kid_gets_its_thumbprint(tmp_path):
    pem = tmp_path / "k.pem"
    pem.write_bytes(new_key_pem())
    signer = load_signer(pem)
    assert signer.kid == thumbprint(signer.public_key) and len(signer.kid) == 43
    # A JWKS entry without kid is found under the same thumbprint.
    jwk = signer.jwk()
    del jwk["kid"]
    value = b"x"
    assert verify_record(value, signer.headers(value), Jwks.parse(json.dumps({"keys": [jwk]}))).ok


@pytest.mark.parametrize(
    "doc, says",
    [
        ("not json", "invalid JSON"),
        ("[]", '"keys" list'),
        ('{"keys": []}', "no Ed25519 signing key"),
        ('{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}', "no Ed25519 signing key"),
        ('{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]}', "bad public key x"),
        ('{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}', "not 32"),
        ('{"keys": ["k"]}', "not a JSON object"),
    ],
)
def test_a_bad_jwks_is_an_error(doc, says):
    with pytest.raises(SigningError, match=says):
        Jwks.parse(doc)


def test_a_jwks_holding_a_private_key_or_a_kid_twice_is_refused(keys, tmp_path):
    signer, other, _ = keys
    private = json.loads((tmp_path / "other.jwk").read_text())
    with pytest.raises(SigningError, match="private key"):
        Jwks.parse(json.dumps({"keys": [private]}))
    with pytest.raises(SigningError, match="twice"):
        Jwks.parse(json.dumps({"keys": [signer.jwk(), dict(other.jwk(), kid=signer.kid)]}))


def test_bad_key_files_are_refused(tmp_path):
    with pytest.raises(SigningError, match="cannot read"):
        load_signer(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningError, match="PEM"):
        load_signer(tmp_path / "junk.pem")
    rsa = tmp_path / "rsa.jwk"
    rsa.write_text('{"kty": "RSA"}')
    with pytest.raises(SigningError, match="not an Ed25519"):
        load_signer(rsa)
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    raw = a.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    x = b.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    mismatch = tmp_path / "mismatch.jwk"
    mismatch.write_text(json.dumps({"kty": "OKP", "crv": "Ed25519", "d": b64url(raw), "x": b64url(x)}))
    with pytest.raises(SigningError, match="not the public half"):
        load_signer(mismatch)


def test_without_a_key_commands_go_unsigned_unless_signing_is_required(tmp_path):
    assert command_signer(load_settings(env={})) is None
    with pytest.raises(SigningError, match="NHIGUARD_REQUIRE_SIGNING"):
        command_signer(load_settings(env={"NHIGUARD_REQUIRE_SIGNING": "1"}))
    pem = tmp_path / "k.pem"
    pem.write_bytes(new_key_pem())
    env = {"NHIGUARD_SIGNING_KEY": str(pem), "NHIGUARD_SIGNING_KID": "w1", "NHIGUARD_REQUIRE_SIGNING": "1"}
    assert command_signer(load_settings(env=env)).kid == "w1"
    with pytest.raises(SigningError, match="cannot read"):
        command_signer(load_settings(env={"NHIGUARD_SIGNING_KEY": str(tmp_path / "gone.pem")}))
    with pytest.raises(ValueError, match="not a flag"):
        load_settings(env={"NHIGUARD_REQUIRE_SIGNING": "maybe"})


@pytest.mark.parametrize(
    "env, says",
    [
        ({"NHIGUARD_REQUIRE_SIGNING": "1"}, "no NHIGUARD_SIGNING_KEY"),
        ({"NHIGUARD_SIGNING_KEY": "/nonexistent/k.pem"}, "cannot read signing key"),
        (
            {"NHIGUARD_POLICY_SOURCE": "topic", "NHIGUARD_BUNDLE_KEYS": "/nonexistent/j.json"},
            "cannot read JWKS",
        ),
    ],
)
def test_the_worker_refuses_to_start_with_missing_or_unusable_keys(monkeypatch, caplog, env, says):
    """Before it touches Kafka: nothing listens at the bootstrap below."""
    for k in (
        "NHIGUARD_SIGNING_KEY",
        "NHIGUARD_BUNDLE_KEYS",
        "NHIGUARD_REQUIRE_SIGNING",
        "NHIGUARD_IDENTITIES_FILE",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    caplog.set_level("ERROR")
    assert main(["worker"]) == 2
    assert says in caplog.text


# --- the CLI ---


def _dump(path, records):
    with path.open("w") as f:
        for i, (value, headers) in enumerate(records):
            rec = Record(f"r{i}", value, [(k, v) for k, v in headers])
            f.write(rec.dump("enforcement.commands", 0, i) + "\n")


def test_verify_cli_exit_codes(keys, tmp_path, capsys):
    signer, other, jwks = keys
    value = _command_value()
    good = tmp_path / "good.ndjson"
    _dump(good, [(value, signer.headers(value)), (b"other", signer.headers(b"other"))])
    assert main(["verify", "--keys", str(jwks), str(good)]) == 0
    assert "2 record(s): 2 valid (key k-2025)" in capsys.readouterr().out

    bad = tmp_path / "bad.ndjson"
    forged = value[:-1] + bytes([value[-1] ^ 1])  # one bit of the last field flipped
    _dump(
        bad,
        [
            (value, signer.headers(value)),
            (value, []),
            (forged, signer.headers(value)),
            (value, other.headers(value)),
        ],
    )
    assert main(["verify", "--keys", str(jwks), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    bad_lines = [ln for ln in out if ln.startswith("BAD")]
    assert len(bad_lines) == 3
    assert bad_lines[0] == f"BAD {bad}:2 (enforcement.commands[0]@1) command cmd-1: unsigned"
    assert "bad signature" in bad_lines[1] and ":3 " in bad_lines[1]
    assert "unknown key id 'k-old'" in bad_lines[2] and ":4 " in bad_lines[2]
    assert out[-1] == "4 record(s): 3 bad, 1 valid (key k-2025)"


def test_verify_cli_reads_stdin(keys, tmp_path, capsys, monkeypatch):
    import io

    signer, _, jwks = keys
    f = tmp_path / "in.ndjson"
    _dump(f, [(b"v", signer.headers(b"v"))])
    monkeypatch.setattr("sys.stdin", io.StringIO(f.read_text()))
    assert main(["verify", "--keys", str(jwks), "-"]) == 0


@pytest.mark.parametrize(
    "content, says",
    [
        ('{"value_b64": "!!"}\n', "value_b64 is not base64"),
        ("not json\n", "in.ndjson:1"),
        ('{"value_b64": "AA==", "headers": "x"}\n', "headers"),
    ],
)
def test_verify_cli_unreadable_input_is_an_error_in_one_line(keys, tmp_path, capsys, content, says):
    _, _, jwks = keys
    f = tmp_path / "in.ndjson"
    f.write_text(content)
    assert main(["verify", "--keys", str(jwks), str(f)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_verify_cli_bad_jwks_or_missing_file_is_an_error(keys, tmp_path, capsys):
    signer, _, jwks = keys
    f = tmp_path / "in.ndjson"
    _dump(f, [(b"v", signer.headers(b"v"))])
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"kty": "OKP"}]}')
    for args in (["--keys", str(bad), str(f)], ["--keys", str(tmp_path / "none.json"), str(f)]):
        assert main(["verify", *args]) == 2
    assert main(["verify", "--keys", str(jwks), str(tmp_path / "missing.ndjson")]) == 2
    assert main(["verify", str(f)]) == 2  # no keys at all
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(ln.startswith("nhiguard verify: ") for ln in err), err


def test_keys_new_and_jwks_for_rotation(tmp_path, capsys):
    new, old = tmp_path / "new.pem", tmp_path / "old.pem"
    assert main(["keys", "new", str(old), "--kid", "2024"]) == 0
    assert json.loads(capsys.readouterr().out)["kid"] == "2024"
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
    assert main(["keys", "new", str(old)]) == 2  # never overwrites a key
    capsys.readouterr()
    assert main(["keys", "new", str(new), "--kid", "2025"]) == 0
    capsys.readouterr()
    assert main(["keys", "jwks", str(old), "--kid", "2024"]) == 0
    old_jwks = tmp_path / "old.json"
    old_jwks.write_text(capsys.readouterr().out)
    # Rotation: the new key plus the keys of the JWKS already published.
    assert main(["keys", "jwks", str(old_jwks), str(new)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(k["kid"] for k in doc["keys"]) == sorted(["2024", thumbprint(load_signer(new).public_key)])
    assert all("d" not in k for k in doc["keys"])
    assert set(Jwks.parse(json.dumps(doc)).keys) == {k["kid"] for k in doc["keys"]}


# --- policy bundles ---


class _Refusals:
    """Stands in for the worker's BundleReloader: records what the follower refused and why."""

    def __init__(self):
        self.refused = []

    def refuse(self, revision, reason):
        self.refused.append((revision, reason))


def test_a_worker_with_bundle_keys_refuses_unsigned_and_badly_signed_bundles(keys, tmp_path):
    from nhiguard.streams.bundles import BundleFollower, pack_bundle
    from tools import REPO_ROOT

    signer, other, jwks = keys
    value = pack_bundle(REPO_ROOT / "policies")
    settings = load_settings(env={"NHIGUARD_BUNDLE_KEYS": str(jwks), "NHIGUARD_DATA_DIR": str(tmp_path)})
    refusals = _Refusals()
    follower = BundleFollower(settings, refusals)
    assert follower._verified(value, signer.headers(value), 0)
    assert not follower._verified(value, None, 1)
    assert not follower._verified(value, other.headers(value), 2)
    assert not follower._verified(value + b" ", signer.headers(value), 3)
    reasons = [r for _, r in refusals.refused]
    assert reasons[0] == "bundle record at offset 1: unsigned"
    assert "unknown key id 'k-old'" in reasons[1] and "bad signature" in reasons[2]
    # Without keys (and without NHIGUARD_REQUIRE_SIGNING) bundles are taken as they come.
    assert BundleFollower(load_settings(env={}), refusals)._verified(value, None, 4)
    with pytest.raises(SigningError, match="NHIGUARD_BUNDLE_KEYS"):
        BundleFollower(load_settings(env={"NHIGUARD_REQUIRE_SIGNING": "1"}), refusals)
