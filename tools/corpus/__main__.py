"""Write a labelled corpus: DIR/stream.ndjson (a replay file, labels outside the record bodies) and
DIR/identities.yaml.

python -m tools.corpus --seed N --out DIR [--days 14] [--orgs 3]
"""

from __future__ import annotations

import argparse
from collections import Counter

from tools.corpus.generate import write_corpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.corpus", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, help="draws every name, size, time, rate and count")
    ap.add_argument("--out", required=True, help="directory to write stream.ndjson and identities.yaml to")
    ap.add_argument("--days", type=int, default=14, help="length of the window (default 14)")
    ap.add_argument("--orgs", type=int, default=3, help="number of organisations (default 3)")
    args = ap.parse_args(argv)
    stream, identities, records = write_corpus(args.seed, args.out, args.days, args.orgs)
    counts = Counter(r.label for r in records)
    print(
        f"wrote {len(records)} records ({stream.stat().st_size:,} bytes) to {stream}, inventory {identities}"
    )
    for lab, n in sorted(counts.items()):
        print(f"  {lab:<48} {n:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
