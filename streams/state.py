"""Durable state for the worker's stateful stage, in Faust tables backed by RocksDB (rocksdict) and
changelog topics.

- `identity-state` (partitioned like the by-identity topic): one value per identity, its facts and its
  behavioural model together.
- `packages` (a global table: every worker reads all of it): facts about a package, which the events of many
  identities read. Each partition writes its own copy (`<package>@<partition>`) and readers merge the copies,
  so a package's facts are one answer however the identities that touch it are spread over partitions.
  The REVOKE circuit breaker's window (nhiguard/decision/breaker.py) is kept there too, the same way, under
  `nhiguard:breaker#<partition>` (a package's keys end in `@<partition>`: no package can take that key).

Writes happen at the commit cadence, not per event: the core returns the state a batch changed, the worker
keeps the latest value per key, and right before Faust commits offsets it (1) delivers the batch outputs,
(2) writes the pending state to the tables and (3) lets Faust deliver the changelog, then commits. So state
reaches its changelog before the input offsets that produced it are committed, and an identity's state is
written at most once per commit however many events it had.

Redelivery is this stage's business, not the pure core's (replays, tests and the gate have no positions):
`StatefulStage` skips the records whose effects the state already holds and decides the rest through the
core. What it needs to tell them apart (per source partition, the highest source offset applied: its
watermarks) is kept in the SAME table value as the identity's facts and model, so that a record's effects and
the note that it was applied reach the changelog as one record (two values could be split by a kill: a record
applied twice, or never). The value is an envelope owned by this layer: its format, the watermarks and their
bound are in streams/delivery.py.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any

from faust.streams import _current_event

from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import BatchResult, CanonicalEvent, DeadLetter, RawRecord
from nhiguard.streams.delivery import APPLIED, REORDERED, Delivery, decode_value, encode_value


def breaker_key(partition: int) -> bytes:
    return f"nhiguard:breaker#{partition}".encode()


class TableStore:
    """The decision core's StateStore over the worker's tables, and the owner of the identity value's
    envelope. Reads see pending (not yet written) state first, so an identity evicted from memory and back
    before the next commit loses nothing."""

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
        # The breaker's window, the same way (one value: the latest a batch returned).
        self._pending_breaker: tuple[bytes, Any] | None = None
        self._inflight_breaker: tuple[bytes, Any] | None = None

    # -- StateStore (called from the core's thread) ------------------------------------------------------
    def identity(self, identity_id: str) -> bytes | None:
        """The core's part of the identity's value."""
        value = self._value(identity_id)
        return None if value is None else decode_value(value)[0]

    def delivery(self, identity_id: str) -> Delivery | None:
        """The stage's part of the identity's value."""
        value = self._value(identity_id)
        return None if value is None else decode_value(value)[1]

    def _value(self, identity_id: str) -> bytes | None:
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

    def breaker(self) -> list[bytes]:
        """Every partition's copy of the breaker's window, and this worker's own not yet written."""
        out = [v for p in range(self.partitions) if (v := self.packages.get(breaker_key(p)))]
        pending = self._pending_breaker or self._inflight_breaker
        return [*out, pending[0]] if pending is not None else out

    # -- the worker (event loop) -------------------------------------------------------------------------
    def stage(self, result: BatchResult, events_by_identity: dict[str, Any], any_event: Any) -> None:
        """Keep the state a batch changed until the next commit, with an event to write it under."""
        for identity, value in result.identity_state.items():
            # The record's key is the identity it was routed by; should a newer version derive another id for
            # it, write under an event of the batch rather than stop the worker.
            self._pending_ids[identity] = (value, events_by_identity.get(identity, any_event))
        for name, value in result.package_state.items():
            self._pending_pkgs[name] = (value, any_event)
        if result.breaker_state is not None:
            self._pending_breaker = (result.breaker_state, any_event)

    def take_pending(self) -> tuple[dict[str, tuple[bytes, Any]], dict[str, tuple[bytes, Any]]]:
        """What the batches staged so far changed: to be written once their outputs are delivered."""
        ids, pkgs = self._pending_ids, self._pending_pkgs
        # In flight first, then cleared: a read from the core thread in between must see one or the other.
        self._inflight_ids, self._inflight_pkgs = ids, pkgs
        self._inflight_breaker = self._pending_breaker  # written by the next `write`, with these
        self._pending_ids, self._pending_pkgs, self._pending_breaker = {}, {}, None
        return ids, pkgs

    def write(self, ids: dict[str, tuple[bytes, Any]], pkgs: dict[str, tuple[bytes, Any]]) -> int:
        """Write to the tables (local RocksDB and a changelog record each); returns how many values.

        A Faust table writes to the store and changelog partition of the *current event*; the batch's events
        are no longer current here, so each write runs with the event it was staged with as current."""
        # Packages (and the breaker's window) first: their merges are idempotent, so a kill between the two
        # only repeats them; the other way round, an identity's applied position could cover package facts
        # never written.
        for name, (value, event) in pkgs.items():
            _write_as(event, self.packages, f"{name}@{event.message.partition}".encode(), value)
        breaker = self._inflight_breaker
        if breaker is not None:
            _write_as(breaker[1], self.packages, breaker_key(breaker[1].message.partition), breaker[0])
        for identity, (value, event) in ids.items():
            _write_as(event, self.identities, identity.encode(), value)
        self._inflight_ids, self._inflight_pkgs, self._inflight_breaker = {}, {}, None
        return len(ids) + len(pkgs) + (breaker is not None)


