"""tinynet-timm-train: run timm's own train.py (or validate.py, or any script that calls timm.create_model)
with this plugin's models registered.

timm has no plugin discovery, so a model registered by a package exists only once that package is imported.
This launcher imports timm_tinynet and then runs the script as __main__ (runpy), passing the remaining arguments:

    tinynet-timm-train path/to/pytorch-image-models/train.py --data-dir /data/imagenet --model ghostnet_b ...
    torchrun --nproc_per_node 8 -m timm_tinynet.cli.timm_train train.py --model tinynet --model-kwargs c=0.3 ...
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if not argv:
        print("usage: tinynet-timm-train SCRIPT [ARGS ...]\ntinynet-timm-train: error: give the script to run (e.g. "
              "pytorch-image-models/train.py) and its arguments", file=sys.stderr)
        return 2
    script = Path(argv[0])
    if not script.is_file():
        print(f"tinynet-timm-train: error: script {script} does not exist", file=sys.stderr)
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
