"""What names, sizes and times the three March-2026 incidents in a scenario.

`default_params()` keeps the incidents' shape (a 10.5 MB bundle plus a 59.8 MB source map, two compromised
versions 39 minutes apart, a phantom dependency published about 18 hours earlier, ...) under demo names.
`variant_params(seed)` keeps the shape and the record counts but changes every name, id, size and time, so a
test can show that a rule keys on behaviour and not on the names it was written against.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tools.scenarios._util import lower_alnum


@dataclass(frozen=True)
class ScenarioParams:
    seed: int = 20260326

    # Times (UTC). `start` is when the CMS integration begins its default-public uploads.
    start: datetime = datetime(2026, 3, 26, 8, 1, 2, tzinfo=UTC)
    ci_leak_at: datetime = datetime(2026, 3, 30, 22, 36, 41, tzinfo=UTC)  # the release job asks the gate
    registry_publish_at: datetime = datetime(2026, 3, 31, 0, 21, 0, tzinfo=UTC)  # bad "latest" publish
    baseline_days: int = 7  # ordinary activity starts this long before the first incident

    github_org: str = "acme"

    # 1. CMS: an integration (AppDefinition) whose uploads land on the public asset host.
    cms_space_id: str = "k8x2qv7m3np1"
    cms_environment: str = "master"
    cms_app_id: str = "asset-sync"
    cms_leak_assets: int = 120  # the real exposure was ~3,000 assets; 120 keeps the demo quick
    cms_leak_minutes: int = 20
    cms_leak_codename: str = "Mythos"  # the unreleased product the leaked drafts talk about
    cms_public_host: str = "assets.ctfassets.net"

    # 2. CI: a release workflow about to publish a package that carries its source map.
    ci_repository: str = "acme/cli"
    ci_workflow_path: str = ".github/workflows/release.yml"
    ci_workflow_name: str = "Release"
    ci_package: str = "@acme/cli"
    ci_release_actor: str = "mhollis"  # the human who pushes the release tag
    ci_previous_version: str = "2.1.87"
    ci_leak_version: str = "2.1.88"
    ci_bundle_file: str = "cli.js"
    ci_bundle_size: int = 10_500_000
    ci_map_file: str = "cli.js.map"
    ci_map_size: int = 59_800_000

    # 3. Registry: a popular third-party package published from its maintainer's hijacked account.
    registry_package: str = "reqflow"
    registry_good_latest: str = "1.14.0"
    registry_bad_latest: str = "1.14.1"
    registry_good_legacy: str = "0.30.3"
    registry_bad_legacy: str = "0.30.4"
    registry_legacy_delay_minutes: int = 39
    registry_maintainer: str = "jmarlow"  # the attacker publishes under this (hijacked) account name
    registry_maintainer_email: str = "jmarlow@reqflow.dev"
    attacker_email: str = "nfstap@proton.me"
    phantom_package: str = "plain-cipher-js"
    phantom_decoy_version: str = "4.2.0"
    phantom_bad_version: str = "4.2.1"
    phantom_publisher: str = "cipherkit-dev"
    phantom_publisher_email: str = "cipherkit.dev@proton.me"
    phantom_lead_hours: int = 18  # clean decoy this long before the version with the postinstall dropper
    registry_victims: tuple[str, ...] = ("ci-deploy", "ci-web-build")  # Verdaccio users of our CI bots

    def __post_init__(self) -> None:
        for name in ("start", "ci_leak_at", "registry_publish_at"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if not self.ci_repository.startswith(self.github_org + "/"):
            raise ValueError("ci_repository must belong to github_org")
        if not self.registry_victims:
            raise ValueError("registry_victims needs at least one CI bot")
        if self.cms_leak_assets < 1 or self.cms_leak_minutes < 1:
            raise ValueError("the CMS leak needs at least one asset and one minute")

    @property
    def compromised_package(self) -> str:
        return self.registry_package

    @property
    def bad_versions(self) -> tuple[str, str]:
        return (self.registry_bad_latest, self.registry_bad_legacy)

    @property
    def registry_legacy_at(self) -> datetime:
        return self.registry_publish_at + timedelta(minutes=self.registry_legacy_delay_minutes)

    @property
    def phantom_bad_at(self) -> datetime:
        # The dropper version goes up shortly before the compromised publishes that depend on it.
        return self.registry_publish_at - timedelta(minutes=21, seconds=48)

    @property
    def phantom_decoy_at(self) -> datetime:
        return self.phantom_bad_at - timedelta(hours=self.phantom_lead_hours)

    @property
    def window_start(self) -> datetime:
        first = min(self.start, self.ci_leak_at, self.phantom_decoy_at)
        return first - timedelta(days=self.baseline_days)

    @property
    def window_end(self) -> datetime:
        last = max(
            self.start + timedelta(minutes=self.cms_leak_minutes), self.ci_leak_at, self.registry_legacy_at
        )
        return last + timedelta(hours=4)

    def incident_names(self) -> tuple[str, ...]:
        """The names that identify these incidents; a variant must contain none of them."""
        return (
            self.github_org,
            self.cms_space_id,
            self.cms_app_id,
            self.cms_leak_codename,
            self.ci_repository,
            self.ci_package,
            self.ci_release_actor,
            self.registry_package,
            self.registry_maintainer,
            self.registry_maintainer_email,
            self.attacker_email,
            self.phantom_package,
            self.phantom_publisher,
            self.phantom_publisher_email,
            *self.registry_victims,
        )


def default_params() -> ScenarioParams:
    return ScenarioParams()


# Variant name pools. None of them contains a default name (test_scenarios checks the generated stream).
_ORGS = (
    "globex",
    "initech",
    "hooli",
    "vandelay",
    "tyrell",
    "wonka",
    "cyberdyne",
    "soylent",
    "oscorp",
    "zorg",
)
_CLI_REPOS = ("terminal", "shell", "console", "toolbox", "devkit", "cmdline")
_APPS = ("media-bridge", "dam-connector", "upload-relay", "file-ingest", "blob-mirror")
_CODENAMES = ("Helios", "Tundra", "Orion", "Basalt", "Juniper", "Quasar", "Marlin")
_HUMANS = ("kpatel", "sromero", "ewinter", "obrandt", "tkaur", "lmensah")
_HTTP_PKGS = ("wirefetch", "netcall", "pipereq", "hyperget", "quickxhr", "fetchmint")
_MAINTAINERS = ("pvoss", "akimura", "rdelacroix", "ybenali", "hstrand", "cokoro")
_PHANTOMS = ("tiny-digest-js", "lite-aes-util", "basic-hmac-lib", "simple-sha-kit", "mini-keccak-js")
_PHANTOM_PUBS = ("hashsmith", "aes-labs", "keccak-crew", "digestor99", "nullbyte-js")
_MAILERS = ("proton.me", "pm.me", "protonmail.com", "tuta.io")
_BOTS = (
    "build-runner",
    "pipeline-prod",
    "release-agent",
    "test-harness",
    "nightly-builder",
    "stage-deployer",
)


def variant_params(seed: int) -> ScenarioParams:
    """The same incidents under entirely different names, ids, sizes and dates (record counts unchanged)."""
    rng = random.Random(f"variant:{seed}")
    base = ScenarioParams()
    org = rng.choice(_ORGS)
    repo_name = rng.choice(_CLI_REPOS)
    http_pkg = rng.choice(_HTTP_PKGS)
    maintainer = rng.choice(_MAINTAINERS)
    phantom_pub = rng.choice(_PHANTOM_PUBS)
    bundle = rng.randint(4_000_000, 14_000_000)
    bundle_file = rng.choice(("main.js", "index.mjs", "bin.cjs"))
    ci_major, ci_minor, ci_patch = rng.randint(1, 6), rng.randint(0, 9), rng.randint(20, 140)
    reg_major, reg_minor = rng.randint(2, 7), rng.randint(3, 25)
    leg_minor, leg_patch = rng.randint(10, 40), rng.randint(3, 9)
    ph_major, ph_minor = rng.randint(2, 9), rng.randint(1, 12)
    # Shift by whole days (either direction) plus a few hours, keeping the incidents' relative timing.
    shift = timedelta(
        days=rng.choice((-1, 1)) * rng.randint(30, 400), hours=rng.randint(1, 11), minutes=rng.randint(1, 59)
    )
    return ScenarioParams(
        seed=seed,
        start=base.start + shift,
        ci_leak_at=base.ci_leak_at + shift,
        registry_publish_at=base.registry_publish_at + shift,
        baseline_days=base.baseline_days,
        github_org=org,
        cms_space_id=lower_alnum(rng, 12),
        cms_environment=base.cms_environment,
        cms_app_id=f"{rng.choice(_APPS)}-{lower_alnum(rng, 3)}",
        cms_leak_assets=base.cms_leak_assets,
        cms_leak_minutes=base.cms_leak_minutes,
        cms_leak_codename=rng.choice(_CODENAMES),
        cms_public_host=rng.choice(("images.ctfassets.net", "downloads.ctfassets.net")),
        ci_repository=f"{org}/{repo_name}",
        ci_workflow_path=rng.choice((".github/workflows/publish.yml", ".github/workflows/npm-release.yml")),
        ci_workflow_name=rng.choice(("Publish", "npm release")),
        ci_package=f"@{org}/{repo_name}",
        ci_release_actor=rng.choice(_HUMANS),
        ci_previous_version=f"{ci_major}.{ci_minor}.{ci_patch}",
        ci_leak_version=f"{ci_major}.{ci_minor}.{ci_patch + 1}",
        ci_bundle_file=bundle_file,
        ci_bundle_size=bundle,
        ci_map_file=bundle_file + ".map",
        ci_map_size=int(bundle * rng.uniform(4.5, 7.0)),
        registry_package=http_pkg,
        registry_good_latest=f"{reg_major}.{reg_minor}.0",
        registry_bad_latest=f"{reg_major}.{reg_minor}.1",
        registry_good_legacy=f"0.{leg_minor}.{leg_patch}",
        registry_bad_legacy=f"0.{leg_minor}.{leg_patch + 1}",
        registry_legacy_delay_minutes=rng.randint(20, 60),
        registry_maintainer=maintainer,
        registry_maintainer_email=f"{maintainer}@{http_pkg}.io",
        attacker_email=f"{lower_alnum(rng, 7)}@{rng.choice(_MAILERS)}",
        phantom_package=rng.choice(_PHANTOMS),
        phantom_decoy_version=f"{ph_major}.{ph_minor}.0",
        phantom_bad_version=f"{ph_major}.{ph_minor}.1",
        phantom_publisher=phantom_pub,
        phantom_publisher_email=f"{phantom_pub}.{lower_alnum(rng, 3)}@{rng.choice(_MAILERS)}",
        phantom_lead_hours=rng.randint(12, 30),
        registry_victims=tuple(rng.sample(_BOTS, len(base.registry_victims))),
    )
