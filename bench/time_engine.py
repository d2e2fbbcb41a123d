"""Time-engine fuzz benchmark: the hypothesis property tests of the cron/DST engine against the
brute-force reference evaluator, with at least 100,000 generated (cron, zone, instant) cases.

    python -m bench.time_engine              # 100,000 cases (about 50,000 per property)
    python -m bench.time_engine --cases 20000

CI runs the same tests with 300 examples each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import ROOT, print_table

PROPERTIES = [
    "tests/unit/test_cron_properties.py::test_it_matches_the_reference_for_random_cases",
    "tests/unit/test_cron_properties.py::test_it_computes_the_true_minimum_gap_like_the_reference",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    per_test = -(-args.cases // len(PROPERTIES))
    env = {**os.environ, "EXTSCHED_HYPOTHESIS_EXAMPLES": str(per_test)}
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            str(args.workers),
            *PROPERTIES,
        ],
        cwd=ROOT,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - start
    result = {
        "cases": per_test * len(PROPERTIES),
        "properties": len(PROPERTIES),
        "passed": proc.returncode == 0,
        "seconds": elapsed,
        "cases_per_s": per_test * len(PROPERTIES) / elapsed,
    }
    print_table("time engine vs brute-force reference (hypothesis)", list(result.items()))
    print(json.dumps(result))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
