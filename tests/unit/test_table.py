"""The command table the demo and replay print: whole ids on lines of their own, and the evidence."""

from nhiguard.streams import table

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
