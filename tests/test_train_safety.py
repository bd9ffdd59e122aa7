"""tinynet-train on any machine: checksummed checkpoints, one writer per run folder, resumes that never destroy newer
history, unreadable images named, SIGTERM cleaned up, and short runs that learn."""
import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from bad_inputs_train import flip_tensor_bytes
from PIL import Image

from tinynet_cli.train import main as train_main
from tinynet_cli.train import parse_args
from tinynet_cli.validate import main as validate_main
from tinynet_core.guard import GuardError, folder_lock
from timm_tinynet.train import TrainingError, open_session
from timm_tinynet.train.resume import check_history
from timm_tinynet.train.session import worker_error
from timm_tinynet.train.short_runs import ModelEma, bn_warmup, default_precise_bn, precise_bn, settling_warnings
from timm_tinynet.train.checkpoint import (CheckpointError, content_checksum, eval_weights, load_checkpoint,
                                           model_state, save_atomic)


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_image_folder):
    return make_image_folder(tmp_path_factory.mktemp("data"), n_train=16, n_val=8)


def _digest(folder: Path):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- checksums -----------------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    import timm

    model = timm.create_model("tinynet", r=0.2, d=0.3, w=0.2, num_classes=3)
    path = tmp_path / "model.pth.tar"
    save_atomic({"epoch": 2, "arch": "tinynet", "args": {"model": "tinynet", "scale": (0.5, 1.0)},
                 "state_dict": model.state_dict(), "metric": 12.5}, path)
    return path, model


def test_a_saved_checkpoint_carries_its_checksum_and_loads(saved):
    path, model = saved
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["checksum"].startswith("sha256:") and raw["checksum"] == content_checksum(raw)
    checkpoint = load_checkpoint(path)
    assert "checksum" not in checkpoint  # verified and dropped: the caller sees what was saved
    for key, value in model.state_dict().items():
        assert torch.equal(checkpoint["state_dict"][key], value), key


def test_the_checksum_covers_values_not_their_order():
    a = {"x": torch.arange(4), "args": {"lr": 0.1, "scale": [0.5, 1.0]}, "state": {1: torch.ones(2), 0: None}}
    b = {"state": {0: None, 1: torch.ones(2)}, "args": {"scale": (0.5, 1.0), "lr": 0.1}, "x": torch.arange(4)}
    assert content_checksum(a) == content_checksum(b)
    assert content_checksum(a) != content_checksum(dict(a, x=torch.arange(4).float()))  # dtype counts
    assert content_checksum(a) != content_checksum(dict(a, args={"lr": 0.2, "scale": [0.5, 1.0]}))


def test_flipped_bytes_inside_a_tensor_are_refused(saved, tmp_path):
    path, _ = saved
    flipped = tmp_path / "flipped.pth.tar"
    flip_tensor_bytes(path, flipped, count=4000)
    with pytest.raises(CheckpointError, match="is corrupted: checksum mismatch") as info:
        load_checkpoint(flipped)
    assert "\n" not in str(info.value)


def test_one_flipped_byte_in_the_classifier_is_refused(saved, tmp_path):
    path, model = saved
    raw = bytearray(path.read_bytes())
    at = raw.find(model.state_dict()["classifier.weight"].numpy().tobytes())
    assert at > 0
    raw[at + 17] ^= 0x01
    one = tmp_path / "one.pth.tar"
    one.write_bytes(bytes(raw))
    assert torch.load(one, map_location="cpu", weights_only=True)["state_dict"]["classifier.weight"].shape  # loads
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(one)


@pytest.mark.parametrize("where", ["pickle", "end"])
def test_a_flip_that_breaks_the_archive_is_one_line(saved, tmp_path, where):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    if where == "pickle":  # inside data.pkl, right after its zip entry name
        start = raw.find(b"data.pkl") + 40
        span = range(start, start + 64)
    else:  # the zip's central directory
        span = range(len(raw) - 200, len(raw))
    for i in span:
        raw[i] ^= 0x5A
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(broken)
    message = str(info.value)
    assert "\n" not in message and ("cannot be read" in message or "checksum mismatch" in message), message


def test_checkpoints_without_a_checksum_still_load(tmp_path):
    import timm

    state = timm.create_model("tinynet", r=0.2, d=0.3, w=0.2, num_classes=3).state_dict()
    torch.save(state, tmp_path / "bare.pth")  # a bare state dict, as from torch.save
    assert set(model_state(load_checkpoint(tmp_path / "bare.pth"))) == set(state)
    save_atomic(state, tmp_path / "bare_checked.pth")  # a bare state dict saved with a checksum
    assert set(model_state(load_checkpoint(tmp_path / "bare_checked.pth"))) == set(state)
    torch.save({"epoch": 3, "state_dict": state, "state_dict_ema": state,
                "args": argparse.Namespace(model="tinynet")}, tmp_path / "timm.pth.tar")  # timm's train.py
    assert load_checkpoint(tmp_path / "timm.pth.tar")["args"]["model"] == "tinynet"


