"""generate_corpus(): the whole labelled stream and its inventory, a pure function of (seed, days, orgs).

Each part draws from its own `random.Random(f"{seed}:<part>")`, so a part's records do not shift when
another part changes; the stream is sorted by record time (stable, so ties keep generation order).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from nhiguard.streams.replayfile import ReplayRecord, write_replay
from tools.corpus import clock
from tools.corpus.attacks_cms import emit_cms_attacks
from tools.corpus.attacks_platform import emit_platform_attacks
from tools.corpus.attacks_registry import emit_anomalous, emit_hijack, emit_proxy_publishes, plan_hijack
from tools.corpus.attacks_runtime import emit_runtime_attacks
from tools.corpus.cast import Cast, build_cast
from tools.corpus.ci import CiActivity
from tools.corpus.classes import Draws, label
from tools.corpus.cloud import CloudActivity
from tools.corpus.cms import CmsActivity
from tools.corpus.deps import emit_dep_publishes, seed_registry
from tools.corpus.estate import Estate, build_estate
from tools.corpus.inventory import identities_yaml, inventory
from tools.corpus.k8s import ClusterActivity
from tools.corpus.out import Out
from tools.corpus.platform import PlatformActivity
from tools.corpus.registry import Registry
from tools.corpus.releases import emit_release, plan_releases
from tools.corpus.runners import RunnerActivity
from tools.scenarios.formats import npm_pack


def generate_corpus(seed: int, days: int = 14, orgs: int = 3) -> tuple[list[ReplayRecord], dict[str, Any]]:
    """(records in time order, inventory as {"identities": [...]})."""
    if days < 1 or orgs < 1:
        raise ValueError("a corpus needs at least one day and one organisation")

    def rng(part: str) -> random.Random:
        return random.Random(f"{seed}:{part}")

    cast = build_cast(seed, days, orgs)
    estates = build_estate(cast)
    reg = Registry()
    seed_registry(cast, reg, rng("history"))
    for org in cast.orgs:  # what the orgs' own packages were before the window
        for p in org.packages:
            if p.first_release is None:
                size = npm_pack(p.name, p.base_version, list(p.files), p.ratio)["size"]
                reg.add(p.name, cast.start - timedelta(days=9), p.base_version, size)
        for name in org.internal:
            reg.add(name, cast.start - timedelta(days=20), "1.4.0", 18_000 + len(name) * 311)
    out = Out(cast, reg)

    hijack_at = clock.in_window(cast, 0.45, 0.85, rng("hijack-time"))
    emit_dep_publishes(cast, out, rng("deps"), hijack_at)
    hijack = plan_hijack(cast, reg, rng("hijack"), hijack_at)
    release_rng = rng("releases")
    for plan in plan_releases(cast, release_rng):
        emit_release(out, release_rng, plan)

    ci, cms = CiActivity(cast, out, rng("ci")), CmsActivity(cast, out, rng("cms"))
    ci.plan_moves()
    rates_rng = rng("rates")
    for org in cast.orgs:
        o = Draws(rates_rng, "ordinary")
        ci_rates = {
            "runs": o.uniform("ci_runs_per_workday"),
            "scan_hour": o.uniform("scan_local_hour"),
        }
        cms_rates: dict[str, Any] = {
            "uploads": o.uniform("asset_uploads_per_day"),
            "edits": o.uniform("entry_edits_per_workday"),
            "saves": o.uniform("app_saves_per_day"),
            "dam_off_hours": o.uniform("dam_off_hours_share"),
            "sync_hours": _sync_hours(rates_rng, Draws(rates_rng, "bulk_cms_sync").int("bursts_per_day")),
        }
        ci.internal_publishes(org, o.uniform("internal_publishes_per_week"))
        ci.bot_updates(org, Draws(rates_rng, "renovate_bot").uniform("per_org_day"))
        cms.untagged_uploads(org, Draws(rates_rng, "untagged_upload_published").uniform("per_org_day"))
        for day in range(days):
            cms.day(org, day, cms_rates)
            ci.day(org, day, ci_rates)

    ci.first_after_moves()
    emit_hijack(cast, out, rng("hijack-installs"), hijack)
    emit_cms_attacks(cast, out, rng("cms-attacks"))
    emit_proxy_publishes(cast, out, rng("proxy-publish"))
    emit_anomalous(cast, out, rng("anomalous"))
    _night_builds(cast, ci, rng("night-builds"))
    _beyond_github(out, estates, rng)
    records = [
        ReplayRecord(r.topic, r.key, r.value, r.headers, r.timestamp_ms, r.label)
        for r in sorted(out.records, key=lambda r: r.timestamp_ms)
    ]
    return records, inventory(cast, estates)


def write_corpus(
    seed: int, out_dir: str | Path, days: int = 14, orgs: int = 3
) -> tuple[Path, Path, list[ReplayRecord]]:
    """Write DIR/stream.ndjson and DIR/identities.yaml; returns both paths and the records."""
    records, inv = generate_corpus(seed, days, orgs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream, identities = out / "stream.ndjson", out / "identities.yaml"
    write_replay(records, stream)
    identities.write_text(identities_yaml(inv), encoding="utf-8")
    return stream, identities, records


def _night_builds(cast: Cast, ci: CiActivity, rng: random.Random) -> None:
    """An on-call engineer pushes a hotfix at night to a repository whose CI installs through Verdaccio."""
    d = Draws(rng, "night_build")
    for _ in range(d.int("instances")):
        org = rng.choice(cast.orgs)
        repos = [r for r in org.repos if any(u.repo == r.full_name and u.uses for u in org.proxy_users)]
        if repos:
            day = clock.day_of(cast, org, clock.in_window(cast, 0.3, 0.85, rng))
            at = clock.at_local(cast, org, day, d.uniform("night_local_hour"))
            ci.run(org, rng.choice(repos), at, rng.choice(org.humans), lab=label("night_build"))


def _beyond_github(out: Out, estates: dict[str, Estate], rng: Callable[[str], random.Random]) -> None:
    """The runtime, cloud and platform sources (issue #12): what the cluster, the sensors, CloudTrail, the
    audit log stream, GitHub Packages, GitLab and Strapi see, partly read back from the CI jobs and runs
    emitted above; then their attacks."""
    RunnerActivity(out, estates, rng("runners")).emit()
    cluster, cluster_rng = ClusterActivity(out, rng("cluster")), rng("cluster-rates")
    for est in estates.values():
        draws = Draws(cluster_rng, "k8s_controllers")
        for day in range(clock.days(out.cast)):
            cluster.day(est, day, draws)
    CloudActivity(out, estates, rng("cloud")).emit()
    PlatformActivity(out, estates, rng("platform")).emit()
    emit_runtime_attacks(out, estates, rng("runtime-attacks"))
    emit_platform_attacks(out, estates, rng("platform-attacks"))


def _sync_hours(rng: random.Random, n: int) -> list[float]:
    """A cron schedule: n syncs a day, evenly spaced from a drawn first hour."""
    first = rng.uniform(0, 24 / n)
    return [first + i * 24 / n for i in range(n)]
