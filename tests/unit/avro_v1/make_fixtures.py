"""How the records beside this file were made (kept as a record: it runs at the commit whose schemas are the
v1 ones, 25ff16e, before the outputs carried evidence and command status).

    git worktree add /tmp/v1 25ff16e && cd /tmp/v1
    PYTHONPATH=. python tests/unit/avro_v1/make_fixtures.py OUT_DIR

The demo stream through the decision core; the first decision with findings and a command, its first
command, and the first alert, each encoded with that commit's schemas (`<Name>.bin`, single-object encoding)
and as that commit's own codec decoded it (`<Name>.json`). The v1 schemas themselves are kept, expanded, as
schemas/nhiguard.<Name>.v1.avsc.
"""

import json
import sys
from collections import Counter
from pathlib import Path

from nhiguard.avro import AvroCodec, alert_record, command_record, decision_record
from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory


def main(out: Path) -> None:
    params = default_params()
    offsets: Counter[str] = Counter()
    raws = []
    for r in generate(params, ordinary=1000):
        raws.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        offsets[r.topic] += 1
    settings = load_settings(env={})
    core = DecisionCore(settings, load_bundle(REPO_ROOT / "policies"), Inventory.load_dict(inventory(params)))
    res = core.process(raws)
    codec = AvroCodec(REPO_ROOT / "schemas")
    decision = next(d for d in res.decisions if d.findings and d.commands)
    records = {
        "Decision": decision_record(decision, 1_774_900_000_000),
        "EnforcementCommand": command_record(decision.commands[0]),
        "Alert": alert_record(res.alerts[0]),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, rec in records.items():
        data = codec.encode(name, rec)
        (out / f"{name}.bin").write_bytes(data)
        back = codec.decode(data)
        (out / f"{name}.json").write_text(json.dumps(back, indent=1, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
