"""The state the decision core reads and `apply` writes: per identity and per package, behind a store.

Without a store everything stays in memory (replays, tests). With one (the worker's tables), a key is read
from it on first use, `take_changed` returns the values a batch changed for the worker to write, and the least
recently used keys beyond the cache size are dropped from memory (read back on next use).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from nhiguard.decision.breaker import BreakerWindow, RevokesCounted, decode_window, encode_window
from nhiguard.decision.codec import (
    decode_identity_state,
    decode_package_state,
    encode_identity_state,
    encode_package_state,
)
from nhiguard.decision.context import Identities
from nhiguard.decision.effects import Effect, IdentityEffect
from nhiguard.decision.identity_state import IdentityFacts, IdentityState
from nhiguard.decision.package_state import PackageFacts


class StateStore(Protocol):
    """Where state lives between batches and across restarts (the worker's tables): one value per identity
    (decision/codec.py), and per package the copies every partition wrote. A store may also have
    `breaker() -> list[bytes]`, every partition's copy of the REVOKE circuit breaker's window
    (decision/breaker.py); without it the window is kept in memory only."""

    def identity(self, identity_id: str) -> bytes | None: ...

    def package(self, name: str) -> list[bytes]: ...


class State:
    def __init__(self, store: StateStore | None = None, max_cached: int = 200_000) -> None:
        self._store = store
        self._max_cached = max_cached
        self._identities: OrderedDict[str, IdentityState] = OrderedDict()  # least recently used first
        self._packages: OrderedDict[str, PackageFacts] = OrderedDict()
        self._changed_identities: set[str] = set()
        self._changed_packages: set[str] = set()
        self._breaker = BreakerWindow()
        self._breaker_read = False  # the store's copies merged in since the last batch
        self._breaker_changed = False

    def identity(self, identity_id: str) -> IdentityState:
        state = self._identities.get(identity_id)
        if state is None:
            blob = self._store.identity(identity_id) if self._store is not None else None
            state = IdentityState() if blob is None else decode_identity_state(blob)
            self._identities[identity_id] = state
        else:
            self._identities.move_to_end(identity_id)
        return state

    def package(self, name: str) -> PackageFacts:
        facts = self._packages.get(name)
        if facts is None:
            facts = PackageFacts()
            for blob in self._store.package(name) if self._store is not None else ():
                facts.merge(decode_package_state(blob))
            self._packages[name] = facts
        else:
            self._packages.move_to_end(name)
        return facts

    def breaker(self) -> BreakerWindow:
        """The REVOKE circuit breaker's window, with every partition's stored copy merged in once per batch
        (other workers' revokes reach this one through the store)."""
        read = getattr(self._store, "breaker", None)
        if read is not None and not self._breaker_read:
            for blob in read():
                self._breaker.merge(decode_window(blob))
            self._breaker_read = True
        return self._breaker

    def apply(self, effects: Iterable[Effect | RevokesCounted]) -> None:
        """The one writer: each effect to its key, in order."""
        for e in effects:
            if isinstance(e, IdentityEffect):
                if e.apply(self.identity(e.identity)):
                    self._changed_identities.add(e.identity)
            elif isinstance(e, RevokesCounted):
                self._breaker_changed |= e.apply(self.breaker())
            elif e.apply(self.package(e.package)):
                self._changed_packages.add(e.package)

    def take_changed(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """The values changed since the last call, as stored (nothing without a store)."""
        ids, pkgs = self._changed_identities, self._changed_packages
        self._changed_identities, self._changed_packages = set(), set()
        if self._store is None:
            return {}, {}
        return (
            {i: encode_identity_state(self._identities[i]) for i in ids},
            {name: encode_package_state(self._packages[name]) for name in pkgs},
        )

    def take_breaker(self) -> bytes | None:
        """The breaker's window as stored, if it changed since the last call (None without a store)."""
        changed, self._breaker_changed, self._breaker_read = self._breaker_changed, False, False
        return encode_window(self._breaker) if changed and self._store is not None else None

    def evict(self) -> None:
        """Drop the least recently used keys beyond the cache size (with a store only: without one, memory is
        all there is). Call after `take_changed`."""
        if self._store is None:
            return
        while len(self._identities) > self._max_cached:
            self._identities.popitem(last=False)
        while len(self._packages) > self._max_cached:
            self._packages.popitem(last=False)

    def clear(self) -> None:
        """Forget what is in memory (read back from the store on next use); a no-op without a store."""
        if self._store is not None:
            self._identities.clear()
            self._packages.clear()
            self._breaker, self._breaker_read = BreakerWindow(), False

    @property
    def cached(self) -> tuple[int, int]:
        """(identities, packages) held in memory."""
        return len(self._identities), len(self._packages)


class StateView:
    """The state as the next event of a wave sees it during enrichment: what is applied, plus what the wave's
    earlier events observed (their effects reach the state in `apply`, after their decisions). Never writes
    the state: the observations go to copies of the keys they touch."""

    def __init__(self, state: State, inventory: Identities) -> None:
        self._state = state
        self._inventory = inventory
        self._identities: dict[str, IdentityState] = {}
        self._packages: dict[str, PackageFacts] = {}

    def identity(self, identity_id: str) -> IdentityFacts:
        return self._identity(identity_id).facts

    def package(self, name: str) -> PackageFacts:
        facts = self._packages.get(name)
        if facts is None:
            facts = self._packages[name] = self._state.package(name).copy()
        return facts

    def known(self, identity_id: str) -> bool:
        """Whether the inventory has the identity."""
        return self._inventory.get(identity_id) is not None

    def observe(self, effects: Iterable[Effect]) -> None:
        for e in effects:
            if isinstance(e, IdentityEffect):
                e.apply(self._identity(e.identity))
            else:
                e.apply(self.package(e.package))

    def _identity(self, identity_id: str) -> IdentityState:
        state = self._identities.get(identity_id)
        if state is None:
            # Facts only: nothing learns during enrichment.
            state = IdentityState(self._state.identity(identity_id).facts.copy())
            self._identities[identity_id] = state
        return state
