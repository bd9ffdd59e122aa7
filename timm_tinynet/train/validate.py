"""Top-1 / top-5 of a model on an image folder with the model's own evaluation transform."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

from .data import EVAL_SPLITS, DataError, class_names, eval_loader, eval_transform, find_split, image_folder


def eval_folder(data_dir: Path, split: Optional[str]) -> Path:
    """``data_dir/<split>`` (a class-folder tree or a ``<split>.txt`` file list) when given or when an evaluation
    split exists, else ``data_dir`` itself."""
    if not data_dir.is_dir():
        raise DataError(f"data dir {data_dir} does not exist or is not a directory")
    if split:
        return find_split(data_dir, split, ())
    try:
        return find_split(data_dir, None, EVAL_SPLITS)
    except DataError:
        return data_dir


def imagenet_class_map(folder: Path, num_classes: int) -> Optional[Dict[str, int]]:
    """For a 1000-class ImageNet model and a folder of ImageNet synset class folders (all of ImageNet, or a subset
    such as ImageNet-100): each synset's index in the model's output. None when the folder is not such a set."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    synsets = {name: index for index, name in enumerate(info.label_names())}
    names = [p.name for p in folder.iterdir() if p.is_dir()]
    if num_classes != len(synsets) or not names or not all(n in synsets for n in names):
        return None
    return {name: synsets[name] for name in names}


def check_classes(folder: Path, class_to_idx: Dict[str, int]) -> None:
    """The folder's class folders must be classes the model was trained on."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    unknown = [n for n in names if n not in class_to_idx]
    if unknown:
        known = ", ".join(sorted(class_to_idx, key=class_to_idx.get)[:5])
        raise DataError(f"{folder} has class folders the model was not trained on ({', '.join(unknown[:5])}"
                        f"{', ...' if len(unknown) > 5 else ''}); its classes are {known}"
                        f"{', ...' if len(class_to_idx) > 5 else ''}")


def validate(model_name: str, data_dir: Path, split: Optional[str] = None, checkpoint: Optional[Path] = None,
             pretrained: bool = False, use_ema: bool = True, batch_size: int = 64, workers: int = 2,
             img_size: Optional[int] = None, device: Optional[str] = None,
             model_kwargs: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    from timm.data import resolve_data_config

    from ..loading import load_model, quiet_hub_retries
    from .checkpoint import eval_weights
    from .distributed import requested_device
    from .loop import evaluate

    folder = eval_folder(data_dir, split)
    if checkpoint is None and not pretrained:
        raise DataError("give --checkpoint or --pretrained (a randomly initialised model has nothing to validate)")
    if pretrained:
        quiet_hub_retries()
    model, ckpt = load_model(model_name, model_kwargs or {}, checkpoint, pretrained, prefer_ema=use_ema)
    model_name = model_name or ckpt.get("arch")
    source, class_to_idx = "pretrained weights", None
    if checkpoint is not None:
        source = f"{checkpoint} ({'EMA' if eval_weights(ckpt, use_ema) == 'ema' else 'model'} weights)"
        class_to_idx = ckpt.get("class_to_idx")
        if model_name == ckpt.get("arch"):
            img_size = img_size or (ckpt.get("args") or {}).get("img_size")  # the size it was trained at
    if folder.suffix == ".txt":  # a file list carries its labels (and classes.txt its class names)
        dataset = image_folder(folder, min_classes=1)
        if class_to_idx and dataset.reader.class_to_idx != class_to_idx:
            raise DataError(f"{folder}'s classes.txt does not list the classes the model was trained on, in order")
        class_to_idx = dataset.reader.class_to_idx
    else:
        if class_to_idx:
            check_classes(folder, class_to_idx)
        else:
            class_to_idx = imagenet_class_map(folder, model.num_classes)
        dataset = image_folder(folder, min_classes=1, class_map=class_to_idx)
    if class_to_idx is None and len(class_names(dataset)) != model.num_classes:
        raise DataError(f"{folder} has {len(class_names(dataset))} class folders but the model predicts "
                        f"{model.num_classes} classes, so labels cannot be matched by order (ImageNet synset "
                        f"folder names, e.g. n01440764, are matched by name)")
    data_config = resolve_data_config(model=model, args={"input_size": (3, img_size, img_size)} if img_size else {})
    dataset.transform = eval_transform(data_config)
    run_device = requested_device(device)
    model.to(run_device)

    start = time.perf_counter()
    metrics = evaluate(model, eval_loader(dataset, batch_size, workers, 0, 1), run_device)
    elapsed = time.perf_counter() - start
    return {"model": model_name, "weights": source, "data": str(folder), "images": len(dataset),
            "input_size": data_config["input_size"][-1], "crop_pct": data_config["crop_pct"],
            "interpolation": data_config["interpolation"], "top1": round(metrics["top1"], 4),
            "top5": round(metrics["top5"], 4), "loss": round(metrics["loss"], 6),
            "img_per_s": round(len(dataset) / max(elapsed, 1e-9), 1)}
