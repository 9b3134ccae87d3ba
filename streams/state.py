"""Durable state for the worker's stateful stage, in Faust tables backed by RocksDB (rocksdict) and
changelog topics.

- `identity-state` (partitioned like the by-identity topic): one value per identity, its facts and its
  behavioural model together.
- `packages` (a global table: every worker reads all of it): facts about a package, which the events of many
  identities read. Each partition writes its own copy (`<package>@<partition>`) and readers merge the copies,
  so a package's facts are one answer however the identities that touch it are spread over partitions.

Writes happen at the commit cadence, not per event: the core returns the state a batch changed, the worker
keeps the latest value per key, and right before Faust commits offsets it (1) delivers the batch outputs,
(2) writes the pending state to the tables and (3) lets Faust deliver the changelog, then commits. So state
reaches its changelog before the input offsets that produced it are committed, and an identity's state is
written at most once per commit however many events it had.
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event

from nhiguard.decision.records import BatchResult


class TableStore:
    """The decision core's StateStore over the worker's tables. Reads see pending (not yet written) state
    first, so an identity evicted from the core's memory and back before the next commit loses nothing."""

    def __init__(self, identity_table: Any, package_table: Any, partitions: int) -> None:
        self.identities = identity_table
        self.packages = package_table
        self.partitions = partitions
        # key -> (value, an event of the partition the key belongs to): written at the next commit
        self._pending_ids: dict[str, tuple[bytes, Any]] = {}
        self._pending_pkgs: dict[str, tuple[bytes, Any]] = {}
        # Taken for the commit in progress and not yet in the tables: still what a read must see.
        self._inflight_ids: dict[str, tuple[bytes, Any]] = {}
        self._inflight_pkgs: dict[str, tuple[bytes, Any]] = {}

    # -- StateStore (called from the core's thread) ------------------------------------------------------
    def identity(self, identity_id: str) -> bytes | None:
        pending = self._pending_ids.get(identity_id) or self._inflight_ids.get(identity_id)
        if pending is not None:
            return pending[0]
        value: bytes | None = self.identities.get(identity_id.encode())
        return value

    def package(self, name: str) -> list[bytes]:
        out = [v for p in range(self.partitions) if (v := self.packages.get(f"{name}@{p}".encode()))]
        pending = self._pending_pkgs.get(name) or self._inflight_pkgs.get(name)
        if pending is not None:
            out.append(pending[0])
        return out

    # -- the worker (event loop) -------------------------------------------------------------------------
    def stage(self, result: BatchResult, events_by_identity: dict[str, Any], any_event: Any) -> None:
        """Keep the state a batch changed until the next commit, with an event to write it under."""
        for identity, value in result.identity_state.items():
            # The record's key is the identity it was routed by; should a newer version derive another id for
            # it, write under an event of the batch rather than stop the worker.
            self._pending_ids[identity] = (value, events_by_identity.get(identity, any_event))
        for name, value in result.package_state.items():
            self._pending_pkgs[name] = (value, any_event)

    def take_pending(self) -> tuple[dict[str, tuple[bytes, Any]], dict[str, tuple[bytes, Any]]]:
        """What the batches staged so far changed: to be written once their outputs are delivered."""
        ids, pkgs = self._pending_ids, self._pending_pkgs
        # In flight first, then cleared: a read from the core thread in between must see one or the other.
        self._inflight_ids, self._inflight_pkgs = ids, pkgs
        self._pending_ids, self._pending_pkgs = {}, {}
        return ids, pkgs

    def write(self, ids: dict[str, tuple[bytes, Any]], pkgs: dict[str, tuple[bytes, Any]]) -> int:
        """Write to the tables (local RocksDB and a changelog record each); returns how many values.

        A Faust table writes to the store and changelog partition of the *current event*; the batch's events
        are no longer current here, so each write runs with the event it was staged with as current."""
        # Packages first: their merges are idempotent, so a kill between the two only repeats them; the
        # other way round, an identity's applied position could cover package facts never written.
        for name, (value, event) in pkgs.items():
            token = _current_event.set(weakref.ref(event))
            try:
                self.packages[f"{name}@{event.message.partition}".encode()] = value
            finally:
                _current_event.reset(token)
        for identity, (value, event) in ids.items():
            token = _current_event.set(weakref.ref(event))
            try:
                self.identities[identity.encode()] = value
            finally:
                _current_event.reset(token)
        self._inflight_ids, self._inflight_pkgs = {}, {}
        return len(ids) + len(pkgs)
