"""tinynet-train / tinynet-validate on a small generated image-folder dataset (CPU)."""
import csv
import signal
import subprocess
import sys

import pytest
import torch
import yaml

from tinynet_cli.train import main as train_main
from tinynet_cli.validate import main as validate_main
from timm_tinynet.train import RECIPES, apply_recipe, default_recipe_for, load_checkpoint, scaled_lr


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_image_folder):
    return make_image_folder(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
def test_override_recipe_learns(data, tmp_path, tiny):
    run = tiny.train(data, tmp_path, "learn", "--epochs", "6")
    rows = tiny.summary(run)
    assert [int(r["epoch"]) for r in rows] == list(range(6))
    assert float(rows[-1]["eval_top1"]) >= 80.0  # chance is 33 %
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) / 2
    for name in ("last.pth.tar", "model_best.pth.tar", "args.yaml", "summary.csv"):
        assert (run / name).is_file()
    assert not list(run.glob(".*tmp"))  # atomic writes leave no temporary files


@pytest.mark.slow
def test_default_recipe_runs_one_epoch_and_records_its_values(data, tmp_path, tiny):
    code = train_main(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "default",
                       "--model", "tinynet_e", "-b", "16", "-j", "0", "--epochs", "1"])
    assert code == 0
    recorded = yaml.safe_load((tmp_path / "default" / "args.yaml").read_text())
    expected = dict(RECIPES["tinynet"], epochs=1)
    for key, value in expected.items():
        assert recorded[key] == value, key
    assert recorded["recipe"] == "tinynet"
    assert recorded["lr"] == pytest.approx(0.048 * 16 / 1024)
    assert recorded["input_size"] == [3, 106, 106]  # tinynet_e's own resolution
    row = tiny.summary(tmp_path / "default")[0]
    assert row["ema_eval_top1"] != "" and float(row["lr"]) > 0


def test_recipes_fill_only_unset_options():
    options = apply_recipe({"opt": "adamw", "lr": None, "epochs": 5, "weight_decay": None}, "tinynet")
    assert options["opt"] == "adamw" and options["epochs"] == 5
    assert options["weight_decay"] == 1e-5 and options["decay_rate"] == 0.97 and options["opt_eps"] == 1e-3
    assert apply_recipe({}, "resnet")["decay_epochs"] == 30
    assert scaled_lr(0.048, 1024, 256) == pytest.approx(0.012)
    with pytest.raises(ValueError, match="unknown recipe"):
        apply_recipe({}, "vit")


def test_recipe_follows_the_model_family():
    import timm

    import timm_tinynet  # noqa: F401

    assert default_recipe_for(timm.create_model("resnet50_tiny", r=0.3, d=0.3, w=0.25)) == "resnet"
    assert default_recipe_for(timm.create_model("tinynet_e")) == "tinynet"
    assert default_recipe_for(timm.create_model("ghostnet_d")) == "tinynet"


@pytest.mark.slow
def test_validate_reads_the_checkpoint(data, tmp_path, capsys, tiny):
    run = tiny.train(data, tmp_path, "val", "--epochs", "2")
    last = tiny.summary(run)[-1]
    capsys.readouterr()
    results = tmp_path / "val.json"
    assert validate_main(["--data-dir", str(data), "--checkpoint", str(run / "last.pth.tar"), "-j", "0",
                          "--results-file", str(results)]) == 0
    import json

    result = json.loads(results.read_text())
    # by default the weights the checkpoint names as the better of the two on the validation set
    chosen = load_checkpoint(run / "last.pth.tar")["eval_weights"]
    best = max(float(last["eval_top1"]), float(last["ema_eval_top1"]))
    assert float(last["ema_eval_top1" if chosen == "ema" else "eval_top1"]) == best
    assert result["top1"] == pytest.approx(best, abs=1e-3)
    assert ("(EMA weights)" if chosen == "ema" else "(model weights)") in capsys.readouterr().out
    assert validate_main(["--data-dir", str(data), "--checkpoint", str(run / "last.pth.tar"), "-j", "0",
                          "--no-ema", "--results-file", str(tmp_path / "raw.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "raw.csv")))
    assert float(rows[0]["top1"]) == pytest.approx(float(last["eval_top1"]), abs=1e-3)


@pytest.mark.slow
def test_torchrun_two_processes_gloo(data, tmp_path, tiny):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "tinynet_cli.train", "--data-dir", str(data), "--output", str(tmp_path), "--experiment", "ddp",
           *tiny.SMALL[:-4], "-b", "8", "-j", "0", *tiny.FAST, "--epochs", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = tiny.summary(tmp_path / "ddp")
    assert len(rows) == 2
    recorded = yaml.safe_load((tmp_path / "ddp" / "args.yaml").read_text())
    assert recorded["global_batch_size"] == 16
    assert float(rows[-1]["eval_top1"]) > 0


@pytest.mark.slow
def test_sigkill_loses_at_most_the_epoch_in_progress(data, tmp_path, tiny):
    proc, run = tiny.launch_until_first_epoch(data, tmp_path, "killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = tiny.summary(run)
    assert done, "no epoch finished before the kill"
    checkpoint = torch.load(run / "last.pth.tar", map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == int(done[-1]["epoch"])  # the checkpoint and the summary agree
    next_epoch = checkpoint["epoch"] + 1
    assert train_main(["--data-dir", str(data), "--resume", str(run / "last.pth.tar"), *tiny.SMALL, *tiny.FAST,
                       "--epochs", str(next_epoch + 1)]) == 0
    rows = tiny.summary(run)
    assert [int(r["epoch"]) for r in rows] == list(range(next_epoch + 1))


def test_missing_data_dir(tmp_path, tiny, one_line_error):
    code = train_main(["--data-dir", str(tmp_path / "nope"), *tiny.SMALL, "--epochs", "1"])
    assert "does not exist" in one_line_error(code)


def test_unknown_model(data, tmp_path, one_line_error):
    code = train_main(["--data-dir", str(data), "--model", "resnet9000", "--output", str(tmp_path), "--epochs", "1"])
    assert "unknown model 'resnet9000'" in one_line_error(code)


def test_corrupt_checkpoint(data, tmp_path, tiny, one_line_error):
    bad = tmp_path / "last.pth.tar"
    bad.write_bytes(b"not a checkpoint at all")
    code = train_main(["--data-dir", str(data), "--resume", str(bad), *tiny.SMALL, "--epochs", "2"])
    assert "cannot be read" in one_line_error(code)
    code = validate_main(["--data-dir", str(data), "--checkpoint", str(bad), "--model", "tinynet"])
    assert "cannot be read" in one_line_error(code, "tinynet-validate")


def test_one_class_dataset(tmp_path, make_image_folder, tiny, one_line_error):
    root = make_image_folder(tmp_path / "one", n_train=4, n_val=2, classes=1)
    code = train_main(["--data-dir", str(root), *tiny.SMALL, "--output", str(tmp_path), "--epochs", "1"])
    assert "at least 2" in one_line_error(code)


def test_no_traceback_from_the_console_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinynet_cli.train", "--data-dir", str(tmp_path / "x"),
                             "--model", "tinynet_e"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("tinynet-train: error:")
