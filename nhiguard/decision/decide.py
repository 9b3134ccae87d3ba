"""decide: policy findings + what the event established -> verdict, commands, and the effects it wants.

Pure and deterministic: it reads the actor's revocations in force and returns, as effects, what the state must
remember (revocations issued, a denied version, an allowed release) and what the behavioural model may learn;
`State.apply` writes them.

Evidence-graded enforcement: a finding does at most what its policy declares (METADATA `custom.effects`,
default alert and deny), and a REVOKE needs a finding graded `compromise` (the credential is in other hands)
or `harm` (it is being used for harm). Anything else is capped: revoke -> deny, and deny -> alert where the
policy does not declare deny. An alert makes no command. A REVOKE of the actor also denies the request in
hand, so a gated step does not go ahead with the credential being revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from nhiguard.decision.context import Identity
from nhiguard.decision.effects import Effect, Learned, Revoked
from nhiguard.decision.identity_state import IdentityFacts
from nhiguard.decision.records import (
    TARGET_TYPES,
    CanonicalEvent,
    Command,
    Finding,
    is_engine_failure,
    stable_id,
)
from nhiguard.models.anomaly import Score
from nhiguard.policy.bundle import DEFAULT_EFFECTS, PolicyBundle, Waiver

REVOKE_DEDUP_MS = 3_600_000
GRADES = ("hygiene", "compromise", "harm")
REVOKE_GRADES = frozenset({"compromise", "harm"})


def grade_of(raw: Mapping[str, Any]) -> str:
    """A finding's evidence grade from engine output: `"evidence": <grade>` (or a structured `evidence`
    object with a `grade` field); "" when it has none."""
    evidence = raw.get("evidence")
    grade = evidence.get("grade") if isinstance(evidence, Mapping) else evidence
    return grade if isinstance(grade, str) and grade in GRADES else ""


def capped(effect: str, grade: str, declared: tuple[str, ...]) -> str:
    """The effect a finding may have: revoke only when its policy declares revoke and the evidence is
    compromise or harm (else deny), deny only when the policy declares deny (else alert)."""
    if effect == "revoke" and not ("revoke" in declared and grade in REVOKE_GRADES):
        effect = "deny"
    if effect == "deny" and "deny" not in declared:
        effect = "alert"
    return effect


def to_findings(
    raw: list[dict[str, Any]], bundle: PolicyBundle, targets: Mapping[str, tuple[str, ...]] | None = None
) -> list[Finding]:
    """Engine output (tagged with its policy by the entry module) -> Findings with the policy's metadata.

    A finding with `"targets": <name>` revokes the identities enrichment resolved under that name (e.g.
    `prior_installers`: the known identities that installed the version before it was denied; policies return
    no input strings, so nhiguard resolves who they are). Each finding's effect is capped to what its
    policy declares and its evidence grade supports (`capped`); the effect asked for is kept in `capped_from`.
    """
    out = []
    for f in raw:
        who = (targets or {}).get(f["targets"], ()) if f.get("targets") else f.get("identities") or ()
        policy_id = str(f["policy"])
        mod = bundle.by_id.get(policy_id)
        asked, grade = str(f["effect"]), grade_of(f)
        effect = capped(asked, grade, mod.effects if mod else DEFAULT_EFFECTS)
        out.append(
            Finding(
                rule=f"{policy_id}.{f['rule']}",
                effect=effect,
                reason=str(f.get("reason", "")),
                policy=policy_id,
                severity=mod.severity if mod else "medium",
                mode=mod.mode if mod else "enforce",
                identities=tuple(sorted(str(i) for i in who)),
                title=mod.title if mod else "policy engine gave no answer",
                attack=mod.attack if mod else (),
                grade=grade,
                capped_from=asked if effect != asked else "",
            )
        )
    return sorted(out, key=lambda x: (x.rule, x.reason))


def apply_waivers(findings: list[Finding], ev: CanonicalEvent, waivers: list[Waiver]) -> list[Finding]:
    """Set aside the findings an active waiver covers. Judged at the event's time, so a waiver stops applying
    by itself when it expires, and a replay of history honours the waivers that were in force then."""
    if not waivers:
        return findings
    out = []
    for f in findings:
        w = next(
            (w for w in waivers if w.covers(f.rule, ev.actor.id, ev.resource_id, ev.occurred_at_ms)), None
        )
        out.append(replace(f, mode="waived", waiver=w.id) if w and f.mode == "enforce" else f)
    return out


def verdict_of(findings: list[Finding]) -> str:
    effects = {f.effect for f in findings if f.mode == "enforce"}
    return "REVOKE" if "revoke" in effects else "DENY" if "deny" in effects else "ALLOW"


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: str
    shadow_verdict: str  # what the verdict would be with the shadow-mode findings enforced
    commands: list[Command]
    effects: tuple[Effect, ...]


@dataclass(frozen=True, slots=True)
class Enforcement:
    """How commands are stamped: the bundle that decided, and how long a DENY and a REVOKE last."""

    revision: str
    deny_ttl_ms: int
    revoke_ttl_ms: int


def decide(
    ev: CanonicalEvent,
    findings: list[Finding],
    score: Score | None,
    identities: Mapping[str, Identity | None],
    actor: IdentityFacts | None,
    enforcement: Enforcement,
) -> Outcome:
    """The verdict, the commands it calls for and the effects it wants. `score` is the event's anomaly
    score (None for a person); `actor` the acting identity's facts (its revocations in force)."""
    verdict = verdict_of(findings)
    shadow = verdict_of([replace(f, mode="enforce") if f.mode == "shadow" else f for f in findings])
    commands, revoked = _commands(ev, findings, identities, actor, enforcement)
    at = ev.occurred_at_ms
    effects: list[Effect] = []
    if revoked:
        effects.append(Revoked(ev.actor.id, revoked, at, at + REVOKE_DEDUP_MS))
    judged = [f for f in findings if not is_engine_failure(f)]
    if ev.facts is not None and (len(judged) == len(findings) or (judged and verdict_of(judged) == verdict)):
        # A decision no policy made (the engine gave no answer) must not become history: no denied version,
        # no release to compare the next one with. But the first stage's judgement stands when only the
        # anomaly stage failed and failing did not change the verdict: what the rules denied stays denied.
        effects += ev.facts.decided(verdict, at, judged)
    if score is not None:
        effects.append(Learned(ev.actor.id, ev, score, allowed=verdict == "ALLOW"))
    return Outcome(verdict, shadow, commands, tuple(effects))


