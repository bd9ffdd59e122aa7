"""tinynet-bench: inference latency of models at their own input sizes (single thread, batch 1 by default),
with ratios against a reference model measured in the same run (absolute times on shared machines drift)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import List, Optional

from ._common import (KeyValues, OneLineErrorParser, non_negative_int, positive_int, print_stdout,
                      quiet_third_party_warnings, report_error)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-bench", description=__doc__)
    p.add_argument("--models", required=True, help="comma-separated timm model names")
    p.add_argument("--reference", default=None, help="model the ratios are relative to (default: the first)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues,
                   help="create_model kwargs for every model in --models, e.g. c=0.3 or target=params=2.5M "
                        "(as tinynet-train and tinynet-export take them)")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("-b", "--batch-size", type=positive_int, default=1)
    p.add_argument("--warmup", type=non_negative_int, default=10)
    p.add_argument("--repeats", type=positive_int, default=50)
    p.add_argument("--settle", type=non_negative_int, default=6,
                   help="untimed runs of a model before each timed run (default 6: each is timed in the steady state "
                        "it has alone; 0: one run per visit, right after another model, up to 2x slower here)")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda or cuda:N (GPU: add --amp --channels-last for throughput)")
    p.add_argument("--amp", action="store_true", help="float16 autocast (CUDA)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write the rows to this CSV")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models:
        p.error("argument --models: give at least one model name")
    if args.repeats < 2:
        p.error("argument --repeats: at least 2 for a spread")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        p.error(f"argument --device: expected cpu, cuda or cuda:N, got {args.device!r}")
    args.reference = args.reference or args.models[0]
    if args.reference not in args.models:
        p.error(f"argument --reference: {args.reference!r} is not in --models")
    return args


def format_rows(rows) -> str:
    ratio_key = next((k for k in rows[0] if k.startswith("ratio_to_")), None)
    header = f"{'model':<20} {'px':>4} {'FLOPs':>8} {'median ms':>10} {'p10-p90 ms':>15} {'img/s':>9}"
    header += f" {ratio_key.replace('ratio_to_', 'x '):>22}" if ratio_key else ""
    lines = [header]
    for row in rows:
        line = (f"{row['model']:<20} {row['input_size']:>4} {row['flops_m']:>7.1f}M {row['median_ms']:>10.2f} "
                f"{row['p10_ms']:>7.2f}-{row['p90_ms']:<7.2f} {row['img_per_s']:>9.1f}")
        if ratio_key:
            line += f" {row[ratio_key]:>22.3f}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import GuardError, check_output_file, exit_on_termination

    from tinynet_core.extras import missing_extra

    exit_on_termination()
    args = parse_args(argv)
    needs = (missing_extra("deploy", "--backend onnxruntime", ("onnx", "onnxruntime"))
             if args.backend == "onnxruntime" else None)
    if needs:
        return report_error("tinynet-bench", needs)
    quiet_third_party_warnings()
    import timm

    import timm_tinynet  # noqa: F401  (registers the plugin's models)
    from timm_tinynet.bench import bench_models

    if args.out is not None:
        try:
            check_output_file(args.out, "--out", overwrite=args.overwrite)  # before the benchmark, not after it
        except GuardError as e:
            return report_error("tinynet-bench", e)
    unknown = [m for m in args.models if not timm.is_model(m)]
    if unknown:
        print(f"tinynet-bench: error: unknown model(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda"):
        import torch

        index = int(args.device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            print(f"tinynet-bench: error: --device {args.device} but no such CUDA device is available",
                  file=sys.stderr)
            return 2
    try:
        rows = bench_models(args.models, args.threads, args.batch_size, args.warmup, args.repeats, args.backend,
                            args.device, args.amp, args.channels_last, args.reference,
                            {name: args.model_kwargs for name in args.models}, args.settle)
    except ValueError as e:
        return report_error("tinynet-bench", e)
    kwargs = f", {' '.join(f'{k}={v!r}' for k, v in args.model_kwargs.items())}" if args.model_kwargs else ""
    print_stdout(f"{args.backend} on {args.device}, {args.threads} thread(s), batch {args.batch_size}, "
                 f"{args.repeats} runs after {args.warmup} warm-up, {args.settle} untimed before each{kwargs}\n"
                 + format_rows(rows))
    if args.out is not None:
        import pandas as pd

        from ._common import write_atomic

        try:
            write_atomic(args.out, pd.DataFrame(rows).to_csv(index=False))
        except OSError as e:
            return report_error("tinynet-bench", f"cannot write --out {args.out}: {e.strerror or e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
