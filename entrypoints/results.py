"""tinynet-results: regenerate the tables and figures under results/ that check this implementation against
the paper (model FLOPs/params; the tiny formula next to the released TinyNets and EfficientNet-B^-phi)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import OneLineErrorParser, quiet_third_party_warnings, write_atomic

PARTS = ("models", "formula")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineErrorParser(prog="tinynet-results", description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument("--only", choices=PARTS, action="append", help="regenerate only this part (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    quiet_third_party_warnings()
    if args.out_dir.exists() and not args.out_dir.is_dir():
        print(f"tinynet-results: error: --out-dir {args.out_dir} is not a directory", file=sys.stderr)
        return 2
    from timm_tinynet.formula import get_formula
    from timm_tinynet.frontier import load_frontier
    from timm_tinynet.report import formula_figure, formula_markdown, formula_table, model_table, to_markdown

    parts = args.only or list(PARTS)
    outputs = {}
    if "models" in parts:
        table = model_table()
        outputs["models.csv"] = table.to_csv(index=False)
        outputs["models.md"] = to_markdown(table)
        print(outputs["models.md"])
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
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in outputs.items():
        write_atomic(args.out_dir / name, text)
    if "formula" in parts:
        formula_figure(args.out_dir / "formula.png")
        outputs["formula.png"] = ""
    print("wrote " + ", ".join(str(args.out_dir / name) for name in outputs), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
