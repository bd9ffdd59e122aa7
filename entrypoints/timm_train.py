"""tinynet-timm-train: run timm's own train.py (or validate.py, or any script that calls timm.create_model)
with this plugin's models registered.

timm has no plugin discovery, so a model registered by a package exists only once that package is imported.
This launcher imports timm_tinynet and then runs the script as __main__ (runpy), passing the remaining arguments:

    tinynet-timm-train path/to/pytorch-image-models/train.py --data-dir /data/imagenet --model ghostnet_b ...
    torchrun --nproc_per_node 8 -m tinynet_cli.timm_train train.py --model tinynet --model-kwargs c=0.3 ...
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import MAX_SCRIPT_BYTES, GuardError, check_input_file, exit_on_termination

    exit_on_termination()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv:
        print("tinynet-timm-train: error: give the script to run and its arguments (usage: tinynet-timm-train "
              "SCRIPT [ARGS ...], e.g. pytorch-image-models/train.py)", file=sys.stderr)
        return 2
    script = Path(argv[0])
    try:
        check_input_file(script, "script", MAX_SCRIPT_BYTES)
    except GuardError as e:
        print(f"tinynet-timm-train: error: {e}", file=sys.stderr)
        return 2
    import timm_tinynet  # noqa: F401  (registers the models before the script creates one)

    sys.argv = [str(script)] + argv[1:]
    sys.path.insert(0, str(script.resolve().parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
