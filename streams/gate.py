"""`nhiguard gate npm-publish [DIR]` and `nhiguard gate npm-install [package-lock.json]`: a CI step asks
before the harm (a source map published, a hijacked version installed) and fails on DENY.

Exit 0 allow, 1 deny, 2 error. `--url URL` asks a running nhiguard (streams/gate_remote.py: the decision API,
with the server's state and inventory). `--offline` decides here, with the bundled (or `--policies`) policies,
by the decision core on the request's own time, with no state: what needs state (the package's previous
release, the identity's history) or an inventory that was not given is printed as *not checked*, and never
denies by itself. The publish gate judges what `npm pack` would publish and where the job runs
(streams/gate_context.py); the install gate judges every locked version by its registry document
(streams/gate_install.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.decide import verdict_of
from nhiguard.decision.records import Actor, CanonicalEvent, DeadLetter, Decision, Finding, RawRecord
from nhiguard.lookup import RegistryLookup
from nhiguard.policy.bundle import BundleError, load_bundle
from nhiguard.settings import Settings
from nhiguard.streams import gate_context
from nhiguard.streams.gate_context import GateError, Job

ALLOW, DENY, ERROR = 0, 1, 2
# Rules that judge the identity against the inventory: without one, every identity is unknown to it.
INVENTORY_RULES = ("identity.inventory.",)
# Facts the publish gate cannot have offline: they are the server's state.
PUBLISH_STATE = (
    "size against the package's previous release (ci.release_artifacts.size_jump): needs the server's state",
    "repository of the package's previous release (ci.release_origin.other_repository): needs the server's"
    " state",
)


@dataclass
class Judged:
    """One thing a gate decided: its verdict on the findings it could check, and what it could not check."""

    subject: str
    verdict: str  # ALLOW | DENY | REVOKE, from the checked findings only
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def denied(self) -> bool:
        return self.verdict != "ALLOW"


def judged(subject: str, decision: Decision, inventory_given: bool, not_checked: list[str]) -> Judged:
    """The decision with the findings that only say an inventory was not given set aside as not checked."""
    checked, unchecked = [], list(not_checked)
    for f in decision.findings:
        if not inventory_given and f.rule.startswith(INVENTORY_RULES):
            unchecked.append(f"{f.rule}: {f.reason} (no inventory given: --identities FILE)")
        else:
            checked.append(f)
    return Judged(subject, verdict_of(checked), checked, unchecked)


class OfflineCore:
    """The decision core with nothing but the policies (and an inventory, if given), deciding on the
    requests' own times (history: `body_time`), one batch at a time."""

    def __init__(
        self,
        settings: Settings,
        identities: Path | None,
        policies: Path | None,
        lookup: RegistryLookup | None = None,
    ) -> None:
        try:
            self.inventory = Inventory.load(identities) if identities else Inventory()
            bundle = load_bundle(policies or settings.policies_dir)
        except (OSError, ValueError, BundleError) as exc:
            raise GateError(str(exc)) from None
        self.inventory_given = identities is not None
        self.settings = settings
        try:
            self.core = DecisionCore(settings, bundle, self.inventory, lookup=lookup, body_time=True)
        except Exception as exc:  # regopy's RegoError: a bundle that does not compile (an s-expression dump)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GateError(f"the policy bundle does not compile: {first[:200]}") from None

    @property
    def revision(self) -> str:
        return self.core.bundle.revision

    def record(self, topic: str, body: dict[str, Any], offset: int = 0) -> RawRecord:
        value = json.dumps(body, separators=(",", ":")).encode()
        return RawRecord(topic, 0, offset, value, timestamp_ms=int(time.time() * 1000))

    def decide(
        self, read: list[tuple[RawRecord, CanonicalEvent | DeadLetter]]
    ) -> list[Decision | DeadLetter]:
        """Each read record's decision or dead letter, in the order given."""
        result = self.core.process_read(read)
        by_offset: dict[int, Decision | DeadLetter] = {d.offset: d for d in result.decisions}
        by_offset |= {x.offset: x for x in result.deadletters}
        return [by_offset[rec.offset] for rec, _ in read]


# ---------------------------------------------------------------------------------------------------------
def publish_request(job: Job, packed: dict[str, Any], registry: str, access: str, tag: str) -> dict[str, Any]:
    """The gate request (docs/sources.md, npm.publish_gate) for what `npm pack` would publish."""
    return {
        "gate": "npm-publish",
        "request_id": str(uuid.uuid4()),
        "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "registry": registry,
        "tag": tag,
        "access": access,
        # The request's format names the job by its GitHub context; outside CI there is none, and the gate
        # names the identity itself (for_job).
        "github": job.github or {"repository": job.identity, "workflow_ref": job.identity},
        "pack": packed,
    }


def for_job(ev: CanonicalEvent, job: Job) -> CanonicalEvent:
    """The request's event as this job's: outside GitHub the identity is the gate's (gitlab:…, local), and
    outside CI there is no origin to judge."""
    if job.ci == "github":
        return ev
    actor = Actor(id=job.identity, display=job.identity, human=False, source_principal=job.identity)
    facts = ev.facts
    if job.github is None and facts is not None and hasattr(facts, "origin"):
        facts = replace(facts, origin=None)  # type: ignore[type-var]
    return replace(ev, actor=actor, facts=facts)