def test_a_fifo_checkpoint_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(tmp_path / "pipe")


def test_evaluated_weights_follow_the_checkpoint():
    model, ema = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    assert model_state({"state_dict": model, "state_dict_ema": ema}) is ema  # no record: the EMA
    assert model_state({"state_dict": model, "state_dict_ema": ema, "eval_weights": "ema"}) is ema
    assert model_state({"state_dict": model, "state_dict_ema": ema, "eval_weights": "model"}) is model
    assert model_state({"state_dict": model, "state_dict_ema": ema, "eval_weights": "ema"}, prefer_ema=False) is model
    assert eval_weights({"state_dict": model}) == "model"


# ---- one writer per run folder -------------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_writes_nothing(data, tmp_path, tiny, one_line_error):
    run = tmp_path / "busy"
    run.mkdir()
    (run / "notes.txt").write_text("the first writer's")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tinynet_core.guard import folder_lock\n"
                               "with folder_lock(sys.argv[1], 'run folder'):\n"
                               "    print('locked', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _digest(run)
        code = train_main(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "busy", *tiny.SMALL,
                           *tiny.FAST, "--epochs", "1"])
        message = one_line_error(code)
        assert f"pid {holder.pid}" in message and "in use" in message, message
        assert _digest(run) == before
    finally:
        holder.kill()
        holder.wait()


def test_the_run_folder_is_locked_while_training(data, tmp_path, tiny):
    seen = []
    with open_session(parse_args(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "locked",
                                  *tiny.SMALL, *tiny.FAST, "--epochs", "1"])) as session:
        try:
            with folder_lock(tmp_path / "locked", "run folder"):
                seen.append("free")
        except GuardError as e:
            seen.append(str(e))
        session.train()
    assert len(seen) == 1 and "in use by pid" in seen[0]
    with folder_lock(tmp_path / "locked"):  # released at the end
        pass


# ---- resuming never destroys newer history -------------------------------------------------------------------

def _fake_checkpoint(path: Path, epoch: int) -> None:
    save_atomic({"epoch": epoch, "state_dict": {}, "optimizer": {}, "args": {"model": "tinynet"}}, path)


def _rows(path: Path, epochs) -> None:
    path.write_text("epoch,eval_top1\n" + "".join(f"{e},50\n" for e in epochs))


def test_history_check(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _fake_checkpoint(run / "last.pth.tar", 2)
    _fake_checkpoint(run / "best.pth.tar", 2)
    _fake_checkpoint(run / "old.pth.tar", 1)
    _rows(run / "summary.csv", range(4))  # a kill after epoch 3's row, before its checkpoint
    check_history(run, str(run / "last.pth.tar"), 2)  # resumes and redoes epoch 3
    check_history(run, str(run / "best.pth.tar"), 2)  # as new as last.pth.tar
    with pytest.raises(TrainingError, match=r"already records 4 \(summary.csv\).*--experiment"):
        check_history(run, str(run / "old.pth.tar"), 1)
    _rows(run / "summary.csv", range(3))
    with pytest.raises(TrainingError, match=r"already records 3 \(last.pth.tar\)"):
        check_history(run, str(run / "old.pth.tar"), 1)
    _rows(run / "summary.csv", range(5))
    with pytest.raises(TrainingError, match=r"already records 5 \(summary.csv\)"):
        check_history(run, str(run / "last.pth.tar"), 2)


@pytest.mark.slow
def test_resuming_an_older_checkpoint_is_refused_and_can_branch_off(data, tmp_path, tiny, one_line_error):
    run = tiny.train(data, tmp_path, "hist", "--epochs", "1")
    shutil.copy(run / "last.pth.tar", run / "epoch1.pth.tar")
    assert train_main(["--data-dir", str(data), "--resume", str(run / "last.pth.tar"), "--epochs", "3"]) == 0
    before = _digest(run)
    code = train_main(["--data-dir", str(data), "--resume", str(run / "epoch1.pth.tar"), "--epochs", "2"])
    message = one_line_error(code)
    assert "already records 3" in message and "--experiment" in message, message
    assert _digest(run) == before  # nothing truncated, nothing overwritten
    # branching off: the same checkpoint continued in a new folder beside the run
    assert train_main(["--data-dir", str(data), "--resume", str(run / "epoch1.pth.tar"), "--epochs", "2",
                       "--experiment", "branch"]) == 0
    branch = tiny.summary(tmp_path / "branch")
    assert [int(r["epoch"]) for r in branch] == [0, 1]
    assert branch[0] == tiny.summary(run)[0]  # its history up to the checkpoint comes along
    assert (tmp_path / "branch" / "model_best.pth.tar").is_file()
    assert _digest(run) == before


# ---- unreadable images ---------------------------------------------------------------------------------------

def test_an_unreadable_image_is_skipped_and_named(data, tmp_path, caplog, capsys, tiny):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    broken_train = root / "train" / "class1" / "3.png"
    broken_train.write_bytes(broken_train.read_bytes()[:60])  # truncated
    broken_val = root / "validation" / "class2" / "0.png"
    broken_val.write_bytes(b"not an image")
    os.mkfifo(root / "train" / "class0" / "fifo.png")  # would block a reader
    with caplog.at_level(logging.WARNING, logger="timm_tinynet.data"):
        code = train_main(["--data-dir", str(root), "--output", str(tmp_path), "--experiment", "skip", *tiny.SMALL,
                           *tiny.FAST, "--epochs", "1", "-b", "7"])  # 49 = 7 x 7: every image is drawn
    assert code == 0
    warned = caplog.text
    for path in (broken_train, broken_val, root / "train" / "class0" / "fifo.png"):
        assert str(path) in warned, path
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="timm_tinynet.data"):
        assert validate_main(["--data-dir", str(root), "--checkpoint", str(tmp_path / "skip" / "last.pth.tar"),
                              "-j", "0"]) == 0
    assert str(broken_val) in caplog.text
    assert "on 24 images" in capsys.readouterr().out


