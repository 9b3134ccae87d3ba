"""What each organisation runs beyond GitHub, npm and Contentful: a Kubernetes cluster (EKS, GKE or AKS) with
its controllers and in-cluster CI runners watched by a runtime sensor (Tetragon or Falco), an AWS account, a
self-managed GitLab for infrastructure projects, GitHub's audit log stream, GitHub Packages, maybe a Strapi
catalog. Drawn from its own RNG (`<seed>:estate`), so the cast's draws, and every existing class, stay put.

Addresses: an org's private network is 10/8 (its CI runners live in `org.subnet`, cast.py); its controllers'
pods in `<subnet>.16-31.*`, Verdaccio and the egress proxy in `<subnet>.250.*`; its NAT gateway and office
egress in TEST-NET ranges (203.0.113.0/24, 198.51.100.0/24), a /28 or /29 per org.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from tools.corpus.cast import Cast, Org
from tools.corpus.classes import Draws
from tools.scenarios._util import lower_alnum, stable_hex, stable_int

# Where CI jobs connect (inventory allowed_destinations): host names for sensors that resolve them (Falco),
# the providers' published ranges for those that see addresses only (Tetragon).
REGISTRY = ("registry.npmjs.org", "104.16.0.0/12")  # npm's registry is served by Cloudflare
GITHUB = ("github.com", "140.82.112.0/20", "objects.githubusercontent.com", "185.199.108.0/22")
GOOGLE = ("storage.googleapis.com", "142.250.0.0/15")
# Install scripts of well-known packages: (package, script, downloads from: host, range) or no download.
SCRIPTS: dict[str, tuple[str, tuple[str, str] | None]] = {
    "esbuild": ("node install.js", ("registry.npmjs.org", "104.16.0.0/12")),
    "sharp": ("node install/libvips.js", ("objects.githubusercontent.com", "185.199.108.0/22")),
    "puppeteer": ("node install.mjs", ("storage.googleapis.com", "142.250.0.0/15")),
    "cypress": ("node index.js --exec install", ("download.cypress.io", "104.16.0.0/12")),
    "core-js": ("node -e \"try{require('./postinstall')}catch(e){}\"", None),
    "protobufjs": ("node scripts/postinstall", None),
}
NO_DOWNLOAD = tuple(k for k, (_, d) in SCRIPTS.items() if d is None)
ARC_NS = "arc-runners"
SCALE_SET_LABEL = "actions.github.com/scale-set-name"
_REGIONS = {"gke": "europe-west1", "aks": "westeurope"}
_AGENTS = (
    "argocd-application-controller/v2.13.3 (linux/amd64) kubernetes/4b5a9f1",
    "external-secrets/v0.10.7 (linux/amd64) kubernetes/$Format",
    "cert-manager-certificates-issuing/v1.16.2 (linux/amd64) cert-manager/8c3cd2c",
    "gha-runner-scale-set-controller/0.10.1 (linux/amd64)",
)
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes draws generated name suffixes from


def k8s_suffix(rng: random.Random, n: int = 5) -> str:
    return "".join(rng.choice(_K8S_ALPHABET) for _ in range(n))


@dataclass(frozen=True)
class ScaleSet:
    """An ARC runner scale set: one Verdaccio CI user's jobs run in its pods."""

    user: str  # the Verdaccio CI user whose identity the pods join (inventory alias of its label)
    repo: str  # the repository's short name (its checkout directory)
    rs: str  # the EphemeralRunnerSet's generated suffix in pod names
    scripts: tuple[str, ...]  # packages in the repository's lockfile that run install scripts
    prepare: bool  # the repository's own prepare script (husky)

    @property
    def alias(self) -> str:
        return f"k8s:pod-label/{ARC_NS}/{SCALE_SET_LABEL}={self.user}"

    @property
    def sa(self) -> str:
        return f"k8s:sa/{ARC_NS}/{self.user}"


@dataclass(frozen=True)
class ServiceAccount:
    ns: str
    name: str
    agent: str  # the user agent its requests carry
    secrets: tuple[str, ...]  # the secrets it reads or writes

    @property
    def identity(self) -> str:
        return f"k8s:sa/{self.ns}/{self.name}"

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.ns}:{self.name}"


