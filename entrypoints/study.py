"""tinynet-study: the paper's Rubik's-cube study — sample twisted models, train them, keep the Pareto frontier,
measure Spearman correlations and fit the tiny formula (whose frontier.csv tinynet-formula --frontier reads).

  tinynet-study sample --baseline efficientnet_b0 --n 100 --seed 0 --out plan.csv
  tinynet-study run plan.csv --data-dir /data/imagenet100 --epochs 100 -b 128 [--executor ray] [-- TRAIN FLAGS]
      (exit status 1 when a trial failed)
  tinynet-study analyze results.csv --out analysis/
  tinynet-study demo            (a complete small study on scikit-learn's digits, ~15 min on 2 CPU cores;
                                 tables and figures in output/study-demo/results, or --out FOLDER)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import List, Optional

from tinynet_core.study.tables import STUDY_BASELINES as BASELINES  # torch-free: study sample never imports timm

from ._common import (OneLineErrorParser, fraction, number, positive_int, quiet_third_party_warnings, report_error,
                      seed_int)

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
    s.add_argument("--baseline", choices=BASELINES, default="efficientnet_b0", metavar="BASELINE",
                   help=f"network to twist (default efficientnet_b0): {', '.join(BASELINES)}")
    s.add_argument("--n", type=positive_int, default=100)
    s.add_argument("--seed", type=seed_int, default=0)
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
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out plan")

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
    d.add_argument("--out", type=Path, default=Path("output/study-demo/results"),
                   help="where the tables and figures go (the committed ones: --out results/demo)")
    d.add_argument("--n", type=positive_int, default=12)
    d.add_argument("--epochs", type=positive_int, default=3)
    d.add_argument("--seed", type=seed_int, default=0)
    d.add_argument("--overwrite", action="store_true",
                   help="replace files in --out that an earlier demo did not write")
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
    from tinynet_core.guard import check_output_file
    from tinynet_core.study.sample import sample_plan
    from tinynet_core.study.tables import PLAN_COLUMNS, write_csv_atomic

    check_output_file(args.out, "--out", overwrite=getattr(args, "overwrite", False))
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
    from tinynet_core.study.tables import read_results

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
    from tinynet_core.guard import KB, check_input_file

    try:
        settings = json.loads(check_input_file(marker, DEMO_MARKER, 64 * KB).read_text() or "{}")
    except (OSError, ValueError):  # GuardError (a missing file, or a pipe in its place) is a ValueError
        return {}
    return settings if isinstance(settings, dict) else {}


DEMO_OUTPUTS = ("plan.csv", "results.csv")  # with the analysis files, what the demo copies to --out


def check_demo_out(work: Path, out: Path, overwrite: bool) -> None:
    """--out of the demo, before any work: not --work itself or one of the folders the demo writes in it, and
    its files either new or written by an earlier demo (its manifest), unless ``overwrite``."""
    from tinynet_core.guard import check_output_dir
    from timm_tinynet.study.analyze import ANALYSIS_FILES

    target, work_dir = (Path(p).expanduser().absolute().resolve() for p in (out, work))
    if target == work_dir:
        raise_error(f"--out {out} is the demo's --work folder; choose another --out (e.g. {work / 'results'})")
    for name in ("data", "trials", "analysis"):
        inner = work_dir / name
        if target == inner or inner in target.parents:
            raise_error(f"--out {out} is {'' if target == inner else 'inside '}the {name} folder of --work {work}; "
                        f"choose another --out")
    check_output_dir(out, "--out", (*DEMO_OUTPUTS, *ANALYSIS_FILES), overwrite=overwrite)


def cmd_demo(args) -> int:
    from tinynet_core.atomic import replace_atomically, write_text
    from timm_tinynet.demo_data import write_digits_folder
    from tinynet_core.guard import LOCK_NAME, folder_lock, manifest_files, record_outputs
    from timm_tinynet.study.analyze import ANALYSIS_FILES

    start = time.perf_counter()
    work = args.work
    if work.exists() and not work.is_dir():
        raise_error(f"--work {work} is a file, not a folder")
    if (work.exists() and any(p.name != LOCK_NAME for p in work.iterdir())
            and not (work / DEMO_MARKER).exists()):
        raise_error(f"{work} is not empty and was not created by tinynet-study demo; choose another --work")
    settings = {"n": args.n, "seed": args.seed, "epochs": args.epochs}
    recorded = _demo_settings(work / DEMO_MARKER)
    if recorded and recorded != settings:
        raise_error(f"{work} holds a demo with {', '.join(f'--{k} {v}' for k, v in recorded.items())}; rerun it "
                    f"with those, or choose another --work")
    check_demo_out(work, args.out, args.overwrite)
    with folder_lock(work, "--work"):
        write_text(work / DEMO_MARKER, json.dumps(settings) + "\n")
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
        copied = []
        for path in [plan, work / "results.csv", *sorted((work / "analysis").iterdir())]:
            if path.name in (*DEMO_OUTPUTS, *ANALYSIS_FILES):  # not analysis.json: it names a path on this machine
                replace_atomically(args.out / path.name, lambda tmp, source=path: shutil.copyfile(source, tmp))
                copied.append(path.name)
        for name in manifest_files(args.out) - set(copied):  # an earlier demo's output this one did not make
            if name in ANALYSIS_FILES:
                (args.out / name).unlink(missing_ok=True)
        record_outputs(args.out, copied, "tinynet-study demo")
    print(f"demo finished in {(time.perf_counter() - start) / 60:.1f} min; tables and figures in {args.out}")
    return code


def missing_extra_of(args) -> Optional[str]:
    """The extra the command needs and lacks, as one line (None when installed): analyze and demo need 'study'
    (the demo's digits too), the Ray executor 'ray'."""
    from tinynet_core.extras import missing_extra

    if args.command in ("analyze", "demo"):
        return missing_extra("study", args.command)
    if args.command == "run" and args.executor == "ray":
        return missing_extra("ray", "--executor ray")
    return None


class _UsageError(Exception):
    pass


def raise_error(message: str) -> None:
    raise _UsageError(message)


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import GuardError, exit_on_termination

    exit_on_termination()
    args = parse_args(argv)
    quiet_third_party_warnings()
    from tinynet_core.frontier import FrontierError
    from tinynet_core.study import StudyError

    needs = missing_extra_of(args)
    if needs:
        return report_error("tinynet-study", needs)
    commands = {"sample": cmd_sample, "run": cmd_run, "analyze": cmd_analyze, "demo": cmd_demo}
    try:
        return commands[args.command](args)
    except (StudyError, FrontierError, GuardError, _UsageError) as e:
        return report_error("tinynet-study", e)


if __name__ == "__main__":
    sys.exit(main())
