"""enrich: one event and what is known about it -> its policy input, and the effects it observed.

Reads only: the inventory (who acted) and the state through the wave's view (what earlier events
established). Enrichment computes *facts* (how many assets this identity exposed in the last ten minutes,
the previous release's size, how old an added dependency is); the policies make the judgements.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from nhiguard.decision.adapters import external_principals
from nhiguard.decision.context import Identities, Identity
from nhiguard.decision.effects import Effect, Seen
from nhiguard.decision.records import CanonicalEvent, RawRecord
from nhiguard.decision.state import StateView


@dataclass(frozen=True, slots=True)
class Enriched:
    rec: RawRecord
    ev: CanonicalEvent
    identity: Identity | None  # the inventory's record of the actor
    identity_kind: str  # as the policies see it: a kind of the inventory, or human / external / unknown
    policy_input: dict[str, Any]  # only the fields the policies read: conversion cost grows with the input
    targets: dict[str, tuple[str, ...]]  # identities a finding may name with "targets" (facts.Context)
    observed: tuple[Effect, ...]  # what the event establishes whatever the decision


def identity_facts(identity: Identity | None, ev: CanonicalEvent) -> dict[str, Any]:
    """What the policies know about who acted: from the inventory, judged at the event's time."""
    if identity is None:
        # A principal outside the organisation (its source says so) is "external", not unknown.
        kind = "human" if ev.actor.human else "external" if external_principals(ev.source) else "unknown"
        return {
            "known": False,
            "kind": kind,
            "trust_tier": 0,
            "expired": False,
            "action_allowed": True,  # nothing to hold it against; the unknown_identity rule covers it
        }
    return {
        "known": True,
        "kind": identity.kind,
        "trust_tier": identity.trust_tier,
        "team": identity.team,
        "expired": identity.expires_ms is not None and ev.occurred_at_ms >= identity.expires_ms,
        "action_allowed": identity.allows(ev.action),
        **identity.expectations(),  # expected_publisher, allowed_destinations, networks
        **network_facts(identity, ev),
        **destination_facts(identity, ev),
    }


def network_facts(identity: Identity, ev: CanonicalEvent) -> dict[str, Any]:
    """Whether the event's client address lies in the identity's declared networks: `address_in_networks`,
    or `address_unreadable` for an address that is not an IP; nothing when either is missing. Judged here, not
    in Rego: regopy 1.5.2 knows `net.cidr_contains` by name only (it evaluates to undefined, README)."""
    address = ev.facts.used_from() if ev.facts is not None else ""
    if not identity.networks or not address:
        return {}
    inside = identity.admits_address(address)
    return {"address_unreadable": True} if inside is None else {"address_in_networks": inside}


def destination_facts(identity: Identity, ev: CanonicalEvent) -> dict[str, Any]:
    """Whether the destination an event connected to is one the identity may reach (`destination_allowed`),
    or `destination_unjudged` when that cannot be told (Identity.reaches); nothing when the identity lists no
    destinations, the event connected nowhere, or to its own host (loopback never leaves it)."""
    dest = ev.facts.destination() if ev.facts is not None else None
    if not identity.allowed_destinations or dest is None or _loopback(dest[1]):
        return {}
    allowed = identity.reaches(*dest)
    return {"destination_unjudged": True} if allowed is None else {"destination_allowed": allowed}


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def enrich(view: StateView, inventory: Identities, rec: RawRecord, ev: CanonicalEvent) -> Enriched:
    who, at = ev.actor.id, ev.occurred_at_ms
    identity = None if ev.actor.human else inventory.get(who)
    context: dict[str, Any] = {}
    targets: dict[str, tuple[str, ...]] = {}
    observed: tuple[Effect, ...] = ()
    if not ev.actor.human:  # no NHI rule applies to a person: no state kept for them either
        me = view.identity(who)
        context = {
            "first_seen_ms": me.first_seen_ms if me.first_seen_ms is not None else at,
            "events_before": me.events,
        }
        observed = (Seen(who, at),)
        if ev.facts is not None:
            found = ev.facts.context(view, who, at)
            context |= found.facts
            targets = found.targets
            observed += ev.facts.observed(who, at)
    facts = identity_facts(identity, ev)
    policy_input: dict[str, Any] = {
        "domain": ev.domain,
        "action": ev.action,
        "actor": who,
        "resource_id": ev.resource_id,
        "identity": facts,
        "context": context,
    }
    if ev.facts is not None:
        policy_input[ev.facts.family] = ev.facts.policy_input()
    return Enriched(rec, ev, identity, facts["kind"], policy_input, targets, observed)
