"""tinynet-train: train any timm or timm_tinynet model on an image folder with the paper's recipe.

Flags follow timm's train.py. Options left unset come from the recipe (--recipe tinynet for the EfficientNet
family and GhostNet, resnet for ResNets); the resolved values are written to <output>/<experiment>/args.yaml.
Multi-GPU / multi-node: torchrun --nproc_per_node N -m tinynet_cli.train ...
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from ._common import (IMG_SIZE_MAX, IMG_SIZE_MIN, KeyValues, OneLineErrorParser, img_size, non_negative_int, number,
                      positive_int, quiet_third_party_warnings, seed_int)

PROBABILITY = number(0.0, 1.0)
RATE = number(0.0, 1.0, hi_open=True)  # dropout, stochastic depth, label smoothing
NON_NEGATIVE = number(0.0)
POSITIVE = number(0.0, lo_open=True)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(prog="tinynet-train", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", required=True, help="folder with train/ and validation/ (or val/) class folders")
    g.add_argument("--train-split", default=None, help="training split folder (default: train or training)")
    g.add_argument("--val-split", default=None, help="validation split folder (default: validation or val)")
    g.add_argument("-j", "--workers", type=non_negative_int, default=min(4, os.cpu_count() or 1),
                   help="data loading processes per process (default: min(4, CPU count))")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="timm model name, e.g. tinynet_a, tinynet, ghostnet_b")
    g.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues, help="extra create_model kwargs: r=0.8 d=0.9 w=0.5 or c=0.25")
    g.add_argument("--pretrained", action="store_true", help="start from the model's published weights")
    g.add_argument("--initial-checkpoint", default=None,
                   help="start a new run from these weights (a tinynet-train checkpoint or a state dict)")
    g.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                   help="start a new run from a larger trained network of the same family (a tinynet-train or timm "
                        "checkpoint, a state dict, safetensors): its weights cut to this model by weight selection")
    g.add_argument("--init-selection", choices=("magnitude", "uniform"), default=None,
                   help="which of the parent's channels --init-from keeps (default magnitude)")
    g.add_argument("--num-classes", type=positive_int, default=None, help="default: number of class folders")
    g.add_argument("--img-size", type=img_size, default=None,
                   help=f"input size, {IMG_SIZE_MIN}..{IMG_SIZE_MAX} (default: the model's own, int(224*r))")
    g.add_argument("--drop", type=RATE, default=None, help="dropout before the classifier")
    g.add_argument("--drop-path", type=RATE, default=None, help="stochastic depth rate")
    g.add_argument("--bn-momentum", type=number(0.0, 1.0, lo_open=True), default=None,
                   help="BatchNorm momentum in the PyTorch sense, 1 - TF's (the recipe's 0.01 is TF's 0.99)")
    g.add_argument("--bn-warmup", action="store_true", default=None,
                   help="BatchNorm statistics warm-up: the t-th update weighs the new batch by max(momentum, 1/(t+1)) "
                        "(default: on from random weights, off with --pretrained / --initial-checkpoint)")
    g.add_argument("--no-bn-warmup", dest="bn_warmup", action="store_false")
    g.add_argument("--precise-bn", type=non_negative_int, default=None, metavar="IMAGES",
                   help="before each evaluation re-estimate BatchNorm statistics from this many training images "
                        "(default: 1024 for a run shorter than 100/momentum steps, else 0 = off)")
    g.add_argument("--channels-last", action="store_true")
    g.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA)")
    g = p.add_argument_group("recipe and optimisation")
    g.add_argument("--recipe", choices=("tinynet", "resnet"), default=None, help="preset (default: by model family)")
    g.add_argument("-b", "--batch-size", type=positive_int, default=128, help="images per process per step")
    g.add_argument("-vb", "--validation-batch-size", type=positive_int, default=None)
    g.add_argument("--epochs", type=positive_int, default=None)
    g.add_argument("--opt", default=None, help="timm optimizer name (rmsproptf, sgd, adamw, ...)")
    g.add_argument("--opt-eps", type=POSITIVE, default=None)
    g.add_argument("--opt-alpha", type=number(0.0, 1.0, hi_open=True), default=None, help="RMSProp decay")
    g.add_argument("--opt-kwargs", nargs="*", default={}, action=KeyValues)
    g.add_argument("--momentum", type=number(0.0, 1.0, hi_open=True), default=None)
    g.add_argument("--weight-decay", type=NON_NEGATIVE, default=None)
    g.add_argument("--lr", type=POSITIVE, default=None, help="learning rate (default: --lr-base scaled to the global batch)")
    g.add_argument("--lr-base", type=POSITIVE, default=None, help="learning rate for --lr-base-size images per step")
    g.add_argument("--lr-base-size", type=positive_int, default=None)
    g.add_argument("--sched", default=None, help="timm scheduler (step, cosine, ...)")
    g.add_argument("--decay-epochs", type=POSITIVE, default=None)
    g.add_argument("--decay-rate", "--dr", type=POSITIVE, default=None)
    g.add_argument("--warmup-epochs", type=NON_NEGATIVE, default=None)
    g.add_argument("--warmup-lr", type=NON_NEGATIVE, default=None)
    g.add_argument("--min-lr", type=NON_NEGATIVE, default=None)
    g.add_argument("--clip-grad", type=POSITIVE, default=None, help="clip gradients to this norm (default: off)")
    g.add_argument("--smoothing", type=RATE, default=None, help="label smoothing")
    g.add_argument("--model-ema", action="store_true", default=None, help="keep an EMA of the weights")
    g.add_argument("--no-model-ema", dest="model_ema", action="store_false")
    g.add_argument("--model-ema-decay", type=number(0.0, 1.0, hi_open=True), default=None)
    g.add_argument("--model-ema-warmup", action="store_true", default=None,
                   help="EMA decay min(decay, (1+t)/(10+t)) at update t, TF's ExponentialMovingAverage(num_updates) "
                        "as in the official EfficientNet code (recipe default: on)")
    g.add_argument("--no-model-ema-warmup", dest="model_ema_warmup", action="store_false")
    g = p.add_argument_group("augmentation")
    g.add_argument("--aa", default=None, help="timm auto-augment policy, e.g. rand-m9-mstd0.5 ('none' to disable)")
    g.add_argument("--scale", type=number(0.0, 1.0, lo_open=True), nargs=2, default=(0.08, 1.0), metavar=("MIN", "MAX"),
                   help="random-resized-crop area range (default 0.08 1.0)")
    g.add_argument("--hflip", type=PROBABILITY, default=0.5, help="horizontal flip probability")
    g.add_argument("--color-jitter", type=NON_NEGATIVE, default=0.4)
    g.add_argument("--reprob", type=PROBABILITY, default=0.0, help="random erasing probability")
    g = p.add_argument_group("run")
    g.add_argument("--output", default="output/train", help="parent folder of the run folder")
    g.add_argument("--experiment", default=None, help="run folder name (default: time-model-size)")
    g.add_argument("--resume", default=None, help="continue from a checkpoint (last.pth.tar)")
    g.add_argument("--amp", action="store_true", help="mixed precision (CUDA: float16 or bfloat16; CPU: bfloat16)")
    g.add_argument("--amp-dtype", choices=("float16", "bfloat16"), default="float16")
    g.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    g.add_argument("--seed", type=seed_int, default=42, help="random seed, 0 <= seed < 2**32 (default 42)")
    g.add_argument("--log-interval", type=positive_int, default=50)
    return p


def explicit_options(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> List[str]:
    """The options given on the command line (not left at their defaults): a resumed run keeps the rest."""
    defaults = [(action, action.default) for action in parser._actions]
    for action, _ in defaults:
        action.default = argparse.SUPPRESS
    try:
        return sorted(vars(parser.parse_args(argv)))
    finally:
        for action, default in defaults:
            action.default = default


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.model and not args.resume:
        parser.error("--model is required (or --resume a checkpoint)")
    if args.scale[0] > args.scale[1]:
        parser.error(f"argument --scale: MIN must not exceed MAX, got {args.scale[0]:g} {args.scale[1]:g}")
    starts = [flag for flag, given in (("--resume", args.resume), ("--initial-checkpoint", args.initial_checkpoint),
                                       ("--init-from", args.init_from), ("--pretrained", args.pretrained)) if given]
    if len(starts) > 1 and (args.resume or args.init_from):
        parser.error(f"{' and '.join(starts)} each say where the weights start from: give one")
    if args.init_selection and not args.init_from:
        parser.error("--init-selection applies to --init-from")
    if args.init_from:
        args.init_selection = args.init_selection or "magnitude"
    args.explicit = explicit_options(parser, argv)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import exit_on_termination

    exit_on_termination()  # SIGTERM/SIGHUP: temporary files removed and the run folder's lock released
    args = parse_args(argv)
    quiet_third_party_warnings()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from timm_tinynet.train import TrainingFailure, run

    try:
        row = run(args)
    except TrainingFailure as e:
        print(f"tinynet-train: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinynet-train: interrupted; resume with --resume <run>/last.pth.tar", file=sys.stderr)
        return 130
    return 0 if row is not None else 1


if __name__ == "__main__":
    sys.exit(main())
