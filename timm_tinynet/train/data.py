"""Image-folder datasets and loaders from timm's data pipeline (transforms, RandAugment, dataset readers).

Unreadable images: when a folder is opened, a few of its images (evenly spread, at most ``PROBE_IMAGES``) are
decoded; if none of them decodes, the folder is refused (``DataError``) before any training. An image that cannot be
decoded later is skipped with a warning naming the file: in training the next readable image takes its place (the
batch keeps its size, so the schedule and a resumed run's steps stay the same), in evaluation it is left out of
the metrics. Nothing decodes the whole dataset up front.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from timm.data import ImageDataset
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torch.utils.data.dataloader import default_collate

from ..text import first_line

_logger = logging.getLogger("timm_tinynet.data")

PROBE_IMAGES = 16  # images decoded when a folder is opened (cheap even for ImageNet)
MAX_SKIPPED_IN_A_ROW = 50  # consecutive unreadable images after which a training sample gives up

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


def _decode(path: str):
    """The RGB image at ``path``; an exception naming the problem when it cannot be decoded. A pipe, device or
    folder named like an image is refused without being opened (opening a pipe would block)."""
    from PIL import Image

    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise OSError("not a regular file")
    with Image.open(path) as image:
        return image.convert("RGB")  # decodes every pixel, so a truncated file fails here


def _reason(error: BaseException, path: str = "") -> str:
    """The error in a few words, without the path it is reported with."""
    text = " ".join(str(error).split())
    if path:
        text = text.replace(f" '{path}'", "").replace(f" {path}", "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class CheckedImageDataset(ImageDataset):
    """timm's ImageDataset that names an unreadable image in a warning and goes on without it:
    ``skip_unreadable=False`` (training) substitutes the next readable image, ``True`` (evaluation) returns None,
    which :func:`collate_readable` leaves out."""

    skip_unreadable = False

    def __getitem__(self, index: int):
        first = index
        for _ in range(min(MAX_SKIPPED_IN_A_ROW, len(self))):
            path, target = self.reader.samples[index]
            try:
                img = _decode(str(path))
                break
            except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, zlib errors...
                _logger.warning(f"warning: skipped unreadable image {path} ({_reason(e, str(path))})")
                if self.skip_unreadable:
                    return None
                index = (index + 1) % len(self)
        else:
            raise DataError(f"{min(MAX_SKIPPED_IN_A_ROW, len(self))} images in a row from "
                            f"{self.reader.samples[first][0]} on cannot be decoded; check the data folder")
        if self.transform is not None:
            img = self.transform(img)
        if target is None:
            target = -1
        elif self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def probe_images(dataset, folder: Path, count: int = PROBE_IMAGES) -> List[str]:
    """Decode up to ``count`` images spread evenly over ``dataset``; DataError when none decodes, else the
    unreadable ones' paths (warned about, and skipped when the loader meets them)."""
    n = len(dataset)
    indices = range(n) if n <= count else sorted({round(i * (n - 1) / (count - 1)) for i in range(count)})
    bad = []
    for index in indices:
        path = str(dataset.reader.samples[index][0])
        try:
            _decode(path)
        except Exception as e:  # noqa: BLE001
            bad.append((path, _reason(e, path)))
    if len(bad) == len(indices):
        checked = "the only image" if len(indices) == 1 else f"any of the {len(indices)} images checked"
        raise DataError(f"{folder}: cannot decode {checked} (e.g. {bad[0][0]}: {bad[0][1]}); is it an image "
                        f"folder?")
    for path, reason in bad:
        _logger.warning(f"warning: unreadable image {path} ({reason}); it will be skipped")
    return [path for path, _ in bad]


def image_folder(path: Path, min_classes: int = 2, class_map: Optional[Dict[str, int]] = None,
                 probe: bool = True):
    """timm's ``ImageDataset`` over a class-folder tree (or a file list), with at least ``min_classes`` classes,
    whose unreadable images are skipped with a warning naming them (see the module's docstring)."""
    try:
        if path.suffix == ".txt":
            dataset = CheckedImageDataset(str(path.parent), reader=FileListReader(path))
        else:
            dataset = CheckedImageDataset(str(path), class_map=class_map)
    except DataError:
        raise
    except Exception as e:  # timm raises a bare RuntimeError for an empty folder
        raise DataError(f"{path}: {first_line(e)}") from None
    classes = {label for _, label in dataset.reader.samples} if path.suffix == ".txt" else dataset.reader.class_to_idx
    if len(dataset) == 0:
        raise DataError(f"{path} contains no images")
    if len(classes) < min_classes:
        raise DataError(f"{path} has {len(classes)} class(es); classification needs at least {min_classes}")
    if probe:
        probe_images(dataset, path)
    return dataset


def collate_readable(batch):
    """``default_collate`` of the samples that could be read (None: an unreadable image); None when none could."""
    samples = [sample for sample in batch if sample is not None]
    return default_collate(samples) if samples else None


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
    if hasattr(dataset, "skip_unreadable"):
        dataset.skip_unreadable = True  # an unreadable image is left out of the metrics, not replaced
    return DataLoader(Subset(dataset, range(start, stop)), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=pin_memory, collate_fn=collate_readable)
