"""The rule index: which events a policy can fire on, so that an event no policy of its plan can apply to is
answered (no findings) without a Rego query, as Falco indexes rules by event type.

Declared in `policies/index.yaml`: per policy id, one condition or a list of them (any one may hold), each
a mapping whose parts must all hold:

    identity.inventory:
      - actions_in_data: nhiguard.params.sensitive_actions
      - facts: {cms.exposed_without_publish: true}
    cms.public_exposure:
      - facts: {cms.publicly_reachable: true}
        nonempty: [cms.restricted_tags]

`actions` are prefixes of the event's action (`startswith`, as the policies test them) and `actions_in_data`
names a list of them in the bundle's data (one of them must match); `facts` map a dotted path into the policy
input to the value the policy requires there (true, false or a string, compared with its type: 1 is not
true); `nonempty` lists paths whose value must be a non-empty string, array or object. A plan (a domain's
query) is indexed only when every policy in it has an entry; a policy without one makes every event of its
plan go to the engine. The anomaly stage is never indexed.

An entry is a promise about the policy's Rego, kept by its author: a necessary condition of every finding.
The policy's cases run through the indexed engine (`nhiguard policy test`), and a parity test decides the
scenario stream and the labelled corpus with and without the index. An index that keeps its promise
changes no decision; one that did not would, so the file is part of the bundle revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INDEX_FILE = "index.yaml"
_KEYS = ("actions", "actions_in_data", "facts", "nonempty")


def _at(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


@dataclass(frozen=True)
class Condition:
    """One way a policy can come to fire: every part must hold."""

    actions: tuple[str, ...] | None = None  # None: any action
    facts: tuple[tuple[tuple[str, ...], bool | str], ...] = ()
    nonempty: tuple[tuple[str, ...], ...] = ()

    def admits(self, pin: dict[str, Any]) -> bool:
        # Plain loops, no generators: this runs for every non-human event.
        if self.actions is not None:
            action = pin.get("action")
            if not isinstance(action, str) or not action.startswith(self.actions):
                return False
        for path, want in self.facts:
            value = _at(pin, path)
            if type(value) is not type(want) or value != want:
                return False
        for path in self.nonempty:
            value = _at(pin, path)
            if not isinstance(value, str | list | dict) or not value:
                return False
        return True


@dataclass(frozen=True)
class Guard:
    """What an event must show for one policy to be able to fire on it: any one of its conditions."""

    conditions: tuple[Condition, ...]

    def admits(self, pin: dict[str, Any]) -> bool:
        return any(c.admits(pin) for c in self.conditions)


def parse_guards(doc: dict[str, Any], data: dict[str, Any], policy_ids: set[str]) -> dict[str, Guard]:
    """policy id -> Guard from index.yaml's mapping; ValueError naming the entry that is wrong."""
    guards = {}
    for pid, entry in doc.items():
        if pid not in policy_ids:
            raise ValueError(f"{pid}: no such policy")
        alternatives = entry if isinstance(entry, list) else [entry]
        if not alternatives:
            raise ValueError(f"{pid}: no condition")
        guards[pid] = Guard(tuple(_condition(pid, c, data) for c in alternatives))
    return guards


def _condition(pid: str, entry: Any, data: dict[str, Any]) -> Condition:
    if not isinstance(entry, dict) or not entry or set(entry) - set(_KEYS):
        raise ValueError(f"{pid}: a condition maps some of {', '.join(_KEYS)}")
    actions = None
    if "actions" in entry or "actions_in_data" in entry:
        actions = _strings(entry.get("actions", []), f"{pid}: actions")
        if "actions_in_data" in entry:
            where = tuple(str(entry["actions_in_data"]).split("."))
            actions += _strings(_at(data, where), f"{pid}: actions_in_data")
    facts = entry.get("facts", {})
    if not isinstance(facts, dict) or any(
        not isinstance(k, str) or not k or not isinstance(v, bool | str) for k, v in facts.items()
    ):
        raise ValueError(f"{pid}: facts map input paths to true, false or a string")
    nonempty = _strings(entry.get("nonempty", []), f"{pid}: nonempty")
    return Condition(
        None if actions is None else tuple(actions),
        tuple((tuple(k.split(".")), v) for k, v in facts.items()),
        tuple(tuple(p.split(".")) for p in nonempty),
    )


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise ValueError(f"{what} must be a list of non-empty strings")
    return list(value)


class RuleIndex:
    """Per plan, the conditions of its policies, flattened (None: not indexed, every event is evaluated)."""

    def __init__(self, plans: dict[str, list[Guard] | None]) -> None:
        self._plans = {
            plan: None if guards is None else tuple(c for g in guards for c in g.conditions)
            for plan, guards in plans.items()
        }

    def applies(self, plan: str, pin: dict[str, Any]) -> bool:
        conditions = self._plans.get(plan)
        if conditions is None:
            return True
        for c in conditions:
            if c.admits(pin):
                return True
        return False

    def split(self, plan: str, inputs: list[dict[str, Any]]) -> list[int]:
        """The indices of the inputs some policy of the plan can fire on (the rest have no findings)."""
        if self._plans.get(plan) is None:
            return list(range(len(inputs)))
        return [i for i, pin in enumerate(inputs) if self.applies(plan, pin)]


def no_index() -> RuleIndex:
    return RuleIndex({})


def answered(
    index: RuleIndex, plan: str, inputs: list[dict[str, Any]], ask: Any
) -> list[list[dict[str, Any]]]:
    """Findings per input: `ask(plan, subset)` for the inputs the index admits, none for the others."""
    asked = index.split(plan, inputs)
    if len(asked) == len(inputs):
        return ask(plan, inputs)
    out: list[list[dict[str, Any]]] = [[] for _ in inputs]
    if asked:
        for i, found in zip(asked, ask(plan, [inputs[i] for i in asked]), strict=True):
            out[i] = found
    return out
