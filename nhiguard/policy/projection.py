"""Input projection: only the parts of a policy input that a plan's policies read reach the engine.

regopy converts an input into its own terms node by node from Python (`set_input`), in proportion to the
input's size, whatever the policies read (in the worker this happens in the pool's child: pickling the whole
input there costs about as much as projecting it first). The fields a plan reads are derived from its modules'
Rego: every `ev.a.b` reference keeps `a.b` whole (and so everything below it), and a static path ends where
the Rego indexes dynamically (`ev.release.files[i]` keeps `release.files`). Nothing else of the input is
sent; a key missing from the input stays missing.

The derivation holds only while the event is read through the name `ev`. A bare `ev` anywhere but as a
parameter, or as an argument in the same position of a function of the same module whose definitions name
that parameter `ev` or ignore it (`_`), makes the plan unprojectable (`x := ev`, `ev[k]`, `object.keys(ev)`,
`f(ev)` with `f(e)`), and so does any use of `input`: its inputs then go whole, as before. The policies'
cases run through the projecting engine (`nhiguard policy test`), and a parity test decides the scenario
stream and the labelled corpus with and without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_REF = re.compile(r"\bev((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
_BARE = re.compile(r"\bev\b(?!\s*\.)")
_INPUT = re.compile(r"\binput\b")
_DEF = re.compile(r"^([a-z_][a-z0-9_]*)\(([^)]*)\)", re.M)
_CALLEE = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*$")

# A tree of the fields to keep: True keeps the value whole; a dict keeps those keys of an object.
Tree = dict[str, Any]


def _code(source: str) -> str:
    """Rego without comments (strings are kept: a path named in one only keeps more)."""
    return "\n".join(line.split("#", 1)[0] for line in source.splitlines())


def _params(code: str) -> dict[str, list[list[str]]]:
    """Each function's parameter lists, one per definition."""
    out: dict[str, list[list[str]]] = {}
    for name, params in _DEF.findall(code):
        out.setdefault(name, []).append([p.strip() for p in params.split(",")])
    return out


def _call_position(code: str, at: int) -> tuple[str, int] | None:
    """The function whose argument list holds the character at `at` directly, and the argument's position."""
    depth, commas = 0, 0
    for i in range(at - 1, -1, -1):
        c = code[i]
        if c in ")]}":
            depth += 1
        elif c in "([{":
            if depth:
                depth -= 1
                continue
            callee = _CALLEE.search(code, 0, i) if c == "(" else None
            return (callee.group(1), commas) if callee else None
        elif c == "," and not depth:
            commas += 1
    return None


def _bare_uses_are_parameters(code: str) -> bool:
    params = _params(code)
    for m in _BARE.finditer(code):
        call = _call_position(code, m.start())
        if call is None:
            return False
        name, pos = call
        defs = params.get(name)
        if not defs or any(len(p) <= pos or p[pos] not in ("ev", "_") for p in defs):
            return False
    return True


def _tree(paths: set[tuple[str, ...]]) -> Tree:
    tree: Tree = {}
    for path in sorted(paths, key=len):  # a shorter path keeps a subtree whole before a longer one narrows it
        node = tree
        for key in path[:-1]:
            nxt = node.setdefault(key, {})
            if nxt is True:
                break
            node = nxt
        else:
            node[path[-1]] = True
    return tree


def module_reads(source: str) -> Tree | None:
    """The fields of `ev` a module reads, or None when they cannot be derived from its text."""
    code = _code(source)
    if _INPUT.search(code) or not _bare_uses_are_parameters(code):
        return None
    return _tree({tuple(p[1:].split(".")) for p in _REF.findall(code)})


def _merge(a: Tree, b: Tree) -> Tree:
    out = dict(a)
    for key, sub in b.items():
        mine = out.get(key)
        if mine is None:
            out[key] = sub
        elif mine is True or sub is True:
            out[key] = True
        else:
            out[key] = _merge(mine, sub)
    return out


def project(value: Any, tree: Tree) -> Any:
    """The parts of `value` the tree keeps (a value that is not an object is kept as it is)."""
    if not isinstance(value, dict):
        return value
    return {k: value[k] if sub is True else project(value[k], sub) for k, sub in tree.items() if k in value}


@dataclass(frozen=True)
class Projection:
    """Per plan, the fields its policies read; a plan without an entry gets its inputs whole."""

    trees: dict[str, Tree]

    def apply(self, plan: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        tree = self.trees.get(plan)
        if tree is None:
            return inputs
        return [project(pin, tree) for pin in inputs]


def derive(sources: dict[str, list[str]]) -> Projection:
    """The projection of each plan, from its modules' sources; a plan with an underivable module has none."""
    trees: dict[str, Tree] = {}
    for plan, modules in sources.items():
        reads = [module_reads(s) for s in modules]
        if modules and all(r is not None for r in reads):
            merged: Tree = {}
            for r in reads:
                merged = _merge(merged, r)  # type: ignore[arg-type]
            trees[plan] = merged
    return Projection(trees)


def no_projection() -> Projection:
    return Projection({})
