"""AWS CloudTrail events (audit.runtime): one event per record, as EventBridge, CloudWatch Logs or a Firehose
stream deliver them, and a CloudTrail log file's body (`{"Records": [...]}`) that holds exactly one. See
docs/sources.md."""

from __future__ import annotations

from typing import Any

from nhiguard.decision.adapters.common import body_hash, utc_ms
from nhiguard.decision.adapters.principals import aws_actor, text
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.cluster_facts import CloudCall
from nhiguard.decision.records import AdapterError, CanonicalEvent, RawRecord

SOURCE = "aws.cloudtrail"
FILE_SOURCE = "aws.cloudtrail.file"
CONSOLE_AGENTS = ("signin.amazonaws.com", "console.amazonaws.com")


def from_console(body: dict[str, Any]) -> bool:
    """A call made from a console session, or a console sign-in: a person at the console."""
    return (
        body.get("sessionCredentialFromConsole") in (True, "true")
        or text(body, "eventType") == "AwsConsoleSignIn"
        or text(body, "userAgent") in CONSOLE_AGENTS
    )


def cloudtrail_event(rec: RawRecord, body: dict[str, Any], source_name: str) -> CanonicalEvent:
    """One CloudTrail event. The identity is the long-lived principal: an assumed role's role (its session
    issuer), not the session; an IAM user, whose access key is the credential; AWS itself for a service's
    call; the root user and console sessions are people."""
    event_source, event_name = text(body, "eventSource"), text(body, "eventName")
    if not event_source or not event_name:
        raise AdapterError("unknown_shape", "missing field eventSource or eventName")
    actor, session = aws_actor(body.get("userIdentity"), from_console(body), text(body, "recipientAccountId"))
    resources = body.get("resources")
    first = resources[0] if isinstance(resources, list) and resources else None
    region = text(body, "awsRegion")
    prefix = event_source.split(".", 1)[0]
    facts = CloudCall(
        provider="aws",
        service=event_source,
        operation=event_name,
        region=region,
        account=text(body, "recipientAccountId") or text(body, "userIdentity", "accountId"),
        credential=text(body, "userIdentity", "accessKeyId"),
        session=session,
        read_only=body.get("readOnly") in (True, "true"),
        error=text(body, "errorCode"),
        client_address=text(body, "sourceIPAddress"),
        user_agent=text(body, "userAgent"),
    )
    event_id = text(body, "eventID")
    return CanonicalEvent(
        event_id=f"aws:{event_id}" if event_id else f"aws:{body_hash(rec.value)}",
        source=source_name,
        domain="runtime",
        action=f"runtime.aws.{prefix}.{event_name}",
        occurred_at_ms=utc_ms(body.get("eventTime"), rec.timestamp_ms),
        actor=actor,
        resource_type=f"aws.{prefix}",
        # What it acted on when CloudTrail names it (resources[].ARN), else the service in its region.
        resource_id=text(first, "ARN") or f"{event_source}/{region or '-'}",
        facts=facts,
    )


@source(SOURCE, domains=("runtime",), recognise=Recogniser(keys=("eventSource", "eventName")))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    return cloudtrail_event(rec, body, SOURCE)


def records_of(body: dict[str, Any]) -> list[Any]:
    """The events of a CloudTrail log file's body, in order (for a reader that splits files into records)."""
    records = body.get("Records")
    if not isinstance(records, list):
        raise AdapterError("unknown_shape", "Records is not a list")
    return records


@source(FILE_SOURCE, domains=("runtime",), recognise=Recogniser(keys=("Records",)))
def adapt_file(rec: RawRecord, body: Any) -> CanonicalEvent:
    """A log file's body holding one event is that event. One holding several is dead-lettered whole: a record
    is decided once, and the worker keeps state per source record (an identity's second event of the same
    record would be taken for a redelivery of the first), so the shipper splits files into one record per
    event (records_of)."""
    records = records_of(body)
    if not records:
        raise AdapterError("unknown_shape", "CloudTrail Records is empty: no event to decide")
    if len(records) > 1:
        raise AdapterError(
            "multi_record",
            f"CloudTrail Records holds {len(records)} events; ship each event as its own record",
        )
    if not isinstance(records[0], dict):
        raise AdapterError("unknown_shape", "Records[0] is not an object")
    return cloudtrail_event(rec, records[0], FILE_SOURCE)
