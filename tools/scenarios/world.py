"""The cast of a scenario: who exists, what they own, and which package versions exist when.

Both the record generator and the identity inventory are built from this one description, so every
non-human identity that acts in the stream has an inventory entry and nothing else does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from tools.scenarios._util import earlier_versions, stable_int, version_key
from tools.scenarios.formats import NPM_OIDC_USER, GhAccount, GhRepo, GhWorkflow, NpmVersion
from tools.scenarios.params import ScenarioParams

# Allowed actions use the canonical event action names the adapters produce (nhiguard.decision.adapters).
CMS_ASSET_WRITE = ("cms.asset.create", "cms.asset.save", "cms.asset.auto_save")
WORKFLOW_ACTIONS = ("ci.github.workflow_run.requested", "ci.github.workflow_run.completed")
PUBLISH_ACTIONS = (*WORKFLOW_ACTIONS, "ci.release.publish_request")
PROXY_ACTIONS = ("registry.package.install", "registry.proxy.request")
BOT_ACTIONS = {
    "github-actions[bot]": ("ci.github.release.published",),
    "renovate[bot]": ("ci.github.push", "ci.github.workflow_job.completed"),
    "dependabot[bot]": ("ci.github.push", "ci.github.workflow_job.completed"),
}


@dataclass(frozen=True)
class CmsActor:
    link_type: str  # AppDefinition | PersonalAccessToken | User
    id: str
    name: str
    kind: str | None  # inventory kind; None for a human editor
    team: str
    actions: tuple[str, ...]
    trust_tier: int


@dataclass(frozen=True)
class OwnPackage:
    """A package our own release workflow publishes (through the publish gate)."""

    name: str
    workflow: GhWorkflow
    files: tuple[tuple[str, int], ...]  # without the main bundle for the CLI (its size varies per release)
    ratio: float  # tarball size / unpacked size


@dataclass(frozen=True)
class Release:
    package: OwnPackage
    version: str
    at: datetime
    files: tuple[tuple[str, int], ...]
    label: str  # label of its gate request


@dataclass(frozen=True)
class ThirdParty:
    """An external npm package we depend on; published by people outside the organisation."""

    name: str
    description: str
    trusted: bool  # published by trusted publishing (with provenance) or by a maintainer's token
    maintainer: str
    email: str
    created: datetime
    version: str  # latest version before the scenario window
    deps: tuple[tuple[str, str], ...]
    unpacked: int
    files: int


@dataclass(frozen=True)
class ProxyUser:
    """A Verdaccio user: the registry credential of one CI bot."""

    name: str
    ip: str
    team: str
    owner: str
    uses: tuple[str, ...]  # package names; "<pkg>#legacy" resolves on the legacy line


@dataclass
class World:
    params: ScenarioParams
    cms_apps: list[CmsActor]
    cms_humans: list[CmsActor]
    bots: dict[str, GhAccount]
    humans: list[GhAccount]
    release_actor: GhAccount
    repos: list[GhRepo]
    workflows: list[GhWorkflow]
    own_packages: dict[str, OwnPackage]
    releases: list[Release]
    third_party: list[ThirdParty]
    proxy_users: list[ProxyUser]
    hook_owner: str
    compromised_history: list[NpmVersion]  # versions that exist before the twin publish
    compromised_twin: NpmVersion
    compromised_bad_latest: NpmVersion
    compromised_bad_legacy: NpmVersion
    compromised_created: datetime
    phantom_decoy: NpmVersion
    phantom_bad: NpmVersion
    tarball_sizes: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def space(self) -> str:
        return self.params.cms_space_id

    def cms_identity(self, actor: CmsActor) -> str:
        return f"contentful:{self.space}/{actor.link_type}/{actor.id}"

    def workflow(self, repo: str, path: str) -> GhWorkflow:
        return next(w for w in self.workflows if w.repo.full_name == repo and w.path == path)

    @property
    def release_workflow(self) -> GhWorkflow:
        p = self.params
        return self.workflow(p.ci_repository, p.ci_workflow_path)


def _gh_human(login: str, name: str) -> GhAccount:
    uid = stable_int("gh-user", login, digits=8)
    return GhAccount(login, uid, "User", name, f"{uid}+{login}@users.noreply.github.com")


_BOTS = {
    "github-actions[bot]": 41898282,
    "renovate[bot]": 29139614,
    "dependabot[bot]": 49699333,
}

# Fixed ordinary cast. Nothing here may contain a default incident name (the variant test would catch it).
_HUMAN_LOGINS = (
    ("mkowalski", "Marta Kowalski"),
    ("aisha-o", "Aisha Okoye"),
    ("tnguyen-dev", "Tam Nguyen"),
    ("lfernandes", "Luis Fernandes"),
)
_THIRD_PARTY = (
    (
        "ansi-tint",
        "Terminal string styling done right",
        False,
        "lrivera",
        "lrivera@fastmail.com",
        2016,
        "5.3.0",
        (),
        44_310,
        7,
    ),
    (
        "argv-parse",
        "Complete solution for command-line argument parsing",
        True,
        "tjholm",
        "tjholm@hey.com",
        2013,
        "12.1.0",
        (),
        181_240,
        12,
    ),
    (
        "semver-range",
        "The semantic versioner for npm",
        True,
        "isaksen",
        "isaksen@npmjs.example",
        2012,
        "7.6.3",
        (),
        68_120,
        51,
    ),
    (
        "date-tiny",
        "2kB immutable date time library",
        True,
        "iamkun-x",
        "kun@datetiny.dev",
        2018,
        "1.11.13",
        (),
        674_200,
        420,
    ),
    (
        "ws-lite",
        "Simple to use, blazing fast WebSocket client and server",
        False,
        "lpinca-x",
        "lp@wslite.io",
        2011,
        "8.18.0",
        (),
        147_600,
        19,
    ),
    ("uuid-gen", "RFC9562 UUIDs", True, "ctavan-x", "ct@uuidgen.dev", 2014, "11.0.3", (), 516_900, 180),
    (
        "debug-log",
        "Lightweight debugging utility",
        False,
        "qix-x",
        "qix@debuglog.dev",
        2011,
        "4.3.7",
        (("ms-time", "^2.1.3"),),
        42_400,
        7,
    ),
    (
        "ms-time",
        "Tiny millisecond conversion utility",
        False,
        "qix-x",
        "qix@debuglog.dev",
        2011,
        "2.1.3",
        (),
        6_020,
        4,
    ),
    (
        "glob-fast",
        "Fast and efficient glob library",
        False,
        "mrmlnc-x",
        "mr@globfast.dev",
        2016,
        "3.3.2",
        (("match-path", "^4.0.1"),),
        97_100,
        42,
    ),
    (
        "match-path",
        "Blazing fast and accurate glob matcher",
        True,
        "jonsch",
        "jonsch@matchpath.dev",
        2015,
        "4.0.2",
        (),
        85_600,
        6,
    ),
    (
        "yaml-lite",
        "JavaScript parser and stringifier for YAML",
        False,
        "eemeli-x",
        "ee@yamllite.dev",
        2016,
        "2.6.1",
        (),
        1_570_000,
        214,
    ),
    (
        "form-encode",
        "A library to create readable multipart/form-data streams",
        False,
        "ajensen",
        "ajensen@formencode.dev",
        2011,
        "4.0.1",
        (("mime-kinds", "^2.1.12"),),
        81_300,
        10,
    ),
    (
        "mime-kinds",
        "The ultimate javascript content-type utility",
        True,
        "dougw-x",
        "dw@mimekinds.dev",
        2012,
        "2.1.35",
        (),
        18_600,
        5,
    ),
)


def build_world(p: ScenarioParams) -> World:
    org = p.github_org
    rng = random.Random(f"{p.seed}:world")

    # --- CMS: integrations (non-human) and editors (human)
    cms_apps = [
        CmsActor(
            "AppDefinition",
            p.cms_app_id,
            "Asset sync (DAM connector)",
            "cms_integration",
            "brand",
            (*CMS_ASSET_WRITE, "cms.asset.publish"),
            2,
        ),
        CmsActor(
            "AppDefinition",
            "i18n-bridge",
            "Localization bridge",
            "cms_integration",
            "content",
            ("cms.entry.save", "cms.entry.auto_save"),
            2,
        ),
        CmsActor(
            "AppDefinition",
            "seo-metadata",
            "SEO metadata",
            "cms_integration",
            "growth",
            ("cms.entry.save",),
            3,
        ),
        CmsActor(
            "AppDefinition",
            "writing-assistant",
            "AI writing assistant",
            "ai_agent",
            "content",
            ("cms.entry.create", "cms.entry.auto_save"),
            3,
        ),
        CmsActor(
            "PersonalAccessToken",
            "6kQ2vT9xRb1LmZ4pYc8WnA",
            "content-migrations script",
            "service_account",
            "platform",
            ("cms.entry.save", "cms.entry.publish"),
            2,
        ),
    ]
    cms_humans = [
        CmsActor("User", uid, name, None, "content", (), 0)
        for uid, name in (
            ("2hJk9QwErTy5UiOp3AsDfG", "Priya Raman"),
            ("7ZxCvBnM4LkJhGf2DsA1qW", "Jonas Berg"),
            ("4PoIuYtR8eWq6AsDfGhJ2k", "Chloe Martin"),
            ("9MnBvCxZ1aSdFgHj3KlQwE", "Omar Haddad"),
        )
    ]

    # --- GitHub: accounts, repositories, workflows
    bots = {
        login: GhAccount(login, uid, "Bot", login, f"{uid}+{login}@users.noreply.github.com")
        for login, uid in _BOTS.items()
    }
    humans = [_gh_human(login, name) for login, name in _HUMAN_LOGINS]
    release_actor = _gh_human(p.ci_release_actor, p.ci_release_actor.title())
    cli_repo = GhRepo(p.ci_repository, "Command-line tool", "TypeScript", "devex")
    sdk_repo = GhRepo(f"{org}/sdk-js", "JavaScript SDK for the public API", "TypeScript", "platform")
    ds_repo = GhRepo(f"{org}/design-system", "UI components and design tokens", "TypeScript", "web")
    web_repo = GhRepo(f"{org}/web", "Marketing site", "TypeScript", "web")
    api_repo = GhRepo(f"{org}/api", "Public API service", "Go", "platform")
    repos = [cli_repo, sdk_repo, ds_repo, web_repo, api_repo]
    cli_pkg, sdk_pkg, ui_pkg = p.ci_package, f"@{org}/sdk", f"@{org}/ui"
    workflows = [
        GhWorkflow(cli_repo, ".github/workflows/ci.yml", "CI", ("lint", "test")),
        GhWorkflow(cli_repo, p.ci_workflow_path, p.ci_workflow_name, ("build", "publish"), cli_pkg),
        GhWorkflow(sdk_repo, ".github/workflows/ci.yml", "CI", ("test",)),
        GhWorkflow(sdk_repo, ".github/workflows/publish.yml", "Publish", ("build", "publish"), sdk_pkg),
        GhWorkflow(ds_repo, ".github/workflows/ci.yml", "CI", ("lint", "test")),
        GhWorkflow(ds_repo, ".github/workflows/release.yml", "Release", ("build", "publish"), ui_pkg),
        GhWorkflow(web_repo, ".github/workflows/ci.yml", "CI", ("lint", "test", "build")),
        GhWorkflow(web_repo, ".github/workflows/deploy.yml", "Deploy", ("deploy",)),
        GhWorkflow(api_repo, ".github/workflows/ci.yml", "CI", ("test",)),
        GhWorkflow(api_repo, ".github/workflows/codeql.yml", "CodeQL", ("analyze",)),
    ]
    wf_of = {w.publishes: w for w in workflows if w.publishes}
    own = {
        cli_pkg: OwnPackage(
            cli_pkg,
            wf_of[cli_pkg],
            (
                ("package.json", 1_240),
                ("README.md", 14_210),
                ("LICENSE.md", 1_072),
                ("sdk.d.ts", 12_904),
                ("yoga.wasm", 87_966),
            ),
            0.28,
        ),
        sdk_pkg: OwnPackage(
            sdk_pkg,
            wf_of[sdk_pkg],
            (
                ("dist/index.js", 182_004),
                ("dist/index.mjs", 176_530),
                ("dist/index.d.ts", 41_212),
                ("package.json", 2_104),
                ("README.md", 9_811),
                ("LICENSE", 1_068),
            ),
            0.26,
        ),
        ui_pkg: OwnPackage(
            ui_pkg,
            wf_of[ui_pkg],
            (
                ("dist/index.js", 412_118),
                ("dist/index.mjs", 398_240),
                ("dist/styles.css", 61_002),
                ("dist/index.d.ts", 88_430),
                ("package.json", 1_911),
                ("README.md", 4_102),
            ),
            0.24,
        ),
    }

    releases = _own_releases(p, own, rng)

    # --- npm: third-party packages, the compromised package and its phantom dependency
    ws = p.window_start
    third = [
        ThirdParty(
            n,
            d,
            t,
            m,
            e,
            datetime(y, 1 + stable_int(n, digits=3) % 12, 1 + stable_int(n, "day") % 27, 9, tzinfo=UTC),
            v,
            deps,
            size,
            files,
        )
        for n, d, t, m, e, y, v, deps, size, files in _THIRD_PARTY
    ]
    created, history, twin, bad_latest, bad_legacy = _compromised(p, ws)
    decoy = NpmVersion(
        p.phantom_package,
        p.phantom_decoy_version,
        p.phantom_decoy_at,
        p.phantom_publisher,
        p.phantom_publisher_email,
        False,
        (),
        (("test", 'echo "Error: no test specified" && exit 1'),),
        493_121,
        112,
        "JavaScript library of crypto standards.",
        ((p.phantom_publisher, p.phantom_publisher_email),),
        "",
    )
    # The next version only adds the install-time dropper.
    bad = replace(
        decoy,
        version=p.phantom_bad_version,
        published_at=p.phantom_bad_at,
        scripts=(*decoy.scripts, ("postinstall", "node setup.js")),
        unpacked_size=497_804,
        file_count=113,
    )

    proxy_users = [
        ProxyUser(
            p.registry_victims[0],
            "10.0.3.7",
            "platform",
            f"platform@{org}.example",
            (p.registry_package, "debug-log", "ws-lite", "form-encode", sdk_pkg),
        ),
        *[
            ProxyUser(
                v,
                f"10.0.3.{11 + i}",
                "web",
                f"web@{org}.example",
                (p.registry_package, "date-tiny", "uuid-gen", "ansi-tint", ui_pkg),
            )
            for i, v in enumerate(p.registry_victims[1:])
        ],
        ProxyUser(
            "ci-e2e",
            "10.0.4.21",
            "qa",
            f"qa@{org}.example",
            ("ws-lite", "argv-parse", "semver-range", "glob-fast", sdk_pkg),
        ),
        ProxyUser(
            "docs-builder",
            "10.0.4.30",
            "docs",
            f"docs@{org}.example",
            (f"{p.registry_package}#legacy", "yaml-lite", "match-path", "ansi-tint"),
        ),
        ProxyUser("renovate-runner", "10.0.5.2", "platform", f"platform@{org}.example", ()),
    ]

    world = World(
        params=p,
        cms_apps=cms_apps,
        cms_humans=cms_humans,
        bots=bots,
        humans=humans,
        release_actor=release_actor,
        repos=repos,
        workflows=workflows,
        own_packages=own,
        releases=releases,
        third_party=third,
        proxy_users=proxy_users,
        hook_owner=f"{org}-security",
        compromised_history=history,
        compromised_twin=twin,
        compromised_bad_latest=bad_latest,
        compromised_bad_legacy=bad_legacy,
        compromised_created=created,
        phantom_decoy=decoy,
        phantom_bad=bad,
    )
    for r in releases:
        world.tarball_sizes[(r.package.name, r.version)] = int(sum(s for _, s in r.files) * r.package.ratio)
    return world


def _own_releases(p: ScenarioParams, own: dict[str, OwnPackage], rng: random.Random) -> list[Release]:
    """Release history of our packages in the window; the CLI's ends with the twin and the leaking release."""
    cli = own[p.ci_package]
    out: list[Release] = []
    ordinary = earlier_versions(p.ci_previous_version, 4)
    factor = rng.uniform(0.95, 0.98)
    for days, version in zip((6, 5, 3, 2), ordinary, strict=True):
        factor *= rng.uniform(0.99, 1.02)
        at = p.ci_leak_at - timedelta(days=days, hours=rng.randint(1, 5), minutes=rng.randint(0, 59))
        out.append(
            Release(
                cli, version, at, ((p.ci_bundle_file, int(p.ci_bundle_size * factor)), *cli.files), "ordinary"
            )
        )
    factor *= rng.uniform(0.99, 1.02)
    twin_at = p.ci_leak_at - timedelta(hours=26, minutes=rng.randint(0, 50))
    out.append(
        Release(
            cli,
            p.ci_previous_version,
            twin_at,
            ((p.ci_bundle_file, int(p.ci_bundle_size * factor)), *cli.files),
            "twin:ci",
        )
    )
    out.append(
        Release(
            cli,
            p.ci_leak_version,
            p.ci_leak_at,
            ((p.ci_bundle_file, p.ci_bundle_size), (p.ci_map_file, p.ci_map_size), *cli.files),
            "incident:ci",
        )
    )
    for name, base in ((f"@{p.github_org}/sdk", "3.4.0"), (f"@{p.github_org}/ui", "0.19.2")):
        pkg = own[name]
        version = base
        for day in sorted(rng.sample(range(1, p.baseline_days + 4), 3)):
            version = f"{version.rsplit('.', 1)[0]}.{int(version.rsplit('.', 1)[1]) + 1}"
            at = p.window_start + timedelta(days=day, hours=rng.randint(9, 16), minutes=rng.randint(0, 59))
            scale = rng.uniform(0.97, 1.05)
            out.append(
                Release(pkg, version, at, tuple((f, int(s * scale)) for f, s in pkg.files), "ordinary")
            )
    return sorted(out, key=lambda r: r.at)


