"""npm registry hooks and Verdaccio registry-proxy access logs (audit.registry). See docs/sources.md."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from nhiguard.decision.adapters.common import body_hash, get, iso_ms, need, semver_key
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import Install, PreviousRelease, Publish, Publisher
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord

HOOK_SOURCE = "npm.hook"
PROXY_SOURCE = "verdaccio.log"
INSTALL_SCRIPTS = ("preinstall", "install", "postinstall")
_TARBALL = re.compile(r"^/(?P<pkg>(?:@[^/]+(?:/|%2[fF]))?[^/@]+)/-/(?P<file>[^/]+)\.tgz$")


def _mechanism(manifest: dict[str, Any]) -> str:
    return "trusted_publishing" if get(manifest, "_npmUser", "trustedPublisher") else "token"


def _publisher(manifest: dict[str, Any]) -> Publisher:
    return Publisher(
        name=str(get(manifest, "_npmUser", "name", default="")),
        email=str(get(manifest, "_npmUser", "email", default="")).lower(),
        mechanism=_mechanism(manifest),
        provenance=bool(get(manifest, "dist", "attestations", "provenance")),
    )


def _scripts(manifest: dict[str, Any]) -> set[str]:
    scripts = manifest.get("scripts") or {}
    return {s for s in INSTALL_SCRIPTS if isinstance(scripts, dict) and scripts.get(s)}


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
    older = sorted((v for v in versions if semver_key(v) < semver_key(version)), key=semver_key)
    prev = versions[older[-1]] if older else None
    deps = set((manifest.get("dependencies") or {}).keys())
    prev_deps = set(((prev or {}).get("dependencies") or {}).keys())
    times = packument.get("time") or {}
    publisher = _publisher(manifest)
    publish = Publish(
        package=name,
        version=version,
        publisher=publisher,
        previous=PreviousRelease(older[-1], _publisher(prev)) if prev else None,
        dependencies=tuple(sorted(deps)),
        added_dependencies=tuple(sorted(deps - prev_deps)),
        install_scripts=tuple(sorted(_scripts(manifest))),
        added_install_scripts=tuple(sorted(_scripts(manifest) - (_scripts(prev) if prev else set()))),
        package_created_ms=iso_ms(times.get("created"), 0),
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


@source(PROXY_SOURCE, domains=("registry",), recognise=Recogniser(keys=("level", "msg", "request")))
def adapt_proxy_log(rec: RawRecord, body: Any) -> CanonicalEvent:
    if "user" not in body:
        raise AdapterError("missing_identity", "Verdaccio log line without a user field")
    user = str(body["user"] or "anonymous")
    method = str(get(body, "request", "method", default=""))
    url = str(get(body, "request", "url", default=""))
    tarball = _parse_tarball(url) if method == "GET" else None
    is_install = tarball is not None and body.get("sub") == "out" and body.get("status") == 200
    install = Install(tarball[0], tarball[1], "verdaccio") if tarball is not None and is_install else None
    return CanonicalEvent(
        event_id=f"verdaccio:{body_hash(rec.value)}",
        source=PROXY_SOURCE,
        domain="registry",
        action="registry.package.install" if is_install else "registry.proxy.request",
        occurred_at_ms=iso_ms(body.get("time"), rec.timestamp_ms),
        actor=Actor(id=f"verdaccio:{user}", display=user, human=False, source_principal=user),
        resource_type="npm.package_version" if install else "http.request",
        resource_id=f"{tarball[0]}@{tarball[1]}" if install else f"{method} {url}",
        facts=install,
    )
