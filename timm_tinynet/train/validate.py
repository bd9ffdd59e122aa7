"""Top-1 / top-5 of a model on an image folder with the model's own evaluation transform."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .checkpoint import load_checkpoint, load_weights, model_state
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
    import timm
    from timm.data import resolve_data_config

    import timm_tinynet  # noqa: F401  (registers the plugin's models)

    from .engine import TrainingError, evaluate

    folder = eval_folder(data_dir, split)
    state, source, num_classes, class_to_idx = None, "random init", None, None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        state = model_state(ckpt, prefer_ema=use_ema)
        source = f"{checkpoint} ({'EMA' if use_ema and ckpt.get('state_dict_ema') else 'model'} weights)"
        trained = ckpt.get("args") or {}
        if not model_name or model_name == ckpt.get("arch"):
            # the checkpoint's own network: its constructor kwargs and training input size
            model_name = ckpt.get("arch")
            model_kwargs = model_kwargs or trained.get("model_kwargs") or {}
            img_size = img_size or trained.get("img_size")
        head = [v for k, v in state.items() if k.endswith(("classifier.weight", "fc.weight", "head.fc.weight"))]
        num_classes = int(head[0].shape[0]) if head else None
        class_to_idx = ckpt.get("class_to_idx")
    elif pretrained:
        source = "pretrained weights"
    else:
        raise DataError("give --checkpoint or --pretrained (a randomly initialised model has nothing to validate)")
    if not model_name:
        raise DataError("--model is required (the checkpoint does not name its architecture)")
    if not timm.is_model(model_name):
        raise TrainingError(f"unknown model {model_name!r}")
    kwargs = dict(model_kwargs or {})
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(model_name, pretrained=pretrained and checkpoint is None, **kwargs)
    except (ValueError, RuntimeError, TypeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        what = "load the pretrained weights of" if pretrained else "create"
        raise TrainingError(f"cannot {what} {model_name!r} with {kwargs}: {first}") from None
    if state is not None:
        load_weights(model, state, str(checkpoint))
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
    try:
        run_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise TrainingError(f"--device {device!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    model.to(run_device)

    start = time.perf_counter()
    metrics = evaluate(model, eval_loader(dataset, batch_size, workers, 0, 1), run_device)
    elapsed = time.perf_counter() - start
    return {"model": model_name, "weights": source, "data": str(folder), "images": len(dataset),
            "input_size": data_config["input_size"][-1], "crop_pct": data_config["crop_pct"],
            "interpolation": data_config["interpolation"], "top1": round(metrics["top1"], 4),
            "top5": round(metrics["top5"], 4), "loss": round(metrics["loss"], 6),
            "img_per_s": round(len(dataset) / max(elapsed, 1e-9), 1)}
