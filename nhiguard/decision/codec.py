"""The binary forms of stored state, each with a format version: a worker reads the formats it knows and
refuses any other with an error that names it (it never guesses at state it cannot read).

- Identity state (the decision core's part of an identity's table value; the worker's store layer wraps it
  with its own delivery part, streams/delivery.py), format 2: [u8 2][u32 n][model, n bytes][facts as JSON],
  restricted exposures as minute counts ("xm": [newest minute, [count at newest - i, ...]]) and day counts
  ("xd": [[day, count], ...]). An identity that alerted also has its open alert windows ("w", with the floor
  "wf" and the late windows counted "wl": decision/alert_state.py); a value without them has none. A version
  before them ignores these keys: it reads the facts and model, and forgets the windows.
  Format 1 has the same layout with the exposure *times* ("x") of every default-public upload not tagged
  public, a wider set than restricted exposures: they are not carried over (at most 20 minutes of history,
  which would otherwise count a catalog sync's untagged uploads toward its restricted-exposure windows). The
  first round stored format 1 alone as the table value, with the worker's delivery facts ("a", "o") inside
  the JSON: they are ignored here and read by the store layer.
- Package facts, format 3: [u8 3][facts as JSON]; denied versions map to the grade of their denial, and the
  registry proxy's counts ride along. Installers are listed once each, at their latest install, with the
  first install of the package ("fi"); a value without "fi" listed every install (read: each installer's
  latest, the first install the earliest listed). Either is read by either version (unknown keys ignored).
  Format 2 ([u8 2][JSON]) and format 1 (the JSON alone, beginning with `{`) listed denied versions without a
  grade: they read as denied for compromise (installs are denied, not revoked: a REVOKE needs evidence of
  harm). Who published which version, as notifications named them ("pb"), is written only when known: a
  value without it reads as none known, and a version that does not know the key ignores it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from nhiguard.decision.alert_state import AlertWindows
from nhiguard.decision.identity_state import IdentityFacts, IdentityState
from nhiguard.decision.package_state import AddedBy, LastRelease, PackageFacts, installers
from nhiguard.models.anomaly import Baseline

IDENTITY_FORMAT = 2
IDENTITY_FORMATS = (1, 2)
PACKAGE_FORMAT = 3
_PACKAGE_FORMATS = (2, PACKAGE_FORMAT)  # [u8 n][JSON]; format 1 is the JSON alone
_HEAD = struct.Struct("<BI")  # format, length of the model part


class StateFormatError(ValueError):
    """A stored value in a format this version does not read."""


def encode_identity_state(state: IdentityState) -> bytes:
    model = state.model.to_bytes() if state.model is not None else b""
    f = state.facts
    facts = {
        "xm": _minutes_json(f.exposure_minutes),
        "xd": sorted([d, n] for d, n in f.exposure_days.items()),
        "r": f.revoked,
        "f": f.first_seen_ms,
        "l": f.last_seen_ms,
        "n": f.events,
        **state.alerts.to_json(),
    }
    return _HEAD.pack(IDENTITY_FORMAT, len(model)) + model + json.dumps(facts, separators=(",", ":")).encode()


def decode_identity_state(blob: bytes) -> IdentityState:
    version, n = _HEAD.unpack_from(blob)
    if version not in IDENTITY_FORMATS:
        raise StateFormatError(f"identity state format {version}; this version reads 1 and {IDENTITY_FORMAT}")
    start = _HEAD.size
    model = blob[start : start + n]
    d = json.loads(blob[start + n :])
    minutes, days = (_minutes(d["xm"]), {int(k): int(v) for k, v in d["xd"]}) if version == 2 else ({}, {})
    facts = IdentityFacts(minutes, days, dict(d["r"]), d["f"], d["l"], int(d["n"]))
    return IdentityState(facts, Baseline.from_bytes(model) if model else None, AlertWindows.from_json(d))


def _minutes_json(minutes: dict[int, int]) -> list[Any]:
    # Dense from the newest minute back: at most EXPOSURE_RECENT_MINUTES small numbers, whatever the burst.
    if not minutes:
        return []
    newest = max(minutes)
    return [newest, [minutes.get(newest - i, 0) for i in range(newest - min(minutes) + 1)]]


def _minutes(doc: list[Any]) -> dict[int, int]:
    if not doc:
        return {}
    newest, counts = doc
    return {int(newest) - i: int(c) for i, c in enumerate(counts) if c}


def package_json(facts: PackageFacts) -> dict[str, Any]:
    named = {"pb": dict(sorted(facts.publishers.items()))} if facts.publishers else {}
    return {
        "r": facts.last_release.record() if facts.last_release else None,
        "rt": facts.last_release_ms,
        "c": facts.created_ms,
        "d": dict(sorted(facts.denied.items())),
        "i": {v: [list(x) for x in xs] for v, xs in sorted(facts.installs.items())},
        "a": None if facts.added_by is None else list(_added_by(facts.added_by)),
        "v": facts.vouched_ms,
        "p": facts.proxy_publishes,
        "t": facts.top,
        "n": facts.new_tops,
        "u": sorted(facts.unvouched),
        "fi": facts.first_installed_ms,
    } | named


def _added_by(a: AddedBy) -> tuple[str, str, int]:
    return a.version, a.grade, a.at_ms


def encode_package_state(facts: PackageFacts) -> bytes:
    return bytes((PACKAGE_FORMAT,)) + json.dumps(package_json(facts), separators=(",", ":")).encode()


def decode_package_state(blob: bytes) -> PackageFacts:
    if blob[:1] == b"{":
        d = json.loads(blob)  # format 1
    elif blob[:1] and blob[0] in _PACKAGE_FORMATS:
        d = json.loads(blob[1:])
    else:
        found = blob[0] if blob else "empty"
        raise StateFormatError(f"package state format {found}; this version reads 1 to {PACKAGE_FORMAT}")
    raw = {v: [(str(w), int(t)) for w, t in xs] for v, xs in d["i"].items()}
    # Before "fi" an install was listed each time (the first: the earliest listed); now each installer once.
    first = d.get("fi", min((t for xs in raw.values() for _, t in xs), default=None))
    installs = {v: installers(xs) for v, xs in raw.items() if xs}
    release = LastRelease(**d["r"]) if d["r"] else None
    denied = d["d"] if isinstance(d["d"], dict) else dict.fromkeys(d["d"], "compromise")
    added = d.get("a")
    return PackageFacts(
        release,
        int(d["rt"]),
        d["c"],
        {str(v): str(g) for v, g in denied.items()},
        installs,
        AddedBy(str(added[0]), str(added[1]), int(added[2])) if added else None,
        int(d.get("v", -1)),
        int(d.get("p", 0)),
        d.get("t"),
        int(d.get("n", 0)),
        set(d.get("u", ())),
        first,
        {str(v): str(w) for v, w in d.get("pb", {}).items()},
    )
