"""The ledger enforcement points keep of what they did once: read back after a restart, and a last line a
crash cut short neither swallows the next entry nor counts unless its key is whole."""

from __future__ import annotations

from pathlib import Path

from nhiguard.ledger import Ledger


def test_entries_are_read_back_by_their_key(tmp_path: Path):
    path = tmp_path / "state" / "ledger"
    first = Ledger(path, key_fields=2)
    first.add("receiver-a", "jti-1", "acknowledged")
    again = Ledger(path, key_fields=2)
    assert again.done("receiver-a", "jti-1") and not again.done("receiver-b", "jti-1")


def test_a_line_cut_short_by_a_crash_does_not_swallow_the_next_entry(tmp_path: Path):
    path = tmp_path / "ledger"
    path.write_text("cmd-1\ttarget\t2026-11-30T12:00:00Z\ncmd-2\ttar")  # cut after cmd-2's key
    ledger = Ledger(path)
    assert ledger.done("cmd-1") and ledger.done("cmd-2")
    ledger.add("cmd-3", "target")
    assert Ledger(path).done("cmd-3")
    path.write_text("cmd-1\ttarget\t2026-11-30T12:00:00Z\ncmd-")  # cut inside a key: that key is not done
    assert not Ledger(path).done("cmd-")
