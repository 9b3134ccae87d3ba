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


# A hook's `_npmUser` is the public registry's account that published a package we depend on, not one of our
# identities: external, not unknown.
@source(
    HOOK_SOURCE,
    domains=("registry",),
    recognise=Recogniser(keys=("hookOwner",), values=(("event", "package:publish"),)),
    external_principals=True,
)
def adapt_hook(rec: RawRecord, body: Any) -> CanonicalEvent:
    name = str(need(body, "name"))
    version = str(get(body, "change", "version") or need(body, "version"))
    packument = need(body, "payload")
    versions = need(packument, "versions")
    manifest = versions.get(version)
    if not isinstance(manifest, dict):
        raise AdapterError("unknown_shape", f"payload.versions has no {version!r}")
    if not get(manifest, "_npmUser", "name"):
        raise AdapterError("missing_identity", f"versions[{version!r}]._npmUser.name missing")
    # The previous release: the greatest version below this one (what the publish changes against).
    older = sorted((v for v in versions if version_key(v) < version_key(version)), key=version_key)
    prev = versions[older[-1]] if older else None
    deps = manifest_dependencies(manifest)
    prev_deps = set(manifest_dependencies(prev or {}))
    times = packument.get("time") or {}
    publisher = _publisher(manifest)
    publish = Publish(
        package=name,
        version=version,
        publisher=publisher,
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
    return CanonicalEvent(
        event_id=f"npm:{name}@{version}:publish",
        source=HOOK_SOURCE,
        domain="registry",
        action="registry.package.publish",
        occurred_at_ms=iso_ms(times.get(version), iso_ms(body.get("time"), rec.timestamp_ms)),
        actor=Actor(
            id=f"npm:{publisher.name}",
            display=publisher.name,
            human=False,
            source_principal=publisher.name,
        ),
        resource_type="npm.package_version",
        resource_id=f"{name}@{version}",
        facts=publish,
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
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def _proxy_facts(body: dict[str, Any], method: str, url: str) -> tuple[str, str, EventFacts]:
    """(action, resource, facts) of a proxy log line that is not an install: a publish (`PUT /<package>`,
    a dist-tag moved, a change to the package document), tried or accepted, or any other request."""
    path = url.split("?", 1)[0]
    status, address = _status(body), str(body.get("remoteIP") or "")
    tag = _DIST_TAG.match(path)
    m = tag or (_PACKAGE.match(path) if not path.startswith("/-/") else None)
    name = unquote(m.group("pkg")) if m else ""
    if m is None or method != "PUT" or body.get("sub") != "out":
        return "registry.proxy.request", f"{method} {url}", ProxyRequest(name, method, status, address)
    facts = ProxyPublish(
        package=name,
        operation="dist_tag" if tag else "update" if m.group("rev") else "publish",
        tag=unquote(m.group("tag")) if tag else "",
        status=status,
        accepted=200 <= status < 300,
        bytes_in=long_field(int(get(body, "bytes", "in", default=0) or 0), "bytes.in"),
        client_address=address,
    )
    return "registry.package.publish", name, facts


@source(PROXY_SOURCE, domains=("registry",), recognise=Recogniser(keys=("level", "msg", "request")))
def adapt_proxy_log(rec: RawRecord, body: Any) -> CanonicalEvent:
    if "user" not in body:
        raise AdapterError("missing_identity", "Verdaccio log line without a user field")
    user = str(body["user"] or "anonymous")
    method = str(get(body, "request", "method", default=""))
    url = str(get(body, "request", "url", default=""))
    tarball = _parse_tarball(url) if method == "GET" else None
    if tarball is not None and body.get("sub") == "out" and body.get("status") == 200:
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
