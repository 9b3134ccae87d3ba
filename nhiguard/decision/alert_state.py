"""An identity's open alert windows: part of its stored state, so a restarted worker grows the same alerts.

One window per (rule, window start): the events of the identity that rule fired for within one event-time
window (decision/alerts.py says what an alert is made of). Kept with the identity's facts and model in its
table value (decision/codec.py), written by the `Alerted` effect like any other state.

Bound: MAX_WINDOWS per identity; beyond it the window with the oldest start goes (never the one an event just
grew), and `floor_ms` remembers the newest start forgotten. An event of a window that is not held and starts
at or below the floor may belong to a window already alerted on and forgotten: it opens a *late* window, whose
alert id carries its number (the identity's n-th late window), so it can never replace the alert already sent
under the window's own id with a smaller count. Within a window: the first MAX_IDS decision and command ids
(the totals are counted), and evidence values up to EVIDENCE_VALUES a key and EVIDENCE_CHARS in all (each
one left out is counted under `<key>_more`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_WINDOWS = 16
MAX_IDS = 10
EVIDENCE_VALUES = 10
EVIDENCE_CHARS = 1024
MORE = "_more"
# The strongest verdict of a window's events is the alert's (a shadow or waived finding's is its mode).
VERDICT_RANK = {"ALLOW": 0, "WAIVED": 1, "SHADOW": 2, "DENY": 3, "REVOKE": 4, "HELD": 5}

Evidence = dict[str, list[str]]


@dataclass
class AlertWindow:
    rule: str
    start_ms: int
    late: int = 0  # 0, or n: the identity's n-th window opened at or below its floor
    count: int = 0  # events (decisions) in the window
    first_ms: int = 0  # the earliest event time, and that event
    first_event: str = ""
    last_ms: int = 0  # the latest event time, and that event
    last_event: str = ""
    verdict: str = "ALLOW"
    decision_ids: list[str] = field(default_factory=list)  # the first MAX_IDS
    command_ids: list[str] = field(default_factory=list)  # the first MAX_IDS ...
    commands: int = 0  # ... of this many
    evidence: Evidence = field(default_factory=dict)

    def grow(
        self, at_ms: int, event_id: str, decision_id: str, verdict: str, commands: tuple[str, ...]
    ) -> None:
        """One more event: ties keep the first event seen for the earliest time, the last for the latest."""
        if self.count == 0 or at_ms < self.first_ms:
            self.first_ms, self.first_event = at_ms, event_id
        if self.count == 0 or at_ms >= self.last_ms:
            self.last_ms, self.last_event = at_ms, event_id
        self.count += 1
        if VERDICT_RANK.get(verdict, 0) > VERDICT_RANK.get(self.verdict, 0):
            self.verdict = verdict
        if len(self.decision_ids) < MAX_IDS:
            self.decision_ids.append(decision_id)
        self.command_ids += commands[: MAX_IDS - len(self.command_ids)]
        self.commands += len(commands)

    def absorb(self, evidence: Evidence) -> None:
        """Add evidence values not held yet, first seen first, within the bounds; count each left out."""
        held = sum(len(v) for k, vs in self.evidence.items() if not k.endswith(MORE) for v in vs)
        for key, values in evidence.items():
            if key.endswith(MORE):
                self._left_out(key[: -len(MORE)], sum(int(v) for v in values if v.isdigit()))
                continue
            mine = self.evidence.get(key, [])
            for v in values:
                if v in mine:
                    continue
                if len(mine) >= EVIDENCE_VALUES or held + len(v) > EVIDENCE_CHARS:
                    self._left_out(key, 1)
                    continue
                mine.append(v)
                held += len(v)
                self.evidence[key] = mine

    def _left_out(self, key: str, n: int) -> None:
        if n > 0:
            before = self.evidence.get(key + MORE, ["0"])[0]
            self.evidence[key + MORE] = [str(int(before) + n)]

    def to_json(self) -> list[Any]:
        return [
            self.rule,
            self.start_ms,
            self.late,
            self.count,
            self.first_ms,
            self.first_event,
            self.last_ms,
            self.last_event,
            self.verdict,
            self.decision_ids,
            self.command_ids,
            self.commands,
            self.evidence,
        ]

    @classmethod
    def from_json(cls, doc: list[Any]) -> AlertWindow:
        rule, start, late, count, first_ms, first, last_ms, last, verdict, dids, cids, commands, ev = doc
        evidence = {str(k): [str(v) for v in vs] for k, vs in ev.items()}
        return cls(
            str(rule),
            int(start),
            int(late),
            int(count),
            int(first_ms),
            str(first),
            int(last_ms),
            str(last),
            str(verdict),
            [str(i) for i in dids],
            [str(i) for i in cids],
            int(commands),
            evidence,
        )


@dataclass
class AlertWindows:
    """An identity's alert windows, by (rule, window start)."""

    windows: dict[tuple[str, int], AlertWindow] = field(default_factory=dict)
    floor_ms: int | None = None  # the newest window start forgotten (the bound)
    late: int = 0  # late windows opened so far

    def find(self, rule: str, start_ms: int) -> AlertWindow | None:
        return self.windows.get((rule, start_ms))

    def window(self, rule: str, start_ms: int) -> AlertWindow:
        """The window an event of `rule` in the window starting at `start_ms` grows: held, or opened (late
        when it starts at or below the floor)."""
        w = self.windows.get((rule, start_ms))
        if w is None:
            late = 0
            if self.floor_ms is not None and start_ms <= self.floor_ms:
                self.late += 1
                late = self.late
            w = self.windows[(rule, start_ms)] = AlertWindow(rule, start_ms, late)
        return w

    def bound(self, keep: AlertWindow) -> None:
        """Forget the oldest windows beyond MAX_WINDOWS, never `keep` (the one an event just grew)."""
        while len(self.windows) > MAX_WINDOWS:
            key = min((k for k, w in self.windows.items() if w is not keep), key=lambda k: (k[1], k[0]))
            del self.windows[key]
            self.floor_ms = key[1] if self.floor_ms is None else max(self.floor_ms, key[1])

    def to_json(self) -> dict[str, Any]:
        """Empty for an identity that never alerted (its value stays as it was)."""
        if not self.windows and self.floor_ms is None:
            return {}
        return {"w": [w.to_json() for w in self.windows.values()], "wf": self.floor_ms, "wl": self.late}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AlertWindows:
        windows = [AlertWindow.from_json(w) for w in doc.get("w", ())]
        floor = doc.get("wf")
        return cls(
            {(w.rule, w.start_ms): w for w in windows},
            None if floor is None else int(floor),
            int(doc.get("wl", 0)),
        )
