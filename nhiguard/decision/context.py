"""Who acts: identity records (the non-human identities' inventory) and how they are loaded.

An event's identity context (known or not, kind, trust tier, whether the action is allowed) is judged from
these records; what the identity's events established is state (decision/state.py).
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import io
import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import yaml


@dataclass(frozen=True, slots=True)
class ExpectedPublisher:
    """How an identity is expected to publish: the inventory's word, compared with what a release says.

    `ref` is a glob over the Git ref (`*` stops at `/`, `**` does not), e.g. `refs/tags/v*`; empty means the
    policies' default (policies/data.yaml). An empty field is not checked.
    """

    mechanism: str = ""  # trusted_publishing | token
    repository: str = ""  # owner/name
    workflow: str = ""  # the workflow file's path in the repository
    ref: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExpectedPublisher:
        return cls(**{k: str(d.get(k) or "") for k in ("mechanism", "repository", "workflow", "ref")})

    def record(self) -> dict[str, str]:
        return {
            "mechanism": self.mechanism,
            "repository": self.repository,
            "workflow": self.workflow,
            "ref": self.ref,
        }


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    kind: str
    owner: str = ""
    team: str = ""
    credential_ids: tuple[str, ...] = ()
    allowed_actions: tuple[str, ...] = ()
    trust_tier: int = 3
    expected_publisher: ExpectedPublisher | None = None
    allowed_destinations: tuple[str, ...] = ()
    created_ms: int | None = None
    expires_ms: int | None = None
    # CIDRs the credential may be used from (an npm token's CIDR allow-list, a cloud key's source-IP
    # condition); empty: anywhere. Normalised (`10.0.0.0/8`), IPv4 or IPv6.
    networks: tuple[str, ...] = ()
    # Other canonical ids its events arrive under: a workflow's jobs name it `github:<repo>/workflow:<name>`,
    # its runs by file path. The inventory resolves an alias to this id before state, routing or policy.
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Identity:
        """From a YAML/JSON mapping, a CSV row (lists separated by `;`) or a decoded Avro record."""
        if not d.get("id") or not d.get("kind"):
            raise ValueError(f"identity record needs id and kind: {d!r}")
        if str(d["kind"]) not in IDENTITY_KINDS:
            raise ValueError(f"identity {d['id']}: kind must be one of {', '.join(IDENTITY_KINDS)}")
        publisher = d.get("expected_publisher") or None
        if publisher is not None:
            if not isinstance(publisher, dict):
                raise ValueError(f"identity {d['id']}: expected_publisher must be a mapping")
            publisher = ExpectedPublisher.from_dict(publisher)
        return cls(
            id=str(d["id"]),
            kind=str(d["kind"]),
            owner=str(d.get("owner") or ""),
            team=str(d.get("team") or ""),
            credential_ids=_strings(d.get("credential_ids")),
            allowed_actions=_strings(d.get("allowed_actions")),
            trust_tier=int(d["trust_tier"]) if d.get("trust_tier") not in (None, "") else 3,
            expected_publisher=publisher,
            allowed_destinations=_strings(d.get("allowed_destinations")),
            created_ms=_time_ms(d.get("created"), d.get("created_ms")),
            expires_ms=_time_ms(d.get("expires"), d.get("expires_ms")),
            networks=_networks(str(d["id"]), d.get("networks")),
            aliases=tuple(a for a in _strings(d.get("aliases")) if a != str(d["id"])),
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as the Avro Identity schema (schemas/nhiguard.Identity.avsc) has it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "owner": self.owner,
            "team": self.team,
            "credential_ids": list(self.credential_ids),
            "allowed_actions": list(self.allowed_actions),
            "trust_tier": self.trust_tier,
            "expected_publisher": self.expected_publisher.record() if self.expected_publisher else None,
            "allowed_destinations": list(self.allowed_destinations),
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "networks": list(self.networks),
            "aliases": list(self.aliases),
        }

    def expectations(self) -> dict[str, Any]:
        """What the inventory expects of this identity, for the policy input (`input.identity`); only what it
        says, so the input of the many identities that expect nothing stays small."""
        out: dict[str, Any] = {}
        if self.expected_publisher is not None:
            out["expected_publisher"] = self.expected_publisher.record()
        if self.allowed_destinations:
            out["allowed_destinations"] = list(self.allowed_destinations)
        if self.networks:
            out["networks"] = list(self.networks)
        return out

    def allows(self, action: str) -> bool:
        """No allowed actions listed means no restriction; otherwise one of the globs must match."""
        return not self.allowed_actions or any(fnmatch.fnmatchcase(action, p) for p in self.allowed_actions)

    def admits_address(self, address: str) -> bool | None:
        """Whether a client address lies in one of the identity's networks (True when it declares none);
        None when the address cannot be read as an IP address."""
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return None
        # An IPv4 address a dual-stack proxy logged as ::ffff:a.b.c.d is that IPv4 address.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in _parsed(self.networks))  # another IP version is never `in`

    def reaches(self, host: str, ip: str) -> bool | None:
        """Whether a destination (its host name, its IP address: either may be "") is one the identity may
        reach: True when an allowed destination admits it (a listed host its name, a listed network its
        address), False when the identity lists entries of a kind the destination names and none admits it
        (the networks listed are the whole address allow-list: a sensor that sees only addresses is judged by
        them), None when the identity lists nothing of that kind (an address against host names only: a name's
        addresses are not known here)."""
        hosts, nets = _destinations(self.allowed_destinations)
        host = host.lower().rstrip(".")
        if host and any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in hosts):
            return True
        addr = _address(ip)
        if addr is not None and any(addr in n for n in nets):
            return True
        return False if (addr is not None and nets) or (host and hosts) else None


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return None
    return addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped else addr


@functools.lru_cache(maxsize=4096)
def _destinations(entries: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """allowed_destinations as (host names, networks): an IP address or CIDR is a network; anything else a
    host name, or a URL whose host counts (`https://registry.npmjs.org/`); `*.example.com` admits its
    subdomains."""
    hosts, nets = [], []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
            continue
        except ValueError:
            pass
        rest = entry.strip().lower().split("://", 1)[-1]
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host = host if host.startswith("[") else host.split(":", 1)[0]
        if host:
            hosts.append(host.rstrip("."))
    return tuple(hosts), tuple(nets)


IDENTITY_KINDS = (
    "service_account",
    "ci_bot",
    "package_publisher",
    "cms_integration",
    "ai_agent",
    "cloud_role",
    "k8s_service_account",
)


def _strings(v: Any) -> tuple[str, ...]:
    if not v:
        return ()
    return tuple(x.strip() for x in v.split(";") if x.strip()) if isinstance(v, str) else tuple(map(str, v))


def _networks(identity: str, v: Any) -> tuple[str, ...]:
    """CIDRs, normalised; a value that is not one (or has host bits set: `10.0.3.7/8` is a typo for
    something) refuses the record, so a wrong allow-list fails at load, not as revocations."""
    out = []
    for cidr in _strings(v):
        try:
            out.append(str(ipaddress.ip_network(cidr)))
        except ValueError as e:
            raise ValueError(f"identity {identity}: networks: {e}") from None
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _parsed(networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n) for n in networks)


def _time_ms(when: Any, ms: Any) -> int | None:
    if ms not in (None, ""):
        return int(ms)
    if when in (None, ""):
        return None
    if isinstance(when, (int, float)):
        return int(when * 1000)
    if isinstance(when, str):
        when = when.strip()
        # A bare date (as YAML would read it) means midnight UTC, in CSV and JSON too.
        when = (
            date.fromisoformat(when)
            if len(when) == 10
            else datetime.fromisoformat(when.replace("Z", "+00:00"))
        )
    if isinstance(when, date) and not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day, tzinfo=UTC)
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise ValueError(f"identity times need a zone: {when!r}")
    return int(when.timestamp() * 1000)


class Inventory:
    """Identity records by canonical id, or by an alias. Loaded from YAML, JSON or CSV (see README)."""

    def __init__(self, identities: list[Identity] | None = None) -> None:
        self._by_id = {i.id: i for i in identities or ()}
        self._aliases: dict[str, str] = {}
        for i in self._by_id.values():
            for a in i.aliases:
                # One alias, one identity: a job of a workflow must not be decided as another's.
                if self._aliases.setdefault(a, i.id) != i.id:
                    raise ValueError(f"alias {a} is claimed by {self._aliases[a]} and {i.id}")

    @classmethod
    def load(cls, path: Path) -> Inventory:
        text = Path(path).read_text()
        if Path(path).suffix.lower() == ".csv":
            return cls([Identity.from_dict(r) for r in csv.DictReader(io.StringIO(text))])
        return cls.load_dict(
            json.loads(text) if Path(path).suffix.lower() == ".json" else yaml.safe_load(text)
        )

    @classmethod
    def load_dict(cls, doc: dict[str, Any] | list[dict[str, Any]] | None) -> Inventory:
        """From `{"identities": [...]}` or a bare list of identity records."""
        rows = doc.get("identities", []) if isinstance(doc, dict) else (doc or [])
        return cls([Identity.from_dict(r) for r in rows])

    def get(self, identity_id: str) -> Identity | None:
        """The identity with this id, else the one this is an alias of (an id always wins over an alias)."""
        found = self._by_id.get(identity_id)
        return found if found is not None else self._by_id.get(self._aliases.get(identity_id, ""))

    def all(self) -> list[Identity]:
        return list(self._by_id.values())

    def put(self, identity: Identity) -> None:
        self.remove(identity.id)
        self._by_id[identity.id] = identity
        self._aliases.update(dict.fromkeys(identity.aliases, identity.id))

    def remove(self, identity_id: str) -> None:
        gone = self._by_id.pop(identity_id, None)
        for a in gone.aliases if gone is not None else ():
            if self._aliases.get(a) == identity_id:
                del self._aliases[a]

    def __len__(self) -> int:
        return len(self._by_id)


class Identities(Protocol):
    """Identity records by canonical id (or an alias of one: the record names the id): an Inventory, or the
    worker's view of its identities table."""

    def get(self, identity_id: str) -> Identity | None: ...
