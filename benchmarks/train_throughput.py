"""Training throughput of tinynet-train's loop against a minimal plain-PyTorch loop.

Same model, batch size, transforms (timm's training transform with RandAugment), data loader and optimizer;
the plain loop has no EMA, scheduler, label smoothing or logging. Each runs `--epochs` epochs over a generated
image folder; the last epoch's img/s is compared (goal: tinynet-train >= 0.95x the plain loop).
Records results/train_throughput.csv (one row, with the date and machine; replaced by each run).

    python benchmarks/train_throughput.py [--model tinynet_e] [-b 32] [--images 128] [--epochs 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields, write_rows  # noqa: E402


def make_images(root: Path, n_per_class: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_per_class), ("validation", 4)):
        for k in range(classes):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def plain_loop_img_per_s(args, data: Path, epochs: int) -> float:
    import timm
    from timm.data import resolve_data_config
    from timm.optim import create_optimizer_v2

    import timm_tinynet  # noqa: F401
    from timm_tinynet.train.data import load_splits, train_loader, train_transform

    device = torch.device(args.device)
    torch.manual_seed(0)
    train_set, _ = load_splits(data, None, None)
    model = timm.create_model(args.model, num_classes=4).to(device)
    config = resolve_data_config(model=model)
    train_set.transform = train_transform(config, "rand-m9-mstd0.5")
    loader = train_loader(train_set, args.batch_size, args.workers, 0, 1, 0)
    optimizer = create_optimizer_v2(model, opt="rmsproptf", lr=0.01, weight_decay=1e-5, eps=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rate = 0.0
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        model.train()
        start, seen = time.perf_counter(), 0
        for images, target in loader:
            images, target = images.to(device), target.to(device)
            loss = loss_fn(model(images), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += target.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = seen / (time.perf_counter() - start)
    return rate


def tinynet_train_img_per_s(args, data: Path, out: Path, epochs: int) -> float:
    from tinynet_cli.train import main

    code = main(["--data-dir", str(data), "--model", args.model, "-b", str(args.batch_size), "-j", str(args.workers),
                 "--epochs", str(epochs), "--output", str(out), "--experiment", "bench", "--device", args.device,
                 "--log-interval", "1000"])
    if code != 0:
        raise SystemExit(f"tinynet-train failed with code {code}")
    with open(out / "bench" / "summary.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["train_img_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tinynet_e")
    parser.add_argument("-b", "--batch-size", type=int, default=32)
    parser.add_argument("--images", type=int, default=128, help="training images per class (4 classes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("-j", "--workers", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("results/train_throughput.csv"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_images(data, args.images)
        plain = plain_loop_img_per_s(args, data, args.epochs)
        ours = tinynet_train_img_per_s(args, data, Path(tmp) / "runs", args.epochs)
    ratio = ours / plain
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.model} b={args.batch_size} on {device}: plain loop {plain:.1f} img/s, tinynet-train {ours:.1f} "
          f"img/s (tinynet recipe: EMA, label smoothing, step schedule), ratio {ratio:.3f} "
          f"({'ok' if ratio >= 0.95 else 'below 0.95'})")
    row = {"model": args.model, "batch_size": args.batch_size, "device": device, "workers": args.workers,
           "plain_img_per_s": round(plain, 1), "tinynet_train_img_per_s": round(ours, 1), "ratio": round(ratio, 3),
           **machine_fields()}
    write_rows(args.out, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
