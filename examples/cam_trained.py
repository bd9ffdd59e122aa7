"""A class activation map from a network trained here (no download): TinyNet-style model trained for a few
epochs on generated pictures of coloured squares, then tinynet-cam on a new, larger picture.

    python examples/cam_trained.py                 # writes output/cam_trained_squares.png
    python examples/cam_trained.py --out results/cam_trained_squares.png --overwrite   # the committed picture

The map should light up the square that decides the class, not the background.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_OUT = Path("output/cam_trained_squares.png")  # the committed results/ picture is replaced only on request
COLORS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 70, 230)}


def picture(rng, size, color, side, at=None):
    img = rng.integers(0, 90, (size[1], size[0], 3)).astype(np.uint8)
    x, y = at if at is not None else (rng.integers(0, size[0] - side), rng.integers(0, size[1] - side))
    img[y:y + side, x:x + side] = color
    return Image.fromarray(img), (x, y)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the CAM picture (default: {DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out picture")
    args = parser.parse_args()
    from tinynet_cli.cam import check_image_path
    from tinynet_cli.cam import main as cam_main
    from tinynet_cli.train import main as train_main
    from tinynet_core.guard import GuardError, check_output_file, exit_on_termination, record_outputs

    exit_on_termination()
    try:  # before two minutes of training, not after them
        check_image_path(args.out)
        check_output_file(args.out, "--out", overwrite=args.overwrite)
    except (GuardError, ValueError) as e:
        print(f"cam_trained.py: error: {e}", file=sys.stderr)
        return 2

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "squares"
        for split, n in (("train", 120), ("validation", 30)):
            for name, color in COLORS.items():
                folder = data / split / name
                folder.mkdir(parents=True)
                for i in range(n):
                    picture(rng, (128, 128), color, int(rng.integers(24, 40)))[0].save(folder / f"{i}.png")
        code = train_main(["--data-dir", str(data), "--model", "tinynet", "--model-kwargs", "r=0.86", "d=0.5", "w=0.5",
                           "-b", "32", "--epochs", "6", "--opt", "adamw", "--lr", "3e-3", "--weight-decay", "0.05",
                           "--warmup-epochs", "0", "--aa", "none", "--smoothing", "0", "--scale", "0.6", "1",
                           "--no-model-ema", "--bn-momentum", "0.1", "--output", tmp, "--experiment", "run"])
        if code:
            return code
        scene, (x, y) = picture(np.random.default_rng(1), (320, 224), COLORS["blue"], 44, at=(80, 130))
        scene.save(Path(tmp) / "scene.png")
        code = cam_main(["--model", "tinynet", "--checkpoint", str(Path(tmp) / "run" / "last.pth.tar"),
                         "--image", str(Path(tmp) / "scene.png"), "--out", str(args.out), "--overwrite"])
        if code:
            return code
        if args.out.parent.resolve() == (Path.cwd() / DEFAULT_OUT.parent).resolve():
            record_outputs(args.out.parent, [args.out.name], "examples/cam_trained.py")  # a re-run may replace it
        print(f"the blue square is at x={x}..{x + 44}, y={y}..{y + 44} of the 320x224 picture")
        return code


if __name__ == "__main__":
    sys.exit(main())
