"""Run every benchmark script (benchmarks/bench_*.py) in turn and let each print its figures.

Usage: python benchmarks/run.py [--quick] [NAME ...]   (NAME: ingest, vee, rating, ...)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *flags])
        print(f"--- {script.stem}: exit {code} in {time.perf_counter() - t0:.1f} s", flush=True)
        if code:
            failed.append(script.stem)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
