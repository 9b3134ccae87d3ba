"""Everyday work on the CI and CMS platforms beyond webhooks of GitHub runs and Contentful: GitHub's audit log
stream (github_audit_tokens), GitHub Packages publishes (github_packages_publish), a self-managed GitLab's
infrastructure projects (gitlab_pipelines, tools/corpus/gitlab.py) and a Strapi catalog fed by a sync
integration (strapi_bulk_sync).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.corpus import clock
from tools.corpus.classes import Draws, label
from tools.corpus.cloud import completed_runs
from tools.corpus.estate import Estate
from tools.corpus.gitlab import GitlabActivity
from tools.corpus.out import CI, CMS, JSON_HEADERS, Out
from tools.corpus.platform_formats import (
    gh_audit,
    gh_package_event,
    strapi_entry,
    strapi_headers,
    strapi_media,
)
from tools.scenarios._util import stable_hex, stable_int, uuid4
from tools.scenarios.formats import GhAccount, GhRepo, gh_headers

AUDIT = label("github_audit_tokens")
PACKAGES = label("github_packages_publish")
STRAPI = label("strapi_bulk_sync")
ACTIONS_BOT = GhAccount("github-actions[bot]", 41898282, "Bot", "github-actions[bot]", "")
_SECRETS = ("NPM_TOKEN", "VERDACCIO_TOKEN", "SENTRY_AUTH_TOKEN", "SLACK_WEBHOOK_URL", "DATADOG_API_KEY")
_PRODUCTS = ("lamp", "chair", "desk", "rug", "vase", "shelf", "sofa", "stool", "mirror", "planter", "clock")
_FINISH = ("oak", "walnut", "ash", "brass", "linen", "stone", "matte black", "terracotta", "cream")


def app_account(login: str) -> GhAccount:
    return GhAccount(login, stable_int("bot", login, digits=8), "Bot", login, "")


def hosted(est: Estate) -> GhRepo:
    """The design-system monorepo whose packages go to GitHub Packages."""
    return GhRepo(f"{est.slug}/design-system", "design system", "TypeScript", "web")


class PlatformActivity:
    def __init__(self, out: Out, estates: dict[str, Estate], rng: random.Random) -> None:
        self.out, self.estates, self.rng = out, estates, rng
        self.gitlab = GitlabActivity(out, rng)

    def emit(self) -> None:
        cast, rng = self.out.cast, self.rng
        for lab, run, started in completed_runs(self.out):
            est = self.estates.get(run["repository"]["full_name"].split("/")[0])
            if est is not None and run["path"].endswith("deploy.yml") and lab.startswith("benign:"):
                self.image(est, run, started + timedelta(minutes=rng.uniform(2, 6)))
        self.audit_copies()
        audit, gitlab = Draws(rng, "github_audit_tokens"), Draws(rng, "gitlab_pipelines")
        strapi, packages = Draws(rng, "strapi_bulk_sync"), Draws(rng, "github_packages_publish")
        for est in self.estates.values():
            rates = {
                "fetch": audit.uniform("gitops_fetch_min"),
                "mirror": audit.uniform("mirror_local_hour"),
                "rotate": audit.int("rotations_per_day"),
                "pushes": gitlab.uniform("pushes_per_workday"),
                "schedule": gitlab.uniform("schedule_local_hour"),
                "token": gitlab.uniform("deploy_token_fetch_min"),
                "syncs": _cron(rng, strapi.int("syncs_per_day")),
                "edits": strapi.uniform("edits_per_workday"),
            }
            for day in range(clock.days(cast)):
                self.github_day(est, day, rates)
                self.gitlab.day(est, day, rates)
                if est.strapi:
                    self.strapi_day(est, day, rates, strapi)
            if est.strapi:
                self.catch_up(est, strapi)
            self.monorepo(est, packages)

    # ----------------------------------------------------------------------------------- GitHub audit
    def _audit(self, est: Estate, body: dict[str, Any], at: datetime, lab: str = AUDIT) -> None:
        self.out.emit(CI, est.slug, body, at, lab, JSON_HEADERS)

    def github_day(self, est: Estate, day: int, rates: dict[str, Any]) -> None:
        rng, cast, org = self.rng, self.out.cast, est.org
        owner = org.humans[0].login
        t = clock.local_midnight(cast, org, day) + timedelta(minutes=rng.uniform(0, rates["fetch"]))
        while t < clock.local_midnight(cast, org, day + 1):
            repo = rng.choice(sorted(est.deploy_keys))
            body = gh_audit(
                t,
                "git.fetch",
                owner,
                org.slug,
                programmatic_access_type="Deploy key",
                token_id=est.deploy_keys[repo],
                repo=repo,
                repository=repo,
                repository_public=False,
                transport_protocol_name="ssh",
                transport_protocol=2,
                operation_type="access",
                actor_ip=est.nat_at(rng, t),
                user_agent="git/2.45.2",
            )
            self._audit(est, body, t)
            t += timedelta(minutes=rates["fetch"] * rng.uniform(0.7, 1.3))
        app = est.secrets_app
        for k in range(rates["rotate"]):
            at = clock.at_local(cast, org, day, 6 + 6 * k + rng.uniform(0, 0.1))
            for name in rng.sample(_SECRETS, rng.randint(1, 3)):
                body = gh_audit(
                    at,
                    "org.update_actions_secret",
                    app,
                    org.slug,
                    actor_is_bot=True,
                    actor_id=stable_int("bot", app, digits=8),
                    integration=app.removesuffix("[bot]"),
                    programmatic_access_type="GitHub App server-to-server token",
                    name=name,
                    operation_type="modify",
                )
                self._audit(est, body, at)
                at += timedelta(seconds=rng.uniform(0.5, 3))
        at = clock.at_local(cast, org, day, rates["mirror"] + rng.uniform(0, 0.1))
        for repo in org.repos:
            body = gh_audit(
                at,
                "git.clone",
                est.mirror_user,
                org.slug,
                actor_is_bot=False,
                programmatic_access_type="Fine-grained personal access token",
                token_id=est.mirror_token,
                hashed_token=stable_hex("pat", est.mirror_token, n=44),
                repo=repo.full_name,
                repository=repo.full_name,
                transport_protocol_name="http",
                transport_protocol=1,
                operation_type="access",
                actor_ip=est.office[0],
                user_agent="git/2.39.5",
            )
            self._audit(est, body, at)
            at += timedelta(seconds=rng.uniform(5, 60))

    def audit_copies(self) -> None:
        """The audit log's `workflows.completed_workflow_run` of every completed run, labelled as the run (the
        same event, another source): an attacker's run is the attack's, a benign run its class."""
        for r in list(self.out.records):
            if r.topic != CI or r.header("X-GitHub-Event") != "workflow_run":
                continue
            body = json.loads(r.value)
            if body.get("action") != "completed":
                continue
            run = body["workflow_run"]
            org = run["repository"]["full_name"].split("/")[0]
            if org not in self.estates:
                continue
            at = datetime.fromtimestamp(r.timestamp_ms / 1000, UTC) + timedelta(
                seconds=self.rng.uniform(2, 20)
            )
            audit = gh_audit(
                at,
                "workflows.completed_workflow_run",
                run["triggering_actor"]["login"],
                org,
                name=run["name"],
                workflow_id=run["workflow_id"],
                workflow_run_id=run["id"],
                event=run["event"],
                head_branch=run["head_branch"],
                head_sha=run["head_sha"],
                conclusion=run["conclusion"],
                run_attempt=1,
                run_number=run["run_number"],
                repo=run["repository"]["full_name"],
                started_at=run["run_started_at"],
                completed_at=run["updated_at"],
                operation_type="access",
            )
            self.out.emit(CI, org, audit, at, r.label or "", JSON_HEADERS)

    # -------------------------------------------------------------------------------- GitHub Packages
    def image(self, est: Estate, run: dict[str, Any], at: datetime) -> None:
        """The deploy's container image, pushed to ghcr.io with the run's GITHUB_TOKEN."""
        repo = next(r for r in est.org.repos if r.full_name == run["repository"]["full_name"])
        tag = f"sha-{run['head_sha'][:7]}"
        event, body = gh_package_event(repo, ACTIONS_BOT, "container", repo.name, tag, at)
        self.out.emit(CI, repo.full_name, body, at, PACKAGES, gh_headers(event, uuid4(self.rng), repo.org_id))

    def monorepo(self, est: Estate, d: Draws) -> None:
        """Releases of the design system: every package at once (changesets), by the Actions bot or the org's
        release app, the two taking turns as the release workflow changed hands."""
        rng, cast = self.rng, self.out.cast
        repo = hosted(est)
        share = d.uniform("app_share")
        minor = rng.randint(2, 30)
        days = range(clock.days(cast))
        workdays = [day for day in days if clock.is_workday(cast, day)] or list(days)
        for _ in range(d.int("monorepo_releases")):
            at = clock.work_time(rng, cast, est.org, rng.choice(workdays))
            author = app_account(est.release_app) if rng.random() < share else ACTIONS_BOT
            minor += 1
            for name in est.monorepo:
                at += timedelta(seconds=rng.uniform(2, 15))
                version = f"1.{minor}.0"
                deps = {p: f"^{version}" for p in est.monorepo if p != name and rng.random() < 0.3}
                manifest = {
                    "name": name,
                    "version": version,
                    "main": "dist/index.js",
                    "dependencies": deps,
                    "scripts": {"build": "tsup src/index.ts"},
                    "_id": f"{name}@{version}",
                }
                event, body = gh_package_event(repo, author, "npm", name, version, at, manifest)
                headers = gh_headers(event, uuid4(rng), repo.org_id)
                self.out.emit(CI, repo.full_name, body, at, PACKAGES, headers)

    # ----------------------------------------------------------------------------------------- Strapi
    def strapi(self, est: Estate, event: str, body: dict[str, Any], at: datetime, lab: str = STRAPI) -> None:
        self.out.emit(CMS, est.strapi, body, at, lab, strapi_headers(event, est.strapi))

    def strapi_day(self, est: Estate, day: int, rates: dict[str, Any], d: Draws) -> None:
        rng, cast, org = self.rng, self.out.cast, est.org
        for hour in rates["syncs"]:
            t = clock.at_local(cast, org, day, hour + rng.uniform(0, 0.05))
            for _ in range(d.int("items")):
                t += timedelta(seconds=rng.uniform(0.3, 4))
                t = self.product(est, t, d.uniform("image_share"), d.uniform("document_share"))
        if clock.is_workday(cast, day):
            for _ in range(clock.count(rng, rates["edits"])):
                at = clock.work_time(rng, cast, org, day)
                doc, num = product_id(rng)
                fields = {"name": product_name(rng), "price": round(rng.uniform(19, 900), 2)}
                live = rng.random() < 0.7
                self.strapi(
                    est, "entry.update", strapi_entry("entry.update", _UID, doc, num, fields, at, live), at
                )
                if not live and rng.random() < 0.5:
                    at += timedelta(minutes=rng.uniform(1, 30))
                    self.strapi(
                        est,
                        "entry.publish",
                        strapi_entry("entry.publish", _UID, doc, num, fields, at, True),
                        at,
                    )

    def catch_up(self, est: Estate, d: Draws) -> None:
        """After an outage, the sync catches up: several syncs' worth of items at once, when it came back."""
        rng = self.rng
        t = clock.in_window(self.out.cast, 0.2, 0.9, rng)
        for _ in range(round(d.int("items") * d.uniform("catchup_factor"))):
            t += timedelta(seconds=rng.uniform(0.3, 4))
            t = self.product(est, t, d.uniform("image_share"), d.uniform("document_share"))

    def product(self, est: Estate, at: datetime, image_share: float, document_share: float) -> datetime:
        """One catalog item: an update of a live product, or a new one (created, its image, published)."""
        rng = self.rng
        doc, num = product_id(rng)
        fields = {"name": product_name(rng), "sku": f"SKU-{num:06d}", "price": round(rng.uniform(19, 900), 2)}
        if rng.random() > image_share:
            self.strapi(
                est, "entry.update", strapi_entry("entry.update", _UID, doc, num, fields, at, True), at
            )
            return at
        self.strapi(est, "entry.create", strapi_entry("entry.create", _UID, doc, num, fields, at, False), at)
        at += timedelta(seconds=rng.uniform(0.5, 3))
        slug = fields["name"].lower().replace(" ", "-")
        media = strapi_media(
            "media.create",
            stable_hex(doc, "img", n=16),
            num,
            f"{slug}.webp",
            "image/webp",
            rng.uniform(40, 900),
            at,
        )
        self.strapi(est, "media.create", media, at)
        if rng.random() < document_share:
            at += timedelta(seconds=rng.uniform(0.5, 3))
            sheet = strapi_media(
                "media.create",
                stable_hex(doc, "pdf", n=16),
                num,
                f"{slug}-spec-sheet.pdf",
                "application/pdf",
                rng.uniform(80, 2400),
                at,
            )
            self.strapi(est, "media.create", sheet, at)
        at += timedelta(seconds=rng.uniform(1, 6))
        self.strapi(est, "entry.publish", strapi_entry("entry.publish", _UID, doc, num, fields, at, True), at)
        return at


_UID = "api::product.product"


def product_id(rng: random.Random) -> tuple[str, int]:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(24)), rng.randint(
        1, 99_999
    )


def product_name(rng: random.Random) -> str:
    return f"{rng.choice(_FINISH).title()} {rng.choice(_PRODUCTS)}"


def _cron(rng: random.Random, n: int) -> list[float]:
    first = rng.uniform(0, 24 / n)
    return [first + i * 24 / n for i in range(n)]
