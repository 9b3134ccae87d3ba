"""Platform attacks: a GitHub Packages publish by an identity that is not an expected publisher
(github_packages_unexpected_publisher); a GitHub token used from outside its networks
(github_token_outside_networks); and a known miss (README, Detection quality), the Strapi variant of the CMS
exposure (strapi_bulk_exposure)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from tools.corpus import clock, names
from tools.corpus.classes import Draws, label
from tools.corpus.estate import Estate
from tools.corpus.out import CI, CMS, JSON_HEADERS, Out
from tools.corpus.platform import ACTIONS_BOT, app_account, hosted, product_id
from tools.corpus.platform_formats import (
    gh_audit,
    gh_package_event,
    strapi_entry,
    strapi_headers,
    strapi_media,
)
from tools.scenarios._util import stable_hex, uuid4
from tools.scenarios.formats import gh_headers

PUBLISH = label("github_packages_unexpected_publisher")
STRAPI = label("strapi_bulk_exposure")
MIRROR = label("github_token_outside_networks")
_UNKNOWN_APPS = ("release-helper", "ci-tools", "pkg-sync", "build-cache", "actions-runner-helper")
_DOCS = (
    "pricing-strategy-{y}",
    "supplier-contracts-{y}",
    "margin-model-q{q}",
    "launch-plan-{c}",
    "store-rollout-{c}",
    "board-update-q{q}",
)
_COLLECTIONS = ("Nordlys", "Solstice", "Kinfolk", "Halcyon", "Drift", "Ember")


def emit_platform_attacks(out: Out, estates: dict[str, Estate], rng: random.Random) -> None:
    cast = out.cast
    d = Draws(rng, "github_packages_unexpected_publisher")
    for _ in range(d.int("instances")):
        est = estates[rng.choice(cast.orgs).slug]
        _publish(out, rng, est, d.chance("known_bot"), clock.in_window(cast, 0.4, 0.93, rng))
    g = Draws(rng, "github_token_outside_networks")
    for _ in range(g.int("instances")):
        _mirror_token(out, rng, estates[rng.choice(cast.orgs).slug], clock.in_window(cast, 0.4, 0.93, rng))
    s = Draws(rng, "strapi_bulk_exposure")
    with_strapi = [e for e in estates.values() if e.strapi]
    for _ in range(s.int("instances")):
        _strapi_exposure(out, rng, rng.choice(with_strapi), s)


def _publish(out: Out, rng: random.Random, est: Estate, known: bool, at: datetime) -> None:
    """A new version of one of the design system's packages, or an image, published with an app token that
    has packages:write but is not the release's (a known update bot's), or an app the inventory never saw."""
    bots = [b for b in (out.cast.renovate_apps.get(est.slug), out.cast.bots.get("renovate[bot]")) if b]
    author = rng.choice(bots) if known and bots else app_account(f"{rng.choice(_UNKNOWN_APPS)}[bot]")
    assert author != ACTIONS_BOT
    repo = hosted(est)
    if est.monorepo and rng.random() < 0.7:
        name = rng.choice(est.monorepo)
        version = f"1.{rng.randint(40, 60)}.1"
        manifest = {
            "name": name,
            "version": version,
            "main": "dist/index.js",
            "_id": f"{name}@{version}",
            "scripts": {"postinstall": "node dist/setup.js"},
        }
        event, body = gh_package_event(repo, author, "npm", name, version, at, manifest)
    else:
        app = rng.choice(est.apps)
        event, body = gh_package_event(repo, author, "container", app, "latest", at)
    out.emit(CI, repo.full_name, body, at, PUBLISH, gh_headers(event, uuid4(rng), repo.org_id))


def _mirror_token(out: Out, rng: random.Random, est: Estate, at: datetime) -> None:
    """The mirror job's token, taken from its host, replayed from the internet: every repository cloned."""
    ip = names.public_ip(rng)
    for repo in est.org.repos:
        body = gh_audit(
            at, "git.clone", est.mirror_user, est.slug, actor_is_bot=False,
            programmatic_access_type="Fine-grained personal access token", token_id=est.mirror_token,
            hashed_token=stable_hex("pat", est.mirror_token, n=44), repo=repo.full_name,
            repository=repo.full_name, transport_protocol_name="http", transport_protocol=1,
            operation_type="access", actor_ip=ip, user_agent="git/2.43.0",
        )  # fmt: skip
        out.emit(CI, est.slug, body, at, MIRROR, JSON_HEADERS)
        at += timedelta(seconds=rng.uniform(2, 25))


def _strapi_exposure(out: Out, rng: random.Random, est: Estate, d: Draws) -> None:
    """At night, with the sync integration's token: a collection not yet announced is published entry by
    entry, and internal documents are uploaded into the media library (public on upload)."""
    cast, org = out.cast, est.org
    day = clock.day_of(cast, org, clock.in_window(cast, 0.4, 0.9, rng))
    start = clock.at_local(cast, org, day, rng.uniform(0, 4.5))
    span = d.uniform("minutes") * 60
    collection = rng.choice(_COLLECTIONS)
    items: list[tuple[str, dict[str, Any]]] = []
    for i in range(d.int("entries")):
        doc, num = product_id(rng)
        fields = {"name": f"{collection} {i + 1:02d}", "sku": f"SKU-{num:06d}", "collection": collection}
        items.append(
            (
                "entry.publish",
                strapi_entry("entry.publish", "api::product.product", doc, num, fields, start, True),
            )
        )
    for i in range(d.int("documents")):
        name = rng.choice(_DOCS).format(y=cast.start.year, q=rng.randint(1, 4), c=collection.lower())
        doc = stable_hex(est.strapi, collection, i, n=16)
        items.append(
            (
                "media.create",
                strapi_media(
                    "media.create",
                    doc,
                    9000 + i,
                    f"{name}.pdf",
                    "application/pdf",
                    rng.uniform(120, 4000),
                    start,
                ),
            )
        )
    rng.shuffle(items)
    for i, (event, body) in enumerate(items):
        at = start + timedelta(seconds=span * (i + rng.random()) / len(items))
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
        body["createdAt"] = stamp
        for part in ("entry", "media"):
            if part in body:
                body[part]["updatedAt"] = stamp
                body[part]["publishedAt" if part == "entry" else "createdAt"] = stamp
        out.emit(CMS, est.strapi, body, at, STRAPI, strapi_headers(event, est.strapi))