@dataclass
class Estate:
    org: Org
    flavor: str  # eks | gke | aks
    cluster: str
    sensor: str  # tetragon | falco
    egress: str  # direct | proxy (every connection of a job goes to the company's egress proxy)
    account: str  # the AWS account
    project: str  # the GCP project (GKE) or the Azure resource group (AKS)
    region: str  # the cluster's
    aws_region: str
    nat: tuple[str, ...]  # the cluster's NAT gateway addresses
    nat_cidr: str
    office: tuple[str, ...]
    office_cidr: str
    verdaccio_ip: str
    proxy_ip: str
    s3_endpoint: str  # the VPC's S3 gateway endpoint ("" without one: S3 calls leave through the NAT)
    scale_sets: dict[str, ScaleSet] = field(default_factory=dict)
    controllers: list[ServiceAccount] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)  # app namespaces (one per app repository)
    admins: list[str] = field(default_factory=list)  # people with kubectl and console access
    deploy_keys: dict[str, int] = field(default_factory=dict)  # repository -> deploy key id (GitOps)
    mirror_token: int = 0  # a machine user's fine-grained token id
    gitlab_projects: list[tuple[int, str]] = field(default_factory=list)  # (id, path)
    gitlab_bot: tuple[int, str] = (0, "")  # a project access token's bot user (id, username)
    strapi: str = ""  # the Strapi sync integration's name ("" when the org runs no Strapi)
    monorepo: tuple[str, ...] = ()  # npm packages published to GitHub Packages by one release
    # The cloud_new_address class: (from, new address) of the NAT gateway, (from, pod prefix) of a node pool.
    nat_move: tuple[datetime, str] | None = None
    pool_move: tuple[datetime, str] | None = None

    @property
    def slug(self) -> str:
        return self.org.slug

    @property
    def pod_prefix(self) -> str:
        return self.org.subnet  # 10.x: the runners and controllers' pods

    @property
    def release_app(self) -> str:
        return f"{self.slug}-release[bot]"

    @property
    def secrets_app(self) -> str:
        return f"{self.slug}-secrets-sync[bot]"

    @property
    def mirror_user(self) -> str:
        return f"{self.slug}-mirror"

    @property
    def gitlab_host(self) -> str:
        return f"gitlab.{self.slug}.example"

    def role(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"

    @property
    def subscription(self) -> str:
        h = stable_hex("azure", self.account, n=32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"

    def nat_at(self, rng: random.Random, at: datetime) -> str:
        """The NAT gateway address a call from the cluster leaves through at `at`."""
        moved = self.nat_move
        return moved[1] if moved is not None and at >= moved[0] else rng.choice(self.nat)

    @property
    def backup_user(self) -> str:
        return f"arn:aws:iam::{self.account}:user/svc-backup-sync"

    def destinations(self) -> tuple[str, ...]:
        """Where a CI runner's jobs may connect (its identity's allowed_destinations)."""
        own = (f"verdaccio.{self.slug}.internal", f"{self.pod_prefix}.250.0/24")
        if self.egress == "proxy":
            return (*own, f"proxy.{self.slug}.internal")
        return (*own, *REGISTRY, *GITHUB, *GOOGLE)


def build_estate(cast: Cast) -> dict[str, Estate]:
    rng = random.Random(f"{cast.seed}:estate")
    flavors = ("eks", "gke", "aks")
    first = rng.randrange(3)
    ci = Draws(rng, "ci_runner_runtime")
    proxy_share = ci.uniform("proxy_orgs")
    # One sensor or the other, alternating, so two orgs see both; which first is drawn.
    sensor_first = rng.randrange(2)
    out: dict[str, Estate] = {}
    for org in cast.orgs:
        flavor = flavors[(first + org.index) % 3]
        nat_base, office_base = 16 * (org.index % 16), 8 * (org.index % 32)
        aws_region = rng.choice(("eu-west-1", "eu-central-1", "us-east-1"))
        est = Estate(
            org=org,
            flavor=flavor,
            cluster=f"{org.slug}-prod",
            sensor=("tetragon", "falco")[(sensor_first + org.index) % 2],
            egress="proxy" if rng.random() < proxy_share else "direct",
            account=str(100_000_000_000 + stable_int(cast.seed, org.slug, "aws", digits=11)),
            project=f"{org.slug}-prod",
            region=aws_region if flavor == "eks" else _REGIONS[flavor],
            aws_region=aws_region,
            nat=tuple(f"203.0.113.{nat_base + rng.randint(1, 14)}" for _ in range(2)),
            nat_cidr=f"203.0.113.{nat_base}/28",
            office=(f"198.51.100.{office_base + rng.randint(1, 6)}",),
            office_cidr=f"198.51.100.{office_base}/29",
            verdaccio_ip=f"{org.subnet}.250.{rng.randint(2, 40)}",
            proxy_ip=f"{org.subnet}.250.{rng.randint(41, 90)}",
            s3_endpoint=f"vpce-{stable_hex(org.slug, 's3', n=17)}" if rng.random() < 0.5 else "",
        )
        _runners(rng, est, ci)
        _cluster(rng, est)
        _platform(rng, cast, est)
        out[org.slug] = est
    first_org = out[cast.orgs[0].slug]
    if not any(e.strapi for e in out.values()):  # at least one org syncs a catalog into Strapi
        first_org.strapi = f"{first_org.slug}-catalog-sync"
    if all(e.egress == "proxy" for e in out.values()):  # and one lets its builds reach the internet
        first_org.egress = "direct"
    _moves(rng, cast, out)
    return out


def _moves(rng: random.Random, cast: Cast, estates: dict[str, Estate]) -> None:
    """The cloud_new_address class: a new node pool for the controllers (a new pod range, still in the org's
    private network), or a NAT gateway replaced (a new address in its range)."""
    d = Draws(rng, "cloud_new_address")
    for i in range(d.int("instances")):
        est = estates[rng.choice(cast.orgs).slug]
        at = cast.start + (cast.end - cast.start) * d.uniform("from_fraction")
        # A node pool first: its controllers act all day, so even a short window has the class.
        if i % 2 == 1 and est.nat_move is None:
            base = int(est.nat_cidr.split(".")[3].split("/")[0])
            used = {int(a.rsplit(".", 1)[1]) for a in est.nat}
            free = [n for n in range(base + 1, base + 15) if n not in used]
            est.nat_move = (at, f"203.0.113.{rng.choice(free)}")
        elif est.pool_move is None:
            est.pool_move = (at, f"{est.pod_prefix}.{rng.randint(128, 191)}")


def _runners(rng: random.Random, est: Estate, ci: Draws) -> None:
    for user in est.org.proxy_users:
        repo = (user.repo or "").rsplit("/", 1)[-1]
        k = ci.int("script_packages")
        scripts = tuple(rng.sample(sorted(SCRIPTS), k))
        est.scale_sets[user.name] = ScaleSet(user.name, repo, k8s_suffix(rng), scripts, rng.random() < 0.6)


def _cluster(rng: random.Random, est: Estate) -> None:
    org = est.org
    est.apps = [r.name for r in org.repos if not r.description.endswith("library")]
    # Namespaces carry the org's name: a Kubernetes identity's id does not carry its cluster (README, Known
    # limits), and the corpus puts every org's cluster on one topic, so `argocd/...` would be one identity.
    ns = org.slug
    est.controllers = [
        ServiceAccount(
            f"{ns}-argocd", "argocd-application-controller", _AGENTS[0], (f"{ns}-argocd/argocd-secret",)
        ),
        ServiceAccount(
            f"{ns}-external-secrets",
            "external-secrets",
            _AGENTS[1],
            tuple(f"{app}/{app}-{kind}" for app in est.apps for kind in ("db", "api-keys")),
        ),
        ServiceAccount(
            f"{ns}-cert-manager", "cert-manager", _AGENTS[2], tuple(f"{a}/{a}-tls" for a in est.apps)
        ),
        ServiceAccount(f"{ns}-arc-systems", "arc-gha-rs-controller", _AGENTS[3], ()),
    ]
    est.admins = [h.login for h in org.humans[:3]]


def _platform(rng: random.Random, cast: Cast, est: Estate) -> None:
    org = est.org
    est.deploy_keys = {
        r.full_name: rng.randint(100_000, 999_999) for r in org.repos if org.workflow(r, "deploy") is not None
    }
    if not est.deploy_keys:  # GitOps fetches the first app repository at least
        app = next(r for r in org.repos if not r.description.endswith("library"))
        est.deploy_keys[app.full_name] = rng.randint(100_000, 999_999)
    est.mirror_token = rng.randint(90_000_000, 99_999_999)
    n = Draws(rng, "gitlab_pipelines").int("projects")
    names = rng.sample(("terraform", "helm-charts", "ansible", "observability", "dns", "network"), n)
    est.gitlab_projects = [(rng.randint(10, 900), f"{org.slug}/infra-{x}") for x in names]
    bot = rng.randint(1000, 9999)
    est.gitlab_bot = (bot, f"project_{est.gitlab_projects[0][0]}_bot_{lower_alnum(rng, 6)}")
    est.strapi = f"{org.slug}-catalog-sync" if rng.random() < 0.6 else ""
    k = Draws(rng, "github_packages_publish").int("monorepo_packages")
    parts = ("tokens", "icons", "button", "forms", "layout", "theme", "charts", "table", "dialog", "hooks")
    est.monorepo = tuple(f"@{org.slug}/ds-{p}" for p in rng.sample(parts, k))
