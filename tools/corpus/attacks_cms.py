"""CMS attacks: a default-public upload burst, a burst of restricted content made public by publishing, and
a slow exposure below any ten-minute burst threshold. Each exposure is one attack record; the restricted
drafts a publish attack exposes were created earlier by ordinary work (labelled ordinary)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tools.corpus import clock, names
from tools.corpus.cast import Cast, Org
from tools.corpus.classes import Draws, label
from tools.corpus.cms import (
    DOCX,
    INTERNAL_FILES,
    PDF,
    PNG,
    XLSX,
    asset_doc,
    entry_doc,
    host_for,
)
from tools.corpus.out import ORDINARY, Out
from tools.scenarios.emit import CfDoc
from tools.scenarios.world import CmsActor

_TAG_WEIGHTS = (("internal", 45), ("draft", 30), ("confidential", 12), ("restricted", 8), ("embargoed", 5))
_LEAK_FILES = (
    ("{c} launch post, draft {n}", "{c}-launch-post-draft-{n}.pdf", PDF, 180_000),
    ("{c} model card v{n}", "{c}-model-card-v{n}.pdf", PDF, 2_400_000),
    ("{c} benchmark chart {n}", "{c}-benchmarks-{n}.png", PNG, 310_000),
    ("{c} tier pricing {n}", "{c}-tier-pricing-{n}.xlsx", XLSX, 64_000),
    ("Leadership retreat agenda {n}", "retreat-agenda-{n}.pdf", PDF, 420_000),
    ("Roadmap draft {n}", "roadmap-draft-{n}.pdf", PDF, 1_900_000),
    ("Analyst briefing notes {n}", "analyst-briefing-{n}.docx", DOCX, 95_000),
    ("Press embargo plan {n}", "press-embargo-plan-{n}.docx", DOCX, 52_000),
)
_ENTRY_TITLES = (
    "{c} announcement (embargoed)",
    "{c} pricing page draft",
    "Internal: {c} launch FAQ",
    "{c} partner briefing",
    "Q{n} board letter draft",
    "{c} migration guide (unreleased)",
)


def emit_cms_attacks(cast: Cast, out: Out, rng: random.Random) -> None:
    for _ in range(Draws(rng, "cms_default_public_exposure").int("instances")):
        _default_public(cast, out, rng)
    for _ in range(Draws(rng, "cms_publish_burst").int("instances")):
        _publish_burst(cast, out, rng)
    for _ in range(Draws(rng, "cms_slow_exposure").int("instances")):
        _slow(cast, out, rng)


def _tags(rng: random.Random) -> tuple[str, ...]:
    tags, weights = zip(*_TAG_WEIGHTS, strict=True)
    return (rng.choices(tags, weights)[0],)


def _leak_asset(rng: random.Random, org: Org, actor: CmsActor, at: datetime, code: str, i: int) -> CfDoc:
    title, fname, ctype, size = _LEAK_FILES[i % len(_LEAK_FILES)]
    spec = (title.replace("{c}", code), fname.replace("{c}", code.lower()), ctype, size)
    host = host_for(ctype, True) if rng.random() < 0.8 else "downloads.ctfassets.net"
    return asset_doc(rng, org, actor, at, _tags(rng), spec, host, i // len(_LEAK_FILES) + 1)


def _uploader(rng: random.Random, org: Org) -> CmsActor:
    return org.apps[rng.choice([k for k in ("dam", "catalog") if k in org.apps])]


def _default_public(cast: Cast, out: Out, rng: random.Random) -> None:
    """An integration whose uploads now land on the public host: tagged not-for-public, never published."""
    d = Draws(rng, "cms_default_public_exposure")
    org, lab = rng.choice(cast.orgs), label("cms_default_public_exposure")
    app, code = _uploader(rng, org), names.codename(rng)
    n, span = d.int("assets"), d.uniform("minutes") * 60
    start = clock.in_window(cast, 0.4, 0.93, rng)
    for i in range(n):
        at = start + timedelta(seconds=span * (i + rng.random()) / n)
        out.cms(org, _leak_asset(rng, org, app, at, code, i), "create", app, at, lab)


def _drafts(
    cast: Cast, out: Out, rng: random.Random, org: Org, before: datetime, n: int, entries: float
) -> list[CfDoc]:
    """Restricted drafts made by ordinary work in the days before: assets on the embargoed host, entries."""
    docs: list[CfDoc] = []
    code = names.codename(rng)
    for i in range(n):
        at = before - (before - cast.start) * rng.uniform(0.05, 0.95) - timedelta(hours=1)
        if rng.random() < entries:
            editor = rng.choice(org.editors)
            title = rng.choice(_ENTRY_TITLES).format(c=code, n=rng.randint(1, 4))
            doc = entry_doc(rng, org, editor, at, _tags(rng), title)
            out.cms(org, doc, "create", editor, at, ORDINARY)
            out.cms(org, doc, "auto_save", editor, at + timedelta(seconds=rng.uniform(20, 200)), ORDINARY)
        else:
            actor = org.apps["dam"] if rng.random() < 0.5 else rng.choice(org.editors)
            spec = rng.choice(INTERNAL_FILES)
            doc = asset_doc(rng, org, actor, at, _tags(rng), spec, host_for(spec[2], False), i + 1)
            out.cms(org, doc, "create", actor, at, ORDINARY)
        docs.append(doc)
    return docs


def _publisher(rng: random.Random, org: Org, entries: bool) -> CmsActor:
    """Who publishes: the service account's token (entries and assets) or the asset integration."""
    return org.apps["pat"] if entries or rng.random() < 0.5 else org.apps["dam"]


def _publish_burst(cast: Cast, out: Out, rng: random.Random) -> None:
    d = Draws(rng, "cms_publish_burst")
    org, lab = rng.choice(cast.orgs), label("cms_publish_burst")
    start = clock.in_window(cast, 0.4, 0.93, rng)
    n, span, share = d.int("items"), d.uniform("minutes") * 60, d.uniform("entry_share")
    docs = _drafts(cast, out, rng, org, start, n, share)
    actor = _publisher(rng, org, any(doc.kind == "Entry" for doc in docs))
    for i, doc in enumerate(docs):
        at = start + timedelta(seconds=span * (i + rng.random()) / n)
        out.cms(org, doc, "publish", actor, at, lab)


def _slow(cast: Cast, out: Out, rng: random.Random) -> None:
    """About 25 exposures over two hours, by upload or by publish (drawn)."""
    d = Draws(rng, "cms_slow_exposure")
    org, lab = rng.choice(cast.orgs), label("cms_slow_exposure")
    start = clock.in_window(cast, 0.4, 0.9, rng)
    n, span = d.int("exposures"), d.uniform("minutes") * 60
    times = sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(n))
    if d.chance("by_upload"):
        app, code = _uploader(rng, org), names.codename(rng)
        for i, at in enumerate(times):
            out.cms(org, _leak_asset(rng, org, app, at, code, i), "create", app, at, lab)
    else:
        docs = _drafts(cast, out, rng, org, start, n, d.uniform("entry_share"))
        actor = _publisher(rng, org, any(doc.kind == "Entry" for doc in docs))
        for doc, at in zip(docs, times, strict=True):
            out.cms(org, doc, "publish", actor, at, lab)
