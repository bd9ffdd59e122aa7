"""tinynet-models: FLOPs and parameters of every model of the paper, next to the paper's figures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import quiet_third_party_warnings, write_atomic


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tinynet-models", description=__doc__)
    parser.add_argument("--out-dir", type=Path, default=Path("results"),
                        help="folder for models.csv and models.md (default: results)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    quiet_third_party_warnings()
    from timm_tinynet.report import model_table, to_markdown

    table = model_table()
    markdown = to_markdown(table)
    print(markdown, end="")
    if not args.no_write:
        if args.out_dir.exists() and not args.out_dir.is_dir():
            print(f"tinynet-models: error: --out-dir {args.out_dir} is not a directory", file=sys.stderr)
            return 2
        args.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(args.out_dir / "models.csv", table.to_csv(index=False))
        write_atomic(args.out_dir / "models.md", markdown)
        print(f"wrote {args.out_dir / 'models.csv'} and {args.out_dir / 'models.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
