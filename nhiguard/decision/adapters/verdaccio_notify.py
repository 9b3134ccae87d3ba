"""Verdaccio publish notifications (audit.registry, through `nhiguard serve`'s /webhooks/verdaccio). See
docs/sources.md.

Verdaccio's `notify` POSTs what its Handlebars template renders; the template nhiguard documents (and
tools/verdaccio.py configures) renders `{"event": "{{publishType}}", "name": "{{name}}", "package":
"{{publishedPackage}}", "user": "{{publisher.name}}"}`: who published (or unpublished) which version, and
nothing of the tarball. Verdaccio keeps no publisher in its package documents, so this is where nhiguard
learns who published each version. The rest of a publish (dependencies, install scripts, earlier releases) is
the package document's: the fetch step (nhiguard/lookup.py) completes the facts from it (`completed`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nhiguard.decision.adapters.common import need
from nhiguard.decision.adapters.npm import document_publish
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.records import Actor, AdapterError, CanonicalEvent, RawRecord
from nhiguard.decision.registry_facts import Publish, Publisher

SOURCE = "verdaccio.notify"
NOTIFICATION = Recogniser(keys=("event", "name", "package", "user"))


def _text(body: dict[str, Any], key: str) -> str:
    value = need(body, key)
    if not isinstance(value, str):
        raise AdapterError("unknown_shape", f"{key} is not a string")
    return value


@source(SOURCE, domains=("registry",), recognise=NOTIFICATION)
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    event, name, package, user = (_text(body, k) for k in ("event", "name", "package", "user"))
    if event not in ("publish", "unpublish"):
        raise AdapterError("unknown_shape", f"Verdaccio notification event {event[:40]!r}: not one it sends")
    if not name:
        raise AdapterError("unknown_shape", "a Verdaccio notification without a package name")
    if not user:
        # An anonymous publish (a registry that lets $all publish) renders publisher.name empty.
        raise AdapterError("missing_identity", "Verdaccio notification with an empty user: nobody logged in")
    # `package` is the name (a whole package unpublished) or `<name>@<version>`.
    version = package.removeprefix(name + "@") if package.startswith(name + "@") else ""
    if package != name and not version:
        raise AdapterError("unknown_shape", f"package {package[:120]!r} is not {name[:120]!r}@<version>")
    if event == "publish" and not version:
        raise AdapterError("unknown_shape", "a publish notification names no version")
    subject = f"{name}@{version}" if version else name
    publish = None
    if event == "publish":
        # Who and which version only; what the version holds and changes comes from its document.
        publish = Publish(
            package=name,
            version=version,
            publisher=Publisher(name=user, email="", mechanism="token", provenance=False),
            previous=None,
            dependencies=(),
            added_dependencies=(),
            install_scripts=(),
            added_install_scripts=(),
            package_created_ms=0,
            history_known=False,
            notified=True,
        )
    return CanonicalEvent(
        event_id=f"verdaccio-notify:{subject}:{event}",
        source=SOURCE,
        domain="registry",
        action=f"registry.package.{event}",
        # The notification carries no time: the time nhiguard received it (the input record's timestamp).
        occurred_at_ms=rec.timestamp_ms,
        # The same identity as the account's log lines (verdaccio.log).
        actor=Actor(id=f"verdaccio:{user}", display=user, human=False, source_principal=user),
        resource_type="npm.package_version" if version else "npm.package",
        resource_id=subject,
        facts=publish,
    )


def wants_document(facts: Any) -> bool:
    """Whether these are a notified publish's facts that its package document has not completed yet."""
    return isinstance(facts, Publish) and facts.notified and not facts.history_known


def completed(facts: Publish, doc: Any) -> Publish:
    """A notified publish completed from its package's document (as the registry answers `GET /<name>`):
    dependencies, install scripts and earlier releases, the publisher the notification named. Unchanged when
    the document did not come or does not have the version (nothing is then judged as added)."""
    if not isinstance(doc, dict):
        return facts
    try:
        found = document_publish(facts.package, facts.version, doc, facts.publisher)
    except (AdapterError, AttributeError, TypeError, ValueError):
        return facts  # a document we cannot read says nothing
    return replace(found, notified=True)
