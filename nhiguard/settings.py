"""The one place that reads configuration: environment variables into a frozen Settings object.

Everything else takes explicit arguments, so the core can be driven the same way from a worker, a replay,
or a test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from importlib.resources import files
from pathlib import Path

from nhiguard.api_config import ApiSettings, load_api
from nhiguard.format_config import DOMAINS, TopicFormats, load_topic_formats
from nhiguard.kafka_security import KafkaSecurity, load_kafka_security
from nhiguard.registry_config import RegistryLookupSettings, load_registry_lookup
from nhiguard.ssf_config import SsfSettings, load_ssf
from nhiguard.webhook_config import WebhookSecrets, load_webhooks


def _bundled_dir(package: str) -> Path:
    """A data folder shipped in the package (nhiguard.policies, nhiguard.schemas), as a directory on disk.

    Installed from a wheel it is inside site-packages; installed editable it is the checkout's top-level
    folder (package-dir in pyproject.toml), so both read the same files by the same name.
    """
    path = files(package)
    if not isinstance(path, Path):  # e.g. imported from a zip: the engines need real files
        raise RuntimeError(f"{package} is not a directory on disk ({path!r}); set its NHIGUARD_*_DIR")
    return path


def _default_cache_dir() -> Path:
    """The source checkout's `.cache` when run from one (editable install), else `~/.cache/nhiguard`.

    A wheel installs into site-packages, where nothing should be written.
    """
    root = Path(__file__).resolve().parents[1]
    return root / ".cache" if (root / "pyproject.toml").is_file() else Path.home() / ".cache" / "nhiguard"


@dataclass(frozen=True)
class Topics:
    cms: str = "audit.cms"
    ci: str = "audit.ci"
    registry: str = "audit.registry"
    runtime: str = "audit.runtime"
    decisions: str = "authz.decisions"
    commands: str = "enforcement.commands"
    # REVOKEs the circuit breaker held (status HELD) and their releases (status RELEASED), keyed by command
    # id: the latest record of a command id is its state (nhiguard commands held / release).
    held: str = "enforcement.held"
    alerts: str = "soc.alerts"
    ocsf: str = "soc.findings.ocsf"  # each alert record as an OCSF Detection Finding (JSON: nhiguard/ocsf.py)
    deadletter: str = "audit.deadletter"
    bundles: str = "policy.bundles"  # compacted: the latest policy bundle, when policy_source is "topic"
    identities: str = "identities"  # compacted: the identity inventory, keyed by canonical id
    # The audit records again, keyed by canonical identity: what the stateful stage reads.
    by_identity: str = "nhiguard.audit.by-identity"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.cms, self.ci, self.registry, self.runtime)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.decisions, self.commands, self.alerts, self.deadletter, self.held, self.ocsf)

    def under(self, prefix: str) -> Topics:
        """Every topic under `prefix.` (names that already start with it are kept): a sandbox's topics."""
        return Topics(
            **{k: v if v.startswith(prefix + ".") else f"{prefix}.{v}" for k, v in vars(self).items()}
        )

    def domain_of(self, topic: str) -> str | None:
        """Which policy domain an input topic feeds (None for a topic that is not an input)."""
        return {self.cms: "cms", self.ci: "ci", self.registry: "registry", self.runtime: "runtime"}.get(topic)


class SettingsError(ValueError):
    """A configuration value nhiguard cannot use (the CLI prints it as one line)."""


