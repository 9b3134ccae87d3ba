"""The decision core must run without Faust or a Kafka client (replay, gate, tests)."""

import subprocess
import sys

CORE = [
    "nhiguard.decision.core",
    "nhiguard.policy.cases",
    "nhiguard.policy.engines",
    "nhiguard.avro",
    "nhiguard.models.anomaly",
    "nhiguard.settings",
    "nhiguard.streams.gate",  # a CI step: no Kafka client needed to decide offline
    "nhiguard.streams.gate_install",
]
FORBIDDEN = ["faust", "mode", "aiokafka", "confluent_kafka", "kafka"]


def test_core_imports_no_faust_or_kafka_client():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"bad = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"decision core imported {out.stdout.strip()}"
