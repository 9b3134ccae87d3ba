"""Who exists in a corpus: organisations (CMS space, GitHub org, packages, Verdaccio users) and the
third-party dependencies they install. Everything is drawn from the seed; the inventory is built from this.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from tools.corpus import names
from tools.corpus.classes import Draws
from tools.scenarios._util import base62, lower_alnum, stable_int
from tools.scenarios.formats import GhAccount, GhRepo, GhWorkflow
from tools.scenarios.world import CmsActor

ASSET_WRITE = ("cms.asset.create", "cms.asset.save", "cms.asset.auto_save")
_RELEASE_WF = (
    (".github/workflows/release.yml", "Release"),
    (".github/workflows/publish.yml", "Publish"),
    (".github/workflows/npm-publish.yml", "Publish to npm"),
)
_BOT_IDS = {"github-actions[bot]": 41898282, "renovate[bot]": 29139614, "dependabot[bot]": 49699333}
_DEP_WORDS = ("utility", "parser", "helper", "toolkit", "client", "formatter", "validator", "library")


@dataclass(frozen=True)
class OwnPackage:
    """A package an org publishes to npm through its release workflow (which asks the publish gate)."""

    name: str
    workflow: GhWorkflow
    files: tuple[tuple[str, int], ...]
    ratio: float  # tarball size / unpacked size
    base_version: str  # the last version before the window
    bundle: str  # the main bundle file (a source map would sit beside it)
    typemaps: bool = False  # ships .env.example, *.d.ts.map
    created: datetime | None = None  # when its release workflow was added (a package new in the window)
    first_release: datetime | None = None  # its first release, in the window


@dataclass(frozen=True)
class ProxyUser:
    """A Verdaccio user: the registry credential of one CI bot."""

    name: str
    ip: str
    team: str
    uses: tuple[str, ...]  # package names; "<pkg>#legacy" resolves on the 0.x line
    repo: str | None  # the repository whose CI installs with this credential
    nightly_hour: int | None = None  # local hour of its nightly build, if it has one


@dataclass
class Org:
    index: int
    slug: str
    offset_h: int  # local time = UTC + offset
    space: str
    apps: dict[str, CmsActor]  # dam, i18n, seo, ai, pat and, for some orgs, catalog
    editors: list[CmsActor]
    humans: list[GhAccount]
    repos: list[GhRepo]
    workflows: list[GhWorkflow]
    packages: list[OwnPackage]
    internal: list[str]  # packages published to the org's Verdaccio only
    proxy_users: list[ProxyUser]
    publisher: ProxyUser  # publishes the internal packages through Verdaccio
    sweeper: ProxyUser  # metadata refreshes, no installs
    subnet: str

    def local(self, at: datetime) -> datetime:
        return at + timedelta(hours=self.offset_h)

    def workflow(self, repo: GhRepo, role: str) -> GhWorkflow | None:
        """role: ci, release, deploy, codeql, internal."""
        for w in self.workflows:
            if w.repo == repo and _role(w) == role:
                return w
        return None


def _role(w: GhWorkflow) -> str:
    stem = w.path.rsplit("/", 1)[-1].removesuffix(".yml")
    return "release" if w.publishes else {"publish-internal": "internal"}.get(stem, stem)


@dataclass
class Dep:
    """A third-party npm package our CI installs; published by people outside every org."""

    name: str
    description: str
    maintainers: tuple[tuple[str, str], ...]  # (npm name, e-mail); two for a multi-maintainer package
    trusted: bool  # recent releases by trusted publishing (with provenance)
    created: datetime
    version: str  # latest before the window
    deps: tuple[tuple[str, str], ...]
    unpacked: int
    files: int
    role: str = ""  # "" | multi | hijack


@dataclass
class Cast:
    seed: int
    start: datetime
    end: datetime
    orgs: list[Org]
    deps: list[Dep]
    bots: dict[str, GhAccount]
    hook_owner: str
    renovate_apps: dict[str, GhAccount] = field(default_factory=dict)  # org slug -> self-hosted app bot


def gh_human(login: str, display: str) -> GhAccount:
    uid = stable_int("gh-user", login, digits=8)
    return GhAccount(login, uid, "User", display, f"{uid}+{login}@users.noreply.github.com")


def _version(rng: random.Random) -> str:
    return f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}"


def build_cast(seed: int, days: int, n_orgs: int) -> Cast:
    rng = random.Random(f"{seed}:cast")
    ordinary = Draws(rng, "ordinary")
    start = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=rng.randint(0, 300))
    taken: set[str] = set()
    deps = _deps(rng, ordinary, start, taken)
    bots = {login: GhAccount(login, uid, "Bot", login, "") for login, uid in _BOT_IDS.items()}
    orgs = [_org(rng, ordinary, i, deps, taken) for i in range(n_orgs)]
    # Every org installs the packages the registry classes are about, so their installs are in the stream.
    for org in orgs:
        for role in ("hijack", "multi"):
            for d in (d for d in deps if d.role == role):
                users = org.proxy_users
                chosen = {u.name for u in rng.sample(users, max(1, len(users) * 2 // 3))}
                org.proxy_users = [
                    _with_use(u, d.name, legacy=role == "hijack" and rng.random() < 0.3)
                    if u.name in chosen
                    else u
                    for u in users
                ]
    hook_owner = f"{orgs[0].slug}-security"
    cast = Cast(seed, start, start + timedelta(days=days), orgs, deps, bots, hook_owner)
    for org in orgs:
        if rng.random() < 0.4:
            login = f"{org.slug}-renovate[bot]"
            cast.renovate_apps[org.slug] = GhAccount(
                login, stable_int("bot", login, digits=8), "Bot", login, ""
            )
    for org in rng.sample(orgs, min(len(orgs), Draws(rng, "bulk_cms_sync").int("orgs"))):
        actions = ("cms.asset.create", "cms.asset.publish")
        org.apps["catalog"] = CmsActor(
            "AppDefinition", base62(rng), "catalog", "cms_integration", "commerce", actions, 2
        )
    _typemap_packages(rng, orgs)
    _new_packages(rng, cast)
    return cast


def _typemap_packages(rng: random.Random, orgs: list[Org]) -> None:
    """Some packages ship an example env file and declaration maps in every release."""
    every = [(org, p) for org in orgs for p in org.packages]
    for org, p in rng.sample(every, min(len(every), Draws(rng, "example_and_typemap_files").int("packages"))):
        extra = [
            (".env.example", rng.randint(200, 1_500)),
            ("dist/index.d.ts.map", rng.randint(2_000, 40_000)),
        ]
        extra += [(f"dist/types/{n}.d.ts", rng.randint(800, 9_000)) for n in ("client", "errors", "options")]
        extra += [(f"dist/types/{n}.d.ts.map", rng.randint(300, 4_000)) for n in ("client", "errors")]
        i = org.packages.index(p)
        org.packages[i] = replace(p, files=(*p.files, *extra), typemaps=True)


def _new_packages(rng: random.Random, cast: Cast) -> None:
    """Packages released for the first time in the window, by a release workflow added days before."""
    d = Draws(rng, "first_release_new_package")
    span = cast.end - cast.start
    for _ in range(d.int("instances")):
        org = rng.choice(cast.orgs)
        used = {p.name.rsplit("/", 1)[-1] for p in org.packages}
        short = next(
            n.removesuffix("-js") for n in names.lib_repos(rng, 8) if n.removesuffix("-js") not in used
        )
        repo = rng.choice(org.repos)
        wf = GhWorkflow(
            repo, f".github/workflows/release-{short}.yml", f"Release {short}", ("build", "publish")
        )
        wf = replace(wf, publishes=f"@{org.slug}/{short}")
        first = cast.start + span * rng.uniform(0.25, 0.85)
        files, bundle = _files(rng, short)
        org.workflows.append(wf)
        org.packages.append(
            OwnPackage(
                wf.publishes or "",
                wf,
                files,
                rng.uniform(0.22, 0.32),
                "0.0.0",
                bundle,
                created=first - timedelta(days=d.uniform("identity_age_days")),
                first_release=first,
            )
        )


def _with_use(u: ProxyUser, name: str, legacy: bool) -> ProxyUser:
    spec = f"{name}#legacy" if legacy else name
    return u if spec in u.uses else ProxyUser(u.name, u.ip, u.team, (*u.uses, spec), u.repo, u.nightly_hour)


def _deps(rng: random.Random, ordinary: Draws, start: datetime, taken: set[str]) -> list[Dep]:
    out: list[Dep] = []
    n_multi = Draws(rng, "multi_maintainer").int("packages")
    for i in range(ordinary.int("third_party_deps")):
        name = names.pick_unique(lambda: names.dep_name(rng), taken)
        n_maint = 2 if i < n_multi else 1
        maint = []
        for _ in range(n_maint):
            login, _ = names.person(rng)
            maint.append((login, names.personal_email(rng, login, f"{name.replace('-', '')}.dev")))
        role = "multi" if i < n_multi else "hijack" if i == n_multi else ""
        year = rng.randint(2011, 2018) if role == "hijack" else rng.randint(2011, 2023)
        created = datetime(year, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), tzinfo=UTC)
        created = min(created, start - timedelta(days=400))
        out.append(
            Dep(
                name=name,
                description=f"A small {rng.choice(_DEP_WORDS)} for {name.split('-')[-1]}",
                maintainers=tuple(maint),
                trusted=role == "hijack" or (role == "" and rng.random() < 0.5),
                created=created,
                version=f"{rng.randint(1, 12)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                deps=(),
                unpacked=rng.randint(6_000, 2_400_000),
                files=rng.randint(4, 400),
                role=role,
            )
        )
    # A few packages depend on older ones (years old, so nothing new for a rule to see).
    for d in out:
        if rng.random() < 0.25:
            other = rng.choice([o for o in out if o is not d and o.role == ""])
            d.deps = ((other.name, f"^{other.version.split('.')[0]}.0.0"),)
    return out


def _files(rng: random.Random, repo: str) -> tuple[tuple[tuple[str, int], ...], str]:
    if repo == "cli":
        bundle = "bin/cli.js"
        files = [(bundle, rng.randint(400_000, 12_000_000)), ("bin/cli.d.ts", rng.randint(2_000, 30_000))]
    else:
        bundle = "dist/index.js"
        files = [
            (bundle, rng.randint(40_000, 900_000)),
            ("dist/index.mjs", rng.randint(40_000, 900_000)),
            ("dist/index.d.ts", rng.randint(4_000, 90_000)),
        ]
        if rng.random() < 0.4:
            files.append(("dist/styles.css", rng.randint(8_000, 120_000)))
    files += [
        ("package.json", rng.randint(900, 3_000)),
        ("README.md", rng.randint(2_000, 20_000)),
        ("LICENSE", rng.choice((1_068, 1_072, 11_357))),
    ]
    return tuple(files), bundle


def _org(rng: random.Random, ordinary: Draws, i: int, deps: list[Dep], taken: set[str]) -> Org:
    slug = names.pick_unique(lambda: names.org_slug(rng), taken)
    n_pub = ordinary.int("published_packages")
    n_apps = max(2, ordinary.int("repos") - n_pub)
    teams = ("platform", "web", "devex", "content", "growth", "brand", "qa")
    repos = [
        GhRepo(f"{slug}/{r}", f"{r} library", "TypeScript", rng.choice(teams[:3]))
        for r in names.lib_repos(rng, n_pub)
    ]
    repos += [
        GhRepo(
            f"{slug}/{r}", f"{r} service", rng.choice(("TypeScript", "TypeScript", "Go")), rng.choice(teams)
        )
        for r in names.app_repos(rng, n_apps)
    ]
    workflows: list[GhWorkflow] = []
    packages: list[OwnPackage] = []
    for repo in repos:
        jobs = rng.choice((("test",), ("lint", "test"), ("lint", "test", "build")))
        workflows.append(GhWorkflow(repo, ".github/workflows/ci.yml", "CI", jobs))
        if repo.description.endswith("library"):
            path, wf_name = rng.choice(_RELEASE_WF)
            pkg = f"@{slug}/{repo.name.removesuffix('-js')}"
            wf = GhWorkflow(repo, path, wf_name, ("build", "publish"), pkg)
            workflows.append(wf)
            files, bundle = _files(rng, repo.name)
            packages.append(OwnPackage(pkg, wf, files, rng.uniform(0.22, 0.32), _version(rng), bundle))
        elif rng.random() < 0.6:
            workflows.append(GhWorkflow(repo, ".github/workflows/deploy.yml", "Deploy", ("deploy",)))
    apps_repo = next(r for r in repos if not r.description.endswith("library"))
    workflows.append(GhWorkflow(apps_repo, ".github/workflows/codeql.yml", "CodeQL", ("analyze",)))
    workflows.append(
        GhWorkflow(apps_repo, ".github/workflows/publish-internal.yml", "Publish internal", ("publish",))
    )
    internal = [f"@{slug}-int/{n}" for n in rng.sample(("config", "tokens", "eslint-preset", "i18n"), 2)]

    def app(role: str, link: str, kind: str, team: str, actions: tuple[str, ...], tier: int) -> CmsActor:
        return CmsActor(link, base62(rng), role, kind, team, actions, tier)

    apps = {
        "dam": app(
            "dam", "AppDefinition", "cms_integration", "brand", (*ASSET_WRITE, "cms.asset.publish"), 2
        ),
        "i18n": app("i18n", "AppDefinition", "cms_integration", "content", ("cms.entry.save",), 2),
        "seo": app("seo", "AppDefinition", "cms_integration", "growth", ("cms.entry.save",), 3),
        "ai": app(
            "ai", "AppDefinition", "ai_agent", "content", ("cms.entry.create", "cms.entry.auto_save"), 3
        ),
        "pat": app(
            "pat",
            "PersonalAccessToken",
            "service_account",
            "platform",
            ("cms.entry.save", "cms.entry.publish", "cms.asset.publish"),
            2,
        ),
    }
    editors = [CmsActor("User", base62(rng), names.person(rng)[1], None, "content", (), 0) for _ in range(4)]
    humans = [gh_human(*names.person(rng)) for _ in range(rng.randint(4, 7))]
    subnet = f"10.{16 * i + rng.randint(0, 15)}"
    dep_names = [d.name for d in deps if d.role == ""]
    users: list[ProxyUser] = []
    ts_repos = [r for r in repos if r.language == "TypeScript"]
    for k in range(ordinary.int("proxy_users")):
        repo = ts_repos[k % len(ts_repos)]
        uses = rng.sample(dep_names, rng.randint(3, 7)) + [p.name for p in packages if rng.random() < 0.5]
        uses += [n for n in internal if rng.random() < 0.5]
        users.append(
            ProxyUser(
                f"{slug}-ci-{repo.name}" + (f"-{k}" if k >= len(ts_repos) else ""),
                f"{subnet}.{rng.randint(1, 9)}.{rng.randint(2, 250)}",
                repo.team,
                tuple(uses),
                repo.full_name,
            )
        )
    for k in rng.sample(range(len(users)), min(len(users), ordinary.int("nightly_users"))):
        u = users[k]
        users[k] = ProxyUser(u.name, u.ip, u.team, u.uses, u.repo, rng.randint(1, 4))
    publisher = ProxyUser(f"{slug}-release-bot", f"{subnet}.0.{rng.randint(2, 250)}", "platform", (), None)
    sweeper = ProxyUser(f"{slug}-renovate-runner", f"{subnet}.0.{rng.randint(2, 250)}", "platform", (), None)
    return Org(
        index=i,
        slug=slug,
        offset_h=ordinary.int("utc_offset_h"),
        space=lower_alnum(rng, 12),
        apps=apps,
        editors=editors,
        humans=humans,
        repos=repos,
        workflows=workflows,
        packages=packages,
        internal=internal,
        proxy_users=users,
        publisher=publisher,
        sweeper=sweeper,
        subnet=subnet,
    )
