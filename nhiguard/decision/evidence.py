"""Evidence: what an analyst acts on, as named lists of strings, on every finding, command and alert.

Built in Python from the event's typed facts (`EventFacts.evidence()`: the file, tag, dependency, version,
publisher) plus who acted, on what, and for the anomaly stage the features that fired. Never from a string a
policy returns: regopy emits input strings unescaped, so a policy's reason cannot carry them; here they are
copied from the typed facts, and they leave as Avro strings (length-prefixed: escaped by construction).

A policy finding may say which evidence is relevant:
- `"show": ["files", "tag"]`: only these keys (default: every key of its family's evidence);
- `"select": {"files": [3]}`: only these items of a list, by index into the policy input's list of the same
  name (`release.files`, `cms.tags`, `publish.added_dependencies`, ...). Indices are numbers: no string
  leaves the policy.
A policy's strings are only compared with nhiguard's own keys, never copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nhiguard.decision.records import CanonicalEvent, Evidence
from nhiguard.models.anomaly import ANOMALY_THRESHOLD, Score

MAX_VALUES = 20  # per key: the decision record carries the whole event for the rest
MAX_CHARS = 512  # per value
MORE = "_more"  # "<key>_more": how many values of <key> were left out (at least)


def of_event(ev: CanonicalEvent, score: Score | None = None) -> Evidence:
    """Every piece of evidence the event offers (empty values left out); with `score`, the anomaly features
    that fired (at or above the model's threshold; at least the strongest)."""
    out: Evidence = {"identity": [ev.actor.id], "resource": [f"{ev.resource_type}:{ev.resource_id}"]}
    if ev.facts is not None:
        out.update(ev.facts.evidence())
    if score is not None and score.features:
        ranked = sorted(score.features.items(), key=lambda kv: (-kv[1], kv[0]))
        fired = [kv for kv in ranked if kv[1] >= ANOMALY_THRESHOLD] or ranked[:1]
        out["anomaly_features"] = [f"{k}={v:.3f}" for k, v in fired[:5]]
    return {k: [str(v) for v in vs] for k, vs in out.items() if any(str(v) for v in vs)}


def for_finding(raw: Mapping[str, Any], full: Evidence) -> Evidence:
    """The evidence one engine finding names (`show`, `select`), capped."""
    show = raw.get("show")
    keys = [k for k in full if k in show] if isinstance(show, list) else list(full)
    select = raw.get("select") if isinstance(raw.get("select"), dict) else {}
    out: Evidence = {}
    for k in keys:
        values = full[k]
        picked = select.get(k)
        if isinstance(picked, list):
            idx = [i for i in picked if type(i) is int and 0 <= i < len(values)]  # numbers only, not bool
            values = [values[i] for i in dict.fromkeys(idx)]
        out.update(_capped(k, values))
    return out


def merge(evidences: Iterable[Evidence]) -> Evidence:
    """The union of several findings' evidence (for a command or an alert), each key's values in first-seen
    order, capped."""
    values: dict[str, dict[str, None]] = {}
    more: dict[str, int] = {}
    for ev in evidences:
        for k, vs in ev.items():
            if k.endswith(MORE):
                more[k] = max(more.get(k, 0), *(int(v) for v in vs if v.isdigit()))
            else:
                values.setdefault(k, {}).update(dict.fromkeys(vs))
    out: Evidence = {}
    for k, vs in values.items():
        out.update(_capped(k, list(vs), more.get(k + MORE, 0)))
    return out


def _capped(key: str, values: list[str], left_out: int = 0) -> Evidence:
    if not values:
        return {}
    kept = [v if len(v) <= MAX_CHARS else v[: MAX_CHARS - 1] + "…" for v in values[:MAX_VALUES]]
    left_out += max(0, len(values) - MAX_VALUES)
    return {key: kept, key + MORE: [str(left_out)]} if left_out else {key: kept}
