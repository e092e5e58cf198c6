"""``python -m bench``: every benchmark in turn, each printing its figures and ratios."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "bench.dispatch",
    "bench.scaleout",
    "bench.inbound",
    "bench.registration",
    "bench.dlr",
    "bench.import",
]


def main() -> int:
    failed = 0
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        failed += subprocess.run([sys.executable, "-m", module], check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
