"""Wall time of `tinynet-formula --c C` against `python -c "import timm"` on this machine.

The CLI must cost at most 1.5x a bare timm import (issue: the formula runs interactively). Runs both
commands alternately, reports medians and the ratio, and writes results/formula_cli_timing.csv with the date,
the machine (CPU model and core count) and the load average when it started: timings from a busy machine are
not comparable with a quiet one's.

    python benchmarks/formula_cli_time.py [--repeats 5] [--c 0.25 0.5 0.06]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields  # noqa: E402


def wall(cmd: list) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--c", type=float, nargs="+", default=[0.25, 0.5, 0.06])
    parser.add_argument("--out", type=Path, default=Path("results/formula_cli_timing.csv"))
    args = parser.parse_args()

    baseline_cmd = [sys.executable, "-c", "import timm"]
    machine = machine_fields()  # load average included: timings from a busy machine are not comparable
    rows = []
    for c in args.c:
        cli_cmd = [sys.executable, "-m", "timm_tinynet.cli.formula", "--c", str(c)]
        wall(cli_cmd)  # warm the file cache
        base_times, cli_times = [], []
        for _ in range(args.repeats):
            base_times.append(wall(baseline_cmd))
            cli_times.append(wall(cli_cmd))
        base, cli = statistics.median(base_times), statistics.median(cli_times)
        rows.append({"c": c, "import_timm_s": round(base, 3), "tinynet_formula_s": round(cli, 3),
                     "ratio": round(cli / base, 3), "repeats": args.repeats, **machine})
        print(f"c={c:<5} import timm {base:.2f}s  tinynet-formula {cli:.2f}s  ratio {cli / base:.2f} "
              f"({'ok' if cli / base <= 1.5 else 'OVER 1.5'})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