@dataclass(frozen=True)
class Settings:
    bootstrap: str = "127.0.0.1:9092"
    app_id: str = "nhiguard"
    topics: Topics = field(default_factory=Topics)
    input_partitions: int = 1
    policies_dir: Path = field(default_factory=lambda: _bundled_dir("nhiguard.policies"))
    schemas_dir: Path = field(default_factory=lambda: _bundled_dir("nhiguard.schemas"))
    identities_file: Path | None = None
    cache_dir: Path = field(default_factory=_default_cache_dir)
    # Records larger than this are dead-lettered before parsing (a prefix, the length and a hash are kept).
    max_record_bytes: int = 1_048_576
    # Output records embed the event, so they can be larger than the input that caused them: output topics
    # and the producer allow this much (a decision for an input just under the input limit must fit, or it
    # would fail on every retry).
    max_output_bytes: int = 4 * 1_048_576
    # How far one compressed record batch may inflate in the consumer (the memory it can cost): a batch past
    # it is not inflated, and each of its records is dead-lettered (streams/records_in.py).
    max_inflated_bytes: int = 32 * 1_048_576
    # How much of an oversized record the dead-letter envelope keeps.
    deadletter_prefix_bytes: int = 65_536
    batch_max: int = 500
    # How long a partial batch waits to fill: under load batches fill anyway; at low rates this is latency.
    batch_within_s: float = 0.02
    # Commands expire: a DENY gates one request or package version; a REVOKE holds until rotation.
    deny_ttl_s: int = 24 * 3600
    revoke_ttl_s: int = 7 * 24 * 3600
    # The REVOKE circuit breaker (nhiguard/decision/breaker.py): more revoked identities than these within the
    # window (event time), in total or of one identity kind (`*`: any kind not named), and further REVOKEs
    # are held for an operator to release. None: no limit; 0: every REVOKE waits for an operator.
    breaker_window_s: int = 3600
    breaker_max_revokes: int | None = 20
    breaker_max_revokes_per_kind: tuple[tuple[str, int], ...] = (("*", 10),)
    anomaly_warmup_events: int = 30
    # Alerts are grouped per identity and rule in event-time windows this long (nhiguard/decision/alerts.py).
    alert_window_s: int = 600
    # Identities (and packages) whose state is kept in memory; beyond it the least recently used are dropped
    # and read back from the state table when they act again. ~3.5 KB of memory each: at 100,000 a worker
    # deciding a million identities stays under 1 GB (make bench-scale).
    state_cache_identities: int = 100_000
    # How long the group waits for a silent worker before handing its partitions to another: the failover
    # time after a crash. (Faust's default is 60 s.)
    session_timeout_s: float = 20.0
    # regopy runs in this many child processes (crash isolation, and the Rego work on another core).
    engine_processes: int = max(1, (os.cpu_count() or 2) - 1)
    # An evaluation that takes longer fails the domain's way (policies/manifest.yaml: closed or open).
    engine_timeout_s: float = 10.0
    # A child past this resident size (MB) is replaced after its answer (regopy keeps memory per evaluated
    # event: nhiguard/policy/engines/pool.py); 0 lets it grow.
    engine_max_rss_mb: int = 512
    # The policy engine: "regopy" (child processes) or "opa-server" (an OPA server's REST API at opa_url,
    # loaded with this bundle by the worker).
    engine: str = "regopy"
    opa_url: str = "http://127.0.0.1:8181"
    # The OPA binary `nhiguard policy test --engine opa|both` runs (else `opa` on PATH); nhiguard ships none.
    opa_binary: Path | None = None
    # Where a running worker takes new policy bundles from: "dir" (policies_dir, checked every
    # policy_reload_s) or "topic" (the compacted topics.bundles, written by `nhiguard policy publish`).
    policy_source: str = "dir"
    # How often the worker looks for a changed policy bundle on disk (0: never; restart to change policies).
    policy_reload_s: float = 5.0
    data_dir: Path = field(default_factory=lambda: _default_cache_dir() / "worker")
    # The registry documents of installed versions and new dependencies (nhiguard/registry_config.py).
    registry_lookup: RegistryLookupSettings = field(default_factory=RegistryLookupSettings)
    # Signatures (nhiguard/signing.py, README "Signed commands"): the Ed25519 private key (PEM or JWK) that
    # signs commands and its key id (default: the JWK's kid, else its thumbprint); the JWKS trusted for
    # commands (release, verify) and for policy bundles from the topic. require_signing: refuse to run
    # without a signing key (and, following the bundles topic, without bundle keys).
    signing_key: Path | None = None
    signing_kid: str = ""
    command_keys: Path | None = None
    bundle_keys: Path | None = None
    require_signing: bool = False
    # How the clients connect (NHIGUARD_KAFKA_*), and how the topics nhiguard and Faust create are replicated
    # (NHIGUARD_REPLICATION_FACTOR; NHIGUARD_MIN_INSYNC_REPLICAS, None: the cluster's default).
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)
    replication_factor: int = 1
    min_insync_replicas: int | None = None
    # Event time (README "Event time"). Live, an event is decided on the time in its body only while that is
    # within max_time_skew_s of the time nhiguard received it (the input record's Kafka timestamp:
    # LogAppendTime on the input topics); beyond it, on the receive time, and the decision says so.
    max_time_skew_s: float = 900.0
    # A sandbox for history (NHIGUARD_SANDBOX, `--sandbox PREFIX`): every topic and the app id are put under
    # `PREFIX.`, so replayed or ingested records never reach the live topics (the enforcement topic above
    # all), and events are decided on their body time: history has no receive time worth checking.
    sandbox: str = ""
    # `nhiguard serve`: each webhook source's secret (a source without one is not served) and its deadlines.
    webhooks: WebhookSecrets = field(default_factory=WebhookSecrets)
    # `nhiguard serve`'s decision API: its bearer token (none: not served) and its deadline.
    api: ApiSettings = field(default_factory=ApiSettings)
    # Which source formats each input topic holds (NHIGUARD_TOPIC_FORMATS; none listed: any of its domain's).
    formats: TopicFormats = field(default_factory=TopicFormats)
    # `nhiguard serve`'s SSF/CAEP transmitter: its issuer URL (none: off) and its push receivers.
    ssf: SsfSettings = field(default_factory=SsfSettings)

    def __post_init__(self) -> None:
        if self.alert_window_s <= 0:
            raise SettingsError(f"NHIGUARD_ALERT_WINDOW_S: must be positive, got {self.alert_window_s}")
        if self.engine_max_rss_mb != 0 and self.engine_max_rss_mb < 64:  # below a fresh child: every query
            raise SettingsError(  # would replace it
                f"NHIGUARD_ENGINE_MAX_RSS_MB: 64 or more, or 0 for no bound, got {self.engine_max_rss_mb}"
            )
        if self.max_time_skew_s <= 0:
            raise SettingsError(f"NHIGUARD_MAX_TIME_SKEW_S: must be positive, got {self.max_time_skew_s}")
        if not self.sandbox:
            return
        if not _SANDBOX_NAME.fullmatch(self.sandbox):
            raise SettingsError(
                f"sandbox prefix {self.sandbox!r}: letters, digits, '.', '_' and '-' only, not ending in '.'"
            )
        # Structural rather than checked: a topic name given without the prefix gets it, so no setting can
        # point a sandboxed worker at a live topic. (Frozen: set once, here.)
        object.__setattr__(self, "topics", self.topics.under(self.sandbox))
        if not self.app_id.startswith(self.sandbox + "."):
            object.__setattr__(self, "app_id", f"{self.sandbox}.{self.app_id}")

    @property
    def body_time(self) -> bool:
        """Whether events are decided on their body time whatever it says (a sandbox: history)."""
        return bool(self.sandbox)


