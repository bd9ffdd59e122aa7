"""Bad inputs of tinynet-train (and tinynet-validate's data and checkpoint loading): each case exits 2 with one
line before any training. Cases that need files make them under the case's own {out} folder."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from bad_inputs_common import CliCase, Workspace

TRAIN = ["--model", "tinynet", "--model-kwargs", "r=0.2", "d=0.3", "w=0.2", "-b", "2", "-j", "0", "--epochs", "1"]


def flip_tensor_bytes(source: Path, target: Path, count: int = 4000) -> None:
    """A copy of the checkpoint at ``source`` whose largest tensor has ``count`` bytes inverted (the zip and
    the pickle stay intact: only the checksum can tell)."""
    raw = bytearray(source.read_bytes())
    state = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    key = max(state, key=lambda k: state[k].numel())
    data = state[key].contiguous().numpy().tobytes()
    at = raw.find(data[:256])
    assert at > 0, "tensor bytes not found in the file"
    for i in range(at, at + min(count, len(data))):
        raw[i] ^= 0xFF
    target.write_bytes(bytes(raw))


def _corrupted(ws: Workspace, out: Path) -> None:
    flip_tensor_bytes(ws.paths["ckpt"], out / "flipped.pth.tar")


def _truncated(ws: Workspace, out: Path) -> None:
    raw = ws.paths["ckpt"].read_bytes()
    (out / "half.pth.tar").write_bytes(raw[: len(raw) // 2])


def _undecodable(ws: Workspace, out: Path) -> None:
    """An image folder (train and validation, classes a/b/c) whose every .png is not an image."""
    for split in ("train", "validation"):
        for name in ("a", "b", "c"):
            folder = out / "bad" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"{i}.png").write_bytes(b"this is not a png " * (i + 1))


def _finished_run(ws: Workspace, out: Path) -> None:
    """A finished 5-epoch run folder, fabricated: last.pth.tar at epoch 4, model_best.pth.tar at epoch 1, and
    summary rows 0..4 (only what the resume check reads: no training)."""
    from timm_tinynet.train.checkpoint import save_atomic

    run = out / "run"
    run.mkdir()
    state = torch.load(ws.paths["ckpt"], map_location="cpu", weights_only=True)
    for name, epoch in (("model_best.pth.tar", 1), ("last.pth.tar", 4)):
        save_atomic({"epoch": epoch, "arch": "tinynet", "args": dict(state["args"], opt="sgd", sched="step"),
                     "state_dict": state["state_dict"], "optimizer": {"state": {}, "param_groups": []},
                     "class_to_idx": state["class_to_idx"]}, run / name)
    with open(run / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "train_loss", "eval_top1"])
        writer.writerows([[e, 1.0, 50.0] for e in range(5)])


CASES = [
    CliCase("train-precise-bn-negative", "train", ["--data-dir", "{data}", *TRAIN, "--precise-bn", "-1",
                                                   "--output", "{out}"], "argument --precise-bn"),
    CliCase("train-precise-bn-not-a-number", "train", ["--data-dir", "{data}", *TRAIN, "--precise-bn", "many",
                                                       "--output", "{out}"], "argument --precise-bn"),
    CliCase("train-resume-fifo", "train", ["--data-dir", "{data}", "--resume", "{fifo}", "-j", "0"],
            "not a regular file"),
    CliCase("train-initial-checkpoint-fifo", "train",
            ["--data-dir", "{data}", *TRAIN, "--initial-checkpoint", "{fifo}", "--output", "{out}"],
            "not a regular file"),
    CliCase("train-init-from-fifo", "train",
            ["--data-dir", "{data}", *TRAIN, "--init-from", "{fifo}", "--output", "{out}"], "not a regular file"),
    CliCase("train-init-from-missing", "train",
            ["--data-dir", "{data}", *TRAIN, "--init-from", "{ws}/nothing.pth", "--output", "{out}"], "does not exist"),
    CliCase("train-init-from-another-family", "train",
            ["--data-dir", "{data}", "--model", "tinynet", "--model-kwargs", "baseline=resnet18", "r=0.2", "d=0.3",
             "w=0.2", "-b", "2", "-j", "0", "--epochs", "1", "--init-from", "{ckpt}", "--output", "{out}"],
            "--init-from: the weights in"),
    CliCase("train-init-from-with-resume", "train",
            ["--data-dir", "{data}", "--resume", "{ckpt}", "--init-from", "{ckpt}", "-j", "0"],
            "--resume and --init-from each say where the weights start from"),
    CliCase("train-init-from-with-pretrained", "train",
            ["--data-dir", "{data}", *TRAIN, "--pretrained", "--init-from", "{ckpt}", "--output", "{out}"],
            "--init-from and --pretrained each say where"),
    CliCase("train-init-selection-alone", "train",
            ["--data-dir", "{data}", *TRAIN, "--init-selection", "uniform", "--output", "{out}"],
            "--init-selection applies to --init-from"),
    CliCase("train-init-selection-unknown", "train",
            ["--data-dir", "{data}", *TRAIN, "--init-from", "{ckpt}", "--init-selection", "largest",
             "--output", "{out}"], "argument --init-selection: invalid choice"),
    CliCase("train-resume-folder", "train", ["--data-dir", "{data}", "--resume", "{data}", "-j", "0"],
            "is a folder"),
    CliCase("train-resume-missing", "train", ["--data-dir", "{data}", "--resume", "{ws}/nope.pth.tar"],
            "does not exist"),
    CliCase("train-resume-checksum-mismatch", "train",
            ["--data-dir", "{data}", "--resume", "{out}/flipped.pth.tar", "-j", "0"], "checksum mismatch",
            setup=_corrupted),
    CliCase("train-resume-truncated", "train", ["--data-dir", "{data}", "--resume", "{out}/half.pth.tar"],
            "cannot be read", setup=_truncated),
    CliCase("train-initial-checkpoint-checksum-mismatch", "train",
            ["--data-dir", "{data}", *TRAIN, "--initial-checkpoint", "{out}/flipped.pth.tar", "--output", "{out}"],
            "checksum mismatch", setup=_corrupted),
    CliCase("train-resume-older-than-the-folder", "train",
            ["--data-dir", "{data}", "--resume", "{out}/run/model_best.pth.tar", "--epochs", "3", "-j", "0"],
            "already records 5", setup=_finished_run),
    CliCase("train-img-size-huge", "train", ["--data-dir", "{data}", *TRAIN, "--img-size", "100000"],
            "--img-size: must be <= 1024"),
    CliCase("train-img-size-tiny", "train", ["--data-dir", "{data}", *TRAIN, "--img-size", "8"],
            "--img-size: must be >= 32"),
    CliCase("train-seed-2-to-the-64", "train", ["--data-dir", "{data}", *TRAIN, "--seed", str(2 ** 64)],
            "--seed"),
    CliCase("train-seed-negative", "train", ["--data-dir", "{data}", *TRAIN, "--seed", "-1"], "--seed"),
    CliCase("train-seed-not-a-number", "train", ["--data-dir", "{data}", *TRAIN, "--seed", "abc"], "--seed"),
    CliCase("train-output-inside-data-dir", "train",
            ["--data-dir", "{data}", *TRAIN, "--output", "{data}/train/runs"], "inside the input folder --data-dir"),
    CliCase("train-output-is-data-dir", "train", ["--data-dir", "{data}", *TRAIN, "--output", "{data}"],
            "is also the input --data-dir"),
    CliCase("train-output-under-proc", "train", ["--data-dir", "{data}", *TRAIN, "--output", "/proc/tinynet-runs"],
            "cannot write"),
    CliCase("train-output-is-a-file", "train", ["--data-dir", "{data}", *TRAIN, "--output", "{csv}"], "is a file"),
    CliCase("train-undecodable-images", "train", ["--data-dir", "{out}/bad", *TRAIN, "--output", "{out}/runs"],
            "cannot decode any of the", setup=_undecodable),
    CliCase("train-data-dir-is-a-file", "train", ["--data-dir", "{csv}", *TRAIN, "--output", "{out}"],
            "not a directory"),
    CliCase("train-batch-larger-than-data", "train",
            ["--data-dir", "{data}", *TRAIN, "-b", "64", "--output", "{out}/runs"], "fewer than one batch"),
    CliCase("validate-undecodable-images", "validate",
            ["--data-dir", "{out}/bad", "--checkpoint", "{ckpt}", "-j", "0"], "cannot decode any of the",
            setup=_undecodable),
    CliCase("validate-checkpoint-fifo", "validate", ["--data-dir", "{data}", "--checkpoint", "{fifo}"],
            "not a regular file"),
    CliCase("validate-checkpoint-checksum-mismatch", "validate",
            ["--data-dir", "{data}", "--checkpoint", "{out}/flipped.pth.tar", "-j", "0"], "checksum mismatch",
            setup=_corrupted),
]
