"""The policy bundle (policies/): modules and their METADATA, data, manifest, waivers, revision, entry query.

Conventions (see README "Adding a policy"):
- `policies/<domain>/<name>.rego` declares `package nhiguard.<domain>.<name>` and a function `findings(ev)`
  returning a set of `{"rule": <name>, "effect": "alert"|"deny"|"revoke", "reason": <text>}` (optionally
  `"identities": [...]` to revoke identities other than the actor, and `"evidence"`: the finding's grade,
  hygiene | compromise | harm).
- A `# METADATA` block before the package gives title, description and `custom: {severity, mode, attack,
  effects, runbook}`. `effects` lists what the policy's findings may do, from alert, deny, revoke (absent:
  alert and deny, so no policy revokes unless it says so); decide caps a finding to what its policy declares.
  `runbook`, an http(s) URL, is what the policy's alerts link to.
- `policies/data.yaml` holds parameters under `nhiguard.params.<domain>.<name>`.
Only the modules that can apply to an event's domain are evaluated for it (one query per domain): the
generated entry module below is what every engine queries.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from nhiguard.models.kinds import kind_priors
from nhiguard.policy.projection import Projection, derive
from nhiguard.policy.rule_index import INDEX_FILE, Guard, RuleIndex, parse_guards

DOMAINS = ("cms", "ci", "registry", "runtime")
# policies/identity/ apply to events of every domain (who may do what at all).
CROSS_DOMAIN = "identity"
# policies/anomaly/ are a second stage: evaluated, with `input.anomaly`, for the events the identity's
# behavioural model flags (warm and scored at or above the threshold), after the first stage decided them.
ANOMALY_STAGE = "anomaly"
POLICY_DIRS = (*DOMAINS, CROSS_DOMAIN, ANOMALY_STAGE)
# Gates: a step waits for nhiguard's answer to go ahead. They fail closed on any engine failure, whatever the
# manifest says for their domain (an `open` ci domain still alerts, not allows, for other ci events).
GATE_ACTIONS = frozenset({"ci.release.publish_request"})
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)
EFFECTS = ("alert", "deny", "revoke")
DEFAULT_EFFECTS = ("alert", "deny")  # a policy that does not declare revoke never revokes


class BundleError(Exception):
    """A bundle that must not be activated, with the reason."""


@dataclass(frozen=True)
class PolicyModule:
    policy_id: str  # "<domain>.<name>"
    domain: str
    path: str  # relative to the bundle root
    source: str
    title: str
    description: str
    severity: str
    mode: str  # enforce | shadow
    attack: tuple[str, ...]
    effects: tuple[str, ...] = DEFAULT_EFFECTS  # what its findings may do (METADATA custom.effects)
    runbook: str = ""  # where the SOC reads what to do about its alerts (METADATA custom.runbook, a URL)


@dataclass(frozen=True)
class Waiver:
    """An exception as data: this rule does not apply to this identity/resource until it expires."""

    id: str
    rule: str  # a rule id ("ci.release_artifacts.size_jump") or a policy id ("ci.release_artifacts")
    owner: str
    reason: str
    expires_ms: int
    identity: str = "*"  # glob on the canonical identity
    resource: str = "*"  # glob on the event's resource id

    def covers(self, rule: str, identity: str, resource: str, at_ms: int) -> bool:
        return (
            at_ms < self.expires_ms
            and (rule == self.rule or rule.startswith(self.rule + "."))
            and fnmatch.fnmatchcase(identity, self.identity)
            and fnmatch.fnmatchcase(resource, self.resource)
        )


def _waivers(doc: dict[str, Any]) -> list[Waiver]:
    out = []
    for w in doc.get("waivers") or []:
        missing = [k for k in ("id", "rule", "owner", "reason", "expires") if not w.get(k)]
        if missing:
            raise BundleError(f"waivers.yaml: waiver {w.get('id', '?')} lacks {', '.join(missing)}")
        expires = w["expires"]
        if isinstance(expires, str):
            expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        if not isinstance(expires, datetime) or expires.tzinfo is None:
            raise BundleError(f"waivers.yaml: waiver {w['id']} needs expires as an ISO time with a zone")
        out.append(
            Waiver(
                id=str(w["id"]),
                rule=str(w["rule"]),
                owner=str(w["owner"]),
                reason=str(w["reason"]),
                expires_ms=int(expires.timestamp() * 1000),
                identity=str(w.get("identity") or "*"),
                resource=str(w.get("resource") or "*"),
            )
        )
    return out


@dataclass
class PolicyBundle:
    root: Path
    modules: list[PolicyModule]
    data: dict[str, Any]
    revision: str
    failure_mode: dict[str, str] = field(default_factory=dict)  # domain -> closed | open
    waivers: list[Waiver] = field(default_factory=list)
    guards: dict[str, Guard] = field(default_factory=dict)  # the rule index's entries (index.yaml)
    by_id: dict[str, PolicyModule] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {m.policy_id: m for m in self.modules}

    def for_domain(self, domain: str) -> list[PolicyModule]:
        return [m for m in self.modules if m.domain == domain]

    def for_plan(self, plan: str) -> list[PolicyModule]:
        """The modules one query evaluates: a domain's own and the cross-domain ones, or the anomaly stage."""
        if plan == ANOMALY_STAGE:
            return self.for_domain(ANOMALY_STAGE)
        return self.for_domain(plan) + self.for_domain(CROSS_DOMAIN) if plan in DOMAINS else []

    def fails_closed(self, domain: str, action: str) -> bool:
        """Whether an event the engine had no answer for is denied (closed) or allowed with an alert."""
        return action in GATE_ACTIONS or self.failure_mode.get(domain, "closed") == "closed"

    def rule_index(self) -> RuleIndex:
        """Per domain plan, its policies' guards when every one of them declares one (rule_index.py)."""
        plans: dict[str, list[Guard] | None] = {}
        for plan in DOMAINS:
            ids = [m.policy_id for m in self.for_plan(plan)]
            plans[plan] = [self.guards[i] for i in ids] if all(i in self.guards for i in ids) else None
        return RuleIndex(plans)

    def plans(self) -> list[str]:
        """The queries this bundle has: each domain a module applies to, and the anomaly stage."""
        return [p for p in (*DOMAINS, ANOMALY_STAGE) if self.for_plan(p)]

    def projection(self) -> Projection:
        """Per plan, the fields of a policy input its modules read (projection.py)."""
        return derive({p: [m.source for m in self.for_plan(p)] for p in self.plans()})


