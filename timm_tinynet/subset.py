"""The paper's ImageNet-100: 100 random classes, 500 random training images each, all their validation images."""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
MODES = ("symlink", "filelist", "copy")


class SubsetError(ValueError):
    """An ImageNet folder or output location the subset cannot be built from / into."""


@dataclass(frozen=True)
class SubsetPlan:
    classes: Tuple[str, ...]
    train: Dict[str, Tuple[str, ...]]  # class -> file names
    val: Dict[str, Tuple[str, ...]]


def _images(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _class_dirs(split: Path) -> List[str]:
    return sorted(p.name for p in split.iterdir() if p.is_dir())


def plan_subset(root: Path, num_classes: int = 100, train_per_class: int = 500, seed: int = 0,
                train_split: str = "train", val_split: str = "val") -> SubsetPlan:
    """Choose classes and training images deterministically from ``seed`` (sorted listings, one RNG)."""
    train_root, val_root = root / train_split, root / val_split
    for split in (train_root, val_root):
        if not split.is_dir():
            raise SubsetError(f"{split} does not exist (expected {root}/{{{train_split},{val_split}}}/<class>/<image>)")
    classes = _class_dirs(train_root)
    if len(classes) < num_classes:
        raise SubsetError(f"{train_root} has {len(classes)} class folders, fewer than the {num_classes} asked for")
    if not _class_dirs(val_root) and _images(val_root):
        raise SubsetError(f"{val_root} holds images directly; sort the validation images into class folders first")
    rng = random.Random(seed)
    chosen = tuple(sorted(rng.sample(classes, num_classes)))
    train, val = {}, {}
    for name in chosen:
        images = _images(train_root / name)
        if len(images) < train_per_class:
            raise SubsetError(f"class {name} has {len(images)} training images, fewer than {train_per_class}")
        train[name] = tuple(sorted(rng.sample(images, train_per_class)))
        if not (val_root / name).is_dir() or not _images(val_root / name):
            raise SubsetError(f"class {name} has no validation images in {val_root / name}")
        val[name] = tuple(_images(val_root / name))
    return SubsetPlan(chosen, train, val)


OUTPUT_NAMES = ("classes.txt", "train", "val", "train.txt", "val.txt")


def check_out(root: Path, out: Path) -> None:
    """Before any work: ``out`` is a new (or empty) folder outside the ImageNet folder, where files can be written;
    SubsetError (or the guard's GuardError) otherwise."""
    from tinynet_core.guard import check_input_dir, check_output_dir

    check_input_dir(root, "--imagenet")
    check_output_dir(out, "--out", OUTPUT_NAMES, [("--imagenet", root)])
    if out.is_dir() and any(out.iterdir()):
        raise SubsetError(f"output {out} already exists and is not empty; choose a new folder")


def write_subset(plan: SubsetPlan, root: Path, out: Path, mode: str = "symlink", train_split: str = "train",
                 val_split: str = "val") -> Dict[str, int]:
    """Materialise the plan under ``out``: symlinks (default), copies, or file lists. Never overwrites, never
    writes inside ``root``, and builds the subset in a temporary folder beside ``out`` that is renamed into place
    when complete, so an interrupted run leaves no half subset."""
    if mode not in MODES:
        raise SubsetError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    check_out(root, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        counts = _materialise(plan, root, work, mode, train_split, val_split)
        os.chmod(work, 0o777 & ~_umask())
        os.rename(work, out)  # replaces an empty folder; fails (nothing lost) if one appeared meanwhile
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return counts


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _materialise(plan: SubsetPlan, root: Path, out: Path, mode: str, train_split: str,
                 val_split: str) -> Dict[str, int]:
    counts = {"classes": len(plan.classes), "train": 0, "val": 0}
    lists: Dict[str, List[str]] = {"train": [], "val": []}
    for out_split, src_split, chosen in (("train", train_split, plan.train), ("val", val_split, plan.val)):
        for label, name in enumerate(plan.classes):
            for image in chosen[name]:
                source = root / src_split / name / image
                counts[out_split] += 1
                if mode == "filelist":
                    lists[out_split].append(f"{source} {label}")
                    continue
                target = out / out_split / name / image
                target.parent.mkdir(parents=True, exist_ok=True)
                if mode == "symlink":
                    os.symlink(source, target)
                else:
                    shutil.copy2(source, target)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in plan.classes))
    if mode == "filelist":
        for split, lines in lists.items():
            (out / f"{split}.txt").write_text("".join(f"{line}\n" for line in lines))
    return counts