def test_a_folder_of_undecodable_images_stops_before_training(data, tmp_path, tiny, one_line_error):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    for path in (root / "train").rglob("*.png"):
        path.write_bytes(b"\x89PNG broken")
    code = train_main(["--data-dir", str(root), "--output", str(tmp_path), "--experiment", "x", *tiny.SMALL,
                       *tiny.FAST, "--epochs", "1"])
    assert "cannot decode any of the 16 images checked" in one_line_error(code)
    assert not (tmp_path / "x").exists()


def test_a_sample_with_only_unreadable_images_after_it_is_a_data_error(tmp_path):
    from timm_tinynet.train.data import DataError, image_folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "0.png").write_bytes(b"broken")
    dataset = image_folder(tmp_path, probe=False)
    with pytest.raises(DataError, match=r"2 images in a row from .*0.png on cannot be decoded"):
        dataset[0]
    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\ntimm_tinynet.train.data.DataError: 50 images in a row")
    assert str(worker_error(wrapped)) == "50 images in a row"


# ---- short runs: warm-ups --------------------------------------------------------------------------------------

def test_bn_warmup_forgets_the_initial_statistics_then_keeps_the_momentum():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3, momentum=0.01)
    assert bn_warmup(bn) == 1
    bn.train()
    batches = [torch.randn(8, 3, 4, 4) * (i + 1) + i for i in range(120)]
    bn(batches[0])
    assert torch.allclose(bn.running_mean, batches[0].mean(dim=(0, 2, 3)), atol=1e-6)  # the 0s forgotten at once
    bn(batches[1])
    both = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches[:2]]).mean(0)
    assert torch.allclose(bn.running_mean, both, atol=1e-5)  # the mean of the batches so far
    for batch in batches[2:]:
        bn(batch)
    assert bn.momentum == 0.01 and not bn._forward_pre_hooks  # the recipe's momentum after 1/momentum updates
    bn.eval()
    bn(batches[0])  # evaluation changes nothing
    assert int(bn.num_batches_tracked) == 120


def test_bn_warmup_goes_on_where_a_resumed_run_stopped():
    bn = nn.BatchNorm2d(2, momentum=0.01)
    bn.num_batches_tracked.fill_(9)
    bn_warmup(bn)
    bn.train()
    bn(torch.randn(4, 2, 3, 3))
    assert bn.momentum == pytest.approx(0.1)  # the 10th update: weight 1/10


def test_ema_warmup_is_tensorflows():
    model = nn.Linear(2, 2)
    ema = ModelEma(model, decay=0.9999, use_warmup=True)
    assert ema.get_decay(1) == pytest.approx(2 / 11)
    assert ema.get_decay(90) == pytest.approx(91 / 100)
    assert ema.get_decay(10 ** 6) == 0.9999
    assert ModelEma(model, decay=0.9999).get_decay(50) == 0.9999


def test_a_run_too_short_to_settle_is_warned_about():
    args = argparse.Namespace(bn_momentum=0.01, bn_warmup=False, model_ema=True, model_ema_decay=0.9999,
                              model_ema_warmup=False)
    warnings = settling_warnings(args, 54)
    assert len(warnings) == 2 and "--bn-warmup" in warnings[0] and "--model-ema-warmup" in warnings[1]
    assert settling_warnings(argparse.Namespace(**dict(vars(args), bn_warmup=True, model_ema_warmup=True)),
                                    54) == []
    assert settling_warnings(args, 10 ** 6) == []