def publish_settings(directory: Path, name: str, args: Any, env: dict[str, str]) -> tuple[str, str, str]:
    """(registry, access, tag) as `npm publish` would use them: the flag, else publishConfig, else npm's
    default (a scoped package is restricted unless it says public)."""
    config = gate_context.manifest(directory).get("publishConfig")
    config = config if isinstance(config, dict) else {}
    registry = args.registry or config.get("registry")
    registry = registry or gate_context.configured_registry(directory, env, name)
    access = args.access or config.get("access") or ("restricted" if name.startswith("@") else "public")
    tag = args.tag or config.get("tag") or "latest"
    return str(registry), str(access), str(tag)


def run_publish(settings: Settings, args: Any, env: dict[str, str]) -> int:
    directory = Path(args.dir or ".")
    job = gate_context.job_from_env(env)
    if args.url and job.github is None:
        raise GateError("--url asks about a CI job (GitHub Actions, GitLab CI): outside CI, use --offline")
    packed = gate_context.pack(directory, env)
    registry, access, tag = publish_settings(directory, str(packed.get("name", "")), args, env)
    request = publish_request(job, packed, registry, access, tag)
    if args.url:
        from nhiguard.streams.gate_remote import remote

        server = remote(args, env)
        subject = f"{packed.get('name')}@{packed.get('version')}"
        answer = server.ask(request)
        result = server.judged(subject, answer, [])
        print(f"nhiguard gate npm-publish: {subject} to {registry} ({access}, tag {tag}), asked {args.url}")
        print_judged(result, str((answer or {}).get("bundle_revision") or "unknown"))
        return DENY if result.denied else ALLOW
    offline = OfflineCore(settings, _path(args.identities), _path(args.policies))
    rec = offline.record(settings.topics.ci, request)
    ev = offline.core.read(rec)
    if isinstance(ev, DeadLetter):
        raise GateError(f"the gate request for {directory} is unreadable: {ev.reason}: {ev.detail}")
    outcome = offline.decide([(rec, for_job(ev, job))])[0]
    if isinstance(outcome, DeadLetter):
        raise GateError(f"the gate request for {directory} was not decided: {outcome.reason}")
    unchecked = list(PUBLISH_STATE)
    if job.github is None:
        unchecked.append(
            "where the job runs (ci.release_origin): no CI context (not GitHub Actions or GitLab CI)"
        )
    result = judged(ev.resource_id, outcome, offline.inventory_given, unchecked)
    print(
        f"nhiguard gate npm-publish: {result.subject} to {registry} ({access}, tag {tag}) as {job.identity}"
    )
    print_judged(result, offline.revision)
    return DENY if result.denied else ALLOW


def print_judged(result: Judged, revision: str) -> None:
    """The verdict, each finding with its reason and evidence, and what was not checked."""
    print(f"{result.verdict} {result.subject} (policy bundle {revision})")
    for f in sorted(result.findings, key=lambda f: (f.effect == "alert", f.rule)):
        mode = "" if f.mode == "enforce" else f" [{f.mode}]"
        print(f"  {f.effect.upper()}{mode} {f.rule}: {f.reason}")
        for key, values in f.evidence.items():
            if key not in ("identity", "resource", "request"):
                print(f"      {key}: {', '.join(values)}")
    for what in result.not_checked:
        print(f"  not checked: {what}")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


# ---------------------------------------------------------------------------------------------------------
def add_parser(sub: Any) -> None:
    """`nhiguard gate` on the CLI (streams/cli.py)."""
    g = sub.add_parser("gate", help="ask before the harm: exit 0 allow, 1 deny, 2 error (CI steps)")
    g_sub = g.add_subparsers(dest="gate_command", required=True)
    p = g_sub.add_parser(
        "npm-publish",
        help="judge what `npm pack` would publish from DIR, and where the job runs, before `npm publish`",
    )
    p.add_argument("dir", nargs="?", metavar="DIR", help="the package directory (default: .)")
    p.add_argument("--access", choices=("public", "restricted"), help="as npm publish --access")
    p.add_argument("--tag", help="as npm publish --tag")
    p.add_argument("--registry", metavar="URL", help="as npm publish --registry")
    p.add_argument(
        "--deadline", type=float, default=60.0, metavar="S", help="for the decision (--url; default 60)"
    )
    _common(p)
    p.set_defaults(func=_cli, gate=run_publish)
    from nhiguard.streams import gate_install

    gate_install.add_parser(g_sub, _common, _cli)


def _common(p: Any) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--offline", action="store_true", help="decide here with the bundled policies, no server"
    )
    where.add_argument("--url", metavar="URL", help="ask a running nhiguard serve (its decision API)")
    p.add_argument(
        "--api-token-env",
        metavar="VAR",
        help="the variable holding the decision API's token (--url; default NHIGUARD_API_TOKEN)",
    )
    p.add_argument("--fail-open", action="store_true", help="--url: allow what is not decided in time")
    p.add_argument("--identities", metavar="FILE", help="identity inventory (offline: else not checked)")
    p.add_argument("--policies", metavar="DIR", help="policy bundle directory (default: the bundled one)")


def _cli(args: Any) -> int:
    from nhiguard.settings import load_settings

    name = f"nhiguard gate {args.gate_command}"
    if not args.offline and not args.url:
        print(f"{name}: give --url URL (a running nhiguard serve) or --offline", file=sys.stderr)
        return ERROR
    try:
        return int(args.gate(load_settings(), args, dict(os.environ)))
    except GateError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return ERROR
