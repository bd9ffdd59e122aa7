"""Time to cost random cubes: the analytic model (tinynet_core.cost, which the solver uses) against the
reference it is tested equal to, building each network with timm on the CPU and counting it with fvcore
(flops.count_flops for the FLOPs, flops.count_params for the parameters). Prints the timings only.

    python benchmarks/cost_model_speed.py [--n 1000] [--n-built 20] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import time
from typing import List

from tinynet_core.cost import _totals, cube_cost_analytic
from tinynet_core.cube import Cube
from timm_tinynet.baselines import get_baseline
from timm_tinynet.flops import count_flops, count_params

BASELINES = ("efficientnet_b0", "efficientnet_b0_compound", "resnet50", "ghostnet_a")


def random_cubes(seed: int, n: int) -> List[Cube]:
    rng = random.Random(seed)
    return [Cube(rng.uniform(0.15, 1.5), rng.uniform(0.15, 1.5), rng.uniform(0.15, 1.5)) for _ in range(n)]


def time_analytic(baseline: str, cubes: List[Cube]) -> float:
    _totals.cache_clear()  # cold: every cube costs its layer walk
    start = time.perf_counter()
    for cube in cubes:
        cube_cost_analytic(baseline, cube)
    return time.perf_counter() - start


def time_built(baseline: str, cubes: List[Cube]) -> float:
    base = get_baseline(baseline)
    start = time.perf_counter()
    for cube in cubes:
        model = base.create(baseline, cube, pretrained_cfg=base.pretrained_cfg(cube))
        size = base.img_size(cube)
        count_flops(model, (3, size, size))
        count_params(model)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="random cubes for the analytic model")
    parser.add_argument("--n-built", type=int, default=20, help="random cubes built on the CPU and counted by fvcore")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.n < 1 or not 1 <= args.n_built <= args.n:
        parser.error("need 1 <= --n-built <= --n")

    for baseline in BASELINES:
        cubes = random_cubes(args.seed, args.n)
        analytic = time_analytic(baseline, cubes)
        built = time_built(baseline, cubes[:args.n_built])
        per_analytic, per_built = analytic / args.n, built / args.n_built
        print(f"{baseline:26s} analytic: {args.n} cubes in {analytic:.3f} s ({per_analytic * 1e6:.0f} us/cube)"
              f" | built + fvcore: {args.n_built} cubes in {built:.2f} s ({per_built * 1e3:.1f} ms/cube)"
              f" | {per_built / per_analytic:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
