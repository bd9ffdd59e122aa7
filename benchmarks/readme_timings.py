"""Wall and CPU time of the README's longer jobs on this machine, so the README quotes measured, dated figures.

Jobs: ``tests`` (the README's test command, ``python -m pytest -q``) and ``cam_trained``
(``examples/cam_trained.py``, writing to a temporary folder). Each job runs once, in a child process; CPU time
is the children's user + system time. Rows are written to ``results/readme_timings.csv`` (one per job, replacing
that job's earlier row) with the date and machine.

    python benchmarks/readme_timings.py [--jobs tests cam_trained] [--out results/readme_timings.csv]
"""
from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def commands(tmp: Path) -> Dict[str, List[str]]:
    return {"tests": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            "cam_trained": [sys.executable, "examples/cam_trained.py", "--out", str(tmp / "cam.png")]}


def timed(cmd: List[str]) -> Dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "exit": done.returncode, "last_line": tail}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="+", choices=("tests", "cam_trained"), default=["tests", "cam_trained"])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "readme_timings.csv")
    args = parser.parse_args()

    rows: Dict[str, Dict] = {}
    if args.out.exists():
        with open(args.out, newline="") as f:
            rows = {row["job"]: row for row in csv.DictReader(f)}
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs:
            result = timed(commands(Path(tmp))[job])
            rows[job] = {"job": job, **result, **machine_fields()}
            print(f"{job}: {result['wall_s'] / 60:.1f} min wall, {result['cpu_s'] / 60:.1f} min CPU, exit "
                  f"{result['exit']} ({result['last_line']})")
    fields = ["job", "wall_s", "cpu_s", "exit", "last_line", *machine_fields()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    with open(tmp_out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[k] for k in sorted(rows))
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")
    return 0 if all(int(rows[j]["exit"]) == 0 for j in args.jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
