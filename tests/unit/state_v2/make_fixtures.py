"""How tables.json beside this file was made (kept as a record: it runs only at a commit that writes identity
values in format 2, such as 5172422).

    mkdir /tmp/v2 && git archive 5172422 | tar -x -C /tmp/v2
    PYTHONPATH=/tmp/v2 python tests/unit/state_v2/make_fixtures.py tests/unit/state_v2

The demo stream of tests/unit/test_state.py (600 ordinary records, one source partition per topic, by-identity
positions 0, 1, ...) through that commit's stateful stage, in batches of 100, up to position APPLIED_UP_TO:
every identity value and package copy its tables then held, base64, as written (format 2 identity values:
applied position and the hashes of the last 64 source records).
"""

import base64
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from nhiguard.decision.context import Inventory
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.records import RawRecord
from nhiguard.policy.bundle import load_bundle
from nhiguard.settings import load_settings
from nhiguard.streams.state import StatefulStage, TableStore
from tools import REPO_ROOT
from tools.scenarios import default_params, generate, inventory

APPLIED_UP_TO = 300


class Event:
    class message:
        partition = 0


def main(out: Path) -> None:
    params = default_params()
    offsets: Counter[str] = Counter()
    raws = []
    for i, r in enumerate(generate(params, ordinary=600)):
        raws.append(RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms))
        raws[-1] = replace(raws[-1], position=i)
        offsets[r.topic] += 1
    identities: dict[bytes, bytes] = {}
    packages: dict[bytes, bytes] = {}
    store = TableStore(identities, packages, partitions=1)
    settings = load_settings(env={})
    inv = Inventory.load_dict(inventory(params))
    stage = StatefulStage(
        DecisionCore(settings, load_bundle(REPO_ROOT / "policies"), inv, store=store), store
    )
    for i in range(0, APPLIED_UP_TO, 100):
        store.stage(stage.process(raws[i : i + 100]), {}, Event())
        store.write(*store.take_pending())
    assert all(v[0] == 2 for v in identities.values())
    doc = {
        "applied_up_to": APPLIED_UP_TO - 1,
        "identities": {k.decode(): base64.b64encode(v).decode() for k, v in sorted(identities.items())},
        "packages": {k.decode(): base64.b64encode(v).decode() for k, v in sorted(packages.items())},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(len(identities), "identities,", len(packages), "packages")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
