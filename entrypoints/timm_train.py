"""tinynet-timm-run (also installed as tinynet-timm-train): run timm's own train.py, validate.py or benchmark.py,
or any script that calls timm.create_model, with this plugin's models registered.

timm has no plugin discovery, so a model registered by a package exists only once that package is imported.
timm's train.py can import it itself (--device-modules timm_tinynet); validate.py and benchmark.py cannot. This
launcher imports timm_tinynet and then runs the script as __main__ (runpy), passing the remaining arguments:

    tinynet-timm-run pytorch-image-models/validate.py --data-dir /data/imagenet --model ghostnet_b --checkpoint ...
    tinynet-timm-run pytorch-image-models/benchmark.py --model tinynet --model-kwargs c=0.3 --bench inference
    torchrun --nproc_per_node 8 -m tinynet_cli.timm_train train.py --model tinynet --model-kwargs c=0.3 ...
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import List, Optional

NAMES = ("tinynet-timm-run", "tinynet-timm-train")  # the second: this launcher's first name, kept for old scripts


def invoked_name() -> str:
    """The console-script name this process was started as (tinynet-timm-run otherwise, e.g. under python -m)."""
    name = Path(sys.argv[0]).name
    return name if name in NAMES else NAMES[0]


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import MAX_SCRIPT_BYTES, GuardError, check_input_file, exit_on_termination

    exit_on_termination()
    prog = invoked_name()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv:
        print(f"{prog}: error: give the script to run and its arguments (usage: {prog} SCRIPT [ARGS ...], e.g. "
              f"pytorch-image-models/validate.py)", file=sys.stderr)
        return 2
    script = Path(argv[0])
    try:
        check_input_file(script, "script", MAX_SCRIPT_BYTES)
    except GuardError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
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
