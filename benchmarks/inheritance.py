"""Does a shrunk network learn faster when it inherits a trained parent's weights? (issue 13, weight inheritance)

On scikit-learn's handwritten digits (real 8x8 images, upscaled to 32 px; the only real image data offline here):

1. a parent of TinyNet-A's shape (r .86, d 1.2, w 1, as ``tinynet``) is trained at 64 px;
2. the child is the tiny formula's network at c = 0.25 (r .83, d .86, w .53), at 62 px (the parent's 64 px times
   .83 / .86);
3. the child is fine-tuned with one recipe from three starts, each with ``--seed`` 0, 1, 2: a random
   initialisation, and ``tinynet-train --init-from`` the parent with uniform and with magnitude channel selection.

Every run is a real ``tinynet-train`` process; the learning curves (validation top-1 per epoch) go to
results/inheritance.csv, a summary to results/inheritance.md and the curves to results/inheritance.png.

    python benchmarks/inheritance.py [--parent-epochs 12] [--child-epochs 8] [--seeds 3] [--out results]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields, write_rows  # noqa: E402

PARENT = dict(r=0.86, d=1.2, w=1.0)  # TinyNet-A's cube
PARENT_PX = 64
CHILD_C = 0.25
# one recipe for every run: the demo's fast AdamW recipe, batch-norm momentum 0.1, no EMA, light augmentation
RECIPE = ["-b", "64", "-j", "0", "--opt", "adamw", "--lr", "2e-3", "--weight-decay", "0.05", "--warmup-epochs", "0",
          "--sched", "cosine", "--bn-momentum", "0.1", "--aa", "none", "--smoothing", "0", "--scale", "0.6", "1",
          "--hflip", "0", "--no-model-ema", "--drop", "0.1", "--log-interval", "1000000"]
ARMS = ("random", "uniform", "magnitude")


def train(data: Path, out: Path, name: str, model_kwargs: Dict[str, float], img_size: int, epochs: int, seed: int,
          extra: List[str]) -> List[Dict[str, str]]:
    cmd = [sys.executable, "-m", "tinynet_cli.train", "--data-dir", str(data), "--model", "tinynet", "--model-kwargs",
           *(f"{k}={v}" for k, v in model_kwargs.items()), "--img-size", str(img_size), "--epochs", str(epochs),
           "--seed", str(seed), "--output", str(out), "--experiment", name, *RECIPE, *extra]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-2000:]}")
    inherited = [line for line in result.stderr.splitlines() + result.stdout.splitlines() if "inherited" in line]
    print(f"{name}: {time.perf_counter() - start:.0f}s {inherited[0] if inherited else ''}", flush=True)
    with open(out / name / "summary.csv") as f:
        return list(csv.DictReader(f))


def _row(arm: str, seed: int, summary_row: Dict[str, str]) -> Dict[str, object]:
    """One epoch of one run; ``epoch`` counts from 1 (summary.csv counts from 0)."""
    return {"arm": arm, "seed": seed, "epoch": int(summary_row["epoch"]) + 1,
            **{key: round(float(summary_row[key]), 4) for key in ("eval_top1", "eval_loss", "train_loss")}}


def child_cube() -> Dict[str, float]:
    from tinynet_core.solve import shrink

    cube = shrink("efficientnet_b0", CHILD_C).cube
    return dict(r=cube.r, d=cube.d, w=cube.w)


def figure(rows: List[Dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for arm, color in zip(ARMS, ("gray", "tab:blue", "tab:red")):
        epochs = sorted({r["epoch"] for r in rows if r["arm"] == arm})
        runs = [[float(r["eval_top1"]) for r in rows if r["arm"] == arm and r["epoch"] == e] for e in epochs]
        mean = [statistics.mean(v) for v in runs]
        ax.plot(epochs, mean, "-o", color=color, ms=3, label=f"{arm} init" if arm == "random" else
                f"inherited ({arm} selection)")
        ax.fill_between(epochs, [min(v) for v in runs], [max(v) for v in runs], color=color, alpha=0.15)
    ax.set_xlabel("fine-tuning epoch")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title("TinyNet c=0.25 on digits: from scratch vs inherited from a TinyNet-A-shaped parent", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def summary(rows: List[Dict[str, object]], parent_top1: float, child: Dict[str, float], seeds: int,
            epochs: int, wall_s: float, machine: Dict[str, str]) -> str:
    lines = ["| start | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " |",
             "|---|" + "---|" * epochs]
    for arm in ARMS:
        cells = []
        for e in range(1, epochs + 1):
            values = [float(r["eval_top1"]) for r in rows if r["arm"] == arm and r["epoch"] == e]
            cells.append(f"{statistics.mean(values):.1f} ({min(values):.1f}–{max(values):.1f})")
        label = "random init" if arm == "random" else f"inherited, {arm}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        f"\n\nValidation top-1 (%) on the 450 held-out digits, mean (min–max) over seeds 0..{seeds - 1}. Parent: "
        f"tinynet r {PARENT['r']}, d {PARENT['d']}, w {PARENT['w']} at {PARENT_PX}px, best top-1 {parent_top1:.1f} %. "
        f"Child: the tiny formula at c = {CHILD_C} (r {child['r']}, d {child['d']}, w {child['w']}) at "
        f"{round(PARENT_PX * child['r'] / PARENT['r'])}px, {epochs} epochs, one recipe for every start "
        f"(AdamW 2e-3, cosine, batch 64, no EMA). {machine['date']}, {machine['cpu']}, {machine['cores']} cores; "
        f"whole run {wall_s / 60:.1f} min.\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent-epochs", type=int, default=12)
    parser.add_argument("--child-epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("output") / "inheritance",
                        help="where the tables and figure go (the committed copies: --out results)")
    args = parser.parse_args()
    start = time.perf_counter()
    machine = machine_fields()
    child = child_cube()
    child_px = round(PARENT_PX * child["r"] / PARENT["r"])
    with tempfile.TemporaryDirectory(prefix="tinynet-inheritance-") as tmp:
        tmp = Path(tmp)
        data = tmp / "digits"
        subprocess.run([sys.executable, "-m", "timm_tinynet.demo_data", str(data)], check=True, capture_output=True)
        runs = tmp / "runs"
        rows: List[Dict[str, object]] = []
        parent_rows = train(data, runs, "parent", PARENT, PARENT_PX, args.parent_epochs, 0, [])
        parent_top1 = max(float(r["eval_top1"]) for r in parent_rows)
        rows += [_row("parent", 0, r) for r in parent_rows]
        for seed in range(args.seeds):
            for arm in ARMS:
                extra = [] if arm == "random" else ["--init-from", str(runs / "parent" / "model_best.pth.tar"),
                                                    "--init-selection", arm]
                rows += [_row(arm, seed, r) for r in train(data, runs, f"{arm}-{seed}", child, child_px,
                                                          args.child_epochs, seed, extra)]
    wall = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    write_rows(args.out / "inheritance.csv", [{**row, **machine} for row in rows])
    (args.out / "inheritance.md").write_text(summary(rows, parent_top1, child, args.seeds, args.child_epochs, wall,
                                                     machine))
    figure(rows, args.out / "inheritance.png")
    print((args.out / "inheritance.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
