"""The layering of the packages: ``tinynet_core`` is torch-free and imports nothing of ``timm_tinynet``, and the
module import graph of the two packages has no cycles.

The graph is read statically (every ``import`` statement, function-level ones included), so an import cycle that
only a lazy import keeps from failing at import time still counts.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tinynet_core", "timm_tinynet")
HEAVY = ("torch", "torchvision", "timm", "gpytorch", "fvcore")
TORCH_FREE_EXTRAS = ("tinynet_cli.formula",)  # the formula CLI answers without importing torch

Edges = Dict[str, Dict[str, int]]  # module -> {imported module: line of the first such import}


def module_files(packages: Tuple[str, ...] = PACKAGES) -> Dict[str, Path]:
    """Dotted module name -> source file, for every .py under the packages (a package is its __init__.py)."""
    out = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _absolute(module: str, path: Path, level: int, target: Optional[str]) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    if level == 0:
        return target or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(module: str, path: Path, modules: Dict[str, Path]) -> Iterator[Tuple[str, int]]:
    """(absolute module name, line) of every import in the file, nested ones included. ``from X import y`` is the
    module ``X.y`` when the packages hold one, else ``X``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in modules else source), node.lineno


def import_graph(modules: Dict[str, Path]) -> Edges:
    """Import edges between the modules of the packages.

    Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, but that is not an edge here: every
    submodule would otherwise form a cycle with its package's __init__, which imports it back only to re-export
    its names (``timm_tinynet/__init__``, ``train/__init__``, ``baselines/__init__``), a pattern Python supports.
    An explicit import of a package (``from .baselines import get_baseline``) is an edge to its __init__.
    """
    graph: Edges = {name: {} for name in modules}
    for name, path in modules.items():
        for target, line in imports(name, path, modules):
            if target in modules and target != name:
                graph[name].setdefault(target, line)
    return graph


def _reachable(graph: Edges, start: str) -> Set[str]:
    seen: Set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _shortest_cycle(graph: Edges, start: str) -> List[str]:
    """The shortest path start -> ... -> start (breadth first); start must lie on a cycle."""
    parent: Dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph[node]:
            if nxt == start:
                path = [node]  # back to start through the parents, then reversed
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1] + [start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise ValueError(f"{start} lies on no cycle")


def cycles(graph: Edges) -> List[List[str]]:
    """One shortest cycle per group of mutually importing modules (strongly connected component)."""
    reach = {name: _reachable(graph, name) for name in graph}
    out, covered = [], set()
    for name in sorted(graph):
        if name in reach[name] and name not in covered:
            covered |= {other for other in reach[name] if name in reach[other]}
            out.append(_shortest_cycle(graph, name))
    return out


def describe(cycle: List[str], graph: Edges, modules: Dict[str, Path]) -> str:
    steps = [f"{modules[a].relative_to(ROOT)}:{graph[a][b]} imports {b}" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n    " + "\n    ".join(steps)


# --- the helpers on a made-up graph ------------------------------------------------------------------------------

def test_cycle_finder_on_a_small_graph():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_relative_imports_resolve_to_module_names():
    pkg, mod = ROOT / "p" / "__init__.py", ROOT / "p" / "q" / "m.py"
    assert _absolute("p", pkg, 1, "x") == "p.x"
    assert _absolute("p.q.m", mod, 1, None) == "p.q"
    assert _absolute("p.q.m", mod, 2, "r") == "p.r"
    assert _absolute("p.q.m", mod, 0, "torch.nn") == "torch.nn"


# --- the packages -------------------------------------------------------------------------------------------------

def test_tinynet_core_and_the_formula_cli_import_no_heavy_package():
    names = [name for name in module_files(("tinynet_core",))] + list(TORCH_FREE_EXTRAS)
    # one process; each heavy package is charged to the first module whose import brought it in
    code = f"""
import importlib, json, sys
heavy = lambda: {{m for m in sys.modules if m.split(".")[0] in {HEAVY!r}}}
blame = {{}}
for name in {names!r}:
    before = heavy()
    importlib.import_module(name)
    new = sorted({{m.split(".")[0] for m in heavy() - before}})
    if new:
        blame[name] = new
print(json.dumps(blame))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_no_import_cycles_within_the_packages():
    modules = module_files()
    graph = import_graph(modules)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(cycle, graph, modules) for cycle in found)


def test_every_import_within_the_packages_names_an_existing_module():
    # an import of a module that does not exist would otherwise be left out of the graph silently
    modules = module_files()
    missing = [f"{path.relative_to(ROOT)}:{line} imports {target}"
               for name, path in modules.items() for target, line in imports(name, path, modules)
               if target.split(".")[0] in PACKAGES and target not in modules]
    assert not missing, missing


def test_tinynet_core_imports_no_timm_tinynet_module():
    modules = module_files()
    upward = [f"{path.relative_to(ROOT)}:{line} imports {target}"
              for name, path in module_files(("tinynet_core",)).items()
              for target, line in imports(name, path, modules)
              if target.split(".")[0] in ("timm_tinynet", "tinynet_cli")]
    assert not upward, upward


def test_the_formula_cli_answers_without_torch_timm_or_gpytorch(tmp_path):
    """tinynet-formula --c 0.25 (the README's example) runs to the end on the shipped fit: no heavy import."""
    code = ("import sys; from tinynet_cli.formula import main; assert main(['--c', '0.25', '--json']) == 0; "
            "print(sorted(m for m in ('torch', 'timm', 'gpytorch', 'fvcore', 'torchvision') if m in sys.modules))")
    env = dict(os.environ, TINYNET_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
