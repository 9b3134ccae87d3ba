"""Shared by the parity tests: a record stream decided by the core with a given engine, every output encoded
as the worker publishes it (Avro), in order, so that two runs can be compared byte for byte."""

from __future__ import annotations

from collections import Counter

from nhiguard.avro import AvroCodec, alert_record, command_record, deadletter_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import PolicyBundle
from nhiguard.policy.engines import Evaluator
from nhiguard.settings import load_settings


def encoded_outputs(records: list, inv: Inventory, bundle: PolicyBundle, engine: Evaluator) -> list[bytes]:
    settings = load_settings(env={})
    core = DecisionCore(settings, bundle, inv, evaluator=engine)
    codec = AvroCodec(settings.schemas_dir)
    offsets: Counter[str] = Counter()
    raws = []
    for r in records:
        raws.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, tuple(r.headers), r.timestamp_ms))
        offsets[r.topic] += 1
    out = []
    for i in range(0, len(raws), 500):
        res = core.process(raws[i : i + 500])
        out += [codec.encode("Decision", decision_record(d, 0)) for d in res.decisions]
        out += [codec.encode("EnforcementCommand", command_record(c)) for c in res.commands]
        out += [codec.encode("Alert", alert_record(a)) for a in res.alerts]
        out += [codec.encode("DeadLetter", deadletter_record(x)) for x in res.deadletters]
    return out
