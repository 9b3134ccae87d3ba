"""`nhiguard replay` and its file format: the generator writes what the product reads, byte for byte."""

import pytest

from nhiguard.streams.cli import main
from nhiguard.streams.replayfile import ReplayFileError, ReplayRecord, read_replay, write_replay
from tools.scenarios import default_params, generate, write_inventory, write_ndjson


@pytest.mark.parametrize(
    "value",
    [b"{oops", b'"just a string"', b'{"a": 1}', b"\xff\xfe\x00", b"", b"[1,2]", b"7", b'"\xe2\x80\xa8"'],
)
def test_odd_values_come_back_byte_for_byte(value, tmp_path):
    rec = ReplayRecord("audit.ci", None, value, (("X-GitHub-Event", b"push"),), 1)
    path = tmp_path / "odd.ndjson"
    write_replay([rec, rec], path)
    assert read_replay(path) == [rec, rec]


def test_a_line_that_is_not_a_record_names_its_file_and_line(tmp_path):
    path = tmp_path / "bad.ndjson"
    good = '{"topic":"audit.ci","key":null,"headers":{},"value":{"a":1},"timestamp_ms":1}'
    for bad, reason in [
        ("{oops", "not a replay record"),
        ('{"topic":"audit.ci","value":1}', "missing field 'timestamp_ms'"),
        ('{"topic":"audit.ci","value_base64":"***","timestamp_ms":1}', "not a replay record"),
        ("[1]", "expected a JSON object"),
    ]:
        path.write_text(f"{good}\n\n{bad}\n")
        with pytest.raises(ReplayFileError, match=rf"bad\.ndjson:3: .*{reason}"):
            read_replay(path)
    path.write_text(good)
    assert read_replay(path)[0].label is None  # a label is optional: recordings of real traffic have none


def test_replay_prints_the_commands_for_the_incident_stream(tmp_path, capsys):
    params = default_params()
    write_ndjson(generate(params, ordinary=50), tmp_path / "s.ndjson")
    write_inventory(params, tmp_path / "ids.yaml")
    assert main(["replay", str(tmp_path / "s.ndjson"), "--identities", str(tmp_path / "ids.yaml")]) == 0
    out = capsys.readouterr().out
    # A block per command: "date time KIND policy reasons", then identity, target, evidence, command id.
    commands = {
        (line.split()[2], line.split()[3])
        for line in out.splitlines()
        if line[:4].isdigit() and (" DENY " in line or " REVOKE " in line)
    }
    assert {p for _, p in commands} == {
        "cms.public_exposure",
        "ci.release_artifacts",
        "registry.publisher_integrity",
    }
    assert {k for k, _ in commands} == {"DENY", "REVOKE"}
    assert "dead letters: {}" in out
    # Whole ids, never cut (the first round cut identities at 44 characters).
    assert "identity github:acme/cli/.github/workflows/release.yml\n" in out
    assert "identity contentful:k8x2qv7m3np1/AppDefinition/asset-sync\n" in out
    assert "…" not in out


def test_replay_of_an_unreadable_line_names_it_and_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "bad.ndjson").write_text("{oops\n")
    assert main(["replay", str(tmp_path / "bad.ndjson")]) == 0  # a dead letter, not an abort
    out = capsys.readouterr().out
    assert "dead letters: {'malformed_json': 1}" in out and "unread: " in out and "bad.ndjson:1" in out
    assert main(["replay", str(tmp_path / "missing.ndjson")]) == 2
    assert "No such file" in capsys.readouterr().err