def make_colours(root: Path, n_train: int = 50, n_val: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Three classes of noisy red, green and blue images: any crop shows its class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("validation", n_val)):
        for k, colour in enumerate([(200, 40, 40), (40, 180, 60), (50, 60, 210)]):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


SHORT = ["--model", "tinynet_e", "--opt", "adamw", "--lr", "2e-3", "--sched", "cosine", "--warmup-epochs", "0",
         "-b", "16", "--img-size", "64", "--epochs", "6", "-j", "0"]


@pytest.mark.slow
def test_a_short_run_with_the_recipe_learns(tmp_path, capsys, caplog, tiny):
    """The tinynet recipe (RMSProp swapped for AdamW) for 54 steps: with the warm-ups the best epoch is far above
    chance and tinynet-validate agrees; without them (the paper's constants from step 0) it stays at chance."""
    data = make_colours(tmp_path / "colours")
    assert train_main(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "on", *SHORT]) == 0
    rows = tiny.summary(tmp_path / "on")
    best = max(max(float(r["eval_top1"]), float(r["ema_eval_top1"])) for r in rows)
    assert best >= 80.0, rows  # chance is 33.3 %
    checkpoint = load_checkpoint(tmp_path / "on" / "model_best.pth.tar")
    assert checkpoint["metric"] == pytest.approx(best, abs=1e-3) and checkpoint["eval_weights"] in ("ema", "model")
    capsys.readouterr()
    results = tmp_path / "best.json"
    assert validate_main(["--data-dir", str(data), "--checkpoint", str(tmp_path / "on" / "model_best.pth.tar"),
                          "-j", "0", "--results-file", str(results)]) == 0
    assert json.loads(results.read_text())["top1"] == pytest.approx(best, abs=1e-3)

    with caplog.at_level(logging.WARNING, logger="tinynet-train"):
        assert train_main(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "off", *SHORT,
                           "--no-bn-warmup", "--no-model-ema-warmup", "--precise-bn", "0"]) == 0
    assert "--bn-warmup" in caplog.text and "--model-ema-warmup" in caplog.text
    off = tiny.summary(tmp_path / "off")
    assert max(max(float(r["eval_top1"]), float(r["ema_eval_top1"])) for r in off) <= 50.0

    # precise BN alone (the warm-ups off) also rescues the evaluation: its statistics fit the evaluated weights
    assert train_main(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "precise", *SHORT,
                       "--no-bn-warmup", "--no-model-ema-warmup"]) == 0
    assert yaml.safe_load((tmp_path / "precise" / "args.yaml").read_text())["precise_bn"] == 1024
    precise = tiny.summary(tmp_path / "precise")
    assert max(float(r["eval_top1"]) for r in precise) >= 80.0, precise


def test_precise_bn_sets_the_statistics_of_the_current_weights_and_keeps_the_rest():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4, momentum=0.01))
    bn = model[1]
    bn.num_batches_tracked.fill_(7)
    model.eval()
    batches = [(torch.randn(8, 3, 5, 5) * 3 + 2, torch.zeros(8, dtype=torch.long)) for _ in range(4)]
    assert precise_bn(model, batches, images=24, device=torch.device("cpu")) == 24  # three whole batches
    with torch.no_grad():
        features = torch.cat([model[0](x) for x, _ in batches[:3]])
    expected_mean = features.mean(dim=(0, 2, 3))
    per_batch_var = torch.stack([model[0](x).var(dim=(0, 2, 3), unbiased=True) for x, _ in batches[:3]]).detach()
    torch.testing.assert_close(bn.running_mean, expected_mean.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, per_batch_var.mean(0), rtol=1e-5, atol=1e-5)  # mean of batch vars
    assert bn.momentum == 0.01 and int(bn.num_batches_tracked) == 7 and not model.training
    assert default_precise_bn(0.01, 9_999) == 1024 and default_precise_bn(0.01, 10_000) == 0
    assert default_precise_bn(None, 999) == 1024 and default_precise_bn(None, 1000) == 0


@pytest.mark.slow
def test_sigterm_cleans_up_and_releases_the_folder(data, tmp_path, tiny):
    proc, run = tiny.launch_until_first_epoch(data, tmp_path, "term", settle_s=0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not list(run.glob(".*.tmp"))  # the atomic writers removed their temporary files
    with folder_lock(run):  # and the lock is free
        pass
    done = tiny.summary(run)
    assert load_checkpoint(run / "last.pth.tar")["epoch"] in (int(done[-1]["epoch"]), int(done[-1]["epoch"]) - 1)
