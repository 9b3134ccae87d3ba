"""The corpus classes: one table of name, benign/attack, a one-line description and the parameter ranges.

Every parameter a generator draws comes from a range here (`Draws.int`, `Draws.uniform`, `Draws.chance`), so
the README can list what a class covers and a seed picks where in the range each instance falls.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

BENIGN, ATTACK, CONTEXT = "benign", "attack", "context"


@dataclass(frozen=True)
class CorpusClass:
    name: str
    kind: str  # benign | attack | context (an attack's records that are not its harmful act: `nhiguard eval`)
    description: str
    ranges: Mapping[str, tuple[float, float]]
    # An attack class no shipped policy can catch, and why (README "Detection quality"): its records stay in
    # the corpus, so `nhiguard eval` shows the miss, and the detection targets do not require it.
    known_miss: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


_TABLE: tuple[CorpusClass, ...] = (
    # ------------------------------------------------------------------------------------------ benign
    CorpusClass(
        "ordinary",
        BENIGN,
        "Everyday work: CI runs on pushes, scheduled scans, deploys, CMS edits, integration saves, public "
        "and embargoed uploads, third-party publishes, CI installs through Verdaccio, internal publishes "
        "through Verdaccio by the expected user.",
        {
            "utc_offset_h": (-8, 9),
            "scan_local_hour": (1, 5),
            "repos": (3, 5),
            "published_packages": (1, 3),
            "ci_runs_per_workday": (5, 14),
            "asset_uploads_per_day": (2, 7),
            "entry_edits_per_workday": (3, 9),
            "app_saves_per_day": (3, 10),
            "dam_off_hours_share": (0.05, 0.2),
            "proxy_users": (3, 5),
            "nightly_users": (0, 2),
            "packages_per_install": (1, 4),
            "release_gap_days": (0.25, 3.0),  # a package's mean gap between releases
            "internal_publishes_per_week": (1, 4),
            "third_party_deps": (14, 22),
            "third_party_releases": (0, 2),
        },
    ),
    CorpusClass(
        "multi_maintainer",
        BENIGN,
        "Two long-standing maintainers of a package alternate token releases (different _npmUser name and "
        "e-mail, both in the earlier history); CI bots install each release.",
        {"packages": (1, 2), "releases": (2, 4), "history_versions": (4, 8)},
    ),
    CorpusClass(
        "bulk_cms_sync",
        BENIGN,
        "A catalog-sync integration uploads bursts of untagged product images to the public image host and "
        "publishes each about a minute later, several bursts a day.",
        {"orgs": (1, 2), "bursts_per_day": (2, 4), "items": (4, 15), "publish_delay_s": (40, 110)},
    ),
    CorpusClass(
        "untagged_upload_published",
        BENIGN,
        "An integration uploads an untagged asset to the public host and publishes it minutes to hours "
        "later.",
        {"per_org_day": (0.3, 1.5), "publish_delay_min": (2, 180)},
    ),
    CorpusClass(
        "oncall_weekend_release",
        BENIGN,
        "A release at night or on a weekend, by the usual release workflow, tag pushed by an on-call person.",
        {"instances": (2, 4), "night_local_hour": (22, 29)},  # 24..29 = 00..05 the next day
    ),
    CorpusClass(
        "first_release_new_package",
        BENIGN,
        "A new package's first release by its new release workflow (in the inventory, created days ago); CI "
        "bots start installing it.",
        {"instances": (1, 2), "identity_age_days": (1, 10), "installs": (2, 6)},
    ),
    CorpusClass(
        "renovate_bot",
        BENIGN,
        "Renovate/Dependabot-style bots push update branches, open pull requests and trigger CI.",
        {"per_org_day": (0.5, 2.5)},
    ),
    CorpusClass(
        "new_runner_or_address",
        BENIGN,
        "The usual identity from somewhere new: a Verdaccio CI user after an address change, or a workflow "
        "whose jobs move to new self-hosted runners.",
        {"instances": (2, 4), "from_fraction": (0.3, 0.8)},
    ),
    CorpusClass(
        "example_and_typemap_files",
        BENIGN,
        "Releases of a package that ships .env.example, *.d.ts and *.d.ts.map files.",
        {"packages": (1, 2)},
    ),
    CorpusClass(
        "k8s_controllers",
        BENIGN,
        "Kubernetes service accounts at work, from pod addresses inside the org's network (EKS, GKE or AKS "
        "audit logs): the GitOps controller syncing and reading repository secrets, external-secrets "
        "refreshing app secrets, cert-manager renewing certificates, the runner controller creating job "
        "pods, each CI runner's account reading its own registry secret at job start; kubectl by "
        "administrators (people), exec included.",
        {
            "argocd_syncs_per_day": (6, 20),
            "eso_refresh_min": (30, 90),
            "admin_sessions_per_workday": (0.5, 3.0),
            "admin_exec_share": (0.1, 0.4),
        },
    ),
    CorpusClass(
        "ci_runner_runtime",
        BENIGN,
        "A runtime sensor (Tetragon or Falco) on the in-cluster CI runners: git fetches from GitHub, npm ci "
        "through Verdaccio or the company egress proxy, the repository's prepare script and dependencies' "
        "install scripts (native packages fetching their binaries from the registry, GitHub or Google "
        "storage), all to destinations the runner's identity allows.",
        {"script_packages": (0, 3), "download_share": (0.2, 0.7), "proxy_orgs": (0.3, 0.6)},
    ),
    CorpusClass(
        "new_allowed_destination",
        BENIGN,
        "A repository adds a dependency whose install script downloads its binary from a host the runner "
        "never reached before but its identity allows (first jobs after the change).",
        {"instances": (2, 4), "from_fraction": (0.3, 0.85), "hours": (24, 72)},
    ),
    CorpusClass(
        "night_build",
        BENIGN,
        "An on-call engineer's hotfix build at night: the CI workflow, its installs through Verdaccio and "
        "its runner's process events at an hour the identities never act at, with their usual destinations.",
        {"instances": (1, 3), "night_local_hour": (0, 5)},
    ),
    CorpusClass(
        "cloud_ci_roles",
        BENIGN,
        "CloudTrail: the deploy role assumed by GitHub OIDC from GitHub-hosted runners (every run another "
        "address), the in-cluster artifact role through the cluster's NAT gateway, a legacy IAM user's "
        "access key used by a nightly backup from the office, people at the console.",
        {
            "artifact_call_share": (0.3, 0.8),
            "backup_local_hour": (1, 4),
            "backup_objects": (3, 12),
            "console_per_workday": (0.3, 2.0),
        },
    ),
    CorpusClass(
        "cloud_new_address",
        BENIGN,
        "The usual credential from a new address inside its declared networks: the cluster's NAT gateway "
        "replaced (a new address in its range), or service accounts on a new node pool.",
        {"instances": (1, 3), "from_fraction": (0.3, 0.8)},
    ),
    CorpusClass(
        "github_audit_tokens",
        BENIGN,
        "GitHub's audit log stream: deploy keys the GitOps controller fetches with, a secrets-sync app "
        "rotating Actions secrets, a machine user's fine-grained token mirroring repositories nightly, and "
        "the audit copy of every workflow run (labelled as the run).",
        {"gitops_fetch_min": (40, 90), "mirror_local_hour": (0, 5), "rotations_per_day": (1, 3)},
    ),
    CorpusClass(
        "gitlab_pipelines",
        BENIGN,
        "The orgs' infrastructure projects on a self-managed GitLab: pipeline and job hooks for pushes and "
        "nightly schedules on the instance runners, deployments by CI jobs, merges and pushes by a project "
        "access token's bot, deploy-token clones by the GitOps controller.",
        {
            "projects": (1, 3),
            "pushes_per_workday": (1.0, 5.0),
            "schedule_local_hour": (1, 5),
            "deploy_token_fetch_min": (45, 120),
        },
    ),
    CorpusClass(
        "strapi_bulk_sync",
        BENIGN,
        "A Strapi catalog instance whose webhook is the sync integration's: bulk entry updates, new entries "
        "published and product images uploaded (public on upload, untagged) several times a day, now and "
        "then a spec-sheet PDF; merchandisers' edits in working hours arrive under the same integration; "
        "once, a catch-up sync after an outage, several times the usual items at an hour of its own.",
        {
            "syncs_per_day": (2, 4),
            "items": (5, 25),
            "image_share": (0.3, 0.7),
            "document_share": (0.0, 0.05),
            "edits_per_workday": (1.0, 6.0),
            "catchup_factor": (2.0, 4.0),
        },
    ),
    CorpusClass(
        "github_packages_publish",
        BENIGN,
        "GitHub Packages publishes by the expected publishers: a container image by github-actions[bot] on "
        "each deploy, a monorepo release publishing several npm packages at once, by the Actions bot or the "
        "org's release app (two expected publishers taking turns).",
        {"monorepo_packages": (3, 8), "monorepo_releases": (1, 3), "app_share": (0.2, 0.6)},
    ),
    CorpusClass(
        "attack_context",
        CONTEXT,
        "Records emitted around an attack that are not the harmful act: the tag push and workflow webhooks "
        "of a bad release, the attacker's clean decoy publish, the metadata GET before a bad install, the "
        "install script's and its dropped implant's process starts before they connect out.",
        {},
    ),
    # ------------------------------------------------------------------------------------------ attack
    CorpusClass(
        "cms_default_public_exposure",
        ATTACK,
        "A burst of non-public (internal/draft/confidential/...) assets uploaded to the public asset host by "
        "an integration, never published.",
        {"instances": (1, 2), "assets": (30, 150), "minutes": (8, 40)},
    ),
    CorpusClass(
        "cms_publish_burst",
        ATTACK,
        "Restricted or internal entries and assets made public by publishing, a burst by one non-human "
        "identity.",
        {"instances": (1, 2), "items": (15, 60), "minutes": (3, 15), "entry_share": (0.3, 0.8)},
    ),
    CorpusClass(
        "cms_slow_exposure",
        ATTACK,
        "About 25 non-public items exposed over two hours (default-public uploads or publishes), below any "
        "ten-minute burst threshold.",
        {
            "instances": (1, 1),
            "exposures": (20, 30),
            "minutes": (100, 140),
            "by_upload": (0.5, 0.5),
            "entry_share": (0.3, 0.8),
        },
    ),
    CorpusClass(
        "sourcemap_release",
        ATTACK,
        "A release gate request whose pack carries a .map of the bundle; the package is many times the "
        "previous release's size.",
        {"instances": (1, 3), "size_factor": (4.0, 9.0)},
    ),
    CorpusClass(
        "env_file_release",
        ATTACK,
        "A release gate request whose pack carries .env.<stage>.local-style files (two suffixes).",
        {"instances": (1, 3), "env_files": (1, 3)},
    ),
    CorpusClass(
        "fork_or_unexpected_workflow_release",
        ATTACK,
        "A release gate request from a fork's pull_request, or from a branch, workflow or repository other "
        "than the inventory's expected_publisher.",
        {"instances": (2, 5)},
    ),
    CorpusClass(
        "hijacked_publisher",
        ATTACK,
        "Versions of an established dependency published by another account or e-mail by token, provenance "
        "dropped, adding one new dependency (the axios pattern).",
        {
            "bad_versions": (1, 2),
            "legacy_delay_min": (20, 60),
            "exposure_h": (2.0, 4.0),
            "same_account": (0.5, 0.5),
            "good_release_days_before": (1.0, 4.0),
        },
    ),
    CorpusClass(
        "malicious_new_dependency",
        ATTACK,
        "The dependency the hijacked versions add: minutes to days old, with a postinstall script; its own "
        "publish is in the stream only in some seeds, its tarball installs always are.",
        {"age_min": (10, 4320), "publish_seen": (0.5, 0.5), "decoy": (0.6, 0.6)},
    ),
    CorpusClass(
        "installs_of_bad_version",
        ATTACK,
        "CI bots install the hijacked versions through Verdaccio while they are up.",
        {"forced_sessions": (4, 12)},
    ),
    CorpusClass(
        "proxy_publish",
        ATTACK,
        "A publish through Verdaccio (PUT) by a user that is not the package's expected publisher.",
        {"instances": (1, 3), "unknown_user": (0.5, 0.5)},
    ),
    CorpusClass(
        "anomalous_workflow_activity",
        ATTACK,
        "A known CI identity far outside its habits on several features at once: new targets, a new hour and "
        "a new address (a stolen registry token, or a workflow dispatched at night on a new runner).",
        {"instances": (1, 3), "packages": (8, 30), "night_local_hour": (0, 4), "registry_token": (0.5, 0.5)},
    ),
    CorpusClass(
        "install_script_egress",
        ATTACK,
        "The runtime side of the axios chain: the malicious dependency's postinstall (or the implant it "
        "drops) on a CI runner connects to a host outside the runner identity's allowed destinations, "
        "calling home while the build holds its registry token.",
        {"beacons": (1, 4), "implant_share": (0.3, 0.7), "unlinked_share": (0.2, 0.5)},
    ),
    CorpusClass(
        "k8s_token_outside_networks",
        ATTACK,
        "A Kubernetes service account's token used from an address outside the org's network: secrets "
        "listed and read, a pod exec'd into, a token requested.",
        {"instances": (1, 2), "requests": (2, 10)},
    ),
    CorpusClass(
        "cloud_key_outside_networks",
        ATTACK,
        "An AWS credential used from outside its declared networks: the backup user's access key, or the "
        "in-cluster artifact role's session credentials taken from a runner.",
        {"instances": (1, 2), "calls": (3, 12), "role_share": (0.5, 0.5)},
    ),
    CorpusClass(
        "github_packages_unexpected_publisher",
        ATTACK,
        "A GitHub Packages publish by an identity that is not an expected publisher: a known update bot's "
        "app token, or an app the inventory does not know.",
        {"instances": (1, 3), "known_bot": (0.6, 0.6)},
    ),
    CorpusClass(
        "github_token_outside_networks",
        ATTACK,
        "The machine user's fine-grained token (whose inventory networks are the office's) used from an "
        "address outside them, at an hour of its own: every repository cloned within minutes.",
        {"instances": (1, 1)},
    ),
    CorpusClass(
        "strapi_bulk_exposure",
        ATTACK,
        "The Strapi sync integration's token used to publish a not-yet-announced collection's entries and "
        "upload internal PDF documents, a burst at night.",
        {"instances": (1, 1), "entries": (10, 40), "documents": (3, 12), "minutes": (5, 30)},
        known_miss="Strapi has no content classification (no tags): nothing marks an entry or file as "
        "restricted, so cms.public_exposure cannot tell this from a release (public documents alert); its "
        "webhooks name no actor, and a sync integration's new hour and burst break two habits, not three.",
    ),
)

CLASSES: dict[str, CorpusClass] = {c.name: c for c in _TABLE}
BENIGN_CLASSES = tuple(c.name for c in _TABLE if c.kind == BENIGN)
ATTACK_CLASSES = tuple(c.name for c in _TABLE if c.kind == ATTACK)
KNOWN_MISSES = tuple(c.name for c in _TABLE if c.known_miss)


def label(name: str) -> str:
    """The replay label of a class (raises KeyError for a name not in the table)."""
    return CLASSES[name].label


class Draws:
    """Draws of one class's parameters from its ranges with a given RNG."""

    def __init__(self, rng: random.Random, name: str) -> None:
        self.rng = rng
        self.ranges = CLASSES[name].ranges

    def int(self, key: str) -> int:
        lo, hi = self.ranges[key]
        return self.rng.randint(int(lo), int(hi))

    def uniform(self, key: str) -> float:
        lo, hi = self.ranges[key]
        return self.rng.uniform(lo, hi)

    def chance(self, key: str) -> bool:
        return self.rng.random() < self.uniform(key)


def table_markdown() -> str:
    """The class table as Markdown (for the README)."""
    rows = ["| class | kind | description | parameters |", "|---|---|---|---|"]
    for c in _TABLE:
        params = ", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in c.ranges.items())
        miss = f" Known miss: {c.known_miss}" if c.known_miss else ""
        rows.append(f"| `{c.name}` | {c.kind} | {c.description}{miss} | {params} |")
    return "\n".join(rows)
