"""npm publish gate requests (audit.ci): a CI step asks before `npm publish`. See docs/sources.md."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import get, iso_ms, long_field, need, text
from nhiguard.decision.adapters.github import workflow_actor
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.facts import PackedFile, ReleaseOrigin, ReleaseRequest
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

GATE_SOURCE = "npm.publish_gate"


def _origin(gh: dict[str, Any], repo: str, wref: str) -> ReleaseOrigin:
    """Where the job runs, from its `github` context (the names GitHub Actions gives them)."""
    # workflow_ref is "<owner>/<repo>/<path>@<ref>": the path without the ref names the workflow.
    path, _, wref_ref = wref.partition("@")
    head = get(gh, "event", "pull_request", "head", "repo", default={})
    return ReleaseOrigin(
        event_name=text(gh, "event_name"),
        ref=text(gh, "ref") or wref_ref,
        repository=repo,
        workflow=path.removeprefix(repo + "/"),
        head_ref=text(gh, "head_ref"),
        base_ref=text(gh, "base_ref"),
        head_repository=text(head, "full_name"),
        fork=get(head, "fork") is True,
    )


def _packed_files(pack: dict[str, Any]) -> tuple[PackedFile, ...]:
    files = pack.get("files") or []
    if not isinstance(files, list):
        raise AdapterError("unknown_shape", "pack.files is not a list")
    return tuple(
        PackedFile(str(f.get("path", "")), long_field(f.get("size"), "pack.files.size"))
        for f in files
        if isinstance(f, dict)
    )


@source(GATE_SOURCE, domains=("ci",), recognise=Recogniser(values=(("gate", "npm-publish"),)))
def adapt_gate(rec: RawRecord, body: Any) -> CanonicalEvent:
    request_id = str(need(body, "request_id"))
    gh = need(body, "github", reason="missing_identity")
    repo = str(need(gh, "repository", reason="missing_identity"))
    origin = _origin(gh, repo, str(need(gh, "workflow_ref", reason="missing_identity")))
    pack = need(body, "pack")
    release = ReleaseRequest(
        package=str(need(pack, "name")),
        version=str(need(pack, "version")),
        registry=str(body.get("registry") or "https://registry.npmjs.org/"),
        access=str(body.get("access") or "public"),
        tag=str(body.get("tag") or "latest"),
        size=long_field(pack.get("size"), "pack.size"),
        unpacked_size=long_field(pack.get("unpackedSize"), "pack.unpackedSize"),
        files=_packed_files(pack),
        request_id=request_id,
        origin=origin,
    )
    return CanonicalEvent(
        event_id=f"gate:{request_id}",
        source=GATE_SOURCE,
        domain="ci",
        action="ci.release.publish_request",
        occurred_at_ms=iso_ms(body.get("requested_at"), rec.timestamp_ms),
        actor=workflow_actor(repo, origin.workflow),
        resource_type="npm.package",
        resource_id=f"{release.package}@{release.version}",
        facts=release,
    )
