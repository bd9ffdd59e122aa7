"""timm's own scripts see this plugin's models: train.py through --device-modules timm_tinynet or the launcher,
validate.py and benchmark.py through the launcher (tinynet-timm-run, also installed as tinynet-timm-train).

The tests that run timm's real scripts need a pytorch-image-models source checkout named by ``TIMM_SOURCE`` (the
timm package on PyPI, wheel or sdist, ships no train.py); without one they are skipped and say so."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from timm_tinynet.train import load_checkpoint

SCRIPTS = ("train.py", "validate.py", "benchmark.py")

STAND_IN = '''
import argparse, timm
parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--num-classes", type=int, default=10)
args = parser.parse_args()
model = timm.create_model(args.model, num_classes=args.num_classes)
print("created", args.model, model.pretrained_cfg["input_size"])
'''


def test_launcher_registers_the_plugin_before_the_script_runs(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(STAND_IN)
    plain = subprocess.run([sys.executable, str(script), "--model", "ghostnet_b"], capture_output=True, text=True)
    assert plain.returncode != 0 and "Unknown model" in plain.stderr  # why the launcher exists
    launched = subprocess.run([sys.executable, "-m", "tinynet_cli.timm_train", str(script), "--model",
                               "ghostnet_b"], capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr
    assert "created ghostnet_b (3, 202, 202)" in launched.stdout


@pytest.mark.parametrize("name", ["tinynet-timm-run", "tinynet-timm-train"])
def test_both_console_scripts_launch_and_speak_as_themselves(tmp_path, name):
    script = tmp_path / "validate.py"
    script.write_text(STAND_IN)
    command = Path(sys.executable).parent / name
    launched = subprocess.run([str(command), str(script), "--model", "tinynet_e"], capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr
    assert "created tinynet_e (3, 106, 106)" in launched.stdout
    missing = subprocess.run([str(command), str(tmp_path / "nope.py")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith(f"{name}: error: script ")


def test_launcher_reports_a_missing_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinynet_cli.timm_train", str(tmp_path / "train.py")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_launcher_without_a_script_says_what_it_needs(capsys):
    from tinynet_cli.timm_train import main

    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1].startswith("tinynet-timm-run: error: give the script to run")


# ---- timm's real scripts, from a source checkout ----------------------------------------------------------------

@pytest.fixture(scope="module")
def timm_source() -> Path:
    source = os.environ.get("TIMM_SOURCE")
    if not source:
        pytest.skip("TIMM_SOURCE is not set: point it at a pytorch-image-models source checkout (the folder with "
                    "train.py, validate.py and benchmark.py; the timm package on PyPI ships none of them) to run "
                    "timm's own scripts with this plugin's models")
    missing = [name for name in SCRIPTS if not (Path(source) / name).is_file()]
    if missing:
        pytest.skip(f"TIMM_SOURCE={source} has no {', '.join(missing)}: point it at a pytorch-image-models source "
                    f"checkout")
    return Path(source)


TINY = ["--model-kwargs", "r=0.3", "d=0.3", "w=0.3"]
ON_CPU = ["--device", "cpu", "--no-prefetcher", "-j", "0"]


def launch(script: Path, *argv: str) -> subprocess.CompletedProcess:
    """``tinynet-timm-run SCRIPT ARGV...``."""
    return subprocess.run([sys.executable, "-m", "tinynet_cli.timm_train", str(script), *argv],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def timm_trained(timm_source, tmp_path_factory, make_image_folder):
    """One epoch of timm's train.py on a tiny formula-style tinynet, through the launcher: (data, run folder)."""
    root = tmp_path_factory.mktemp("timm-train")
    data = make_image_folder(root / "data", n_train=16, n_val=8)
    result = launch(timm_source / "train.py", "--data-dir", str(data), "--model", "tinynet", *TINY, "--num-classes",
                    "3", *ON_CPU, "-b", "8", "--epochs", "1", "--output", str(root / "runs"), "--experiment", "t")
    assert result.returncode == 0, result.stderr[-3000:]
    return data, root / "runs" / "t"


def _rows(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_timm_train_py_trains_a_plugin_model_through_the_launcher(timm_trained):
    _, run = timm_trained
    assert [row["epoch"] for row in _rows(run / "summary.csv")] == ["0"]
    checkpoint = load_checkpoint(run / "model_best.pth.tar")  # timm's own checkpoint format loads here too
    assert checkpoint["arch"] == "tinynet" and checkpoint["args"]["model_kwargs"] == {"r": 0.3, "d": 0.3, "w": 0.3}
    assert checkpoint["state_dict"]["classifier.weight"].shape[0] == 3


@pytest.mark.slow
def test_timm_train_py_imports_the_plugin_itself_with_device_modules(timm_source, tmp_path, make_image_folder):
    data = make_image_folder(tmp_path / "data", n_train=16, n_val=8)
    result = subprocess.run([sys.executable, str(timm_source / "train.py"), "--device-modules", "timm_tinynet",
                             "--data-dir", str(data), "--model", "ghostnet_tiny", *TINY, "--num-classes", "3",
                             *ON_CPU, "-b", "8", "--epochs", "1", "--output", str(tmp_path / "runs"),
                             "--experiment", "g"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [row["epoch"] for row in _rows(tmp_path / "runs" / "g" / "summary.csv")] == ["0"]


@pytest.mark.slow
def test_timm_validate_py_scores_the_checkpoint_as_training_did(timm_source, timm_trained, tmp_path):
    data, run = timm_trained
    results = tmp_path / "validate.csv"
    result = launch(timm_source / "validate.py", "--data-dir", str(data), "--split", "validation", "--model",
                    "tinynet", *TINY, "--num-classes", "3", *ON_CPU, "-b", "8", "--checkpoint",
                    str(run / "model_best.pth.tar"), "--results-file", str(results))
    assert result.returncode == 0, result.stderr[-3000:]
    scored = _rows(results)[0]
    trained = _rows(run / "summary.csv")[0]
    assert scored["model"] == "tinynet" and scored["img_size"] == "67"
    assert float(scored["top1"]) == pytest.approx(float(trained["eval_top1"]), abs=1e-3)
    # tinynet-validate reads timm's checkpoint (its recorded model and kwargs) and agrees
    ours = tmp_path / "ours.json"
    from tinynet_cli.validate import main as validate_main

    assert validate_main(["--data-dir", str(data), "--checkpoint", str(run / "model_best.pth.tar"), "-j", "0",
                          "--results-file", str(ours)]) == 0
    import json

    assert json.loads(ours.read_text())["top1"] == pytest.approx(float(scored["top1"]), abs=1e-3)


@pytest.mark.slow
def test_timm_benchmark_py_times_a_formula_network_through_the_launcher(timm_source, tmp_path):
    results = tmp_path / "bench.csv"
    # benchmark.py logs every num_bench_iter // 5 steps, so it needs at least 5 (fewer divide by zero)
    result = launch(timm_source / "benchmark.py", "--model", "tinynet", "--model-kwargs", "c=0.3", "--device", "cpu",
                    "--bench", "inference", "-b", "2", "--num-warm-iter", "1", "--num-bench-iter", "5",
                    "--results-file", str(results))
    assert result.returncode == 0, result.stderr[-3000:]
    row = _rows(results)[0]
    assert row["model"] == "tinynet" and row["infer_img_size"] == "180"  # c=0.3's own input size
    assert float(row["infer_samples_per_sec"]) > 0
