"""`nhiguard gate npm-install [package-lock.json]`: every locked package version judged by its registry
document before `npm ci` runs anything.

Each version is decided as the registry's publish of it (an npm hook's `package:publish`, docs/sources.md),
with the package's earlier releases from the same document: the shipped registry policies see a publisher or
mechanism change, provenance dropped, install scripts added, a dependency added that was first published days
before (its document is looked up too). Versions are decided oldest publish first in one core, so a version
that adds a dependency denied for harm (a days-old package with a postinstall) inherits that grade.

Documents come from the configured registry (`npm config get registry`, or `--registry`), one request per
package, concurrently, within `--deadline`; a registry that lets only its users read takes a token from the
environment (`--token-env`). A document that does not come, or that names no publisher (a Verdaccio records
none in it), leaves those facts *not checked*: they never deny by themselves.

With `--url`, the same publishes are decided by a running nhiguard (streams/gate_remote.py), one at a time,
oldest first, with its state and inventory: each is on authz.decisions like any other.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nhiguard.decision.adapters.common import iso_ms
from nhiguard.decision.decide import verdict_of
from nhiguard.decision.records import DeadLetter, Decision
from nhiguard.decision.registry_facts import HISTORY
from nhiguard.decision.semver import version_key
from nhiguard.lookup import NOT_FOUND, DocumentSource, HttpRegistry, RegistryLookup, Unavailable
from nhiguard.settings import Settings
from nhiguard.streams import gate_context
from nhiguard.streams.gate import ALLOW, DENY, Judged, OfflineCore, judged, print_judged
from nhiguard.streams.gate_context import GateError
from nhiguard.streams.gate_remote import Remote

UNNAMED = "(no publisher in the document)"
# What the registry policies judge from who published a version: unknowable from a document that names none.
PUBLISHER_RULES = tuple(
    f"registry.publisher_integrity.{r}"
    for r in (
        "trusted_publishing_dropped",
        "provenance_dropped",
        "publisher_new",
        "publisher_email_changed",
        "publisher_changed_adds_dependency",
    )
)
PUBLISHER_EVIDENCE = (
    "publisher",
    "publisher_email",
    "mechanism",
    "provenance",
    "previous_email",
    "previous_mechanism",
)
TOKEN_VARIABLES = ("NODE_AUTH_TOKEN", "NPM_TOKEN")


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    skipped: str = ""  # why it is not judged (not from a registry), "" when it is

    @property
    def subject(self) -> str:
        return f"{self.name}@{self.version}"


def read_lockfile(path: Path) -> list[Locked]:
    """Every package version a package-lock.json (v1, v2 or v3) or npm-shrinkwrap.json locks, once each."""
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GateError(f"{path}: {exc}") from None
    if not isinstance(lock, dict):
        raise GateError(f"{path}: not a package-lock.json (no JSON object)")
    if isinstance(lock.get("packages"), dict):
        entries = [(_name(k, v), v) for k, v in lock["packages"].items() if k and isinstance(v, dict)]
    elif isinstance(lock.get("dependencies"), dict):
        entries = list(_v1(lock["dependencies"]))
    else:
        raise GateError(f"{path}: not a package-lock.json (neither packages nor dependencies)")
    out: dict[tuple[str, str], Locked] = {}
    for name, entry in entries:
        if entry.get("link") or entry.get("inBundle") or entry.get("bundled"):
            continue  # a workspace link, or inside its parent's tarball: not fetched from a registry
        version, resolved = str(entry.get("version", "")), str(entry.get("resolved", ""))
        skipped = ""
        if not version or not version[0].isdigit():
            skipped = f"locked as {version[:80]!r}, not a registry version"
        elif resolved and not resolved.startswith(("http://", "https://")):
            skipped = f"resolved from {resolved[:80]}, not a registry"
        out.setdefault((name, version), Locked(name, version, skipped))
    return sorted(out.values(), key=lambda x: (x.name, version_key(x.version) if not x.skipped else ()))


def _name(path: str, entry: dict[str, Any]) -> str:
    return str(entry.get("name") or path.rsplit("node_modules/", 1)[-1])


def _v1(deps: dict[str, Any]) -> Any:
    for name, entry in deps.items():
        if isinstance(entry, dict):
            yield name, entry
            if isinstance(entry.get("dependencies"), dict):
                yield from _v1(entry["dependencies"])


# ---------------------------------------------------------------------------------------------------------
class Prefetched:
    """The documents fetched for the lockfile, and the registry for any other (a new dependency's)."""

    def __init__(self, docs: dict[str, Any], registry: DocumentSource | None) -> None:
        self.docs, self.registry = docs, registry

    def fetch(self, name: str, timeout_s: float) -> Any:
        if name in self.docs:
            return self.docs[name]
        if self.registry is None:
            raise Unavailable(f"{name}: no registry to ask")
        return self.registry.fetch(name, timeout_s)


def fetch_all(registry: HttpRegistry, names: set[str], deadline_s: float) -> tuple[dict[str, Any], dict]:
    """(documents by name, why each other name has none), fetched concurrently within the deadline."""
    pool = ThreadPoolExecutor(8, thread_name_prefix="nhiguard-gate")
    try:
        futures = {n: pool.submit(registry.fetch, n, deadline_s) for n in names}
        wait(futures.values(), timeout=deadline_s)
        docs, missing = {}, {}
        for name, fut in futures.items():
            if not fut.done():
                missing[name] = f"no answer within {deadline_s:g} s"
            elif isinstance(exc := fut.exception(), Unavailable):
                missing[name] = str(exc)
            elif exc is not None:
                missing[name] = f"{type(exc).__name__}: {exc}"
            elif fut.result() is NOT_FOUND or not isinstance(fut.result(), dict):
                missing[name] = "the registry does not have it"
            else:
                docs[name] = fut.result()
        return docs, missing
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def publish_body(name: str, version: str, doc: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """The npm hook `package:publish` of `version` from its package document, trimmed to what the adapter
    reads (the version, the release before it, the HISTORY before it), and whether every one of them names
    its publisher; None if the document does not have the version."""
    versions = doc.get("versions") if isinstance(doc.get("versions"), dict) else {}
    times = doc.get("time") if isinstance(doc.get("time"), dict) else {}
    if not isinstance(versions.get(version), dict):
        return None
    me, key = iso_ms(times.get(version), 0), version_key(version)
    earlier = []
    for v, m in versions.items():
        at = iso_ms(times.get(v), 0) if isinstance(m, dict) else 0
        if v != version and isinstance(m, dict) and (at < me if at and me else version_key(v) < key):
            earlier.append((at, version_key(v), v))
    keep = {v for *_, v in sorted(earlier)[-HISTORY:]} | {version}
    below = [v for v, m in versions.items() if isinstance(m, dict) and version_key(v) < key]
    if below:
        keep.add(max(below, key=version_key))
    kept = {v: _manifest(versions[v]) for v in keep}
    named = all(m["_npmUser"]["name"] != UNNAMED for m in kept.values())
    payload = {
        "name": name,
        "versions": kept,
        "time": {k: times[k] for k in ("created", *keep) if isinstance(times.get(k), str)},
    }
    body = {
        "event": "package:publish",
        "name": name,
        "hookOwner": {"username": "nhiguard-gate"},
        "payload": payload,
        "change": {"version": version},
        "time": me or int(time.time() * 1000),
    }
    return body, named


def _manifest(m: dict[str, Any]) -> dict[str, Any]:
    user = m.get("_npmUser") if isinstance(m.get("_npmUser"), dict) else {}
    attestations = (m.get("dist") or {}).get("attestations") if isinstance(m.get("dist"), dict) else None
    out = {
        "_npmUser": user if user.get("name") else {"name": UNNAMED},
        "dependencies": m.get("dependencies") if isinstance(m.get("dependencies"), dict) else {},
        "scripts": m.get("scripts") if isinstance(m.get("scripts"), dict) else {},
    }
    if isinstance(attestations, dict):
        out["dist"] = {"attestations": {"provenance": attestations.get("provenance")}}
    return out


# ---------------------------------------------------------------------------------------------------------
def run_install(settings: Settings, args: Any, env: dict[str, str]) -> int:
    path = Path(args.lockfile or "package-lock.json")
    locked = read_lockfile(path)
    url = args.registry or gate_context.configured_registry(path.resolve().parent, env)
    names = [args.token_env] if args.token_env else TOKEN_VARIABLES
    registry = HttpRegistry(url, next((env[v] for v in names if env.get(v)), ""))
    docs, missing = fetch_all(registry, {x.name for x in locked if not x.skipped}, args.deadline)
    if docs == {} and any(not x.skipped for x in locked):
        first = next(iter(missing.values()), "")
        raise GateError(f"no registry document of the locked packages could be read from {url}: {first}")
    if args.url:
        from nhiguard.streams.gate_remote import remote

        rows, revision = judge_remote(remote(args, env), locked, docs, missing)
    else:
        lookup = RegistryLookup(Prefetched(docs, registry), args.deadline, float("inf"))
        try:
            offline = OfflineCore(settings, _path(args.identities), _path(args.policies), lookup)
            rows, revision = judge_locked(offline, locked, docs, missing), offline.revision
        finally:
            lookup.close()
    asked = f", asked {args.url}" if args.url else ""
    print(f"nhiguard gate npm-install: {len(rows)} locked versions in {path}, documents from {url}{asked}")
    _table(rows)
    for r in rows:
        if r.denied:
            print_judged(r, revision)
    _not_checked(rows)
    denied = sum(r.denied for r in rows)
    unchecked = sum(bool(r.not_checked) for r in rows)
    print(f"{denied} denied, {len(rows) - denied} allowed; {unchecked} with facts not checked")
    return DENY if denied else ALLOW


Pending = list[
    tuple[int, Locked, dict[str, Any], bool]
]  # (publish time, version, hook body, publisher named)


def _pending(
    locked: list[Locked], docs: dict[str, Any], missing: dict[str, str]
) -> tuple[dict[str, Judged], Pending]:
    """What is not checked (a version without a document, or locked from elsewhere than a registry), and the
    hook body of every other version, oldest publish first: what a version's dependencies were judged
    (denied for harm) is known by the time it is."""
    results = {x.subject: Judged(x.subject, "ALLOW", [], [x.skipped]) for x in locked if x.skipped}
    pending: Pending = []
    for x in locked:
        found = publish_body(x.name, x.version, docs[x.name]) if x.name in docs and not x.skipped else None
        if found is not None:
            pending.append((found[0]["time"], x, *found))
        elif not x.skipped:
            why = missing.get(x.name) or "the registry's document does not have this version"
            results[x.subject] = Judged(x.subject, "ALLOW", [], [f"registry document: {why}"])
    pending.sort(key=lambda p: (p[0], p[1].name, version_key(p[1].version)))
    return results, pending


def judge_remote(
    server: Remote, locked: list[Locked], docs: dict[str, Any], missing: dict[str, str]
) -> tuple[list[Judged], str]:
    """Each locked version's publish decided by a running nhiguard, one at a time, oldest first (so that the
    server has decided a version's dependencies before it); and the server's bundle revision."""
    results, pending = _pending(locked, docs, missing)
    revision = "unknown"
    for _, x, body, named in pending:
        answer = server.ask({"format": "npm.hook", "record": body})
        revision = str((answer or {}).get("bundle_revision") or revision)
        results[x.subject] = _unnamed_set_aside(server.judged(x.subject, answer, []), named)
    return [results[x.subject] for x in locked], revision


def judge_locked(
    offline: OfflineCore, locked: list[Locked], docs: dict[str, Any], missing: dict[str, str]
) -> list[Judged]:
    """Each locked version judged as its registry's publish of it (in the order of `locked`); a version
    without a document, or locked from elsewhere than a registry, is not checked."""
    results, pending = _pending(locked, docs, missing)
    topic = offline.settings.topics.registry
    records = [offline.record(topic, body, i) for i, (_, _, body, _) in enumerate(pending)]
    decided = offline.decide([(rec, offline.core.read(rec)) for rec in records])
    for (_, x, _, named), outcome in zip(pending, decided, strict=True):
        results[x.subject] = _judged(x, outcome, named, offline.inventory_given)
    return [results[x.subject] for x in locked]


def _judged(x: Locked, outcome: Decision | DeadLetter, publisher_named: bool, inventory: bool) -> Judged:
    if isinstance(outcome, DeadLetter):
        return Judged(x.subject, "ALLOW", [], [f"registry document unreadable: {outcome.reason}"])
    return _unnamed_set_aside(judged(x.subject, outcome, inventory, []), publisher_named)


def _unnamed_set_aside(result: Judged, publisher_named: bool) -> Judged:
    if publisher_named:
        return result
    # The document names nobody: what the publisher rules said compares a placeholder, not a publisher.
    dropped = sorted({f.rule for f in result.findings if f.rule in PUBLISHER_RULES})
    kept = [
        replace(f, evidence={k: v for k, v in f.evidence.items() if k not in PUBLISHER_EVIDENCE})
        for f in result.findings
        if f.rule not in PUBLISHER_RULES
    ]
    note = "who published it (publisher or mechanism change, provenance): the document names no publisher"
    note += f"; set aside: {', '.join(dropped)}" if dropped else ""
    return Judged(result.subject, verdict_of(kept), kept, [*result.not_checked, note])


def _not_checked(rows: list[Judged]) -> None:
    """What was not checked, once per reason, with the versions it applies to."""
    by_reason: dict[str, list[str]] = {}
    for r in rows:
        for why in r.not_checked:
            by_reason.setdefault(why, []).append(r.subject)
    for why, subjects in by_reason.items():
        shown = ", ".join(subjects[:5]) + (f" and {len(subjects) - 5} more" if len(subjects) > 5 else "")
        print(f"not checked: {why} ({shown})")


def _table(rows: list[Judged]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("package", "verdict", "why", "not checked", box=None, pad_edge=False)
    for r in rows:
        why = ", ".join(sorted({f.rule.rsplit(".", 1)[-1] for f in r.findings if f.effect != "alert"}))
        alerts = ", ".join(sorted({f.rule.rsplit(".", 1)[-1] for f in r.findings if f.effect == "alert"}))
        why = "; ".join(x for x in (why, f"alert: {alerts}" if alerts else "") if x)
        table.add_row(r.subject, r.verdict, why or "-", str(len(r.not_checked)) if r.not_checked else "-")
    width = int(os.environ.get("COLUMNS", "0") or 0) or 160
    Console(width=width, soft_wrap=False, highlight=False).print(table)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def add_parser(g_sub: Any, common: Any, cli: Any) -> None:
    """`nhiguard gate npm-install` (streams/gate.py registers it)."""
    p = g_sub.add_parser(
        "npm-install",
        help="judge every version a package-lock.json locks by its registry document, before `npm ci`",
    )
    p.add_argument("lockfile", nargs="?", metavar="LOCKFILE", help="default: ./package-lock.json")
    p.add_argument("--registry", metavar="URL", help="default: `npm config get registry` beside the lockfile")
    p.add_argument(
        "--token-env",
        metavar="VAR",
        help="the variable holding a token for the registry (default: NODE_AUTH_TOKEN, then NPM_TOKEN)",
    )
    p.add_argument(
        "--deadline", type=float, default=60.0, metavar="S", help="for all registry documents (default 60)"
    )
    common(p)
    p.set_defaults(func=cli, gate=run_install)
