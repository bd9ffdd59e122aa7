"""tinynet-formula: the network the tiny formula (or another shrinking rule) gives for a FLOPs ratio c, or for a
target a deployment has: latency on this machine, parameters, activations or FLOPs.

Answers from the analytic cost model and the formula's cached fit: it imports neither timm nor GPyTorch unless
``--verify`` builds the network, a latency target measures networks, or a frontier is fitted for the first time.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional

from tinynet_core.baselines import BASELINES as DESCRIBED_BASELINES
from tinynet_core.guard import exit_on_termination
from tinynet_core.solve import RATIO_WHAT, fraction_problem

from ._common import OneLineErrorParser, positive_int, print_stdout, quiet_third_party_warnings

BASELINES = tuple(DESCRIBED_BASELINES)
RULES = ("tiny", "giant", "r", "d", "w")
# the keys of --json (one shrink); the optional ones appear only where they apply
JSON_KEYS = ("c", "baseline", "rule", "r", "r_std", "d", "d_std", "w", "w_eq5", "img_size", "flops", "target_flops",
             "flops_rel_error", "params", "activations", "stage_repeats", "stage_channels", "arch", "create_model")
JSON_OPTIONAL_KEYS = ("r_formula", "d_formula", "extrapolating", "nudged_px", "nudged_d", "phi", "tuned_r", "tuned_w",
                      "verified", "target", "target_kind", "target_value", "target_metric", "target_rel_error",
                      "c_formula", "latency_ms", "latency_spread_ms", "latency_repeats", "latency_setting",
                      "frontier", "frontier_baselines", "formula_carried_over")
LATENCY_OPTIONS = ("device", "threads", "backend", "batch_size")


def fraction_arg(what: str = "") -> Callable[[str], float]:
    """argparse type: a number in (0, 1), refused with the words the Python API uses (``solve.fraction_problem``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        problem = fraction_problem(value, what)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = "fraction"
    return parse


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineErrorParser(
        prog="tinynet-formula", description=__doc__,
        epilog="examples: tinynet-formula --c 0.25   |   tinynet-formula --c 0.5 --baseline resnet50 --compare   |   "
               "tinynet-formula --target latency=8ms --threads 1   |   tinynet-formula --target params=2.5M")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--c", type=fraction_arg(RATIO_WHAT), help="FLOPs budget as a fraction of the baseline's, 0 < c < 1")
    budget.add_argument("--target", type=target_arg, metavar="KIND=VALUE",
                        help="a budget to meet instead: latency=8ms (measured here; s, ms, us), params=2.5M, "
                             "activations=1.2M, flops=100M (K, M, G)")
    parser.add_argument("--baseline", choices=BASELINES, default="efficientnet_b0", metavar="BASELINE",
                        help=f"network to shrink (default efficientnet_b0): {', '.join(BASELINES)}")
    parser.add_argument("--rule", choices=RULES, default="tiny",
                        help="tiny: the paper's formula (default); giant: inverse EfficientNet compound scaling; "
                             "r, d, w: one dimension alone")
    parser.add_argument("--frontier", metavar="CSV",
                        help="frontier table for the formula (default: the shipped EfficientNet-B0 frontier)")
    parser.add_argument("--tol", type=fraction_arg(), default=None,
                        help="accepted relative error (default 0.01; 0.05 for a latency target)")
    latency = parser.add_argument_group("latency target", "where a --target latency=... is measured")
    latency.add_argument("--device", choices=("cpu", "cuda"), help="default cpu")
    latency.add_argument("--threads", type=positive_int, help="intra-op threads (default 1)")
    latency.add_argument("--backend", choices=("torch", "onnxruntime"), help="default torch")
    latency.add_argument("-b", "--batch-size", type=positive_int, help="images per run (default 1)")
    parser.add_argument("--compare", action="store_true", help="tiny vs giant vs single-dimension rules side by side")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--verify", action="store_true",
                        help="also build the network with timm and count its FLOPs and activations with fvcore and "
                             "its parameters from the module: each must equal the cost model's (a few seconds)")
    args = parser.parse_args(argv)
    if args.frontier is not None and args.rule != "tiny" and not args.compare:
        parser.error(f"--frontier only applies to --rule tiny, not --rule {args.rule}")
    if args.verify and args.compare:
        parser.error("--verify checks one network; it does not apply to --compare")
    given = [f"--{name.replace('_', '-')}" for name in LATENCY_OPTIONS if getattr(args, name) is not None]
    if given and (args.target is None or args.target.kind != "latency"):
        parser.error(f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to a latency target "
                     f"(--target latency=8ms)")
    return args


