"""Contentful activity: editors, integrations and agents, the catalog sync's bulk uploads, and untagged
uploads that get published. Also the asset and entry builders the CMS attacks use.

Ordinary invariant: an asset not meant to be public (tagged internal, draft, ...) is uploaded to the embargoed
host (`*.secure.ctfassets.net`) and never published; assets tagged `public` go to the public host.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from tools.corpus import clock
from tools.corpus.cast import Cast, Org
from tools.corpus.classes import Draws, label
from tools.corpus.out import Out
from tools.scenarios._util import base62
from tools.scenarios.emit import CfDoc
from tools.scenarios.formats import CfPublished, cf_file_url
from tools.scenarios.world import CmsActor

NONPUBLIC_TAGS = ("internal", "confidential", "restricted", "draft", "embargoed")
PDF, PNG, JPG, SVG = "application/pdf", "image/png", "image/jpeg", "image/svg+xml"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PUBLIC_FILES = (
    ("Homepage hero {n}", "hero-{n}.png", PNG, 540_000),
    ("Social card {n}", "og-card-{n}.png", PNG, 120_000),
    ("Logo variant {n}", "logo-{n}.svg", SVG, 8_000),
    ("Whitepaper {n}", "whitepaper-{n}.pdf", PDF, 1_800_000),
    ("Case study {n}", "case-study-{n}.pdf", PDF, 900_000),
)
INTERNAL_FILES = (
    ("Team offsite notes {n}", "team-offsite-notes-{n}.pdf", PDF, 210_000),
    ("OKR draft {n}", "okrs-{n}.docx", DOCX, 45_000),
    ("Vendor contract {n}", "vendor-contract-{n}.pdf", PDF, 640_000),
    ("Hiring plan {n}", "hiring-plan-{n}.xlsx", XLSX, 33_000),
    ("Incident review {n}", "incident-review-{n}.pdf", PDF, 120_000),
    ("Board update draft {n}", "board-update-draft-{n}.pdf", PDF, 1_100_000),
)
UNTAGGED_FILES = (
    ("Screenshot {n}", "screenshot-{n}.png", PNG, 260_000),
    ("Architecture diagram {n}", "diagram-{n}.svg", SVG, 40_000),
    ("Brochure {n}", "brochure-{n}.pdf", PDF, 2_300_000),
)
ENTRY_TITLES = (
    "How we ship safely",
    "Release notes",
    "Pricing FAQ",
    "Customer story",
    "Security overview",
    "Getting started guide",
    "Changelog highlights",
    "Partner spotlight",
    "Webinar recap",
    "Roadmap update",
)
CONTENT_TYPES = ("blogPost", "landingPage", "productPage", "faqItem", "pressRelease")


def host_for(ctype: str, public: bool) -> str:
    return (
        ("images" if ctype.startswith("image/") else "assets")
        + ("" if public else ".secure")
        + ".ctfassets.net"
    )


def asset_doc(
    rng: random.Random,
    org: Org,
    actor: CmsActor,
    at: datetime,
    tags: tuple[str, ...],
    spec: tuple[str, str, str, int],
    host: str,
    n: int,
) -> CfDoc:
    title, fname, ctype, size = spec
    asset_id, fname = base62(rng), fname.format(n=n)
    details: dict[str, object] = {"size": int(size * rng.uniform(0.5, 1.6))}
    if ctype in (PNG, JPG):
        details["image"] = {
            "width": rng.choice((800, 1200, 1600, 2400)),
            "height": rng.choice((630, 800, 1260)),
        }
    fields = {
        "title": {"en-US": title.format(n=n)},
        "file": {
            "en-US": {
                "url": cf_file_url(host, org.space, asset_id, fname),
                "fileName": fname,
                "contentType": ctype,
                "details": details,
            }
        },
    }
    return CfDoc("Asset", asset_id, org.space, "master", tags, fields, actor, at)


def entry_doc(
    rng: random.Random, org: Org, actor: CmsActor, at: datetime, tags: tuple[str, ...], title: str
) -> CfDoc:
    fields = {
        "title": {"en-US": title},
        "slug": {"en-US": title.lower().replace(" ", "-").replace(":", "")},
        "body": {"en-US": f"{title}. Draft body text."},
    }
    return CfDoc(
        "Entry", base62(rng), org.space, "master", tags, fields, actor, at, rng.choice(CONTENT_TYPES)
    )


class CmsActivity:
    def __init__(self, cast: Cast, out: Out, rng: random.Random) -> None:
        self.cast, self.out, self.rng = cast, out, rng

    def day(self, org: Org, day: int, rates: dict[str, Any]) -> None:
        rng, cast = self.rng, self.cast
        work = clock.is_workday(cast, day)
        for _ in range(clock.count(rng, rates["uploads"] if work else rates["uploads"] * 0.15)):
            # The DAM connector syncs when people work in the DAM: mostly office hours.
            off = rng.random() < rates["dam_off_hours"]
            self.upload(
                org, clock.any_time(rng, cast, org, day) if off else clock.work_time(rng, cast, org, day)
            )
        for _ in range(clock.count(rng, rates["edits"] if work else rates["edits"] * 0.1)):
            self.entry_edit(org, clock.work_time(rng, cast, org, day))
        for _ in range(clock.count(rng, rates["saves"])):
            app = org.apps[rng.choice(("i18n", "seo"))]
            at = clock.any_time(rng, cast, org, day)
            self.out.cms(org, self.existing_entry(org, at, ()), "save", app, at)
        if work and rng.random() < 0.5:
            self.ai_draft(org, clock.work_time(rng, cast, org, day))
        if work and rng.random() < 0.15:
            self.migration(org, clock.work_time(rng, cast, org, day))
        if "catalog" in org.apps:
            # A scheduled sync: the same hours every day, a few minutes late.
            for hour in rates["sync_hours"]:
                self.catalog_burst(org, clock.at_local(cast, org, day, hour + rng.uniform(0, 0.15)))

    def upload(self, org: Org, at: datetime) -> None:
        rng = self.rng
        actor = org.apps["dam"] if rng.random() < 0.6 else rng.choice(org.editors)
        r = rng.random()
        if r < 0.4:
            tags, pool, public = ("public",), PUBLIC_FILES, True
        elif r < 0.75:
            tags, pool, public = (rng.choice(NONPUBLIC_TAGS),), INTERNAL_FILES, False
        else:
            tags, pool, public = (), UNTAGGED_FILES, False
        spec = rng.choice(pool)
        doc = asset_doc(rng, org, actor, at, tags, spec, host_for(spec[2], public), rng.randint(1, 999))
        self.out.cms(org, doc, "create", actor, at)
        t = at
        if actor.kind is None:
            for _ in range(rng.randint(0, 2)):
                t += timedelta(seconds=rng.uniform(20, 90))
                self.out.cms(org, doc, "auto_save", actor, t)
        if (public or not tags) and rng.random() < 0.55:
            t += timedelta(seconds=rng.uniform(300, 7200))
            publisher = actor if rng.random() < 0.5 else rng.choice(org.editors)
            self.out.cms(org, doc, "publish", publisher, t)

    def untagged_uploads(self, org: Org, per_day: float) -> None:
        """Mostly on working days; the first org always has at least one."""
        n = max(int(org.index == 0), clock.count(self.rng, per_day * clock.days(self.cast)))
        for _ in range(n):
            day = self.rng.randrange(clock.days(self.cast))
            self.untagged_published(org, clock.work_time(self.rng, self.cast, org, day))

    def untagged_published(self, org: Org, at: datetime) -> None:
        """An untagged asset on the public host, published minutes to hours later by the same integration."""
        rng, lab = self.rng, label("untagged_upload_published")
        app = org.apps["dam"]
        spec = rng.choice(UNTAGGED_FILES + PUBLIC_FILES[:2])
        doc = asset_doc(rng, org, app, at, (), spec, host_for(spec[2], True), rng.randint(1, 999))
        self.out.cms(org, doc, "create", app, at, lab)
        delay = Draws(rng, "untagged_upload_published").uniform("publish_delay_min")
        self.out.cms(org, doc, "publish", app, at + timedelta(minutes=delay), lab)

    def catalog_burst(self, org: Org, at: datetime) -> None:
        """The catalog sync uploads untagged product images and publishes each about a minute later."""
        rng, lab = self.rng, label("bulk_cms_sync")
        d = Draws(rng, "bulk_cms_sync")
        app = org.apps["catalog"]
        t = at
        for _ in range(d.int("items")):
            sku = f"{rng.choice('ABCDEFGH')}{rng.randint(10_000, 99_999)}"
            spec = (f"Product {sku} {{n}}", f"sku-{sku}-{{n}}.jpg", JPG, 420_000)
            doc = asset_doc(rng, org, app, t, (), spec, "images.ctfassets.net", rng.randint(1, 6))
            self.out.cms(org, doc, "create", app, t, lab)
            self.out.cms(org, doc, "publish", app, t + timedelta(seconds=d.uniform("publish_delay_s")), lab)
            t += timedelta(seconds=rng.uniform(2, 20))

    def entry_edit(self, org: Org, at: datetime) -> None:
        rng = self.rng
        editor = rng.choice(org.editors)
        doc = entry_doc(rng, org, editor, at, (), rng.choice(ENTRY_TITLES))
        self.out.cms(org, doc, "create", editor, at)
        t = at
        for _ in range(rng.randint(1, 3)):
            t += timedelta(seconds=rng.uniform(30, 240))
            self.out.cms(org, doc, "auto_save", editor, t)
        if rng.random() < 0.7:
            self.out.cms(org, doc, "publish", editor, t + timedelta(seconds=rng.uniform(60, 1800)))

    def existing_entry(self, org: Org, at: datetime, tags: tuple[str, ...]) -> CfDoc:
        """An entry created days or months ago (published unless it is tagged not-for-public)."""
        rng = self.rng
        author = rng.choice(org.editors)
        created = at - timedelta(days=rng.uniform(3, 400))
        doc = entry_doc(rng, org, author, created, tags, rng.choice(ENTRY_TITLES))
        doc.version = rng.randint(4, 40)
        doc.updated_by, doc.updated_at = author, created + timedelta(days=1)
        if not tags and rng.random() < 0.8:
            first = created + timedelta(hours=2)
            doc.published = CfPublished(
                doc.version - 1, first + timedelta(days=1), ("User", author.id), first, rng.randint(1, 9)
            )
        return doc

    def ai_draft(self, org: Org, at: datetime) -> None:
        agent = org.apps["ai"]
        doc = entry_doc(self.rng, org, agent, at, (), "Draft: " + self.rng.choice(ENTRY_TITLES))
        self.out.cms(org, doc, "create", agent, at)
        for i in range(2):
            self.out.cms(org, doc, "auto_save", agent, at + timedelta(seconds=20 * (i + 1)))

    def migration(self, org: Org, at: datetime) -> None:
        pat, t = org.apps["pat"], at
        for _ in range(self.rng.randint(2, 4)):
            doc = self.existing_entry(org, t, ())
            self.out.cms(org, doc, "save", pat, t)
            t += timedelta(seconds=self.rng.uniform(0.5, 3))
            self.out.cms(org, doc, "publish", pat, t)
            t += timedelta(seconds=self.rng.uniform(0.5, 3))
