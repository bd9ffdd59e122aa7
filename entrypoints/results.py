"""tinynet-results: regenerate the tables and figures that check this implementation against the paper (model
FLOPs/params; the tiny formula next to the released TinyNets and EfficientNet-B^-phi; every baseline shrunk to
c = 0.5 and 0.25; GhostNet-B/C/D under two head rules against Table 6).

By default they go to output/results, outside the tracked files; the committed copies under results/ are
regenerated on purpose with ``--out-dir results``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from tinynet_core.guard import GuardError, check_output_dir, exit_on_termination, record_outputs

from ._common import OneLineErrorParser, quiet_third_party_warnings, report_error, write_atomic

PROG = "tinynet-results"
PARTS = ("models", "formula", "baselines", "ghostnet")
DEFAULT_OUT_DIR = Path("output") / "results"
# the files each part writes (the figure after the tables)
PART_FILES: Dict[str, tuple] = {
    "models": ("models.csv", "models.md"),
    "formula": ("formula.csv", "formula.md", "formula_loo.csv", "frontier_efficientnet_b0.csv", "formula.png"),
    "baselines": ("baselines.csv", "baselines.md"),
    "ghostnet": ("ghostnet_head_rules.csv", "ghostnet_head_rules.md"),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help=f"output folder (default: {DEFAULT_OUT_DIR}; the committed copies: --out-dir results)")
    parser.add_argument("--only", choices=PARTS, action="append", help="regenerate only this part (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in --out-dir that this command did not write (its own earlier files, "
                             "listed in the folder's .tinynet-outputs, are replaced without it)")
    return parser.parse_args(argv)


def output_names(parts: List[str]) -> List[str]:
    return [name for part in PARTS if part in parts for name in PART_FILES[part]]


def main(argv: Optional[List[str]] = None) -> int:
    exit_on_termination()
    args = parse_args(argv)
    quiet_third_party_warnings()
    parts = args.only or list(PARTS)
    names = output_names(parts)
    if "formula" in parts and not args.no_write:
        from tinynet_core.extras import missing_extra

        needs = missing_extra("study", "the figure formula.png", ("matplotlib",))
        if needs:
            return report_error(PROG, f"{needs} (or --no-write, or --only models)")
    if not args.no_write:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            return report_error(PROG, f"--out-dir {args.out_dir} is not a directory")
        try:
            check_output_dir(args.out_dir, "--out-dir", names, overwrite=args.overwrite)
        except GuardError as e:
            return report_error(PROG, e)
    from tinynet_core.formula import get_formula
    from tinynet_core.frontier import load_frontier
    from timm_tinynet.report import (baseline_markdown, baseline_table, formula_figure, formula_markdown,
                                     formula_table, ghostnet_head_rule_table, model_table, to_markdown)

    outputs = {}
    tables = {"models": (model_table, to_markdown, "models"),
              "baselines": (baseline_table, baseline_markdown, "baselines"),
              "ghostnet": (ghostnet_head_rule_table, to_markdown, "ghostnet_head_rules")}
    for part in parts:
        if part in tables:  # one table, as CSV and as Markdown
            make, markdown, stem = tables[part]
            table = make()
            outputs[f"{stem}.csv"] = table.to_csv(index=False)
            outputs[f"{stem}.md"] = markdown(table)
            print(outputs[f"{stem}.md"])
    if "formula" in parts:
        table = formula_table()
        loo = get_formula().leave_one_out().round(4)
        outputs["formula.csv"] = table.to_csv(index=False)
        outputs["formula.md"] = formula_markdown(table)
        outputs["formula_loo.csv"] = loo.to_csv(index=False)
        outputs["frontier_efficientnet_b0.csv"] = load_frontier().to_csv(index=False)
        print(outputs["formula.md"])
        print(to_markdown(loo))
    if args.no_write:
        return 0
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in outputs.items():
            write_atomic(args.out_dir / name, text)
        if "formula" in parts:
            formula_figure(args.out_dir / "formula.png")
        record_outputs(args.out_dir, names, PROG)
    except OSError as e:
        return report_error(PROG, f"cannot write --out-dir {args.out_dir}: {e.strerror or e}")
    print("wrote " + ", ".join(str(args.out_dir / name) for name in names), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
