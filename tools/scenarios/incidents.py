"""The three incidents and their harmless twins.

Labels mark the records a policy decides on: `incident:*` for every act of the faulty or hostile identity
(each default-public upload, the leaking publish request, each publish and install of the malicious
versions), `twin:*` for the same identity doing the same kind of thing harmlessly. Supporting records around
them (the release workflow's own webhooks, the upload of the twin asset) are `ordinary`.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.scenarios._util import base62
from tools.scenarios.emit import CfDoc, Sink, cms, emit_fetch, emit_hook, emit_release, tarball_size
from tools.scenarios.formats import cf_file_url
from tools.scenarios.world import World

_LEAK_TAGS = (("internal", 50), ("draft", 35), ("confidential", 10), ("restricted", 5))
_LEAK_FILES = (
    ("{c} launch post, draft {n}", "{l}-launch-post-draft-{n}.md", "text/markdown", 18_000),
    ("{c} model card v{n}", "{l}-model-card-v{n}.pdf", "application/pdf", 2_400_000),
    ("{c} benchmark chart {n}", "{l}-benchmarks-{n}.png", "image/png", 310_000),
    (
        "{c} tier pricing {n}",
        "{l}-tier-pricing-{n}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        64_000,
    ),
    ("CEO retreat agenda {n}", "ceo-retreat-agenda-{n}.pdf", "application/pdf", 420_000),
    (
        "Exec offsite guest list {n}",
        "exec-offsite-guests-{n}.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        38_000,
    ),
    ("H2 roadmap draft {n}", "roadmap-h2-draft-{n}.pdf", "application/pdf", 1_900_000),
    (
        "Analyst briefing notes {n}",
        "analyst-briefing-{n}.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        95_000,
    ),
    (
        "Press embargo plan {n}",
        "press-embargo-plan-{n}.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        52_000,
    ),
)


def emit_incidents(world: World, sink: Sink) -> None:
    seed = world.params.seed
    _cms(world, sink, random.Random(f"{seed}:incident:cms"))
    _ci(world, sink, random.Random(f"{seed}:incident:ci"))
    _registry(world, sink, random.Random(f"{seed}:incident:registry"))


def _cms(world: World, sink: Sink, rng: random.Random) -> None:
    p = world.params
    app = next(a for a in world.cms_apps if a.id == p.cms_app_id)

    # Twin: the same integration uploads one asset meant to be public and publishes it.
    t = p.start - timedelta(days=2, hours=3, minutes=rng.randint(0, 40))
    asset_id = base62(rng)
    doc = CfDoc(
        "Asset",
        asset_id,
        p.cms_space_id,
        p.cms_environment,
        ("public",),
        {
            "title": {"en-US": "Product launch hero image"},
            "file": {
                "en-US": {
                    "url": cf_file_url("images.ctfassets.net", p.cms_space_id, asset_id, "launch-hero.png"),
                    "fileName": "launch-hero.png",
                    "contentType": "image/png",
                    "details": {"size": 684_211, "image": {"width": 2400, "height": 1260}},
                }
            },
        },
        app,
        t,
    )
    cms(sink, world, doc, "create", app, t)
    cms(sink, world, doc, "publish", app, t + timedelta(minutes=6, seconds=rng.randint(0, 59)), "twin:cms")

    # Incident: the integration's uploads now land on the public host; tagged not-for-public, never published.
    lower = p.cms_leak_codename.lower()
    span = p.cms_leak_minutes * 60.0
    tags, weights = zip(*_LEAK_TAGS, strict=True)
    for i in range(p.cms_leak_assets):
        at = p.start + timedelta(
            seconds=span * i / p.cms_leak_assets + rng.uniform(0, span / p.cms_leak_assets)
        )
        title, name, ctype, size = _LEAK_FILES[i % len(_LEAK_FILES)]
        n = i // len(_LEAK_FILES) + 1
        file_name = name.format(l=lower, n=n)
        asset_id = base62(rng)
        details: dict[str, object] = {"size": int(size * rng.uniform(0.6, 1.5))}
        if ctype == "image/png":
            details["image"] = {"width": 1600, "height": 900}
        doc = CfDoc(
            "Asset",
            asset_id,
            p.cms_space_id,
            p.cms_environment,
            (rng.choices(tags, weights)[0],),
            {
                "title": {"en-US": title.format(c=p.cms_leak_codename, n=n)},
                "file": {
                    "en-US": {
                        "url": cf_file_url(p.cms_public_host, p.cms_space_id, asset_id, file_name),
                        "fileName": file_name,
                        "contentType": ctype,
                        "details": details,
                    }
                },
            },
            app,
            at,
        )
        cms(sink, world, doc, "create", app, at, "incident:cms")


def _ci(world: World, sink: Sink, rng: random.Random) -> None:
    # The twin (previous version, normal size) and the leaking release; both by the same workflow and actor.
    for rel in world.releases:
        if rel.label != "ordinary":
            emit_release(sink, world, rng, rel, world.release_actor)


def _registry(world: World, sink: Sink, rng: random.Random) -> None:
    p = world.params
    history, twin = world.compromised_history, world.compromised_twin
    bad_latest, bad_legacy = world.compromised_bad_latest, world.compromised_bad_legacy
    victims = p.registry_victims

    # Twin: the previous good version, by the usual trusted publisher with provenance, then CI installs it.
    emit_hook(
        sink,
        world,
        [*history, twin],
        twin,
        {"latest": twin.version, "legacy": p.registry_good_legacy},
        world.compromised_created,
        "twin:registry",
    )
    for i, user in enumerate(victims):
        at = twin.published_at + timedelta(minutes=7 + 19 * i, seconds=rng.randint(0, 59))
        emit_fetch(
            sink, world, user, p.registry_package, twin.version, tarball_size(twin), at, "twin:registry"
        )

    # Incident: the phantom dependency (clean decoy, then the dropper), then both compromised versions.
    decoy, dropper = world.phantom_decoy, world.phantom_bad
    emit_hook(sink, world, [decoy], decoy, {"latest": decoy.version}, decoy.published_at, "incident:registry")
    emit_hook(
        sink,
        world,
        [decoy, dropper],
        dropper,
        {"latest": dropper.version},
        decoy.published_at,
        "incident:registry",
    )
    emit_hook(
        sink,
        world,
        [*history, twin, bad_latest],
        bad_latest,
        {"latest": bad_latest.version, "legacy": p.registry_good_legacy},
        world.compromised_created,
        "incident:registry",
    )

    def install(user: str, at: datetime) -> None:
        # npm fetches the new transitive dependency right after the package that pulled it in.
        emit_fetch(
            sink,
            world,
            user,
            p.registry_package,
            bad_latest.version,
            tarball_size(bad_latest),
            at,
            "incident:registry",
        )
        emit_fetch(
            sink,
            world,
            user,
            p.phantom_package,
            dropper.version,
            tarball_size(dropper),
            at + timedelta(milliseconds=rng.randint(300, 2500)),
            "incident:registry",
        )

    # Between the two publishes our CI bots install the bad "latest" (first one 89 s after the publish).
    window = (bad_legacy.published_at - bad_latest.published_at).total_seconds()
    for i, user in enumerate(victims):
        offset = 89 if i == 0 else 89 + (window - 200) * i / len(victims)
        install(user, bad_latest.published_at + timedelta(seconds=offset))
    emit_hook(
        sink,
        world,
        [*history, twin, bad_latest, bad_legacy],
        bad_legacy,
        {"latest": bad_latest.version, "legacy": bad_legacy.version},
        world.compromised_created,
        "incident:registry",
    )
    # Later pipeline runs try again while the bad versions are still up (removed about three hours in).
    for i, user in enumerate(reversed(victims)):
        install(user, bad_legacy.published_at + timedelta(minutes=12 + 95 * i, seconds=rng.randint(0, 59)))
