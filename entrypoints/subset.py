"""tinynet-subset: build the paper's ImageNet-100 from an ImageNet folder (100 random classes, 500 random
training images per class, all 50 validation images of each), deterministic by --seed. Symlinks by default;
--mode filelist writes train.txt / val.txt instead, --mode copy copies the files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import OneLineErrorParser, positive_int, report_error, seed_int


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-subset", description=__doc__)
    p.add_argument("--imagenet", required=True, type=Path, help="ImageNet root with train/<class>/ and val/<class>/")
    p.add_argument("--out", required=True, type=Path, help="new folder for the subset (must not exist or be empty)")
    p.add_argument("--classes", type=positive_int, default=100)
    p.add_argument("--train-per-class", type=positive_int, default=500)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--mode", choices=("symlink", "filelist", "copy"), default="symlink")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import GuardError, exit_on_termination

    exit_on_termination()
    args = parse_args(argv)
    from timm_tinynet.subset import SubsetError, check_out, plan_subset, write_subset

    try:
        check_out(args.imagenet, args.out)  # before any work
        plan = plan_subset(args.imagenet, args.classes, args.train_per_class, args.seed, args.train_split,
                           args.val_split)
        counts = write_subset(plan, args.imagenet, args.out, args.mode, args.train_split, args.val_split)
    except (SubsetError, GuardError, OSError) as e:
        return report_error("tinynet-subset", e)
    print(f"{args.out}: {counts['classes']} classes, {counts['train']} train and {counts['val']} val images "
          f"({args.mode}, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
