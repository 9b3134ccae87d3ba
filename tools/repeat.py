"""Run the same tests N times against one local broker and print how often each passed.

python -m tools.repeat -n 30 -k test_sigkill_     (make sigkill-repeat N=30)

For failures that show up in one run of many (a race at a restart): each round is its own pytest process, so
nothing is shared between rounds but the broker, and every test uses its own topics and consumer group.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from tools import REPO_ROOT
from tools.broker import LocalBroker, default_cache_dir


def _results(junit: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        out[case.get("name", "?")] = "failed" if failed else "skipped" if skipped else "passed"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.repeat", description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="rounds")
    ap.add_argument("-k", required=True, help="pytest -k expression selecting the tests")
    ap.add_argument("paths", nargs="*", default=["tests/integration"])
    ap.add_argument(
        "--keep", default=str(REPO_ROOT / ".cache" / "repeat"), help="where failed rounds are kept"
    )
    args = ap.parse_args(argv)
    passed: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    healed = 0  # rounds where a checkpoint found records fetched and never processed, and re-read them
    with tempfile.TemporaryDirectory() as tmp, LocalBroker(default_cache_dir()) as broker:
        env = os.environ | {"KAFKA_BOOTSTRAP": broker.bootstrap}
        for i in range(1, args.n + 1):
            junit = Path(tmp) / f"round-{i}.xml"
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", args.k]
            cmd += [f"--junitxml={junit}", f"--basetemp={tmp}/round-{i}", *args.paths]
            log = Path(tmp) / f"round-{i}.log"
            with log.open("wb") as out:
                subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            results = _results(junit) if junit.exists() else {}
            logs = (Path(tmp) / f"round-{i}").rglob("worker-*.log")
            healed += any(b"reading them again" in p.read_bytes() for p in logs)
            if not results or "failed" in results.values():
                # Keep what a failure left (pytest's output, the workers' logs) for whoever looks into it.
                keep = Path(args.keep) / f"round-{i}"
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(Path(tmp) / f"round-{i}", keep, dirs_exist_ok=True)
                shutil.copy(log, keep / "pytest.log")
                print(f"round {i}: kept in {keep}", flush=True)
            if not results:
                print(f"round {i}: no test ran", flush=True)
            for name, outcome in results.items():
                runs[name] += 1
                passed[name] += outcome == "passed"
            summary = ", ".join(f"{n} {o}" for n, o in sorted(results.items()))
            print(f"round {i}/{args.n}: {summary}", flush=True)
    print()
    print(f"rounds where a checkpoint re-read records it had fetched and not processed: {healed}")
    for name in sorted(runs):
        print(f"{name}: {passed[name]} of {runs[name]} passed")
    ok = bool(runs) and all(passed[n] == runs[n] for n in runs) and all(v == args.n for v in runs.values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
