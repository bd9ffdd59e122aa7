"""tinynet-validate: top-1 / top-5 of a model on an image folder, with the model's own evaluation transform
(input size, crop_pct, interpolation, mean/std from its pretrained cfg)."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import List, Optional

from ._common import (KeyValues, OneLineErrorParser, img_size, non_negative_int, positive_int, print_stdout,
                      quiet_third_party_warnings, report_error, write_atomic)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-validate", description=__doc__)
    p.add_argument("--data-dir", required=True, type=Path, help="image folder (class subfolders), or its parent")
    p.add_argument("--split", default=None, help="split folder under --data-dir (default: validation/val if present)")
    p.add_argument("--model", default=None, help="timm model name (default: the checkpoint's)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None, help="a tinynet-train checkpoint or a state dict")
    source.add_argument("--pretrained", action="store_true", help="the model's published weights")
    p.add_argument("--no-ema", dest="use_ema", action="store_false", help="use the raw weights, not the EMA")
    p.add_argument("-b", "--batch-size", type=positive_int, default=64)
    p.add_argument("-j", "--workers", type=non_negative_int, default=2)
    p.add_argument("--img-size", type=img_size, default=None, help="input size (default: the checkpoint's or the model's)")
    p.add_argument("--device", default=None)
    p.add_argument("--results-file", type=Path, default=None, help="write the result as .csv or .json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --results-file")
    return p.parse_args(argv)


def check_files(args: argparse.Namespace) -> None:
    """The inputs and the output, before any work: GuardError with the reason."""
    from tinynet_core.guard import MAX_CHECKPOINT_BYTES, GuardError, check_input_dir, check_output_file, checked_inputs

    check_input_dir(args.data_dir, "--data-dir")
    inputs = [("--data-dir", args.data_dir), *checked_inputs(("--checkpoint", args.checkpoint, MAX_CHECKPOINT_BYTES))]
    if args.results_file is not None:
        check_output_file(args.results_file, "--results-file", inputs, args.overwrite)
        if args.results_file.suffix not in (".csv", ".json"):
            raise GuardError(f"--results-file must end in .csv or .json, got {args.results_file}")


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import GuardError, exit_on_termination

    exit_on_termination()
    args = parse_args(argv)
    quiet_third_party_warnings()
    from timm_tinynet.train import TrainingFailure
    from timm_tinynet.train.validate import validate

    try:
        check_files(args)
        result = validate(args.model, args.data_dir, args.split, args.checkpoint, args.pretrained, args.use_ema,
                          args.batch_size, args.workers, args.img_size, args.device, args.model_kwargs)
    except (GuardError, *TrainingFailure) as e:
        return report_error("tinynet-validate", e)
    print_stdout(f"{result['model']} ({result['weights']}) on {result['images']} images of {result['data']} at "
                 f"{result['input_size']}px: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}%, "
                 f"loss {result['loss']:.4f}")
    if args.results_file is not None:
        if args.results_file.suffix == ".json":
            text = json.dumps(result, indent=2) + "\n"
        else:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(result))
            writer.writeheader()
            writer.writerow(result)
            text = buffer.getvalue()
        write_atomic(args.results_file, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