def target_arg(text: str):
    """argparse type: a target such as latency=8ms, refused with the words the Python API uses."""
    from tinynet_core.targets import TargetError, parse_target

    try:
        return parse_target(text)
    except TargetError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


target_arg.__name__ = "target"


def _mega(value: float) -> str:
    return f"{value / 1e9:.3f}G" if value >= 1e9 else f"{value / 1e6:.1f}M"


def _dashes(values: List[int]) -> str:
    return "-".join(str(v) for v in values)


def format_text(info: Dict[str, Any]) -> str:
    def std(key: str) -> str:
        return f"± {info[key]:.3f}" if info.get(key) is not None else ""

    budget = f"{info['target']} (FLOPs ratio c={info['c']:.4g})" if info.get("target") else f"c={info['c']:g}"
    lines = [
        f"{info['baseline']} shrunk to {budget} by rule '{info['rule']}'",
        "",
        f"  resolution  r = {info['r']:<8g} {std('r_std'):<9} -> {info['img_size']} px",
        f"  depth       d = {info['d']:<8g} {std('d_std'):<9} -> blocks per stage {_dashes(info['stage_repeats'])}"
        f" ({sum(info['stage_repeats'])} in all)",
        f"  width       w = {info['w']:<8g} {'':<9} -> channels {_dashes(info['stage_channels'])}",
    ]
    if info.get("w_eq5") is not None:
        lines.append(f"                (eq. 5 closed form would give w = {info['w_eq5']:.3f})")
    flops_note = (f"{info['c']:.4g} C0" if info.get("target") else
                  f"target {_mega(info['target_flops'])}, {info['flops_rel_error']:+.2%}")
    lines += [
        f"  FLOPs       {_mega(info['flops'])} ({flops_note})" + (" (verified by fvcore)" if info.get("verified") else ""),
        f"  params      {info['params'] / 1e6:.2f}M" + (" (verified)" if info.get("verified") else ""),
        f"  activations {info['activations'] / 1e6:.2f}M (conv and linear outputs per image)"
        + (" (verified by fvcore)" if info.get("verified") else ""),
    ]
    if info.get("target_kind") == "latency":
        lines.append(f"  latency     {info['latency_ms']:.3g} ms ± {info['latency_spread_ms']:.2g} per batch, measured "
                     f"here (median of {info['latency_repeats']} runs; {info['latency_setting']})")
    if info.get("target"):
        metric = (f"{info['target_metric'] * 1e3:.3g} ms" if info["target_kind"] == "latency"
                  else f"{info['target_metric'] / 1e6:.3f}M")
        lines.append(f"  target      {info['target']}: {metric} ({info['target_rel_error']:+.2%})")
    for key, words in (("phi", "compound coefficient phi"), ("tuned_r", "resolution tuned to"),
                       ("tuned_w", "width tuned to"), ("nudged_px", "input size nudged by (px)")):
        if key in info:
            lines.append(f"  {words} = {info[key]:g}")
    if "frontier_baselines" in info:
        from tinynet_core.explain import provenance_words

        words = provenance_words(info["baseline"], info)
        lines += [f"  formula     {words[0]}"] + [f"              {line}" for line in words[1:]]
    arch = info["arch"]
    lines += ["", "architecture:"]
    if "arch_def" in arch:
        lines.append(f"  stem {arch['stem_size']}, head {arch['num_features']}, arch_def:")
        lines += [f"    {stage}" for stage in arch["arch_def"]]
    else:
        lines += [f"  {key} = {value}" for key, value in arch.items()]
    lines += ["", "rebuild it:", f"  import timm, timm_tinynet; model = {info['create_model']}"]
    return "\n".join(lines)


