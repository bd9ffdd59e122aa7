"""tinynet-study: the paper's Rubik's-cube study — sample twisted models, train them, keep the Pareto frontier,
measure Spearman correlations and fit the tiny formula (whose frontier.csv tinynet-formula --frontier reads).

  tinynet-study sample --baseline efficientnet_b0 --n 100 --seed 0 --out plan.csv
  tinynet-study run plan.csv --data-dir /data/imagenet100 --epochs 100 -b 128 [--executor ray] [-- TRAIN FLAGS]
      (exit status 1 when a trial failed)
  tinynet-study analyze results.csv --out analysis/
  tinynet-study demo            (a complete small study on scikit-learn's digits, ~15 min on 2 CPU cores)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import List, Optional

from ._common import OneLineErrorParser, fraction, non_negative_int, number, positive_int, quiet_third_party_warnings

BASELINES = ("efficientnet_b0", "resnet50", "ghostnet_a")
# The demo: small, low-resolution models on 32px digits, trained briefly with a fast AdamW override recipe.
# Tiny images load fastest in the training process itself (-j 0): worker processes only compete for 2 cores.
DEMO_TRAIN_ARGS = ["-b", "64", "-j", "0", "--opt", "adamw", "--lr", "4e-3", "--weight-decay", "0.05",
                   "--warmup-epochs", "0", "--decay-epochs", "2", "--decay-rate", "0.5", "--bn-momentum", "0.1",
                   "--aa", "none", "--smoothing", "0", "--scale", "0.5", "1", "--hflip", "0", "--no-model-ema",
                   "--drop", "0.1"]


DEMO_MARKER = ".tinynet-study-demo"  # a --work folder the demo created; the demo reuses no other folder


def ray_resource(lo_open: bool):
    """argparse type: a Ray resource amount per task (Ray takes fractions up to 1, whole numbers above)."""
    amount = number(0.0, lo_open=lo_open)

    def parse(text: str) -> float:
        value = amount(text)
        if value > 1 and not value.is_integer():
            raise argparse.ArgumentTypeError(f"must be at most 1 or a whole number (Ray's rule), got {text}")
        return value

    parse.__name__ = "amount"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="tinynet-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)

    s = sub.add_parser("sample", help="draw a plan of twisted models")
    s.add_argument("--baseline", choices=BASELINES, default="efficientnet_b0")
    s.add_argument("--n", type=positive_int, default=100)
    s.add_argument("--seed", type=non_negative_int, default=0)
    for dim in ("r", "d", "w"):
        s.add_argument(f"--{dim}-range", nargs=2, type=number(0.0, lo_open=True), default=(0.35, 2.8),
                       metavar=("MIN", "MAX"))
    s.add_argument("--flops-range", nargs=2, type=number(0.0, lo_open=True), default=(0.03, 1.05),
                   metavar=("MIN", "MAX"), help="kept FLOPs ratios, at most 1.5 (draws outside are redrawn)")
    s.add_argument("--target-c", type=number(0.0, lo_open=True), default=None,
                   help="draw r and d, solve w within --w-range to this FLOPs ratio within 3 %% (paper §3.1)")
    s.add_argument("--giant-c", nargs="*", type=fraction("a FLOPs ratio for shrinking"), default=[],
                   help="add inverse-giant-formula reference models at these ratios")
    s.add_argument("--out", type=Path, required=True, help="plan CSV to write")

    r = sub.add_parser("run", help="train every planned model (resumable)")
    r.add_argument("plan", type=Path)
    r.add_argument("--results", type=Path, default=None, help="results CSV (default: results.csv next to the plan)")
    r.add_argument("--data-dir", type=Path, required=True)
    r.add_argument("--epochs", type=positive_int, required=True)
    r.add_argument("-b", "--batch-size", type=positive_int, default=None)
    r.add_argument("--trials-dir", type=Path, default=None, help="per-trial run folders (default: trials/ next to results)")
    r.add_argument("--executor", default="local", help="local (default) or ray")
    r.add_argument("--workers", type=positive_int, default=1, help="local executor: trials at once")
    r.add_argument("--ray-address", default=None,
                   help="ray executor: auto, HOST:PORT, ray://host:10001 (needs ray[client]), or local (default)")
    r.add_argument("--cpus-per-trial", type=ray_resource(lo_open=True), default=1.0)
    r.add_argument("--gpus-per-trial", type=ray_resource(lo_open=False), default=0.0)
    r.add_argument("--retry-failed", action="store_true", help="run failed trials again")

    a = sub.add_parser("analyze", help="frontier, Spearman correlations, GP fit, figures")
    a.add_argument("results", type=Path)
    a.add_argument("--out", type=Path, default=None, help="output folder (default: analysis/ next to the results)")
    a.add_argument("--keep-fraction", type=float, default=0.2)

    d = sub.add_parser("demo", help="a complete small study on scikit-learn's digits")
    d.add_argument("--work", type=Path, default=Path("output/study-demo"), help="data, trials and checkpoints")
    d.add_argument("--out", type=Path, default=Path("results/demo"), help="where the tables and figures go")
    d.add_argument("--n", type=positive_int, default=12)
    d.add_argument("--epochs", type=positive_int, default=3)
    d.add_argument("--seed", type=int, default=0)
    return parser


def parse_args(argv: Optional[List[str]] = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: List[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, train_args = argv[:split], argv[split + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.train_args = train_args
    if train_args and args.command != "run":
        parser.error("training flags after -- only apply to 'run'")
    if args.command == "run":
        if args.executor not in ("local", "ray"):
            parser.error(f"argument --executor: unknown executor {args.executor!r}; choose from local, ray")
        ray_options = args.ray_address is not None or args.cpus_per_trial != 1.0 or args.gpus_per_trial != 0.0
        if args.executor == "local" and ray_options:
            parser.error("--ray-address, --cpus-per-trial and --gpus-per-trial apply to --executor ray")
        if args.executor == "ray" and args.workers != 1:
            parser.error("--workers applies to --executor local (Ray runs as many trials as the cluster fits)")
        if args.batch_size is not None:
            args.train_args = ["-b", str(args.batch_size), *train_args]
        from .train import build_parser as train_parser

        probe = train_parser()
        probe.prog = "tinynet-study run (training flags)"
        probe.parse_args(["--data-dir", ".", "--model", "tinynet", *args.train_args])  # fail fast on a typo
    if args.command == "analyze" and not 0 < args.keep_fraction <= 1:
        parser.error(f"argument --keep-fraction: must be in (0, 1], got {args.keep_fraction}")
    return args


def cmd_sample(args) -> int:
    from timm_tinynet.study.sample import sample_plan
    from timm_tinynet.study.tables import PLAN_COLUMNS, write_csv_atomic

    if args.out.exists():
        raise_error(f"{args.out} already exists; choose a new plan file")
    plan = sample_plan(args.baseline, args.n, args.seed, tuple(args.r_range), tuple(args.d_range),
                       tuple(args.w_range), tuple(args.flops_range), args.target_c, giant_c=tuple(args.giant_c))
    write_csv_atomic(args.out, plan.to_dict("records"), PLAN_COLUMNS)
    print(f"{args.out}: {len(plan)} models of {args.baseline}, FLOPs ratio {plan['c'].min():.3f}-{plan['c'].max():.3f}"
          f" (seed {args.seed})")
    return 0


def cmd_run(args) -> int:
    from timm_tinynet.study.trials import run_study

    results = args.results or args.plan.parent / "results.csv"
    counts = run_study(args.plan, results, args.data_dir, args.epochs, args.train_args, args.trials_dir,
                       args.executor, args.workers, args.ray_address, args.cpus_per_trial, args.gpus_per_trial,
                       args.retry_failed)
    print(f"{results}: {counts['ok']} trained, {counts['failed']} failed, {counts['skipped']} already done")
    if counts["failed_before"]:
        print(f"{counts['failed_before']} trial(s) failed in an earlier run; --retry-failed runs them again")
    return 1 if counts["failed"] or counts["failed_before"] else 0  # a script's `run && analyze` notices


def cmd_analyze(args) -> int:
    from timm_tinynet.study.analyze import analyze, check_out_dir, summary_lines, write_analysis
    from timm_tinynet.study.tables import read_results

    out = args.out or args.results.parent / "analysis"
    check_out_dir(out, args.results)
    analysis = analyze(read_results(args.results), args.keep_fraction)
    paths = write_analysis(analysis, out, args.results)
    print("\n".join(summary_lines(analysis)))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    print(f"use it: tinynet-formula --c 0.25 --frontier {paths['frontier.csv']}")
    return 0


def _demo_settings(marker: Path) -> dict:
    """The --n/--seed/--epochs a demo folder was made with ({} when unknown)."""
    try:
        return json.loads(marker.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def cmd_demo(args) -> int:
    from timm_tinynet.demo_data import write_digits_folder
    from timm_tinynet.study.analyze import MARKER

    start = time.perf_counter()
    work = args.work
    if work.exists() and not work.is_dir():
        raise_error(f"--work {work} is a file, not a folder")
    if work.exists() and any(work.iterdir()) and not (work / DEMO_MARKER).exists():
        raise_error(f"{work} is not empty and was not created by tinynet-study demo; choose another --work")
    settings = {"n": args.n, "seed": args.seed, "epochs": args.epochs}
    recorded = _demo_settings(work / DEMO_MARKER)
    if recorded and recorded != settings:
        raise_error(f"{work} holds a demo with {', '.join(f'--{k} {v}' for k, v in recorded.items())}; rerun it "
                    f"with those, or choose another --work")
    work.mkdir(parents=True, exist_ok=True)
    (work / DEMO_MARKER).write_text(json.dumps(settings) + "\n")
    data = work / "data"
    if not data.exists():
        counts = write_digits_folder(data, size=32)
        print(f"{data}: {counts['train']} train / {counts['validation']} validation digit images, 32px")
    plan = work / "plan.csv"
    if not plan.exists():
        cmd_sample(argparse.Namespace(
            baseline="efficientnet_b0", n=args.n, seed=args.seed, r_range=(0.15, 0.45), d_range=(0.35, 1.4),
            w_range=(0.35, 1.4), flops_range=(0.01, 0.12), target_c=None, giant_c=[0.1, 0.05, 0.025], out=plan))
    code = cmd_run(argparse.Namespace(
        plan=plan, results=work / "results.csv", data_dir=data, epochs=args.epochs, train_args=DEMO_TRAIN_ARGS,
        trials_dir=work / "trials", executor="local", workers=1, ray_address=None, cpus_per_trial=1.0,
        gpus_per_trial=0.0, retry_failed=False))
    cmd_analyze(argparse.Namespace(results=work / "results.csv", out=work / "analysis", keep_fraction=0.2))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in [plan, work / "results.csv", *sorted((work / "analysis").iterdir())]:
        if path.name != MARKER:  # it names a path on this machine
            shutil.copy2(path, args.out / path.name)
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min; tables and figures in {args.out}")
    return code


class _UsageError(Exception):
    pass


def raise_error(message: str) -> None:
    raise _UsageError(message)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    quiet_third_party_warnings()
    from timm_tinynet.frontier import FrontierError
    from timm_tinynet.study import StudyError

    commands = {"sample": cmd_sample, "run": cmd_run, "analyze": cmd_analyze, "demo": cmd_demo}
    try:
        return commands[args.command](args)
    except (StudyError, FrontierError, _UsageError) as e:
        print(f"tinynet-study: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
