"""Time to cost random cubes: the analytic model (timm_tinynet.cost, which flops.cube_cost now uses) against
building each network on the meta device and counting it there (flops.count_flops_meta, what cube_cost did
before). Prints the timings only.

    python benchmarks/cost_model_speed.py [--n 1000] [--n-built 50] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import time

from timm_tinynet.cost import _totals, cube_cost_analytic
from timm_tinynet.cube import Cube
from timm_tinynet.baselines import get_baseline
from timm_tinynet.flops import count_flops_meta

BASELINES = ("efficientnet_b0", "efficientnet_b0_compound", "resnet50", "ghostnet_a")


def random_cubes(seed: int, n: int) -> list:
    rng = random.Random(seed)
    return [Cube(rng.uniform(0.15, 1.5), rng.uniform(0.15, 1.5), rng.uniform(0.15, 1.5)) for _ in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="random cubes for the analytic model")
    parser.add_argument("--n-built", type=int, default=50, help="random cubes built on the meta device")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    for baseline in BASELINES:
        cubes = random_cubes(args.seed, args.n)
        _totals.cache_clear()  # cold: every cube costs its layer walk
        start = time.perf_counter()
        for cube in cubes:
            cube_cost_analytic(baseline, cube)
        analytic = time.perf_counter() - start

        built_cubes = cubes[:args.n_built]
        start = time.perf_counter()
        base = get_baseline(baseline)
        for cube in built_cubes:
            size = base.img_size(cube)
            count_flops_meta(lambda: base.create(baseline, cube, pretrained_cfg=base.pretrained_cfg(cube)),
                             (3, size, size))
        built = time.perf_counter() - start

        per_analytic, per_built = analytic / len(cubes), built / len(built_cubes)
        print(f"{baseline:26s} analytic: {len(cubes)} cubes in {analytic:.3f} s ({per_analytic * 1e6:.0f} us/cube)"
              f" | built: {len(built_cubes)} cubes in {built:.2f} s ({per_built * 1e3:.1f} ms/cube)"
              f" | {per_built / per_analytic:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
