"""What an enforcement point did once and must never do again: an append-only file of tab-separated lines,
each synced to disk before the caller commits past the record that asked for it (so a crash in between
repeats nothing: the line is there, the record is redelivered and found done). `nhiguard enforce verdaccio`
keeps the command ids it applied in one; the SSF transmitter, which receiver answered which SET."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Ledger:
    """Lines `<key fields…>\\t<more fields…>\\t<at>`; a line is done by its first `key_fields` fields."""

    def __init__(self, path: Path, key_fields: int = 1) -> None:
        self.path, self._n = path, key_fields
        try:
            text = path.read_bytes().decode("utf-8") if path.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise OSError(f"cannot read {path}: {exc}") from None
        lines = text.splitlines()
        # A line is written after what it records was done; one a crash cut short counts only if its key is
        # whole (a tab after it), and the next line starts on a line of its own.
        self._done = {
            tuple(line.split("\t", key_fields)[:key_fields])
            for line in lines
            if line.count("\t") >= key_fields
        }
        self._newline = bool(text) and not text.endswith("\n")

    def done(self, *key: str) -> bool:
        return key in self._done

    def add(self, *fields: str) -> None:
        """Record the key (the first fields) as done, with the other fields and the time, synced."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.path.open("a", encoding="utf-8") as f:
            f.write(("\n" if self._newline else "") + "\t".join((*fields, at)) + "\n")
            self._newline = False
            f.flush()
            os.fsync(f.fileno())
        self._done.add(tuple(fields[: self._n]))
