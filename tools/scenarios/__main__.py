"""Write a scenario replay file (and its identity inventory).

python -m tools.scenarios --out scenario.ndjson [--inventory identities.yaml] [--variant SEED]
"""

from __future__ import annotations

import argparse
from collections import Counter

from tools.scenarios import default_params, generate, variant_params, write_inventory, write_ndjson


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.scenarios", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="replay file to write (NDJSON)")
    ap.add_argument("--inventory", help="also write the identity inventory (YAML) here")
    ap.add_argument(
        "--variant", type=int, metavar="SEED", help="renamed variant instead of the default names"
    )
    ap.add_argument("--ordinary", type=int, default=1000, help="minimum number of ordinary records")
    args = ap.parse_args(argv)
    params = default_params() if args.variant is None else variant_params(args.variant)
    records = generate(params, ordinary=args.ordinary)
    write_ndjson(records, args.out)
    if args.inventory:
        write_inventory(params, args.inventory)
    counts = dict(sorted(Counter(r.label for r in records).items()))
    print(f"wrote {len(records)} records to {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
