"""A source nhiguard does not ship, registered through the adapter registry in the process that imports this
module: what an operator's fix looks like to `nhiguard deadletters redrive` (test_replay_kafka.py)."""

from typing import Any

from nhiguard.decision.adapters.common import body_hash, iso_ms
from nhiguard.decision.adapters.registry import Recogniser, source
from nhiguard.decision.records import Actor, CanonicalEvent, RawRecord

SOURCE = "tiny.deployer"


@source(SOURCE, domains=("ci",), recognise=Recogniser(keys=("tiny_deploy", "who")))
def adapt(rec: RawRecord, body: Any) -> CanonicalEvent:
    who = str(body["who"])
    return CanonicalEvent(
        event_id=f"tiny:{body_hash(rec.value)}",
        source=SOURCE,
        domain="ci",
        action="ci.tiny.deploy",
        occurred_at_ms=iso_ms(body.get("at"), rec.timestamp_ms),
        actor=Actor(id=f"tiny:{who}", display=who, human=False, source_principal=who),
        resource_type="ci.deployment",
        resource_id=str(body["tiny_deploy"]),
    )
