"""npm registry hooks and Verdaccio registry-proxy access logs (audit.registry). See docs/sources.md.

Also what nhiguard reads from an npm package document fetched from a registry (`looked_up`): the fetch step
(nhiguard/lookup.py) asks for it, the format is this module's.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from nhiguard.decision.adapters.common import body_hash, get, iso_ms, long_field, need
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import EventFacts
from nhiguard.decision.proxy_facts import ProxyPublish, ProxyRequest
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord
from nhiguard.decision.registry_facts import (
    HISTORY,
    Install,
    LookedUp,
    PastRelease,
    PreviousRelease,
    Publish,
    Publisher,
    Requirement,
)
from nhiguard.decision.semver import max_satisfying, version_key

HOOK_SOURCE = "npm.hook"
PROXY_SOURCE = "verdaccio.log"
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
# A package name, `@scope/name` or `@scope%2fname` or `name`. The scope ends at its first separator (no
# character of it can start one), so a match never backtracks over the path: linear in the URL's length (a
# greedy `@[^/]+` scope backtracked quadratically on a long run of `%2f`).
_NAME = r"(?:@(?:[^/%]|%(?!2[fF]))+(?:/|%2[fF]))?[^/@]+"
_TARBALL = re.compile(rf"^/(?P<pkg>{_NAME})/-/(?P<file>[^/]+)\.tgz$")
_PACKAGE = re.compile(rf"^/(?P<pkg>{_NAME})(?:/-rev/(?P<rev>[^/]+))?/?$")
_DIST_TAG = re.compile(rf"^/-/package/(?P<pkg>{_NAME})/dist-tags/(?P<tag>[^/]+)$")
# `npm unpublish <pkg>@<version>` ends with this DELETE of the version's tarball (after the document's PUT).
_TARBALL_REV = re.compile(rf"^/(?P<pkg>{_NAME})/-/[^/]+\.tgz/-rev/(?P<rev>[^/]+)$")
# `npm login` / `npm adduser` (the name is who logs in: the line's `user` is not known before it succeeds).
_LOGIN = re.compile(r"^/-/user/org\.couchdb\.user:(?P<name>[^/]+)$")
# Account requests that are neither installs nor package changes: (method, path prefix) -> action.
_ACCOUNT = (
    ("POST", "/-/v1/login", "registry.proxy.login"),
    ("DELETE", "/-/user/token/", "registry.proxy.logout"),
    ("POST", "/-/npm/v1/tokens", "registry.proxy.token.create"),
    ("DELETE", "/-/npm/v1/tokens/token/", "registry.proxy.token.delete"),
)


def _mechanism(manifest: dict[str, Any]) -> str:
    return "trusted_publishing" if get(manifest, "_npmUser", "trustedPublisher") else "token"


def _publisher(manifest: dict[str, Any]) -> Publisher:
    return Publisher(
        name=str(get(manifest, "_npmUser", "name", default="")),
        email=str(get(manifest, "_npmUser", "email", default="")).lower(),
        mechanism=_mechanism(manifest),
        provenance=bool(get(manifest, "dist", "attestations", "provenance")),
    )


def manifest_scripts(manifest: dict[str, Any]) -> set[str]:
    scripts = manifest.get("scripts") or {}
    return {s for s in INSTALL_SCRIPTS if isinstance(scripts, dict) and scripts.get(s)}


def manifest_dependencies(manifest: dict[str, Any]) -> dict[str, str]:
    deps = manifest.get("dependencies") or {}
    return {str(k): str(v) for k, v in deps.items()} if isinstance(deps, dict) else {}


def _history(versions: dict[str, Any], times: dict[str, Any], version: str) -> tuple[PastRelease, ...]:
    """The releases published before `version` (by the registry's times, else by version order), oldest
    first, the most recent HISTORY of them."""
    me = iso_ms(times.get(version), 0)
    key = version_key(version)
    earlier = []
    for v, manifest in versions.items():
        at = iso_ms(times.get(v), 0)
        before = at < me if at and me else version_key(v) < key
        if v != version and before and isinstance(manifest, dict):
            earlier.append((at, version_key(v), v, manifest))
    earlier.sort(key=lambda x: (x[0], x[1]))
    return tuple(
        PastRelease(
            v, at, _publisher(m), tuple(sorted(manifest_dependencies(m))), tuple(sorted(manifest_scripts(m)))
        )
        for at, _, v, m in earlier[-HISTORY:]
    )


# Hook events that name no actor, and what they name instead. The envelope's `hookOwner` is whoever subscribed
# the hook, never who acted: so these are dead-lettered saying so, not decided as somebody.
_NO_ACTOR = {
    "package:owner": "names the maintainer added (change.maintainer), not who added them",
    "package:owner-rm": "names the maintainer removed (change.maintainer), not who removed them",
    "package:dist-tag": "names the tag moved (change.dist-tag), not who moved it",
    "package:dist-tag-rm": "names the tag removed (change.dist-tag), not who removed it",
    "package:deprecated": "names the version deprecated (change.deprecated), not who deprecated it",
    "package:undeprecated": "names the version (change.deprecated), not who undeprecated it",
    "package:change": "is npm's catch-all for a change it could not classify and names no actor",
}


# Every hook's envelope (whatever its event, and whether the hook follows a package, a scope or an owner) has
# these. A hook's accounts are the public registry's (who published a package we depend on), not our
# identities: external, not unknown.
@source(
    HOOK_SOURCE,
    domains=("registry",),
    recognise=Recogniser(keys=("hookOwner", "event", "name", "payload")),
    external_principals=True,
)
def adapt_hook(rec: RawRecord, body: Any) -> CanonicalEvent:
    event = str(body.get("event"))
    if event == "package:publish":
        return _hook_publish(rec, body)
    name = str(need(body, "name"))
    if event in _NO_ACTOR:
        raise AdapterError("missing_identity", f"npm {event} hook {_NO_ACTOR[event]}")
    if event in ("package:star", "package:unstar"):
        who, where = get(body, "change", "user"), "change.user"
    elif event == "package:unpublish":
        # Only a whole package's unpublish leaves a record of who did it in the document.
        who, where = get(body, "payload", "time", "unpublished", "name"), "payload.time.unpublished.name"
    else:
        raise AdapterError("unknown_shape", f"npm hook event {event[:60]!r} is not one npm sends")
    if not isinstance(who, str) or not who:
        raise AdapterError("missing_identity", f"npm {event} hook without {where}: it names no actor")
    version = get(body, "change", "version")
    at = body.get("time")
    return CanonicalEvent(
        event_id=f"npm:{name}" + (f"@{version}" if isinstance(version, str) else "") + f":{event}:{at}",
        source=HOOK_SOURCE,
        domain="registry",
        action=f"registry.package.{event.removeprefix('package:')}",
        # npm's `time` is Unix milliseconds.
        occurred_at_ms=long_field(at, "time") if isinstance(at, int) and at > 0 else rec.timestamp_ms,
        actor=Actor(id=f"npm:{who}", display=who, human=False, source_principal=who),
        resource_type="npm.package",
        resource_id=name,
    )


def _hook_publish(rec: RawRecord, body: dict[str, Any]) -> CanonicalEvent:
    name = str(need(body, "name"))
    version = str(get(body, "change", "version") or need(body, "version"))
    packument = need(body, "payload")
    publish = document_publish(name, version, packument)
    times = packument.get("time") or {}
    return CanonicalEvent(
        event_id=f"npm:{name}@{version}:publish",
        source=HOOK_SOURCE,
        domain="registry",
        action="registry.package.publish",
        occurred_at_ms=iso_ms(times.get(version), iso_ms(body.get("time"), rec.timestamp_ms)),
        actor=Actor(
            id=f"npm:{publish.publisher.name}",
            display=publish.publisher.name,
            human=False,
            source_principal=publish.publisher.name,
        ),
        resource_type="npm.package_version",
        resource_id=f"{name}@{version}",
        facts=publish,
    )


def document_publish(name: str, version: str, packument: Any, publisher: Publisher | None = None) -> Publish:
    """The publish of `version` as its package document tells it: what changed against the release below it,
    and the releases before it (AdapterError for a document without the version). `publisher`: who published
    it, when another source names them (a Verdaccio keeps no `_npmUser`; its notification names the account);
    else the version's `_npmUser`."""
    versions = need(packument, "versions")
    manifest = versions.get(version)
    if not isinstance(manifest, dict):
        raise AdapterError("unknown_shape", f"payload.versions has no {version!r}")
    if publisher is None and not get(manifest, "_npmUser", "name"):
        raise AdapterError("missing_identity", f"versions[{version!r}]._npmUser.name missing")
    # The previous release: the greatest version below this one (what the publish changes against).
    older = sorted((v for v in versions if version_key(v) < version_key(version)), key=version_key)
    prev = versions[older[-1]] if older else None
    deps = manifest_dependencies(manifest)
    prev_deps = set(manifest_dependencies(prev or {}))
    times = packument.get("time") or {}
    return Publish(
        package=name,
        version=version,
        publisher=publisher or _publisher(manifest),
        previous=PreviousRelease(older[-1], _publisher(prev)) if prev else None,
        dependencies=tuple(sorted(deps)),
        added_dependencies=tuple(sorted(set(deps) - prev_deps)),
        install_scripts=tuple(sorted(manifest_scripts(manifest))),
        added_install_scripts=tuple(
            sorted(manifest_scripts(manifest) - (manifest_scripts(prev) if prev else set()))
        ),
        package_created_ms=iso_ms(times.get("created"), 0),
        requirements=tuple(Requirement(k, v) for k, v in sorted(deps.items())),
        history=_history(versions, times if isinstance(times, dict) else {}, version),
    )


def looked_up(name: str, spec: str, doc: Any, at_ms: int) -> LookedUp:
    """What a package document (as the registry answers `GET /<name>`) says about `spec` (a version or a
    range) at `at_ms`: a range resolves to the greatest version it admits among those published by then."""
    if not isinstance(doc, dict) or not isinstance(doc.get("versions"), dict):
        return LookedUp(name, "not_found" if isinstance(doc, dict) and doc.get("error") else "unavailable")
    versions: dict[str, Any] = doc["versions"]
    times = doc.get("time") if isinstance(doc.get("time"), dict) else {}
    if spec in versions:
        version: str | None = spec
    else:
        then = [v for v in versions if not at_ms or iso_ms(times.get(v), 0) <= at_ms]
        version = max_satisfying(then, spec)
    manifest = versions.get(version) if version else None
    manifest = manifest if isinstance(manifest, dict) else {}
    return LookedUp(
        name=name,
        status="found",
        version=version or "",
        version_published_ms=iso_ms(times.get(version), 0) if version else 0,
        package_created_ms=iso_ms(times.get("created"), 0),
        install_scripts=tuple(sorted(manifest_scripts(manifest))),
        publisher=str(get(manifest, "_npmUser", "name", default="")),
    )


def _parse_tarball(url: str) -> tuple[str, str] | None:
    m = _TARBALL.match(url.split("?", 1)[0])
    if not m:
        return None
    pkg = unquote(m.group("pkg"))
    base = pkg.rsplit("/", 1)[-1]
    file = m.group("file")
    if not file.startswith(base + "-"):
        return None
    return pkg, file[len(base) + 1 :]


def _status(body: dict[str, Any]) -> int:
    status = body.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        return 0  # none logged
    if not 0 <= status <= 999:  # an HTTP status has three digits (and the facts carry an Avro int)
        raise AdapterError("unknown_shape", f"status {str(status)[:24]} is not an HTTP status")
    return status


def _package_change(method: str, path: str) -> tuple[str, str, str] | None:
    """(package, operation, tag) of a request that changes a package through the proxy, else None: a publish
    (`PUT /<package>` with the document), a change to the document (`PUT /<package>/-rev/<rev>`: owners,
    deprecation, the first step of unpublishing a version), a dist-tag set or removed, an unpublish (`DELETE`
    of the whole package or of a version's tarball)."""
    tag = _DIST_TAG.match(path)
    if tag and method in ("PUT", "DELETE"):
        op = "dist_tag" if method == "PUT" else "dist_tag_rm"
        return unquote(tag.group("pkg")), op, unquote(tag.group("tag"))
    m = None if path.startswith("/-/") else _PACKAGE.match(path)
    if m and method == "PUT":
        return unquote(m.group("pkg")), "update" if m.group("rev") else "publish", ""
    m = m or _TARBALL_REV.match(path)
    if m and method == "DELETE" and m.group("rev"):
        return unquote(m.group("pkg")), "unpublish", ""
    return None


def _account_action(method: str, path: str) -> str:
    if method == "PUT" and _LOGIN.match(path):
        return "registry.proxy.login"
    return next((a for verb, prefix, a in _ACCOUNT if verb == method and path.startswith(prefix)), "")


def _proxy_facts(body: dict[str, Any], method: str, url: str) -> tuple[str, str, EventFacts]:
    """(action, resource, facts) of a proxy log line that is not an install: a change to a package, tried or
    accepted; a login, logout or token request; or any other request."""
    path = url.split("?", 1)[0]
    status, address = _status(body), str(body.get("remoteIP") or "")
    change = _package_change(method, path) if _finished(body) else None
    if change is None:
        m = _DIST_TAG.match(path) or (None if path.startswith("/-/") else _PACKAGE.match(path))
        name = unquote(m.group("pkg")) if m else ""
        action = _account_action(method, path) or "registry.proxy.request"
        return action, f"{method} {url}", ProxyRequest(name, method, status, address)
    facts = ProxyPublish(
        package=change[0],
        operation=change[1],
        tag=change[2],
        status=status,
        accepted=200 <= status < 300,
        bytes_in=long_field(int(get(body, "bytes", "in", default=0) or 0), "bytes.in"),
        client_address=address,
    )
    return "registry.package.publish", change[0], facts


_RECEIVED = Recogniser(keys=("level", "msg", "req", "ip"))


@source(PROXY_SOURCE + ".received", domains=("registry",), recognise=_RECEIVED)
def adapt_received_line(rec: RawRecord, body: Any) -> CanonicalEvent:
    """Verdaccio's line on receiving a request (`req`, `ip`: "... requested 'GET /x'"): it names no user, and
    the same request's finished line (`request`, `user`) says all it does. Dead-lettered with that reason, so
    a shipper that sends every line loses nothing and learns what to filter."""
    raise AdapterError(
        "missing_identity",
        "a Verdaccio request-received line names no user; its finished line (with request and user) does: "
        "ship only lines with a `request` field",
    )


def _proxy_user(body: dict[str, Any], method: str, url: str) -> str:
    """Who the line is about: its `user`; a login's line names the account logging in only in its URL."""
    user = body["user"]
    login = _LOGIN.match(url.split("?", 1)[0]) if method == "PUT" and not user else None
    return unquote(login.group("name")) if login else str(user or "anonymous")


def _finished(body: dict[str, Any]) -> bool:
    """Whether a line is the one a client's finished request logs, the only one that shows what was done.

    Verdaccio logs each client request as `request` with `user`, `remoteIP`, `status` and `bytes`; 5.x with
    `sub: "out"`, 6.x with `sub: "in"` (so `sub` tells nothing), and 6.x twice: first early, as 200 with
    nothing sent yet (and, for a read, before it knows the user), then finished. A 200 that sent nothing is
    never an install or an accepted publish (a tarball and a publish's answer have bodies; Verdaccio answers a
    publish 201), so an early line is read as a plain request and a request is never counted twice."""
    if "remoteIP" not in body:
        return False  # the registry's own request to an uplink: no client, nothing installed or published
    sent = get(body, "bytes", "out", default=None)
    return not (body.get("status") == 200 and sent == 0)


@source(PROXY_SOURCE, domains=("registry",), recognise=Recogniser(keys=("level", "msg", "request")))
def adapt_proxy_log(rec: RawRecord, body: Any) -> CanonicalEvent:
    if "user" not in body:
        raise AdapterError(
            "missing_identity",
            "Verdaccio log line without a user field (an uplink request of the registry's own: ship the "
            "lines with remoteIP)",
        )
    method = str(get(body, "request", "method", default=""))
    url = str(get(body, "request", "url", default=""))
    user = _proxy_user(body, method, url)
    tarball = _parse_tarball(url) if method == "GET" else None
    if tarball is not None and _finished(body) and body.get("status") == 200:
        action, resource_type, resource = "registry.package.install", "npm.package_version", "@".join(tarball)
        facts: EventFacts = Install(tarball[0], tarball[1], "verdaccio", str(body.get("remoteIP") or ""))
    else:
        action, resource, facts = _proxy_facts(body, method, url)
        resource_type = "npm.package" if action == "registry.package.publish" else "http.request"
    return CanonicalEvent(
        event_id=f"verdaccio:{body_hash(rec.value)}",
        source=PROXY_SOURCE,
        domain="registry",
        action=action,
        occurred_at_ms=iso_ms(body.get("time"), rec.timestamp_ms),
        actor=Actor(id=f"verdaccio:{user}", display=user, human=False, source_principal=user),
        resource_type=resource_type,
        resource_id=resource,
        facts=facts,
    )
