"""tinynet-formula: the network the tiny formula (or another shrinking rule) gives for a FLOPs ratio c.

Answers from the analytic cost model and the formula's cached fit: it imports neither timm nor GPyTorch unless
``--verify`` builds the network, or a frontier is fitted for the first time.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any, Callable, Dict, List, Optional

from tinynet_core.guard import exit_on_termination
from tinynet_core.solve import RATIO_WHAT, fraction_problem

from ._common import OneLineErrorParser, print_stdout, quiet_third_party_warnings

BASELINES = ("efficientnet_b0", "resnet50", "ghostnet_a")
RULES = ("tiny", "giant", "r", "d", "w")
# the keys of --json (one shrink); the optional ones appear only where they apply
JSON_KEYS = ("c", "baseline", "rule", "r", "r_std", "d", "d_std", "w", "w_eq5", "img_size", "flops", "target_flops",
             "flops_rel_error", "params", "activations", "stage_repeats", "stage_channels", "arch", "create_model")
JSON_OPTIONAL_KEYS = ("r_formula", "d_formula", "extrapolating", "nudged_px", "nudged_d", "phi", "tuned_r", "tuned_w",
                      "verified")


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
        epilog="example: tinynet-formula --c 0.25   |   tinynet-formula --c 0.5 --baseline resnet50 --compare")
    parser.add_argument("--c", type=fraction_arg(RATIO_WHAT), required=True, help="FLOPs budget as a fraction of the baseline's, 0 < c < 1")
    parser.add_argument("--baseline", choices=BASELINES, default="efficientnet_b0", help="network to shrink")
    parser.add_argument("--rule", choices=RULES, default="tiny",
                        help="tiny: the paper's formula (default); giant: inverse EfficientNet compound scaling; "
                             "r, d, w: one dimension alone")
    parser.add_argument("--frontier", metavar="CSV",
                        help="frontier table for the formula (default: the shipped EfficientNet-B0 frontier)")
    parser.add_argument("--tol", type=fraction_arg(), default=0.01, help="accepted relative FLOPs error (default 0.01)")
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
    return args


def _mega(value: float) -> str:
    return f"{value / 1e9:.3f}G" if value >= 1e9 else f"{value / 1e6:.1f}M"


def _dashes(values: List[int]) -> str:
    return "-".join(str(v) for v in values)


def format_text(info: Dict[str, Any]) -> str:
    def std(key: str) -> str:
        return f"± {info[key]:.3f}" if info.get(key) is not None else ""

    lines = [
        f"{info['baseline']} shrunk to c={info['c']:g} by rule '{info['rule']}'",
        "",
        f"  resolution  r = {info['r']:<8g} {std('r_std'):<9} -> {info['img_size']} px",
        f"  depth       d = {info['d']:<8g} {std('d_std'):<9} -> blocks per stage {_dashes(info['stage_repeats'])}"
        f" ({sum(info['stage_repeats'])} in all)",
        f"  width       w = {info['w']:<8g} {'':<9} -> channels {_dashes(info['stage_channels'])}",
    ]
    if info.get("w_eq5") is not None:
        lines.append(f"                (eq. 5 closed form would give w = {info['w_eq5']:.3f})")
    lines += [
        f"  FLOPs       {_mega(info['flops'])} (target {_mega(info['target_flops'])}, {info['flops_rel_error']:+.2%})"
        + (" (verified by fvcore)" if info.get("verified") else ""),
        f"  params      {info['params'] / 1e6:.2f}M" + (" (verified)" if info.get("verified") else ""),
        f"  activations {info['activations'] / 1e6:.2f}M (conv and linear outputs per image)"
        + (" (verified by fvcore)" if info.get("verified") else ""),
    ]
    for key, words in (("phi", "compound coefficient phi"), ("tuned_r", "resolution tuned to"),
                       ("tuned_w", "width tuned to"), ("nudged_px", "input size nudged by (px)")):
        if key in info:
            lines.append(f"  {words} = {info[key]:g}")
    arch = info["arch"]
    lines += ["", "architecture:"]
    if "arch_def" in arch:
        lines.append(f"  stem {arch['stem_size']}, head {arch['num_features']}, arch_def:")
        lines += [f"    {stage}" for stage in arch["arch_def"]]
    else:
        lines += [f"  {key} = {value}" for key, value in arch.items()]
    lines += ["", "rebuild it:", f"  import timm, timm_tinynet; model = {info['create_model']}"]
    return "\n".join(lines)


def format_compare(rows: List[Dict[str, Any]], c: float, baseline: str) -> str:
    lines = [f"{baseline} at c={c:g}: every rule side by side", "",
             f"  {'rule':<6} {'r':>7} {'d':>7} {'w':>7} {'px':>5} {'FLOPs':>9} {'error':>8} {'params':>8} "
             f"{'acts':>8}"]
    for row in rows:
        if "error" in row:
            lines.append(f"  {row['rule']:<6} unreachable: {row['error']}")
            continue
        lines.append(
            f"  {row['rule']:<6} {row['r']:>7.4g} {row['d']:>7.4g} {row['w']:>7.4g} {row['img_size']:>5} "
            f"{_mega(row['flops']):>9} {row['flops_rel_error']:>+8.2%} {row['params'] / 1e6:>7.2f}M "
            f"{row['activations'] / 1e6:>7.2f}M")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    from tinynet_core.explain import describe
    from tinynet_core.solve import UnreachableTargetError, shrink

    if not args.compare:
        result = shrink(args.baseline, args.c, args.rule, tol=args.tol,
                        frontier=args.frontier if args.rule == "tiny" else None)
        info = describe(result)
        if args.verify:
            from timm_tinynet.verify import verify

            verify(result)  # raises VerificationError (a RuntimeError: a bug, not bad input) on any difference
            info["verified"] = True
        return info
    rows = []
    for rule in RULES:
        try:
            rows.append(describe(shrink(args.baseline, args.c, rule, tol=args.tol,
                                        frontier=args.frontier if rule == "tiny" else None)))
        except UnreachableTargetError as e:
            rows.append({"rule": rule, "error": str(e)})
    return {"c": args.c, "baseline": args.baseline, "compare": rows}


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
        print_stdout(format_compare(info["compare"], args.c, args.baseline))
    else:
        print_stdout(format_text(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
