"""Builds the JSON Schema of one OCSF event class (Detection Finding, 2004) from the OCSF schema's own source,
for the test that validates nhiguard's findings (schemas/ocsf/, README there):

    python -m tools.ocsf_schema OCSF_GIT_DIR [--tag 1.8.0] [--out schemas/ocsf]

OCSF_GIT_DIR is a git clone of github.com/ocsf/ocsf-schema (Apache-2.0), read at the release tag.
What OCSF's compiler does for one class, done here:
- the class and its parents (`extends`: detection_finding -> finding -> base_event), every `$include`d
  profile, each attribute's dictionary entry refined by the class (or object) that uses it, enums merged;
- every object reachable from it, with its parents, profiles and constraints (`at_least_one`, `just_one`);
- `type_uid` (class_uid * 100 + activity_id), `class_uid` and `category_uid` as the only values they can
  be, a sibling string (`severity`) equal to its id's caption unless the id is Other (99), and
  `observable.type_id` from the types, objects and attributes that declare an observable number.
Every profile's attributes are allowed (a record names the profiles it applies in metadata.profiles); the
`datetime` profile's generated `*_dt` siblings are not. An attribute the class or object does not define is
refused, as OCSF's validator does, except inside the free-form `object` and `json_t`.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
from pathlib import Path
from typing import Any

CLASS = "detection_finding"
PRIMITIVE = {
    "string_t": {"type": "string"},
    "integer_t": {"type": "integer"},
    "long_t": {"type": "integer"},
    "float_t": {"type": "number"},
    "boolean_t": {"type": "boolean"},
    "json_t": {},
}


class Source:
    """The OCSF schema's files at one git revision."""

    def __init__(self, git_dir: Path, tag: str) -> None:
        self.git_dir, self.tag = git_dir, tag
        self.commit = self._git("rev-parse", f"{tag}^{{commit}}").strip()
        self.dictionary = self.json("dictionary.json")
        self.categories = self.json("categories.json")["attributes"]
        paths = self._git("ls-tree", "-r", "--name-only", tag, "events", "objects").split()
        self.classes: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        for path in paths:
            if path.endswith(".json"):
                doc = self.json(path)
                kind = self.classes if path.startswith("events/") else self.objects
                kind[doc["name"]] = doc | {"_path": path}

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args], check=True, capture_output=True, text=True
        ).stdout

    def json(self, path: str) -> Any:
        return json.loads(self._git("show", f"{self.tag}:{path}"))


