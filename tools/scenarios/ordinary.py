"""A week of ordinary activity around the incidents: the baseline every rule must leave alone.

Invariants the tests and the policies rely on:
- CMS: an upload that is not published yet is on an embargoed (`*.secure.ctfassets.net`) URL unless it is
  tagged `public`; only `public` or untagged assets are ever published.
- CI: release gate requests carry normal files (no source maps, secrets or debug bundles) and stay within
  ±20% of the previous release's size.
- Registry: each new third-party version is published the same way as the one before (same `_npmUser`,
  same mechanism and provenance), adds no install script, and only adds dependencies that are years old.
  Installs resolve to versions that exist at that moment and never to a malicious one.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from tools.scenarios._util import base62, earlier_versions, stable_hex, stable_int, version_key
from tools.scenarios.emit import (
    CfDoc,
    Sink,
    Timeline,
    cms,
    emit_fetch,
    emit_hook,
    emit_push,
    emit_release,
    emit_run,
    new_run,
    tarball_size,
)
from tools.scenarios.formats import NPM_OIDC_USER, CfPublished, NpmVersion, cf_file_url
from tools.scenarios.world import CmsActor, ThirdParty, World

_NONPUBLIC_TAGS = ("internal", "confidential", "restricted", "draft", "embargoed")
_PDF, _PNG, _JPG, _SVG = "application/pdf", "image/png", "image/jpeg", "image/svg+xml"
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_PUBLIC_FILES = (
    ("Homepage hero {n}", "hero-{n}.png", _PNG, 540_000),
    ("Product shot {n}", "product-shot-{n}.jpg", _JPG, 380_000),
    ("Social card {n}", "og-card-{n}.png", _PNG, 120_000),
    ("Logo variant {n}", "logo-{n}.svg", _SVG, 8_000),
    ("Whitepaper {n}", "whitepaper-{n}.pdf", _PDF, 1_800_000),
    ("Case study {n}", "case-study-{n}.pdf", _PDF, 900_000),
)
_INTERNAL_FILES = (
    ("Team offsite notes {n}", "team-offsite-notes-{n}.pdf", _PDF, 210_000),
    ("OKR draft {n}", "okrs-{n}.docx", _DOCX, 45_000),
    ("Vendor contract {n}", "vendor-contract-{n}.pdf", _PDF, 640_000),
    ("Hiring plan {n}", "hiring-plan-{n}.xlsx", _XLSX, 33_000),
    ("Incident review {n}", "incident-review-{n}.pdf", _PDF, 120_000),
    ("Board update draft {n}", "board-update-draft-{n}.pdf", _PDF, 1_100_000),
)
_UNTAGGED_FILES = (
    ("Screenshot {n}", "screenshot-{n}.png", _PNG, 260_000),
    ("Architecture diagram {n}", "diagram-{n}.svg", _SVG, 40_000),
    ("Brochure {n}", "brochure-{n}.pdf", _PDF, 2_300_000),
)
_ENTRY_TITLES = (
    "How we ship safely",
    "Release notes",
    "Pricing FAQ",
    "Customer story",
    "Security overview",
    "Getting started guide",
    "Changelog highlights",
    "Partner spotlight",
    "Docs: authentication",
    "Webinar recap",
)
_CONTENT_TYPES = ("blogPost", "landingPage", "productPage", "faqItem")
_COMMITS = (
    "fix: handle empty config file",
    "feat: add retry with backoff",
    "docs: update README",
    "refactor: split request builder",
    "test: cover pagination edge cases",
    "fix: typo in error message",
    "perf: cache parsed manifests",
    "feat: support proxy settings",
    "chore: bump node to 22",
)


class _Ordinary:
    def __init__(self, world: World, sink: Sink, rng: random.Random) -> None:
        self.w, self.p, self.sink, self.rng = world, world.params, sink, rng
        self.timeline = Timeline()
        self.app = next(a for a in world.cms_apps if a.id == world.params.cms_app_id)

    # -------------------------------------------------------------------------------------------- time

    def when(self, human: bool) -> datetime:
        """A moment in the window; people mostly work weekdays 07-19 UTC, bots any time."""
        span = (self.p.window_end - self.p.window_start).total_seconds()
        while True:
            t = self.p.window_start + timedelta(seconds=self.rng.uniform(0, span))
            if not human or (t.weekday() < 5 and 7 <= t.hour < 19) or self.rng.random() < 0.08:
                return t

    def secs(self, lo: float, hi: float) -> timedelta:
        return timedelta(seconds=self.rng.uniform(lo, hi))

    # ------------------------------------------------------------------------------------- registry

    def registry_spine(self) -> None:
        """Versions that exist, and the third-party publishes our npm hook reports during the window."""
        p, w, tl = self.p, self.w, self.timeline
        for name, pkg in w.own_packages.items():
            if name == p.ci_package:
                continue  # a CLI: nobody installs it through the proxy
            first = min((r for r in w.releases if r.package.name == name), key=lambda r: r.at)
            base_size = int(sum(s for _, s in pkg.files) * pkg.ratio)
            tl.add(name, p.window_start - timedelta(days=9), earlier_versions(first.version, 1)[0], base_size)
            for r in w.releases:
                if r.package.name == name:
                    tl.add(name, r.at + timedelta(minutes=2), r.version, w.tarball_sizes[(name, r.version)])
        for v in [*w.compromised_history, w.compromised_twin]:  # never the malicious versions
            tl.add(p.registry_package, v.published_at, v.version, tarball_size(v))
        for tp in w.third_party:
            self._third_party(tp)

    def _third_party(self, tp: ThirdParty) -> None:
        p, rng = self.p, self.rng
        ws, we = p.window_start, p.window_end
        user = NPM_OIDC_USER if tp.trusted else {"name": tp.maintainer, "email": tp.email}

        def version(v: str, at: datetime, deps: tuple[tuple[str, str], ...], trusted: bool) -> NpmVersion:
            name, email = (user["name"], user["email"]) if trusted else (tp.maintainer, tp.email)
            size = int(tp.unpacked * (1 + (stable_int(tp.name, v, digits=3) % 60 - 30) / 1000))
            return NpmVersion(
                tp.name,
                v,
                at,
                name,
                email,
                trusted,
                deps,
                (("test", "node --test"),),
                size,
                tp.files,
                tp.description,
                ((tp.maintainer, tp.email),),
                f"{tp.maintainer}/{tp.name}",
            )

        # History before the window; the first release long ago was a token publish even for OIDC packages.
        olds = earlier_versions(tp.version, 3)
        versions = [version(olds[0], tp.created, tp.deps, False)]
        for i, v in enumerate(olds[1:]):
            versions.append(version(v, ws - timedelta(days=300 - 120 * i), tp.deps, tp.trusted))
        versions.append(version(tp.version, ws - timedelta(days=rng.randint(5, 60)), tp.deps, tp.trusted))
        for v in versions:
            self.timeline.add(tp.name, v.published_at, v.version, tarball_size(v))

        # One release early in the window, so its packument is seen before anything starts depending on it.
        times = [ws + self.secs(3600, 23 * 3600)]
        times += sorted(
            ws + self.secs(36 * 3600, (we - ws).total_seconds() - 3600) for _ in range(rng.randint(0, 2))
        )
        deps = tp.deps
        pool = [t.name for t in self.w.third_party if t.name != tp.name]
        for i, at in enumerate(times):
            major, minor, patch = version_key(versions[-1].version)
            nxt = f"{major}.{minor + 1}.0" if rng.random() < 0.2 else f"{major}.{minor}.{patch + 1}"
            if i > 0 and rng.random() < 0.25:
                candidates = [n for n in pool if n not in dict(deps)]
                if candidates:
                    dep = rng.choice(candidates)
                    dep_major = next(t.version for t in self.w.third_party if t.name == dep).split(".")[0]
                    deps = (*deps, (dep, f"^{dep_major}.0.0"))
            new = version(nxt, at, deps, tp.trusted)
            versions.append(new)
            emit_hook(self.sink, self.w, versions, new, {"latest": new.version}, tp.created)
            self.timeline.add(tp.name, at, new.version, tarball_size(new))

    def _blocked(self, name: str, at: datetime) -> bool:
        """No ordinary fetch of the compromised package while its bad versions are up, nor of the phantom."""
        p = self.p
        if name == p.phantom_package:
            return True
        return name == p.registry_package and (
            p.registry_publish_at - timedelta(minutes=5) <= at <= p.registry_publish_at + timedelta(hours=3)
        )

    def install_session(self) -> None:
        users = [u for u in self.w.proxy_users if u.uses]
        user = self.rng.choice(users)
        t = self.when(human=False)
        for spec in self.rng.sample(user.uses, k=self.rng.randint(1, min(3, len(user.uses)))):
            name, _, line = spec.partition("#")
            found = self.timeline.resolve(name, t, legacy=line == "legacy")
            if found is None or self._blocked(name, t):
                continue
            version, size = found
            meta_ok = self.rng.random() < 0.7
            emit_fetch(
                self.sink,
                self.w,
                user.name,
                name,
                None,
                _packument_bytes(name),
                t,
                status=200 if meta_ok else 304,
            )
            t += self.secs(0.05, 0.6)
            emit_fetch(self.sink, self.w, user.name, name, version, size, t)
            t += self.secs(0.2, 2.0)

    def metadata_sweep(self) -> None:
        """Renovate's cache refresh: metadata GETs only, no installs."""
        user = next(u for u in self.w.proxy_users if not u.uses)
        names = [t.name for t in self.w.third_party] + [
            n for n in self.w.own_packages if n != self.p.ci_package
        ]
        names.append(self.p.registry_package)
        t = self.when(human=False)
        for name in self.rng.sample(names, k=self.rng.randint(3, 6)):
            if not self._blocked(name, t):
                emit_fetch(self.sink, self.w, user.name, name, None, _packument_bytes(name), t)
                t += self.secs(0.1, 1.5)

    # ----------------------------------------------------------------------------------------- GitHub

    def releases(self) -> None:
        for rel in self.w.releases:
            if rel.label == "ordinary":
                actor = (
                    self.w.release_actor
                    if rel.package.name == self.p.ci_package
                    else self.rng.choice(self.w.humans)
                )
                emit_release(self.sink, self.w, self.rng, rel, actor)

    def ci_run(self) -> None:
        rng, w = self.rng, self.w
        repo = rng.choice(w.repos)
        human = rng.choice(w.humans)
        at = self.when(human=True)
        main = rng.random() < 0.5
        branch = "main" if main else f"feature/{stable_hex(at, n=6)}"
        msgs = [rng.choice(_COMMITS) for _ in range(rng.randint(1, 3))]
        sha = emit_push(
            self.sink, rng, repo, ref=f"refs/heads/{branch}", pusher=human, at=at, messages=msgs, author=human
        )
        ci = w.workflow(repo.full_name, ".github/workflows/ci.yml")
        run = new_run(
            rng,
            ci,
            actor=human,
            author=human,
            event="push" if main else "pull_request",
            branch=branch,
            title=msgs[-1],
            at=at + self.secs(1, 4),
            sha=sha,
        )
        emit_run(self.sink, rng, run, conclusion="failure" if rng.random() < 0.1 else "success")
        if main and repo.name == "web":
            deploy = w.workflow(repo.full_name, ".github/workflows/deploy.yml")
            run = new_run(
                rng,
                deploy,
                actor=human,
                author=human,
                event="push",
                branch="main",
                title=msgs[-1],
                at=at + self.secs(1, 4),
                sha=sha,
            )
            emit_run(self.sink, rng, run)

    def bot_run(self) -> None:
        """Renovate or Dependabot pushes a dependency-update branch and CI runs on it."""
        rng, w = self.rng, self.w
        repo = rng.choice([r for r in w.repos if r.language == "TypeScript"])
        tp = rng.choice(w.third_party)
        major, minor, patch = version_key(tp.version)
        if rng.random() < 0.7:
            bot = w.bots["renovate[bot]"]
            branch, msg = (
                f"renovate/{tp.name}-{major}.x",
                f"chore(deps): update dependency {tp.name} to v{tp.version}",
            )
        else:
            bot = w.bots["dependabot[bot]"]
            branch = f"dependabot/npm_and_yarn/{tp.name}-{tp.version}"
            msg = f"build(deps): bump {tp.name} from {major}.{minor}.{max(patch - 1, 0)} to {tp.version}"
        at = self.when(human=False)
        sha = emit_push(
            self.sink, rng, repo, ref=f"refs/heads/{branch}", pusher=bot, at=at, messages=[msg], author=bot
        )
        ci = w.workflow(repo.full_name, ".github/workflows/ci.yml")
        run = new_run(
            rng,
            ci,
            actor=bot,
            author=bot,
            event="pull_request",
            branch=branch,
            title=msg,
            at=at + self.secs(1, 4),
            sha=sha,
        )
        emit_run(self.sink, rng, run, conclusion="failure" if rng.random() < 0.15 else "success")

    def scheduled_scan(self) -> None:
        w = self.w
        wf = next(x for x in w.workflows if x.path.endswith("codeql.yml"))
        day = self.when(human=False).replace(hour=3, minute=17, second=0, microsecond=0)
        run = new_run(
            self.rng,
            wf,
            actor=w.humans[0],
            author=w.humans[0],
            event="schedule",
            branch="main",
            title="CodeQL",
            at=day + self.secs(0, 900),
        )
        emit_run(self.sink, self.rng, run)

    # -------------------------------------------------------------------------------------------- CMS

    def _doc(
        self,
        kind: str,
        tags: tuple[str, ...],
        fields: dict[str, object],
        actor: CmsActor,
        at: datetime,
        content_type: str | None = None,
    ) -> CfDoc:
        return CfDoc(
            kind,
            base62(self.rng),
            self.p.cms_space_id,
            self.p.cms_environment,
            tags,
            fields,
            actor,
            at,
            content_type,
        )

    def asset_upload(self) -> None:
        rng, w = self.rng, self.w
        actor = self.app if rng.random() < 0.6 else rng.choice(w.cms_humans)
        at = self.when(human=actor.kind is None)
        r = rng.random()
        if r < 0.35:
            klass, tags, pool = "public", ("public",), _PUBLIC_FILES
        elif r < 0.7:
            klass, tags, pool = "restricted", (rng.choice(_NONPUBLIC_TAGS),), _INTERNAL_FILES
        else:
            klass, tags, pool = "untagged", (), _UNTAGGED_FILES
        title, fname, ctype, size = rng.choice(pool)
        n = rng.randint(1, 999)
        fname = fname.format(n=n)
        # Only an asset meant to be public is uploaded to the public host; everything else stays embargoed.
        host = (
            ("images" if ctype.startswith("image/") else "assets")
            + ("" if klass == "public" else ".secure")
            + ".ctfassets.net"
        )
        asset_id = base62(rng)
        details: dict[str, object] = {"size": int(size * rng.uniform(0.5, 1.6))}
        if ctype in (_PNG, _JPG):
            details["image"] = {
                "width": rng.choice((1200, 1600, 2400)),
                "height": rng.choice((630, 900, 1260)),
            }
        doc = CfDoc(
            "Asset",
            asset_id,
            self.p.cms_space_id,
            self.p.cms_environment,
            tags,
            {
                "title": {"en-US": title.format(n=n)},
                "file": {
                    "en-US": {
                        "url": cf_file_url(host, self.p.cms_space_id, asset_id, fname),
                        "fileName": fname,
                        "contentType": ctype,
                        "details": details,
                    }
                },
            },
            actor,
            at,
        )
        cms(self.sink, w, doc, "create", actor, at)
        t = at
        if actor.kind is None:
            for _ in range(rng.randint(0, 2)):
                t += self.secs(20, 90)
                cms(self.sink, w, doc, "auto_save", actor, t)
        if rng.random() < 0.4:
            t += self.secs(60, 600)
            cms(self.sink, w, doc, "save", actor, t)
        if klass != "restricted" and rng.random() < 0.55:
            t += self.secs(300, 7200)
            publisher = actor if rng.random() < 0.5 else rng.choice(w.cms_humans)
            cms(self.sink, w, doc, "publish", publisher, t)

    def entry_edit(self) -> None:
        rng, w = self.rng, self.w
        editor = rng.choice(w.cms_humans)
        at = self.when(human=True)
        title = rng.choice(_ENTRY_TITLES)
        doc = self._doc(
            "Entry",
            (),
            {
                "title": {"en-US": title},
                "slug": {"en-US": title.lower().replace(" ", "-").replace(":", "")},
                "body": {"en-US": f"{title}. Draft body text."},
            },
            editor,
            at,
            rng.choice(_CONTENT_TYPES),
        )
        cms(self.sink, w, doc, "create", editor, at)
        t = at
        for _ in range(rng.randint(1, 3)):
            t += self.secs(30, 240)
            cms(self.sink, w, doc, "auto_save", editor, t)
        if rng.random() < 0.7:
            t += self.secs(60, 1800)
            cms(self.sink, w, doc, "publish", editor, t)

    def _existing_entry(self, at: datetime) -> CfDoc:
        rng = self.rng
        author = rng.choice(self.w.cms_humans)
        created = at - timedelta(days=rng.randint(3, 400))
        title = rng.choice(_ENTRY_TITLES)
        doc = self._doc(
            "Entry",
            (),
            {
                "title": {"en-US": title, "de-DE": title},
                "slug": {"en-US": title.lower().replace(" ", "-").replace(":", "")},
            },
            author,
            created,
            rng.choice(_CONTENT_TYPES),
        )
        doc.version = rng.randint(4, 40)
        doc.updated_by, doc.updated_at = author, created + timedelta(days=1)
        if rng.random() < 0.8:
            first = created + timedelta(hours=2)
            doc.published = CfPublished(
                doc.version - 1, first + timedelta(days=1), ("User", author.id), first, rng.randint(1, 9)
            )
        return doc

    def app_entry_save(self) -> None:
        w = self.w
        app = self.rng.choice([a for a in w.cms_apps if a.id in ("i18n-bridge", "seo-metadata")])
        at = self.when(human=False)
        cms(self.sink, w, self._existing_entry(at), "save", app, at)

    def ai_draft(self) -> None:
        rng, w = self.rng, self.w
        agent = next(a for a in w.cms_apps if a.kind == "ai_agent")
        at = self.when(human=True)
        title = "Draft: " + rng.choice(_ENTRY_TITLES)
        doc = self._doc(
            "Entry",
            (),
            {"title": {"en-US": title}, "body": {"en-US": "Suggested outline ..."}},
            agent,
            at,
            "blogPost",
        )
        cms(self.sink, w, doc, "create", agent, at)
        t = at
        for _ in range(2):
            t += self.secs(5, 40)
            cms(self.sink, w, doc, "auto_save", agent, t)

    def migration_batch(self) -> None:
        w = self.w
        pat = next(a for a in w.cms_apps if a.link_type == "PersonalAccessToken")
        t = self.when(human=True)
        for _ in range(self.rng.randint(2, 4)):
            doc = self._existing_entry(t)
            cms(self.sink, w, doc, "save", pat, t)
            t += self.secs(0.5, 3)
            cms(self.sink, w, doc, "publish", pat, t)
            t += self.secs(0.5, 3)


def _packument_bytes(name: str) -> int:
    return 12_000 + stable_int("packument", name, digits=6) % 180_000


def emit_ordinary(world: World, sink: Sink, target: int) -> None:
    o = _Ordinary(world, sink, random.Random(f"{world.params.seed}:ordinary"))
    o.registry_spine()
    o.releases()
    activities: list[tuple[Callable[[], None], int]] = [
        (o.asset_upload, 20),
        (o.entry_edit, 14),
        (o.app_entry_save, 10),
        (o.ai_draft, 4),
        (o.migration_batch, 2),
        (o.ci_run, 17),
        (o.bot_run, 7),
        (o.scheduled_scan, 1),
        (o.install_session, 20),
        (o.metadata_sweep, 4),
    ]
    funcs, weights = zip(*activities, strict=True)
    while sink.counts["ordinary"] < target:
        o.rng.choices(funcs, weights)[0]()
