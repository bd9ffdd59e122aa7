"""The paper's Table 4 on this machine: single-thread, batch-1 latency of EfficientNet-B0 vs TinyNet-A and of
EfficientNet-B^-4 vs TinyNet-E, with torch and onnxruntime, next to the paper's ratios (Huawei P40, MindSpore Lite).

Writes results/latency.csv and results/latency.md.

    python benchmarks/latency_table.py [--repeats 200] [--warmup 20]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields  # noqa: E402

PAIRS = (("efficientnet_b0", "tinynet_a", 81.30 / 99.85), ("efficientnet_bm4", "tinynet_e", 9.18 / 11.54))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    args = parser.parse_args()
    from timm_tinynet.bench import bench_models

    rows = []
    for backend in ("torch", "onnxruntime"):
        for reference, model, paper_ratio in PAIRS:
            measured = bench_models([reference, model], threads=1, batch_size=1, warmup=args.warmup,
                                    repeats=args.repeats, backend=backend, reference=reference)
            for row in measured:
                ratio = row.pop(f"ratio_to_{reference}")
                rows.append(dict(row, reference=reference, ratio_to_reference=ratio,
                                 paper_ratio=round(paper_ratio, 3) if row["model"] == model else 1.0))
    df = pd.DataFrame(rows)
    for key, value in machine_fields().items():
        df[key] = value
    args.out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out_dir / "latency.csv", index=False)
    lines = ["| backend | model | input | FLOPs | median ms (p10-p90) | ratio to reference | paper ratio |",
             "|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.backend} | {r.model} | {r.input_size}px | {r.flops_m}M | {r.median_ms:.2f} "
                     f"({r.p10_ms:.2f}-{r.p90_ms:.2f}) | {r.ratio_to_reference:.3f} | {r.paper_ratio:.3f} |")
    from timm_tinynet.timing import SETTLE_RUNS

    fields = machine_fields()
    lines.append(f"\n{fields['date']}, {fields['cpu']}, {fields['cores']} cores, load {fields['load_avg_1min']}, torch "
                 f"{fields['torch']}; {args.repeats} timed runs per model after {args.warmup} warm-up runs, "
                 f"round-robin, each after {SETTLE_RUNS} untimed runs of the same model")
    (args.out_dir / "latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