def _write_as(event: Any, table: Any, key: bytes, value: bytes) -> None:
    """Write with `event` as the current event: the table's store and changelog partition are its own."""
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)


class StatefulStage:
    """The worker's stateful stage: skips the records whose effects the state already holds (redelivered
    after a restart, or forwarded twice by the routing stage), decides the rest through the pure core, and
    returns the batch result with each changed identity's table value (core part and delivery part) for
    `TableStore.stage`. Thread-safe: called from an executor thread."""

    def __init__(self, core: DecisionCore, store: TableStore, max_cached: int = 200_000) -> None:
        self.core = core
        self.store = store
        self.max_cached = max_cached
        self._delivery: OrderedDict[str, Delivery] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def process(self, records: list[RawRecord]) -> BatchResult:
        with self._lock:
            return self._process(records)

    def drop_cached(self) -> None:
        """Forget what is held in memory (read back from the store on next use): for a rebalance, after
        which another worker may own, and advance, these identities."""
        with self._lock:
            self._delivery.clear()
            self.core.drop_cached_state()

    def _process(self, records: list[RawRecord]) -> BatchResult:
        kept: list[tuple[RawRecord, CanonicalEvent | DeadLetter]] = []
        skipped: list[tuple[str, int, int]] = []
        reordered: list[tuple[str, int, int]] = []
        for rec in records:
            ev = self.core.read(rec)
            if isinstance(ev, CanonicalEvent) and rec.position >= 0 and not ev.actor.human:
                # The watermark moves now, not after the core: a second forward in the same batch is skipped.
                seen = self._get(ev.actor.id).judge(rec)
                if seen == APPLIED:
                    # Forwarded twice, or redelivered after a restart or rebalance: its effects are in the
                    # state and its outputs delivered or on their way. Deciding it again would apply it twice
                    # (and score it against its own learning).
                    skipped.append((rec.topic, rec.partition, rec.offset))
                    continue
                if seen == REORDERED:
                    reordered.append((rec.topic, rec.partition, rec.offset))
            kept.append((rec, ev))
        result = self.core.process_read(kept)
        # The core changes only the identities whose records it decided (read above, but for a record
        # without a position): each value goes out with its delivery part.
        result.identity_state = {
            who: encode_value(core, self._get(who)) for who, core in result.identity_state.items()
        }
        result.skipped, result.skipped_records = len(skipped), skipped
        result.reordered, result.reordered_records = len(reordered), reordered
        while len(self._delivery) > self.max_cached:
            self._delivery.popitem(last=False)
        return result

    def _get(self, identity: str) -> Delivery:
        mine = self._delivery.get(identity)
        if mine is None:
            mine = self.store.delivery(identity) or Delivery()
            self._delivery[identity] = mine
        else:
            self._delivery.move_to_end(identity)
        return mine