def revoked_rules(actor: IdentityFacts | None, identity: str, at_ms: int) -> list[str]:
    """The rules whose REVOKE of this identity's own credential is in force at `at_ms` (remembered for
    REVOKE_DEDUP_MS after it was issued, with the identity whose event issued it)."""
    if actor is None:
        return []
    prefix = identity + "|"
    keys = [k[len(prefix) :] for k in actor.revoked if k.startswith(prefix) and actor.in_force(k, at_ms)]
    return sorted({rule for k in keys for rule in k.split(",")})


def _deny_target(ev: CanonicalEvent, findings: list[Finding]) -> tuple[str, str]:
    if all(is_engine_failure(f) for f in findings):
        # The engine could not judge this event: deny this request only, never the package version or
        # asset for everyone (a fail-closed engine failure is not a finding about the package). A gate's
        # request under the id the gate waits for (`request:<request_id>`), or the gate would not see it.
        return _request_of(ev)
    return ("request", ev.event_id) if ev.facts is None else ev.facts.deny_target(ev.resource_id)


def _request_of(ev: CanonicalEvent) -> tuple[str, str]:
    """What a DENY of this event's request names: the gate's request where the facts have one, else the
    event itself (as for a decision the engine could not make)."""
    target = None if ev.facts is None else ev.facts.deny_target(ev.resource_id)
    return target if target is not None and target[0] == "request" else ("request", ev.event_id)


def _commands(
    ev: CanonicalEvent,
    findings: list[Finding],
    identities: Mapping[str, Identity | None],
    actor: IdentityFacts | None,
    enforcement: Enforcement,
) -> tuple[list[Command], tuple[str, ...]]:
    """The enforcement commands a decision calls for, and the revocation keys it issues. Shadow-mode findings
    never produce commands.

    Commands are stamped with the event's time, so replaying a stream gives the same commands (and a replay
    of history yields commands that have long expired, as they should).
    """
    enforce = [f for f in findings if f.mode == "enforce"]
    cmds: list[Command] = []
    denies = [f for f in enforce if f.effect == "deny"]
    revokes = [f for f in enforce if f.effect == "revoke"]
    if denies:
        ttype, target = _deny_target(ev, denies)
        cmds.append(
            _command("DENY", ev, ev.actor.id, ttype, target, denies, enforcement.deny_ttl_ms, enforcement)
        )
    elif mine := [f for f in revokes if not f.identities or ev.actor.id in f.identities]:
        # The actor's credential is being revoked: the request in hand must not go ahead with it either (a
        # gate's step would otherwise proceed). Only the request: a finding about a credential says nothing
        # about the package version or asset for everyone else. Also while an earlier REVOKE of the same
        # reason is in force (no second REVOKE below): each request of the episode is refused.
        cmds.append(
            _command("DENY", ev, ev.actor.id, *_request_of(ev), mine, enforcement.deny_ttl_ms, enforcement)
        )
    issued: list[str] = []
    for identity_id in sorted({i for f in revokes for i in (f.identities or (ev.actor.id,))}):
        why = [f for f in revokes if identity_id in (f.identities or (ev.actor.id,))]
        # One REVOKE per identity and reason within an hour, not one per event of a burst; another reason,
        # or the same one after the hour (the credential may have been reissued), revokes again.
        key = identity_id + "|" + ",".join(sorted({f.rule for f in why}))
        if actor is not None and actor.in_force(key, ev.occurred_at_ms):
            continue
        issued.append(key)
        ident = identities.get(identity_id)
        creds = ident.credential_ids if ident and ident.credential_ids else (f"identity:{identity_id}",)
        for cred in creds:
            ttl = enforcement.revoke_ttl_ms
            cmds.append(_command("REVOKE", ev, identity_id, "credential", cred, why, ttl, enforcement))
    return cmds, tuple(issued)


def _command(
    kind: str,
    ev: CanonicalEvent,
    identity: str,
    target_type: str,
    target: str,
    findings: list[Finding],
    ttl_ms: int,
    enforcement: Enforcement,
) -> Command:
    rules = tuple(sorted({f.rule for f in findings}))
    if target_type not in TARGET_TYPES:  # a family's own kind of target: a request naming it, never a crash
        target_type, target = "request", f"{target_type}:{target}"
    return Command(
        command_id=stable_id("cmd", ev.event_id, kind, identity, target_type, target, *rules),
        kind=kind,
        identity=identity,
        target_type=target_type,
        target=target,
        reasons=tuple(f.reason for f in findings),
        policy_ids=tuple(sorted({f.policy for f in findings})),
        rule_ids=rules,
        bundle_revision=enforcement.revision,
        event_id=ev.event_id,
        issued_at_ms=ev.occurred_at_ms,
        expires_at_ms=ev.occurred_at_ms + ttl_ms,
    )