def _metadata(source: str, path: Path) -> dict[str, Any]:
    lines = source.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "# METADATA")
    except StopIteration as exc:
        raise BundleError(f"{path}: no # METADATA block") from exc
    body = []
    for ln in lines[start + 1 :]:
        if not ln.startswith("#"):
            break
        body.append(ln[2:] if ln.startswith("# ") else ln[1:])
    try:
        meta = yaml.safe_load("\n".join(body)) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: METADATA is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or "title" not in meta:
        raise BundleError(f"{path}: METADATA needs at least a title")
    return meta


def _effects(custom: dict[str, Any], rel: str) -> tuple[str, ...]:
    declared = custom.get("effects", DEFAULT_EFFECTS)
    if isinstance(declared, str) or not isinstance(declared, list | tuple) or not declared:
        raise BundleError(f"{rel}: custom.effects must be a list drawn from {', '.join(EFFECTS)}")
    if bad := sorted({str(e) for e in declared} - set(EFFECTS)):
        raise BundleError(f"{rel}: custom.effects has {', '.join(bad)}; allowed: {', '.join(EFFECTS)}")
    return tuple(e for e in EFFECTS if e in declared)


def _runbook(custom: dict[str, Any], rel: str) -> str:
    link = custom.get("runbook", "")
    if not isinstance(link, str) or (link and not re.fullmatch(r"https?://\S+", link)):
        raise BundleError(f"{rel}: custom.runbook must be an http(s) URL, not {link!r}")
    return link


def _yaml_part(path: Path, digest: Any) -> dict[str, Any]:
    """A YAML file of the bundle (empty if absent); its text goes into the bundle revision."""
    if not path.exists():
        return {}
    text = path.read_text()
    digest.update(path.name.encode() + b"\0" + text.encode())
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{path.name}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise BundleError(f"{path.name}: expected a mapping, not {type(doc).__name__}")
    return doc