def format_compare(info: Dict[str, Any]) -> str:
    budget = info.get("target") or f"c={info['c']:g}"
    latency = info.get("target", "").startswith("latency")
    lines = [f"{info['baseline']} at {budget}: every rule side by side", "",
             f"  {'rule':<6} {'r':>7} {'d':>7} {'w':>7} {'px':>5} {'FLOPs':>9} {'error':>8} {'params':>8} "
             f"{'acts':>8}" + (f" {'latency':>10}" if latency else "")]
    for row in info["compare"]:
        if "error" in row:
            lines.append(f"  {row['rule']:<6} unreachable: {row['error']}")
            continue
        error = row["target_rel_error"] if "target_rel_error" in row else row["flops_rel_error"]
        lines.append(
            f"  {row['rule']:<6} {row['r']:>7.4g} {row['d']:>7.4g} {row['w']:>7.4g} {row['img_size']:>5} "
            f"{_mega(row['flops']):>9} {error:>+8.2%} {row['params'] / 1e6:>7.2f}M "
            f"{row['activations'] / 1e6:>7.2f}M" + (f" {row['latency_ms']:>7.3g} ms" if latency else ""))
    if info.get("target"):
        lines += ["", f"  error: each network's {info['target'].split('=')[0]} against {info['target']}"]
    return "\n".join(lines)


def make_meter(args: argparse.Namespace):
    """The latency meter a latency target is measured with (None for other budgets: nothing is measured)."""
    if args.target is None or args.target.kind != "latency":
        return None
    from timm_tinynet.latency import LatencyMeter

    return LatencyMeter(device=args.device or "cpu", backend=args.backend or "torch", threads=args.threads or 1,
                        batch_size=args.batch_size or 1)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    from tinynet_core.budget import AUTO_TOLERANCE, shrink_for
    from tinynet_core.explain import describe, formula_provenance
    from tinynet_core.solve import UnreachableTargetError

    meter = make_meter(args)
    tol = AUTO_TOLERANCE if args.tol is None else args.tol

    def solve(rule: str):
        result = shrink_for(args.baseline, args.c, args.target, rule, tol,
                            args.frontier if rule == "tiny" else None, meter)
        info = describe(result)
        if meter is not None:
            info["latency_setting"] = meter.describe()
        if rule == "tiny":
            info.update(formula_provenance(args.baseline, args.frontier))
        return result, info

    if not args.compare:
        result, info = solve(args.rule)
        if args.verify:
            from timm_tinynet.verify import verify

            verify(result)  # raises VerificationError (a RuntimeError: a bug, not bad input) on any difference
            info["verified"] = True
        return info
    from tinynet_core.targets import TargetError

    rows = []
    for rule in RULES:
        try:
            rows.append(solve(rule)[1])
        except (UnreachableTargetError, TargetError) as e:
            rows.append({"rule": rule, "error": str(e)})
    budget = {"c": args.c} if args.target is None else {"target": str(args.target)}
    return {**budget, "baseline": args.baseline, "compare": rows}


def main(argv: Optional[List[str]] = None) -> int:
    exit_on_termination()
    args = parse_args(argv)
    quiet_third_party_warnings()
    from tinynet_core.formula import ExtrapolationWarning
    from tinynet_core.frontier import FrontierError, FrontierWarning

    shown = (FrontierWarning, ExtrapolationWarning)
    with warnings.catch_warnings(record=True) as caught:
        for category in shown:
            warnings.simplefilter("always", category)
        try:
            info = run(args)
        except (FrontierError, ValueError) as e:  # GuardError and UnreachableTargetError are ValueErrors
            print(f"tinynet-formula: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
    for warning in caught:
        if issubclass(warning.category, shown):
            print(f"tinynet-formula: warning: {warning.message}", file=sys.stderr)
    if args.json:
        print_stdout(json.dumps(info, indent=2))
    elif args.compare:
        print_stdout(format_compare(info))
    else:
        print_stdout(format_text(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
