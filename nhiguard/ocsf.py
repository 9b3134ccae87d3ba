"""Alerts as OCSF Detection Findings (class 2004, OCSF 1.8.0), for SIEMs and security lakes that read OCSF.

One finding per alert record, JSON, on its own topic (Topics.ocsf, keyed by alert id like the alerts topic):
a window that grows is sent again as an Update of the same finding (`finding_info.uid` = the alert id). What
goes where (README "For the SOC"):
- the event: `time` and `end_time` the latest event time of the window, `start_time` the earliest, `count`;
  `activity_id` 1 Create for a window's first event, 2 Update once it has more; `severity_id` from the
  policy's severity; `message` the alert's summary;
- the `security_control` profile (nhiguard is one): `action_id` / `disposition_id` from the verdict (DENY:
  Denied / Blocked, REVOKE: Denied / Access Revoked, HELD: Allowed / Delayed, ...), `is_alert`, `attacks`;
- `finding_info`: uid, title, the rule as `analytic` (its version: the policy bundle revision), ATT&CK
  (`T1234` a technique, `T1234.001` a sub-technique of T1234), first and last seen, the decisions it groups
  as `related_events` (the first 10, `related_events_count` all of them);
- `resources`: the identity (role Actor) and the resources its evidence names (role Target); `evidences`: the
  identity as a service account, the alert's evidence as `data`; `remediation`: the policy's runbook;
- `unmapped.nhiguard`: what OCSF has no place for (verdict, policy, rule, window, commands, late number).
Built from the alert alone, so the same alert gives the same finding; strings are redacted as in the Avro
records. tests/unit/test_ocsf.py validates findings against the OCSF schema (schemas/ocsf/).
"""

from __future__ import annotations

import json
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from nhiguard.decision.records import Alert
from nhiguard.decision.redact import redact, redact_tree

OCSF_VERSION = "1.8.0"
CLASS_UID, CATEGORY_UID = 2004, 2
SEVERITY = {"informational": 1, "info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5, "fatal": 6}
SEVERITY_NAME = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
# verdict -> (action_id, action, disposition_id, disposition)
ACTION = {
    "DENY": (2, "Denied", 2, "Blocked"),
    "REVOKE": (2, "Denied", 24, "Access Revoked"),
    "HELD": (1, "Allowed", 14, "Delayed"),  # a REVOKE waiting for an operator
    "ALLOW": (3, "Observed", 19, "Alert"),  # an alert-only finding
    "SHADOW": (3, "Observed", 17, "Logged"),  # a rule in shadow mode: what it would have done, recorded
    "WAIVED": (1, "Allowed", 8, "Approved"),  # an exception in force
    "REFUSED": (2, "Denied", 25, "Rejected"),  # a policy bundle refused
}
_ATTACK = re.compile(r"(T\d{4})(\.\d{3})?\s*(.*)")


def _product() -> dict[str, str]:
    try:
        v = version("nhiguard")
    except PackageNotFoundError:  # run from a checkout without installing
        v = "0"
    return {"name": "nhiguard", "vendor_name": "nhiguard", "version": v}


PRODUCT = _product()


def _attacks(mapping: tuple[str, ...]) -> list[dict[str, Any]]:
    """ATT&CK ids from the policy's mapping ("T1078.004 Valid Accounts: Cloud Accounts"); other schemes
    stay in unmapped."""
    out = []
    for entry in mapping:
        m = _ATTACK.match(entry)
        if m is None:
            continue
        technique, sub, name = m.groups()
        if sub:
            out.append(
                {"technique": {"uid": technique}, "sub_technique": {"uid": technique + sub, "name": name}}
            )
        else:
            out.append({"technique": {"uid": technique, "name": name}})
    return out


def _resources(a: Alert, evidence: dict[str, list[str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"uid": a.identity, "name": a.identity, "type": "non-human identity", "role_id": 2, "role": "Actor"}
    ]
    for r in evidence.get("resource", []):
        kind, _, uid = r.partition(":")  # "<resource type>:<resource id>" (decision/evidence.py)
        named = {"uid": uid, "type": kind} if uid else {"uid": r}
        out.append(named | {"role_id": 1, "role": "Target"})
    return out


def detection_finding(a: Alert) -> dict[str, Any]:
    """The OCSF Detection Finding of one alert record."""
    activity = 1 if a.count <= 1 else 2
    severity_id = SEVERITY.get(a.severity.lower(), 99)
    action_id, action, disposition_id, disposition = ACTION.get(a.verdict, (99, a.verdict, 99, a.verdict))
    evidence = redact_tree(a.evidence)
    summary = redact(a.summary)
    attacks = _attacks(a.attack)
    info: dict[str, Any] = {
        "uid": a.alert_id,
        "title": a.title or a.rule,
        "desc": summary,
        "types": [a.policy],
        "analytic": {
            "uid": a.rule,
            "name": a.rule,
            "type_id": 1,
            "type": "Rule",
            "version": a.bundle_revision,
        },
        "first_seen_time": a.first_seen_ms,
        "last_seen_time": a.last_seen_ms,
        "created_time": a.first_seen_ms,
        "modified_time": a.last_seen_ms,
        "related_events": [{"uid": d, "type": "nhiguard.Decision"} for d in a.decision_ids],
        "related_events_count": a.count,
    }
    if attacks:
        info["attacks"] = attacks
    finding: dict[str, Any] = {
        "activity_id": activity,
        "activity_name": "Create" if activity == 1 else "Update",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity,
        "type_name": f"Detection Finding: {'Create' if activity == 1 else 'Update'}",
        "severity_id": severity_id,
        "severity": SEVERITY_NAME.get(severity_id, a.severity),
        "time": a.last_seen_ms,
        "start_time": a.first_seen_ms,
        "end_time": a.last_seen_ms,
        "timezone_offset": 0,
        "count": a.count,
        "message": summary,
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "profiles": ["security_control"],
            "uid": f"{a.alert_id}-{a.count}",  # this version of the finding
            "correlation_uid": a.alert_id,
        },
        "finding_info": info,
        "is_alert": a.verdict not in ("SHADOW", "WAIVED"),
        "action_id": action_id,
        "action": action,
        "disposition_id": disposition_id,
        "disposition": disposition,
        "resources": _resources(a, evidence),
        "evidences": [
            {
                "actor": {"user": {"uid": a.identity, "name": a.identity, "type_id": 4, "type": "Service"}},
                "data": evidence,
            }
        ],
        "unmapped": {
            "nhiguard": {
                "verdict": a.verdict,
                "policy": a.policy,
                "rule": a.rule,
                "severity": a.severity,
                "attack": list(a.attack),
                "window_start": a.window_start_ms,
                "window_end": a.window_end_ms,
                "late": a.late,
                "first_event_id": a.first_event_id,
                "last_event_id": a.last_event_id,
                "decision_ids": list(a.decision_ids),
                "command_ids": list(a.command_ids),
                "command_ids_total": a.command_ids_total,
                "bundle_revision": a.bundle_revision,
            }
        },
    }
    if attacks:
        finding["attacks"] = attacks  # the security_control profile's, duplicated into finding_info
    if a.runbook:
        finding["remediation"] = {"desc": f"Runbook for {a.rule}", "references": [a.runbook]}
    return finding


def encode(a: Alert) -> bytes:
    """The finding as the OCSF topic carries it: compact JSON, UTF-8."""
    return json.dumps(detection_finding(a), separators=(",", ":"), ensure_ascii=False).encode()