def load_bundle(root: Path) -> PolicyBundle:
    """Read policies/ into a bundle; its revision is a hash of every file that can change a decision."""
    root = Path(root)
    rego_files = sorted(p for p in root.rglob("*.rego") if not p.name.endswith("_test.rego"))
    if not rego_files:
        raise BundleError(f"{root}: no policies found")
    digest = hashlib.sha256()
    modules: list[PolicyModule] = []
    for path in rego_files:
        rel = path.relative_to(root).as_posix()
        source = path.read_text()
        digest.update(rel.encode() + b"\0" + source.encode() + b"\0")
        domain, name = path.parent.name, path.stem
        if domain not in POLICY_DIRS:
            raise BundleError(f"{rel}: policies live in policies/<dir>/ with dir one of {POLICY_DIRS}")
        pkg = _PACKAGE.search(source)
        expected = f"nhiguard.{domain}.{name}"
        if not pkg or pkg.group(1) != expected:
            raise BundleError(f"{rel}: package must be {expected} (file name, package and id agree)")
        meta = _metadata(source, path)
        custom = meta.get("custom") or {}
        mode = str(custom.get("mode", "enforce"))
        if mode not in ("enforce", "shadow"):
            raise BundleError(f"{rel}: custom.mode must be enforce or shadow, not {mode!r}")
        modules.append(
            PolicyModule(
                policy_id=f"{domain}.{name}",
                domain=domain,
                path=rel,
                source=source,
                title=str(meta["title"]),
                description=str(meta.get("description", "")).strip(),
                severity=str(custom.get("severity", "medium")),
                mode=mode,
                attack=tuple(str(a) for a in custom.get("attack", ()) or ()),
                effects=_effects(custom, rel),
                runbook=_runbook(custom, rel),
            )
        )
    data = _yaml_part(root / "data.yaml", digest)
    try:
        kind_priors(data)  # the anomaly model's parameters live in the data too: refused here, not on use
    except ValueError as exc:
        raise BundleError(f"data.yaml: {exc}") from exc
    manifest = _yaml_part(root / "manifest.yaml", digest)
    waivers = _waivers(_yaml_part(root / "waivers.yaml", digest))
    index = _yaml_part(root / INDEX_FILE, digest)
    # Gates fail closed unless the manifest says otherwise.
    failure_mode = {d: "closed" for d in DOMAINS} | dict(manifest.get("failure_mode") or {})
    if bad := {d: m for d, m in failure_mode.items() if m not in ("closed", "open") or d not in DOMAINS}:
        raise BundleError(f"manifest.yaml: failure_mode must map domains to closed|open, not {bad}")
    return PolicyBundle(
        root=root,
        modules=modules,
        data=data,
        revision=digest.hexdigest()[:16],
        failure_mode=failure_mode,
        waivers=waivers,
        guards=_guards(index, data, {m.policy_id for m in modules}),
    )


def _guards(doc: dict[str, Any], data: dict[str, Any], policy_ids: set[str]) -> dict[str, Guard]:
    """The rule index (rule_index.py; no file: nothing is indexed). It only spares queries that would find
    nothing, but an entry that left out what its policy fires on would change decisions: so its text is in
    the revision like every other file's, and a decision names the index it was made with."""
    try:
        return parse_guards(doc, data, policy_ids)
    except ValueError as exc:
        raise BundleError(f"{INDEX_FILE}: {exc}") from exc


def entry_module(bundle: PolicyBundle) -> str:
    """The generated module the worker queries: per domain, for each event in input order, the findings of
    each of its policies by policy id. The engine's caller tags each finding with its policy (`tagged`):
    tagging in Rego (`object.union` per finding, then a union of the sets) cost regopy ~15% of its time."""
    out = ["package nhiguard.entry", "", "import rego.v1", ""]
    for domain in bundle.plans():
        # A comprehension per policy: a policy whose findings are undefined for an event contributes none, as
        # before, rather than leaving the event without an answer.
        calls = ", ".join(
            f'"{m.policy_id}": [f | some f in data.nhiguard.{m.policy_id}.findings(ev)]'
            for m in bundle.for_plan(domain)
        )
        out.append(f"{domain} := [fs | some ev in input.events; fs := {{{calls}}}]")
    return "\n".join(out) + "\n"


def tagged(answer: Any) -> list[list[dict[str, Any]]]:
    """The entry query's answer (per input, each policy's findings) as findings per input, each tagged with
    the policy that produced it. ValueError when the answer does not have that shape, a finding that is not
    an object included (tagging it in Rego failed the query): the event is then decided by its domain's
    failure mode, never let through."""
    if not isinstance(answer, list):
        raise ValueError(f"entry query gave {type(answer).__name__}, not a list")
    out = []
    for per_policy in answer:
        if not isinstance(per_policy, dict) or not all(isinstance(fs, list) for fs in per_policy.values()):
            raise ValueError("entry query gave an input's findings not by policy")
        if not all(isinstance(f, dict) for fs in per_policy.values() for f in fs):
            raise ValueError("a policy gave a finding that is not an object")
        out.append([{**f, "policy": p} for p, fs in per_policy.items() for f in fs])
    return out
