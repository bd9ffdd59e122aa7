"""The optional parts of the install, by use, and one line naming the pip command when a part is missing.

``pip install timm-tinynet`` brings what the models and the formula need. The extras (setup.cfg's
``extras_require``, kept equal to ``EXTRAS`` by a test) add:

* ``study``: the Rubik's-cube study's analysis and figures (pymoo, matplotlib, scikit-learn's digits, scipy);
* ``deploy``: ONNX export and timing, class activation maps (onnx, onnxruntime, scikit-image, matplotlib);
* ``ray``: the study's Ray executor;
* ``all``: every one of them.

A command checks for the extra it needs before doing any work.
"""
from __future__ import annotations

import importlib.util
from typing import Dict, List, Optional, Sequence

PACKAGE = "timm-tinynet"

# extra -> {distribution: the module it installs}
EXTRAS: Dict[str, Dict[str, str]] = {
    "study": {"pymoo": "pymoo", "matplotlib": "matplotlib", "scikit-learn": "sklearn", "scipy": "scipy"},
    "deploy": {"onnx": "onnx", "onnxruntime": "onnxruntime", "scikit-image": "skimage", "matplotlib": "matplotlib"},
    "ray": {"ray": "ray"},
}


def is_installed(module: str) -> bool:
    """Whether ``module`` (a top-level name) can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked or half-removed module
        return False


def missing_extra(extra: str, needed_for: str, modules: Sequence[str] = ()) -> Optional[str]:
    """None when ``modules`` (default: every module the extra brings) are installed, else one line: what needs the
    extra, which modules are missing, and the pip command that installs them."""
    distributions = {module: name for name, module in EXTRAS[extra].items()}
    wanted = list(modules) or list(dict.fromkeys(EXTRAS[extra].values()))
    missing: List[str] = [distributions.get(m, m) for m in wanted if not is_installed(m)]
    if not missing:
        return None
    names = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    verb = "is" if len(missing) == 1 else "are"
    return f"{needed_for} needs the '{extra}' extra ({names} {verb} not installed): pip install '{PACKAGE}[{extra}]'"

