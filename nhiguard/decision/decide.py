"""decide: policy findings + context -> verdict and enforcement commands. Pure and deterministic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nhiguard.decision.context import ContextState, Identity
from nhiguard.decision.policy import PolicyBundle, Waiver
from nhiguard.decision.records import CanonicalEvent, Command, Finding, is_engine_failure, stable_id

REVOKE_DEDUP_MS = 3_600_000


def to_findings(
    raw: list[dict[str, Any]], bundle: PolicyBundle, prior_installers: tuple[str, ...] = ()
) -> list[Finding]:
    """Engine output (tagged with its policy by the entry module) -> Findings with the policy's metadata.

    A finding with `"targets": "prior_installers"` revokes the known identities that installed the version
    before it was denied (policies return no input strings, so nhiguard resolves who they are).
    """
    out = []
    for f in raw:
        who = prior_installers if f.get("targets") == "prior_installers" else f.get("identities") or ()
        policy_id = str(f["policy"])
        mod = bundle.by_id.get(policy_id)
        out.append(
            Finding(
                rule=f"{policy_id}.{f['rule']}",
                effect=str(f["effect"]),
                reason=str(f.get("reason", "")),
                policy=policy_id,
                severity=mod.severity if mod else "medium",
                mode=mod.mode if mod else "enforce",
                identities=tuple(sorted(str(i) for i in who)),
                title=mod.title if mod else "policy engine gave no answer",
                attack=mod.attack if mod else (),
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


def _deny_target(ev: CanonicalEvent, findings: list[Finding]) -> tuple[str, str]:
    if all(is_engine_failure(f) for f in findings):
        # The engine could not judge this event: deny this request only, never the package version or
        # asset for everyone (a fail-closed timeout is not a finding about the package).
        return "request", ev.event_id
    return ("request", ev.event_id) if ev.facts is None else ev.facts.deny_target(ev.resource_id)


def commands_for(
    ev: CanonicalEvent,
    findings: list[Finding],
    identities: dict[str, Identity | None],
    state: ContextState,
    revision: str,
    deny_ttl_ms: int,
    revoke_ttl_ms: int,
) -> list[Command]:
    """The enforcement commands a decision calls for. Shadow-mode findings never produce commands.

    Commands are stamped with the event's time, so replaying a stream gives the same commands (and a replay
    of history yields commands that have long expired, as they should).
    """
    enforce = [f for f in findings if f.mode == "enforce"]
    cmds: list[Command] = []
    denies = [f for f in enforce if f.effect == "deny"]
    if denies:
        ttype, target = _deny_target(ev, denies)
        cmds.append(_command("DENY", ev, ev.actor.id, ttype, target, denies, revision, deny_ttl_ms))
    revokes = [f for f in enforce if f.effect == "revoke"]
    who = sorted({i for f in revokes for i in (f.identities or (ev.actor.id,))})
    for identity_id in who:
        why = [f for f in revokes if identity_id in (f.identities or (ev.actor.id,))]
        # One REVOKE per identity and reason within an hour, not one per event of a burst; another reason,
        # or the same one after the hour (the credential may have been reissued), revokes again.
        key = identity_id + "|" + ",".join(sorted({f.rule for f in why}))
        if not state.mark_revoked(ev.actor.id, key, ev.occurred_at_ms, ev.occurred_at_ms + REVOKE_DEDUP_MS):
            continue
        ident = identities.get(identity_id)
        creds = ident.credential_ids if ident and ident.credential_ids else (f"identity:{identity_id}",)
        for cred in creds:
            cmds.append(_command("REVOKE", ev, identity_id, "credential", cred, why, revision, revoke_ttl_ms))
    return cmds


def _command(
    kind: str,
    ev: CanonicalEvent,
    identity: str,
    target_type: str,
    target: str,
    findings: list[Finding],
    revision: str,
    ttl_ms: int,
) -> Command:
    rules = tuple(sorted({f.rule for f in findings}))
    return Command(
        command_id=stable_id("cmd", ev.event_id, kind, identity, target_type, target, *rules),
        kind=kind,
        identity=identity,
        target_type=target_type,
        target=target,
        reasons=tuple(f.reason for f in findings),
        policy_ids=tuple(sorted({f.policy for f in findings})),
        rule_ids=rules,
        bundle_revision=revision,
        event_id=ev.event_id,
        issued_at_ms=ev.occurred_at_ms,
        expires_at_ms=ev.occurred_at_ms + ttl_ms,
    )
