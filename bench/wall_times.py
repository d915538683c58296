"""Wall time of `zeus demo` and of the test suite, against the figures before the virtual-time replay GPU.

    python bench/wall_times.py            # the demo (12 recurrences + Default), about 1-2 min
    python bench/wall_times.py --suite    # and the whole pytest suite, about 10 min on 2 cores

Wall time depends on the machine and its load (the demo's *figures* do not: they are replayed on
virtual time); run it on a quiet machine and compare CPU time too, which load affects less. The
reference figures were measured on the 2-core development machine, idle, at commit 9a71a43 (replay
GPU on wall time, stretching CPU time by sleeping).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE = {"demo": (90.3, 88.5), "suite": (480.6, None)}
"""(wall s, CPU s) at commit 9a71a43: `zeus demo` and `pytest -q` (789 tests)."""

ROOT = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the command and its children) of one run; the command must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    env = {**os.environ, "COLUMNS": "140"}
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall_s = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall_s, cpu_s


def report(name: str, wall_s: float, cpu_s: float) -> None:
    ref_wall, ref_cpu = BEFORE[name]
    line = f"{name:6} wall {wall_s:7.1f} s (before {ref_wall:.1f} s, x{wall_s / ref_wall:.2f})"
    line += f"   CPU {cpu_s:7.1f} s"
    if ref_cpu is not None:
        line += f" (before {ref_cpu:.1f} s, x{cpu_s / ref_cpu:.2f})"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    args = parser.parse_args()
    zeus = str(Path(sys.executable).with_name("zeus"))
    with tempfile.TemporaryDirectory() as tmp:
        report("demo", *timed([zeus, "demo", "--out", "demo"], Path(tmp)))
    if args.suite:
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        report("suite", *timed(pytest, ROOT))


if __name__ == "__main__":
    main()
