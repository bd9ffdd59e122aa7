"""How fast the core answers, against a bare `python -c "import timm"` on the same machine (issue 11's four rows).

1. `tinynet-formula --c 0.25`, wall time of the whole command;                     target <= 0.5x import timm
2. the analytic cost model on 1000 distinct random EfficientNet-B0 cubes (cold cache);  target < 1 s
3. the first `timm.create_model("tinynet", c=0.3)` after `import timm_tinynet`;      target < 1 s
4. `tinynet-study sample --n 100`, wall time of the whole command;                    target < 5 s

Every command runs in a fresh process; the repeats are interleaved (one of each per round, in turn), so a change
of machine load touches all rows alike. Medians and min-max over the repeats go to results/core_speed.csv with
the date, CPU, cores and load average (timings from a busy machine are not comparable with a quiet one's).

    python benchmarks/core_speed.py [--repeats 5] [--out results/core_speed.csv]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields, write_rows  # noqa: E402

PY = sys.executable
COST_1000 = """
import random, time
from tinynet_core.cost import cube_cost_analytic
from tinynet_core.cube import Cube
rng = random.Random(0)
cubes = [Cube(*(round(rng.uniform(0.3, 1.2), 6) for _ in range(3))) for _ in range(1000)]
start = time.perf_counter()
for cube in cubes:
    cube_cost_analytic("efficientnet_b0", cube)
print(time.perf_counter() - start)
"""
FIRST_CREATE = """
import time, timm, timm_tinynet
start = time.perf_counter()
timm.create_model("tinynet", c=0.3)
print(time.perf_counter() - start)
"""


def wall(cmd: List[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def inner(code: str) -> float:
    """Seconds the snippet measures itself (its own import time excluded)."""
    out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def rows_to_measure(scratch: Path) -> Dict[str, Callable[[], float]]:
    plan = scratch / "plan.csv"
    return {
        "import timm (reference)": lambda: wall([PY, "-c", "import timm"]),
        "tinynet-formula --c 0.25": lambda: wall([PY, "-m", "tinynet_cli.formula", "--c", "0.25"]),
        "cost model, 1000 random B0 cubes": lambda: inner(COST_1000),
        "first create_model('tinynet', c=0.3)": lambda: inner(FIRST_CREATE),
        "tinynet-study sample --n 100": lambda: wall([PY, "-m", "tinynet_cli.study", "sample", "--n", "100",
                                                      "--out", str(plan), "--overwrite"]),
    }


TARGETS = {"tinynet-formula --c 0.25": ("ratio", 0.5), "cost model, 1000 random B0 cubes": ("s", 1.0),
           "first create_model('tinynet', c=0.3)": ("s", 1.0), "tinynet-study sample --n 100": ("s", 5.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/core_speed.csv"))
    args = parser.parse_args()

    machine = machine_fields()
    with tempfile.TemporaryDirectory() as scratch:
        measures = rows_to_measure(Path(scratch))
        for measure in measures.values():  # warm the file cache
            measure()
        times: Dict[str, List[float]] = {name: [] for name in measures}
        for _ in range(args.repeats):
            for name, measure in measures.items():
                times[name].append(measure())
    reference = statistics.median(times["import timm (reference)"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        unit, limit = TARGETS.get(name, ("", None))
        value = median / reference if unit == "ratio" else median
        verdict = "" if limit is None else ("met" if value <= limit else "MISSED")
        rows.append({"what": name, "median_s": round(median, 4), "min_s": round(min(values), 4),
                     "max_s": round(max(values), 4), "vs_import_timm": round(median / reference, 3),
                     "target": "" if limit is None else f"<= {limit:g}{'x import timm' if unit == 'ratio' else ' s'}",
                     "verdict": verdict, "repeats": args.repeats, **machine})
        print(f"{name:<40} {median:8.3f} s  ({median / reference:5.2f}x import timm)  {rows[-1]['target']} {verdict}")
    write_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