def _merge(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Attribute refinements: nested mappings (an enum, a constraint) merge, anything else replaces."""
    for k, v in more.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            into[k] = _merge(dict(into[k]), v)
        else:
            into[k] = copy.deepcopy(v)
    return into


def _attributes(src: Source, item: dict[str, Any], kind: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An item's attributes: its parent's, then its includes', then its own (each refining the former)."""
    attrs: dict[str, Any] = {}
    if item.get("extends"):
        attrs = _attributes(src, kind[item["extends"]], kind)
    own = dict(item.get("attributes") or {})
    includes = own.pop("$include", [])
    for path in [includes] if isinstance(includes, str) else includes:
        doc = src.json(path)
        for name, refine in doc["attributes"].items():
            if doc.get("meta") == "profile":  # part of the item only where the profile is applied
                refine = {"profile": doc["name"]} | refine
            attrs[name] = _merge(dict(attrs.get(name, {})), refine)
    for name, refine in own.items():
        attrs[name] = _merge(dict(attrs.get(name, {})), refine)
    return attrs


def _constraints(item: dict[str, Any], kind: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if "constraints" in item:
        return dict(item["constraints"])
    return _constraints(kind[item["extends"]], kind) if item.get("extends") else {}


class Builder:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.types = src.dictionary["types"]["attributes"]
        self.defs: dict[str, Any] = {}
        self.pending: list[str] = []

    def attribute(self, name: str, refine: dict[str, Any]) -> dict[str, Any]:
        if name not in self.src.dictionary["attributes"]:
            raise KeyError(f"attribute {name} is not in the dictionary")
        return _merge(copy.deepcopy(self.src.dictionary["attributes"][name]), refine)

    def schema_of(self, name: str, attr: dict[str, Any]) -> dict[str, Any]:
        t = attr["type"]
        if t == "object":
            s: dict[str, Any] = {"type": "object"}  # free-form (e.g. unmapped)
        elif t in self.src.objects:
            if t not in self.defs and t not in self.pending:
                self.pending.append(t)
            s = {"$ref": f"#/$defs/{t}"}
        else:
            s = self.primitive(t)
        if attr.get("enum") and t != "object":
            keys = list(attr["enum"])
            s = s | {"enum": sorted(int(k) for k in keys) if s.get("type") == "integer" else keys}
        if name == "type_id" and attr.get("_observable"):
            s = s | {"enum": sorted(self.observable_ids())}
        return {"type": "array", "items": s} if attr.get("is_array") else s

    def primitive(self, t: str) -> dict[str, Any]:
        if t in PRIMITIVE:
            return dict(PRIMITIVE[t])
        spec = self.types[t]
        s = self.primitive(spec["type"])
        if "regex" in spec:
            s["pattern"] = spec["regex"]
        if "range" in spec:
            s["minimum"], s["maximum"] = spec["range"]
        if "max_len" in spec:
            s["maxLength"] = spec["max_len"]
        if "values" in spec:
            s["enum"] = spec["values"]
        return s

    def observable_ids(self) -> set[int]:
        """observable.type_id: 0, 99 and every observable number a type, object or attribute declares."""
        ids = {0, 99}
        ids |= {int(t["observable"]) for t in self.types.values() if "observable" in t}
        ids |= {int(o["observable"]) for o in self.src.objects.values() if "observable" in o}
        for a in self.src.dictionary["attributes"].values():
            if "observable" in a:
                ids.add(int(a["observable"]))
        for item in [*self.src.objects.values(), *self.src.classes.values()]:
            for a in (item.get("attributes") or {}).values():
                if isinstance(a, dict) and "observable" in a:
                    ids.add(int(a["observable"]))
        return ids

    def record(
        self, attrs: dict[str, Any], constraints: dict[str, Any], event: bool = False
    ) -> dict[str, Any]:
        """A class or an object: its properties, the required ones, its constraints and its siblings. A
        profile's required attribute is required where the event names the profile in metadata.profiles
        (checked on the event; within an object, optional)."""
        props, required, siblings = {}, [], []
        by_profile: dict[str, list[str]] = {}
        for name, refine in sorted(attrs.items()):
            attr = self.attribute(name, refine)
            props[name] = self.schema_of(name, attr)
            if attr.get("requirement") == "required" and attr.get("profile"):
                by_profile.setdefault(attr["profile"], []).append(name)
            elif attr.get("requirement") == "required":
                required.append(name)
            if attr.get("sibling") and attr.get("enum") and attr["sibling"] in attrs:
                siblings.append((name, attr["sibling"], attr["enum"]))
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            out["required"] = required
        rules = []
        if constraints.get("at_least_one"):
            rules.append({"anyOf": [{"required": [a]} for a in constraints["at_least_one"]]})
        if constraints.get("just_one"):
            rules.append({"oneOf": [{"required": [a]} for a in constraints["just_one"]]})
        for id_name, sibling, enum in siblings:
            for k, v in enum.items():
                if k != "99" and isinstance(v, dict) and "caption" in v:
                    when = {"properties": {id_name: {"const": int(k)}}, "required": [id_name, sibling]}
                    rules.append({"if": when, "then": {"properties": {sibling: {"const": v["caption"]}}}})
        for profile, names in sorted(by_profile.items()) if event else ():
            applied = {"properties": {"profiles": {"contains": {"const": profile}}}, "required": ["profiles"]}
            when = {"properties": {"metadata": applied}, "required": ["metadata"]}
            rules.append({"if": when, "then": {"required": names}})
        if rules:
            out["allOf"] = rules
        return out

    def build(self, class_name: str) -> dict[str, Any]:
        cls = self.src.classes[class_name]
        category = self.src.categories[cls["category"] if "category" in cls else self._category(cls)]
        class_uid = category["uid"] * 1000 + cls["uid"]
        attrs = _attributes(self.src, cls, self.src.classes)
        schema = self.record(attrs, _constraints(cls, self.src.classes), event=True)
        activities = sorted(int(k) for k in self.attribute("activity_id", attrs["activity_id"])["enum"])
        props = schema["properties"]
        props["class_uid"], props["class_name"] = {"const": class_uid}, {"const": cls["caption"]}
        props["category_uid"], props["category_name"] = (
            {"const": category["uid"]},
            {"const": category["caption"]},
        )
        props["type_uid"] = {"enum": [class_uid * 100 + a for a in activities]}
        # type_uid is class_uid * 100 + activity_id; type_name is "<class>: <activity>".
        enum = self.attribute("activity_id", attrs["activity_id"])["enum"]
        for a in activities:
            when = {"properties": {"activity_id": {"const": a}}, "required": ["activity_id"]}
            then: dict[str, Any] = {"properties": {"type_uid": {"const": class_uid * 100 + a}}}
            if a != 99:
                name = f"{cls['caption']}: {enum[str(a)]['caption']}"
                then["properties"]["type_name"] = {"const": name}
            schema.setdefault("allOf", []).append({"if": when, "then": then})
        while self.pending:
            name = self.pending.pop(0)
            obj = self.src.objects[name]
            obj_attrs = _attributes(self.src, obj, self.src.objects)
            if name == "observable":
                obj_attrs["type_id"] = obj_attrs["type_id"] | {"_observable": True}
            self.defs[name] = self.record(obj_attrs, _constraints(obj, self.src.objects))
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://schema.ocsf.io/{self.src.tag}/classes/{class_name}",
            "title": f"OCSF {self.src.tag} {cls['caption']} ({class_uid})",
            "$comment": (
                "Generated by nhiguard's tools/ocsf_schema.py from the OCSF schema (github.com/ocsf/"
                f"ocsf-schema, Apache-2.0, see LICENSE and NOTICE beside this file) at tag {self.src.tag}, "
                f"commit {self.src.commit}: a derived work, compiled into JSON Schema without descriptions."
            ),
            **schema,
            "$defs": dict(sorted(self.defs.items())),
        }

    def _category(self, cls: dict[str, Any]) -> str:
        return self._category(self.src.classes[cls["extends"]]) if "category" not in cls else cls["category"]


def _dump(schema: dict[str, Any]) -> str:
    """The schema as JSON, one line per object definition (a change in OCSF is a change of its lines)."""
    head = {k: v for k, v in schema.items() if k != "$defs"}
    lines = [json.dumps(head, indent=1)[:-2] + ",", ' "$defs": {']
    defs = list(schema["$defs"].items())
    for i, (name, d) in enumerate(defs):
        lines.append(
            f"  {json.dumps(name)}: {json.dumps(d, separators=(',', ':'))}"
            + ("," if i < len(defs) - 1 else "")
        )
    return "\n".join([*lines, " }", "}"]) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "git_dir", type=Path, help="a git clone of the OCSF schema (its .git directory or bare repo)"
    )
    p.add_argument("--tag", default="1.8.0")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "schemas" / "ocsf")
    args = p.parse_args()
    src = Source(args.git_dir, args.tag)
    schema = Builder(src).build(CLASS)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{CLASS}-{args.tag}.schema.json"
    target.write_text(_dump(schema))
    for name in ("LICENSE", "NOTICE"):
        (args.out / name).write_text(src._git("show", f"{args.tag}:{name}"))
    size = target.stat().st_size
    print(f"{target}: {len(schema['$defs'])} objects, {size} bytes (OCSF {args.tag}, {src.commit})")


if __name__ == "__main__":
    main()
