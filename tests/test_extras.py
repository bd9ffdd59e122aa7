"""Packaging by use: the core install is what the models and the formula need, and a command that needs an extra
it lacks exits 2 before any work, with one line naming the pip command.

A missing package is simulated in a subprocess by ``sys.modules[name] = None``: ``import name`` then fails and
``importlib.util.find_spec(name)`` finds nothing, as when it is not installed. (The CI's core-only virtual
environment checks the real thing.)"""
import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinynet_core.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
EXTRA_MODULES = sorted({module for modules in EXTRAS.values() for module in modules.values()})


def _names(requirements: str):
    return sorted(re.split(r"[<>=!~\[;\s]", line.strip())[0].lower()
                  for line in requirements.splitlines() if line.strip() and not line.strip().startswith("#"))


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return _names(cfg["options"]["install_requires"]), {
        extra: _names(text) for extra, text in cfg["options.extras_require"].items()}


def test_setup_cfg_has_the_extras_the_commands_name():
    core, extras = _setup_cfg()
    for extra, distributions in EXTRAS.items():
        assert extras[extra] == sorted(distributions), extra  # so the pip line installs what was missing
    assert extras["all"] == sorted({d for distributions in EXTRAS.values() for d in distributions})
    assert extras["dev"] == ["pytest"]
    assert not set(core) & set(extras["all"])  # the core pulls in no extra's package
    assert {"torch", "timm", "gpytorch", "pandas"} <= set(core)


def run_without(missing, module, *argv):
    """``python -m module argv...`` as if the packages ``missing`` were not installed."""
    code = (f"import runpy, sys\nfor name in {list(missing)!r}: sys.modules[name] = None\n"
            f"sys.argv = {[module, *argv]!r}\nrunpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)


DEPLOY = "pip install 'timm-tinynet[deploy]'"
STUDY = "pip install 'timm-tinynet[study]'"


@pytest.mark.parametrize("missing,module,argv,line", [
    (["onnxruntime"], "tinynet_cli.export", ["--model", "tinynet_e", "--out", "{tmp}/e.onnx"],
     f"tinynet-export: error: --format onnx needs the 'deploy' extra (onnxruntime is not installed): {DEPLOY}"),
    (["onnx", "onnxruntime"], "tinynet_cli.bench", ["--models", "tinynet_e", "--backend", "onnxruntime",
                                                    "--out", "{tmp}/bench.csv"],
     f"tinynet-bench: error: --backend onnxruntime needs the 'deploy' extra (onnx and onnxruntime are not "
     f"installed): {DEPLOY}"),
    (["skimage"], "tinynet_cli.cam", ["--model", "tinynet_e", "--skimage", "chelsea", "--out", "{tmp}/cam.png"],
     f"tinynet-cam: error: a class activation map of a scikit-image sample needs the 'deploy' extra (scikit-image "
     f"is not installed): {DEPLOY}"),
    (["onnxruntime"], "tinynet_cli.formula", ["--target", "latency=8ms", "--backend", "onnxruntime"],
     f"tinynet-formula: error: backend='onnxruntime' needs the 'deploy' extra (onnxruntime is not installed): "
     f"{DEPLOY}"),
    (["matplotlib"], "tinynet_cli.results", ["--out-dir", "{tmp}/results"],
     f"tinynet-results: error: the figure formula.png needs the 'study' extra (matplotlib is not installed): {STUDY}"
     f" (or --no-write, or --only models)"),
    (["pymoo", "scipy"], "tinynet_cli.study", ["analyze", "{tmp}/results.csv", "--out", "{tmp}/analysis"],
     f"tinynet-study: error: analyze needs the 'study' extra (pymoo and scipy are not installed): {STUDY}"),
    (["sklearn"], "tinynet_cli.study", ["demo", "--work", "{tmp}/demo", "--out", "{tmp}/demo-results"],
     f"tinynet-study: error: demo needs the 'study' extra (scikit-learn is not installed): {STUDY}"),
    (["sklearn"], "timm_tinynet.demo_data", ["{tmp}/digits"],
     f"error: the digits dataset needs the 'study' extra (scikit-learn is not installed): {STUDY}"),
], ids=["export-onnx", "bench-onnxruntime", "cam-skimage", "formula-latency-onnxruntime", "results-figure",
        "study-analyze", "study-demo", "demo-data"])
def test_a_missing_extra_is_one_line_with_the_pip_command(tmp_path, missing, module, argv, line):
    result = run_without(missing, module, *[a.format(tmp=tmp_path) for a in argv])
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [line]
    assert list(tmp_path.iterdir()) == []  # refused before any work: nothing written


@pytest.mark.slow
def test_the_core_alone_builds_a_formula_model_and_runs_what_needs_no_extra(tmp_path):
    """With every extra's package missing: the models register, a formula network builds, the training and
    evaluation commands import, and the commands that need no extra run (TorchScript export)."""
    code = ("import timm, timm_tinynet\nm = timm.create_model('tinynet', c=0.3)\nprint(m.pretrained_cfg['input_size'])\n"
            "import timm_tinynet.train, tinynet_cli.train, tinynet_cli.validate, tinynet_cli.timm_train\n")
    blocked = f"import sys\nfor name in {EXTRA_MODULES!r}: sys.modules[name] = None\n"
    result = subprocess.run([sys.executable, "-c", blocked + code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "(3, 180, 180)"
    exported = run_without(EXTRA_MODULES, "tinynet_cli.export", "--model", "tinynet_e", "--format", "torchscript",
                           "--out", str(tmp_path / "e.pt"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "e.pt").is_file()


def test_ci_installs_exactly_as_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Install and test"):readme.index("## Quick start")]
    install, test = re.search(r"```bash\n(.*?)\n(.*?)\n```", section, re.S).groups()
    assert "[all,dev]" in install
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert any(line.startswith(install) for line in ci), install  # the README's line, verbatim
    assert test in ci
