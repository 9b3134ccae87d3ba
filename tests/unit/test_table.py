"""The command table the demo, replay and `nhiguard commands held` print: whole ids, the evidence, and for a
held command how to release it; `nhiguard commands release` needs ids or --all."""

from nhiguard.streams import table
from nhiguard.streams.cli import main

LONG_ID = "github:a-very-long-organisation-name/with-a-long-repository/.github/workflows/release-to-npm.yml"


def command(**kw):
    return {
        "command_id": "0123456789abcdef0123456789abcdef",
        "kind": "REVOKE",
        "identity": LONG_ID,
        "target_type": "credential",
        "target": "npm-token:" + "x" * 80,
        "reasons": ["installed a version that was already denied"],
        "policy_ids": ["registry.publisher_integrity"],
        "issued_at": 1_774_916_549_000,
        "evidence": {
            "identity": [LONG_ID],
            "package": ["reqflow"],
            "files": list("abcdefg"),
            "files_more": ["3"],
        },
        **kw,
    }


def test_ids_are_whole_and_on_lines_of_their_own():
    out = table.row(command())
    lines = out.splitlines()
    assert lines[0].startswith("2026-03-31 00:22:29  REVOKE   registry.publisher_integrity")
    assert f"identity {LONG_ID}" in out and "x" * 80 in out
    assert "command  0123456789abcdef0123456789abcdef" in out
    assert "files=a, b, c, d, e (+5 more)" in out and "package=reqflow" in out
    assert LONG_ID not in out.split("evidence", 1)[1]  # the identity is not repeated as evidence
    # Wrapped between words; a line is longer only to hold one id whole (its label and the id).
    assert all(len(line) <= table.WIDTH or len(line.split()) <= 2 for line in lines[1:])


def test_a_held_command_says_why_and_how_to_release_it():
    out = table.row(
        command(status="HELD", held_reason="circuit breaker: 11 REVOKEs within 60 min (limit 10)")
    )
    flat = " ".join(out.split())
    assert (
        "HELD circuit breaker: 11 REVOKEs within 60 min (limit 10); release: nhiguard commands release "
        "0123456789abcdef0123456789abcdef" in flat
    )
    released = table.row(command(status="RELEASED", released_by="alice\x1b]0;pwned\x07", released_at=0))
    assert "RELEASED by alice\\x1b]0;pwned\\x07 at 1970-01-01 00:00:00 UTC" in " ".join(released.split())


def test_release_needs_ids_or_all(capsys):
    assert main(["commands", "release"]) == 2
    assert main(["commands", "release", "abc", "--all"]) == 2
    assert "give command ids, or --all" in capsys.readouterr().err
