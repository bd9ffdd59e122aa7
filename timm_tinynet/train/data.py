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
    """The split's folder under ``root``: ``split`` itself, or the first existing synonym."""
    if not root.is_dir():
        raise DataError(f"data dir {root} does not exist or is not a directory")
    names = [split] if split else list(synonyms)
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DataError(f"no {'/'.join(names)} folder under {root} (expected {root}/<split>/<class>/<image>)")


def image_folder(path: Path, min_classes: int = 2, class_map: Optional[Dict[str, int]] = None):
    """timm's folder dataset (``ImageDataset``) with at least ``min_classes`` classes and one image."""
    from timm.data import ImageDataset

    try:
        dataset = ImageDataset(str(path), class_map=class_map)
    except Exception as e:  # timm raises a bare RuntimeError for an empty folder
        raise DataError(f"{path}: {e}") from None
    classes = dataset.reader.class_to_idx
    if len(dataset) == 0:
        raise DataError(f"{path} contains no images")
    if len(classes) < min_classes:
        raise DataError(f"{path} has {len(classes)} class folder(s); classification needs at least {min_classes}")
    return dataset


def load_splits(data_dir: Path, train_split: Optional[str], val_split: Optional[str]):
    """(train, eval) datasets; the evaluation labels use the training set's class ids."""
    train_set = image_folder(find_split(data_dir, train_split, TRAIN_SPLITS))
    eval_dir = find_split(data_dir, val_split, EVAL_SPLITS)
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
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                      pin_memory=pin_memory, worker_init_fn=_worker_init, persistent_workers=workers > 0)


def eval_loader(dataset, batch_size: int, workers: int, rank: int, world_size: int,
                pin_memory: bool = False) -> DataLoader:
    """This rank's contiguous share of the evaluation set, without padding (metrics are summed across ranks)."""
    n = len(dataset)
    start, stop = n * rank // world_size, n * (rank + 1) // world_size
    return DataLoader(Subset(dataset, range(start, stop)), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=pin_memory)