_ENV_TOPIC_PREFIX = "NHIGUARD_TOPIC_"
_SANDBOX_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?<!\.)")


def _limit(text: str) -> int | None:
    """A breaker limit: a count, or `none` / `off` / empty for no limit."""
    text = text.strip().lower()
    if text in ("", "none", "off"):
        return None
    if not text.isdigit():
        raise ValueError(f"not a limit (a count, or none): {text!r}")
    return int(text)


def _limits_per_kind(text: str) -> tuple[tuple[str, int], ...]:
    """`ci_bot=5,cms_integration=3,*=10` -> ((kind, limit), ...); a kind set to `none` is left out (so `*`
    applies to it)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        if not sep or not kind.strip():
            raise ValueError(f"NHIGUARD_BREAKER_MAX_REVOKES_PER_KIND: expected kind=limit, got {part!r}")
        limit = _limit(value)
        if limit is not None:
            out.append((kind.strip(), limit))
    return tuple(out)


def _optional_path(text: str) -> Path | None:
    return Path(text) if text.strip() else None  # an empty variable means "not configured", not "."


def _flag(text: str) -> bool:
    text = text.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"not a flag (1 or 0): {text!r}")


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from the environment (`KAFKA_BOOTSTRAP`, `NHIGUARD_*`) plus explicit overrides."""
    env = os.environ if env is None else env
    topic_kw = {
        f.name: env[_ENV_TOPIC_PREFIX + f.name.upper()]
        for f in fields(Topics)
        if _ENV_TOPIC_PREFIX + f.name.upper() in env
    }
    topics = Topics(**topic_kw)
    kw: dict[str, object] = {
        "topics": topics,
        "formats": load_topic_formats(env, {d: getattr(topics, d) for d in DOMAINS}),
        "registry_lookup": load_registry_lookup(env),
        "kafka": load_kafka_security(env),
        "webhooks": load_webhooks(env),
        "api": load_api(env),
        "ssf": load_ssf(env),
    }
    if "KAFKA_BOOTSTRAP" in env:
        kw["bootstrap"] = env["KAFKA_BOOTSTRAP"]
    simple = {
        "NHIGUARD_APP_ID": ("app_id", str),
        "NHIGUARD_POLICIES_DIR": ("policies_dir", Path),
        "NHIGUARD_SCHEMAS_DIR": ("schemas_dir", Path),
        "NHIGUARD_IDENTITIES_FILE": ("identities_file", Path),
        "NHIGUARD_CACHE_DIR": ("cache_dir", Path),
        "NHIGUARD_DATA_DIR": ("data_dir", Path),
        "NHIGUARD_MAX_RECORD_BYTES": ("max_record_bytes", int),
        "NHIGUARD_DEADLETTER_PREFIX_BYTES": ("deadletter_prefix_bytes", int),
        "NHIGUARD_MAX_INFLATED_BYTES": ("max_inflated_bytes", int),
        "NHIGUARD_BATCH_MAX": ("batch_max", int),
        "NHIGUARD_BATCH_WITHIN_S": ("batch_within_s", float),
        "NHIGUARD_INPUT_PARTITIONS": ("input_partitions", int),
        "NHIGUARD_STATE_CACHE": ("state_cache_identities", int),
        "NHIGUARD_ANOMALY_WARMUP_EVENTS": ("anomaly_warmup_events", int),
        "NHIGUARD_ALERT_WINDOW_S": ("alert_window_s", int),
        "NHIGUARD_SESSION_TIMEOUT_S": ("session_timeout_s", float),
        "NHIGUARD_ENGINE_PROCESSES": ("engine_processes", int),
        "NHIGUARD_ENGINE_TIMEOUT_S": ("engine_timeout_s", float),
        "NHIGUARD_ENGINE_MAX_RSS_MB": ("engine_max_rss_mb", int),
        "NHIGUARD_POLICY_RELOAD_S": ("policy_reload_s", float),
        "NHIGUARD_ENGINE": ("engine", str),
        "NHIGUARD_POLICY_SOURCE": ("policy_source", str),
        "NHIGUARD_OPA_URL": ("opa_url", str),
        "NHIGUARD_OPA_BINARY": ("opa_binary", Path),
        "NHIGUARD_BREAKER_WINDOW_S": ("breaker_window_s", int),
        "NHIGUARD_BREAKER_MAX_REVOKES": ("breaker_max_revokes", _limit),
        "NHIGUARD_BREAKER_MAX_REVOKES_PER_KIND": ("breaker_max_revokes_per_kind", _limits_per_kind),
        "NHIGUARD_SIGNING_KEY": ("signing_key", _optional_path),
        "NHIGUARD_SIGNING_KID": ("signing_kid", str),
        "NHIGUARD_COMMAND_KEYS": ("command_keys", _optional_path),
        "NHIGUARD_BUNDLE_KEYS": ("bundle_keys", _optional_path),
        "NHIGUARD_REQUIRE_SIGNING": ("require_signing", _flag),
        "NHIGUARD_REPLICATION_FACTOR": ("replication_factor", int),
        "NHIGUARD_MIN_INSYNC_REPLICAS": ("min_insync_replicas", int),
        "NHIGUARD_MAX_TIME_SKEW_S": ("max_time_skew_s", float),
        "NHIGUARD_SANDBOX": ("sandbox", str.strip),
    }
    for var, (name, conv) in simple.items():
        if var in env:
            kw[name] = conv(env[var])
    settings = Settings(**kw)  # type: ignore[arg-type]
    settings = replace(settings, **overrides) if overrides else settings
    if settings.max_inflated_bytes < 2 * settings.max_record_bytes:
        raise SettingsError(
            f"NHIGUARD_MAX_INFLATED_BYTES ({settings.max_inflated_bytes}) must be at least twice"
            f" NHIGUARD_MAX_RECORD_BYTES ({settings.max_record_bytes}): a batch holds a record and more"
        )
    if settings.max_output_bytes < 2 * settings.max_record_bytes:
        settings = replace(
            settings, max_output_bytes=2 * settings.max_record_bytes + settings.deadletter_prefix_bytes
        )
    return settings
