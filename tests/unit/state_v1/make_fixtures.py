"""How the format-1 state values beside this file were made (kept as a record: it runs only at the commit that
wrote format 1, e698fe5, whose DecisionCore wrote table values itself).

    git worktree add /tmp/v1 e698fe5 && cd /tmp/v1 && python tests/unit/state_v1/make_fixtures.py OUT_DIR

The demo stream (the digest's), in batches of 500 with by-identity positions, through a core backed by a
dict store; then a few values that cover every field: identities with a behavioural model, exposure times,
revocations in force, an applied position and recent source-record hashes; packages with a last release, a
first-publish time, denied versions and installers. Each `.bin` is a table value exactly as written; each
`.json` is what that commit's own decoder read from it.
"""

import hashlib
import json
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

from nhiguard.decision.context import Inventory, PackageFacts, decode_identity_state
from nhiguard.decision.core import DecisionCore
from nhiguard.decision.policy import load_bundle
from nhiguard.decision.records import RawRecord
from nhiguard.scenarios import default_params, generate, inventory
from nhiguard.settings import REPO_ROOT, load_settings


class DictStore:
    def __init__(self) -> None:
        self.identities: dict[str, bytes] = {}
        self.packages: dict[str, bytes] = {}

    def identity(self, identity_id):
        return self.identities.get(identity_id)

    def package(self, name):
        return [self.packages[name]] if name in self.packages else []


def main(out: Path) -> None:
    params = default_params()
    offsets: Counter[str] = Counter()
    raws = []
    for i, r in enumerate(generate(params, ordinary=1000)):
        raw = RawRecord(r.topic, 0, offsets[r.topic], r.value, r.key, r.headers, r.timestamp_ms)
        raws.append(replace(raw, position=i))
        offsets[r.topic] += 1
    store = DictStore()
    core = DecisionCore(
        load_settings(env={}),
        load_bundle(REPO_ROOT / "policies"),
        Inventory.load_dict(inventory(params)),
        store=store,
    )
    for i in range(0, len(raws), 500):
        res = core.process(raws[i : i + 500])
        store.identities.update(res.identity_state)
        store.packages.update(res.package_state)

    def facts_of(blob):
        facts, model = decode_identity_state(blob)
        return facts.to_json(), model

    picked = {}
    for ident, blob in sorted(store.identities.items()):
        facts, model = facts_of(blob)
        if facts["x"] and facts["r"] and model and "cms" not in picked:
            picked["cms"] = ident
        elif facts["r"] and not facts["x"] and model and "revoker" not in picked:
            picked["revoker"] = ident
        elif not facts["r"] and not facts["x"] and model and facts["n"] >= 30 and "warm" not in picked:
            picked["warm"] = ident
    out.mkdir(parents=True, exist_ok=True)
    for name, ident in picked.items():
        blob = store.identities[ident]
        facts, model = facts_of(blob)
        (out / f"identity-{name}.bin").write_bytes(blob)
        doc = {"identity": ident, "facts": facts, "model_sha256": hashlib.sha256(model).hexdigest()}
        (out / f"identity-{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    chosen = {}
    for name, blob in sorted(store.packages.items()):
        facts = PackageFacts.from_json(json.loads(blob)).to_json()
        if facts["d"] and facts["i"] and "denied" not in chosen:
            chosen["denied"] = name
        elif facts["r"] and "released" not in chosen:
            chosen["released"] = name
    for label, name in chosen.items():
        blob = store.packages[name]
        (out / f"package-{label}.bin").write_bytes(blob)
        doc = {"package": name, "facts": PackageFacts.from_json(json.loads(blob)).to_json()}
        (out / f"package-{label}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(picked, chosen)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
