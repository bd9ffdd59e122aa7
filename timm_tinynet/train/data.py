"""Image-folder datasets and loaders from timm's data pipeline (transforms, RandAugment, dataset readers)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

TRAIN_SPLITS = ("train", "training")
EVAL_SPLITS = ("validation", "val", "valid", "eval", "evaluation")


class DataError(ValueError):
    """A data folder that cannot be trained or evaluated on."""


def find_split(root: Path, split: Optional[str], synonyms: Sequence[str]) -> Path:
    """The split under ``root``: a class-folder tree ``root/<split>/`` or a file list ``root/<split>.txt``
    (``tinynet-subset --mode filelist``), by ``split`` itself or the first existing synonym."""
    if not root.is_dir():
        raise DataError(f"data dir {root} does not exist or is not a directory")
    names = [split] if split else list(synonyms)
    for name in names:
        if (root / name).is_dir():
            return root / name
        if (root / f"{name}.txt").is_file():
            return root / f"{name}.txt"
    raise DataError(f"no {'/'.join(names)} folder (or file list {names[0]}.txt) under {root} (expected "
                    f"{root}/<split>/<class>/<image>)")


class FileListReader:
    """A timm dataset reader over a file list: one ``<image path> <label>`` line per image (paths absolute, or
    relative to the list's folder); class names from ``classes.txt`` beside it, one per line in label order."""

    def __init__(self, list_path: Path) -> None:
        self.samples = []
        for number, line in enumerate(list_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            path, _, label = line.rpartition(" ")
            if not path or not label.lstrip("-").isdigit():
                raise DataError(f"{list_path}, line {number}: expected '<image path> <label>', got {line!r}")
            self.samples.append((list_path.parent / path, int(label)))
        classes_file = list_path.parent / "classes.txt"
        labels = sorted({label for _, label in self.samples})
        names = classes_file.read_text().split() if classes_file.is_file() else [str(label) for label in labels]
        if labels and (labels[0] < 0 or labels[-1] >= len(names)):
            raise DataError(f"{list_path}: labels run from {labels[0]} to {labels[-1]}, but {classes_file} names "
                            f"{len(names)} classes")
        self.class_to_idx = {name: index for index, name in enumerate(names)}

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return open(path, "rb"), label

    def __len__(self) -> int:
        return len(self.samples)

    def filename(self, index: int, basename: bool = False, absolute: bool = False) -> str:
        path = self.samples[index][0]
        return path.name if basename else str(path.resolve() if absolute else path)

    def filenames(self, basename: bool = False, absolute: bool = False):
        return [self.filename(i, basename, absolute) for i in range(len(self))]


def image_folder(path: Path, min_classes: int = 2, class_map: Optional[Dict[str, int]] = None):
    """timm's ``ImageDataset`` over a class-folder tree (or a file list), with at least ``min_classes`` classes."""
    from timm.data import ImageDataset

    try:
        if path.suffix == ".txt":
            dataset = ImageDataset(str(path.parent), reader=FileListReader(path))
        else:
            dataset = ImageDataset(str(path), class_map=class_map)
    except DataError:
        raise
    except Exception as e:  # timm raises a bare RuntimeError for an empty folder
        raise DataError(f"{path}: {e}") from None
    classes = {label for _, label in dataset.reader.samples} if path.suffix == ".txt" else dataset.reader.class_to_idx
    if len(dataset) == 0:
        raise DataError(f"{path} contains no images")
    if len(classes) < min_classes:
        raise DataError(f"{path} has {len(classes)} class(es); classification needs at least {min_classes}")
    return dataset


def load_splits(data_dir: Path, train_split: Optional[str], val_split: Optional[str]):
    """(train, eval) datasets; the evaluation labels use the training set's class ids."""
    train_dir = find_split(data_dir, train_split, TRAIN_SPLITS)
    train_set = image_folder(train_dir)
    eval_dir = find_split(data_dir, val_split, EVAL_SPLITS)
    if (train_dir.suffix == ".txt") != (eval_dir.suffix == ".txt"):
        raise DataError(f"{train_dir} and {eval_dir}: give both splits as folders or both as file lists")
    if eval_dir.suffix == ".txt":
        return train_set, image_folder(eval_dir, min_classes=1)  # both lists share classes.txt
    unknown = sorted({p.name for p in eval_dir.iterdir() if p.is_dir()} - set(class_names(train_set)))
    if unknown:
        raise DataError(f"{eval_dir} has classes the training set lacks: {', '.join(unknown[:5])}")
    return train_set, image_folder(eval_dir, min_classes=1, class_map=dict(train_set.reader.class_to_idx))


def class_names(dataset) -> Tuple[str, ...]:
    mapping = dataset.reader.class_to_idx
    return tuple(sorted(mapping, key=mapping.get))


def train_transform(data_config: Dict[str, Any], aa: Optional[str], scale=(0.08, 1.0), hflip: float = 0.5,
                    color_jitter: float = 0.4, reprob: float = 0.0):
    from timm.data import create_transform

    return create_transform(
        data_config["input_size"], is_training=True, auto_augment=aa, interpolation=data_config["interpolation"],
        mean=data_config["mean"], std=data_config["std"], scale=scale, hflip=hflip, color_jitter=color_jitter,
        re_prob=reprob)


def eval_transform(data_config: Dict[str, Any]):
    from timm.data import create_transform

    return create_transform(
        data_config["input_size"], is_training=False, interpolation=data_config["interpolation"],
        mean=data_config["mean"], std=data_config["std"], crop_pct=data_config["crop_pct"],
        crop_mode=data_config.get("crop_mode"))


def _worker_init(worker_id: int) -> None:
    import random

    import numpy as np

    seed = torch.utils.data.get_worker_info().seed % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)


def train_loader(dataset, batch_size: int, workers: int, rank: int, world_size: int, seed: int,
                 pin_memory: bool = False) -> DataLoader:
    """Shuffled, rank-sharded batches; call ``loader.sampler.set_epoch(epoch)`` each epoch (deterministic order)."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    if len(sampler) < batch_size:
        raise DataError(f"{len(dataset)} training images give {len(sampler)} per process, fewer than one batch of "
                        f"{batch_size}; lower -b/--batch-size")
    # Workers are started afresh each epoch (not persistent): their seeds then come from the epoch's seed, so a
    # resumed run draws the same augmentations as an uninterrupted one.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                      pin_memory=pin_memory, worker_init_fn=_worker_init)


def eval_loader(dataset, batch_size: int, workers: int, rank: int, world_size: int,
                pin_memory: bool = False) -> DataLoader:
    """This rank's contiguous share of the evaluation set, without padding (metrics are summed across ranks)."""
    n = len(dataset)
    start, stop = n * rank // world_size, n * (rank + 1) // world_size
    return DataLoader(Subset(dataset, range(start, stop)), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=pin_memory)