def _compromised(
    p: ScenarioParams, ws: datetime
) -> tuple[datetime, list[NpmVersion], NpmVersion, NpmVersion, NpmVersion]:
    """The compromised package's history: token publishes long ago, trusted publishing for the recent ones."""
    created = datetime(ws.year - 11, 8, 29, 3, 50, 11, tzinfo=UTC)
    good_deps = (("form-encode", "^4.0.0"), ("debug-log", "^4.3.4"))
    owner_maint = ((p.registry_maintainer, p.registry_maintainer_email),)
    repo = f"{p.registry_package}/{p.registry_package}"

    def ver(
        version: str,
        at: datetime,
        trusted: bool,
        deps: tuple[tuple[str, str], ...] = good_deps,
        maint: tuple[tuple[str, str], ...] = owner_maint,
        user: tuple[str, str] | None = None,
        size: int = 2_150_000,
    ) -> NpmVersion:
        name, email = user or (
            (NPM_OIDC_USER["name"], NPM_OIDC_USER["email"])
            if trusted
            else (p.registry_maintainer, p.registry_maintainer_email)
        )
        legacy = version_key(version)[0] == 0
        scripts = (("test", "mocha"),) if legacy else (("test", "vitest run"), ("build", "rollup -c"))
        return NpmVersion(
            p.registry_package,
            version,
            at,
            name,
            email,
            trusted,
            deps,
            scripts,
            size // 2 if legacy else size,
            86 if legacy else 112,
            "Promise based HTTP client for the browser and node.js",
            maint,
            repo,
        )

    history = [ver("0.1.0", created, False, deps=(), size=41_000)]
    for i, v in enumerate(earlier_versions(p.registry_good_legacy, 2)):
        history.append(ver(v, ws - timedelta(days=700 - 90 * i), False))
    history.append(ver(p.registry_good_legacy, ws - timedelta(days=41, hours=3), True))
    for i, v in enumerate(earlier_versions(p.registry_good_latest, 3)):
        history.append(ver(v, ws - timedelta(days=240 - 80 * i), i > 0, size=2_120_000 + 9_000 * i))
    twin = ver(
        p.registry_good_latest,
        p.registry_publish_at - timedelta(days=3, hours=5, minutes=12),
        True,
        size=2_160_000,
    )
    hijacked = ((p.registry_maintainer, p.attacker_email),)
    bad_deps = (*good_deps, (p.phantom_package, f"^{p.phantom_bad_version}"))
    bad_latest = ver(
        p.registry_bad_latest,
        p.registry_publish_at,
        False,
        deps=bad_deps,
        maint=hijacked,
        user=(p.registry_maintainer, p.attacker_email),
        size=2_160_410,
    )
    bad_legacy = ver(
        p.registry_bad_legacy,
        p.registry_legacy_at,
        False,
        deps=bad_deps,
        maint=hijacked,
        user=(p.registry_maintainer, p.attacker_email),
    )
    return created, history, twin, bad_latest, bad_legacy
