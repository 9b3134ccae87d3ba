"""Hot reload of the policy bundle: a changed policies/ directory becomes active without a restart.

A new revision is proven in a throwaway process (compiled, queried, every case run) and served by a fresh
engine pool; the swap happens between batches, in the same process, so there is no consumer-group
rebalance. A bundle that is refused leaves the active one in place and raises an alert on soc.alerts.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import Alert, BatchResult, stable_id
from nhiguard.policy.bundle import load_bundle
from nhiguard.policy.engines import make_evaluator
from nhiguard.policy.engines.pool import trial_run
from nhiguard.settings import Settings
from nhiguard.streams.sink import OutputSink

log = logging.getLogger("nhiguard.reload")


class BundleReloader:
    def __init__(self, core: DecisionCore, settings: Settings, sink: OutputSink) -> None:
        self.core = core
        self.settings = settings
        self.sink = sink
        self._refused: dict[str, str] = {}  # revision -> reason, so a bad bundle is reported once

    def check(self) -> str | None:
        """Activate the bundle in policies_dir if it changed and passes its trial."""
        return self.activate(self.settings.policies_dir)

    def activate(self, root: Path) -> str | None:
        """Activate the bundle at root if it differs from the active one and passes its trial; returns the
        active revision. Thread-safe: the swap waits for the batch in progress."""
        try:
            revision = load_bundle(root).revision
        except Exception as exc:  # a typo while editing policies must never stop the worker
            self.refuse(f"unreadable:{exc}", f"{type(exc).__name__}: {exc}")
            return self.core.bundle.revision
        if revision == self.core.bundle.revision or revision in self._refused:
            return self.core.bundle.revision
        try:
            bundle = trial_run(root)
            pool = make_evaluator(self.settings, bundle)
        except Exception as exc:
            self.refuse(revision, f"{type(exc).__name__}: {exc}")
            return self.core.bundle.revision
        old_revision = self.core.bundle.revision
        previous = self.core.load_bundle(bundle, pool)
        if hasattr(previous, "close"):
            previous.close()
        log.warning("policy bundle %s active (was %s)", bundle.revision, old_revision)
        return bundle.revision

    def refuse(self, revision: str, reason: str) -> None:
        """Keep the active bundle, log why the other one is refused and alert the SOC (once per revision)."""
        if revision in self._refused:
            return
        self._refused[revision] = reason
        log.error(
            "policy bundle %s refused, %s stays active: %s", revision, self.core.bundle.revision, reason
        )
        now = int(time.time() * 1000)
        alert = Alert(
            alert_id=stable_id("bundle-refused", revision),
            identity="nhiguard",
            policy="bundle",
            rule="bundle.refused",
            severity="high",
            verdict="REFUSED",
            count=1,
            first_event_id=revision,
            last_event_id=revision,
            first_seen_ms=now,
            last_seen_ms=now,
            summary=f"policy bundle {revision} refused; {self.core.bundle.revision} stays active: {reason}"[
                :2000
            ],
            bundle_revision=self.core.bundle.revision,
        )
        self.sink.enqueue(BatchResult(alerts=[alert]))
