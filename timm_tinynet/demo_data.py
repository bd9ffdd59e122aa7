"""A small real image dataset that needs no download: scikit-learn's handwritten digits (1797 images of 8x8
pixels, 10 classes), upscaled and written as a timm image folder (train/ and validation/).

    python -m timm_tinynet.demo_data DIR [--size 32] [--val-fraction 0.25] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional


def write_digits_folder(root: Path, size: int = 32, val_fraction: float = 0.25, seed: int = 0) -> Dict[str, int]:
    """Write the digits as RGB PNGs (bicubic upscale, white on black) with a seeded stratified split."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} already exists and is not empty")
    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "validation": 0}
    for label in range(10):
        indices = np.flatnonzero(digits.target == label)
        rng.shuffle(indices)
        n_val = int(round(len(indices) * val_fraction))
        for position, index in enumerate(indices):
            split = "validation" if position < n_val else "train"
            pixels = (digits.images[index] / 16.0 * 255).astype(np.uint8)
            image = Image.fromarray(pixels).resize((size, size), Image.BICUBIC).convert("RGB")
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index:04d}.png")
            counts[split] += 1
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m timm_tinynet.demo_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from tinynet_core.extras import missing_extra

    needs = missing_extra("study", "the digits dataset", ("sklearn",))
    if needs:
        print(f"error: {needs}", file=sys.stderr)
        return 2
    try:
        counts = write_digits_folder(args.root, args.size, args.val_fraction, args.seed)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.root}: {counts['train']} train / {counts['validation']} validation images, 10 classes, {args.size}px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
