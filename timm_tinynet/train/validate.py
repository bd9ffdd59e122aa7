"""Top-1 / top-5 of a model on an image folder with the model's own evaluation transform."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .checkpoint import load_checkpoint, load_weights, model_state
from .data import DataError, EVAL_SPLITS, class_names, eval_loader, eval_transform, image_folder


def eval_folder(data_dir: Path, split: Optional[str]) -> Path:
    """``data_dir/<split>`` when given or when an evaluation split folder exists, else ``data_dir`` itself."""
    if not data_dir.is_dir():
        raise DataError(f"data dir {data_dir} does not exist or is not a directory")
    if split:
        if not (data_dir / split).is_dir():
            raise DataError(f"no {split} folder under {data_dir}")
        return data_dir / split
    for name in EVAL_SPLITS:
        if (data_dir / name).is_dir():
            return data_dir / name
    return data_dir


def validate(model_name: str, data_dir: Path, split: Optional[str] = None, checkpoint: Optional[Path] = None,
             pretrained: bool = False, use_ema: bool = True, batch_size: int = 64, workers: int = 2,
             img_size: Optional[int] = None, device: Optional[str] = None,
             model_kwargs: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    import timm
    from timm.data import resolve_data_config

    import timm_tinynet  # noqa: F401  (registers the plugin's models)

    from .engine import TrainingError, evaluate

    folder = eval_folder(data_dir, split)
    state, source = None, "random init"
    num_classes = None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        state = model_state(ckpt, prefer_ema=use_ema)
        source = f"{checkpoint} ({'EMA' if use_ema and ckpt.get('state_dict_ema') else 'model'} weights)"
        model_name = model_name or ckpt.get("arch")
        model_kwargs = model_kwargs or (ckpt.get("args") or {}).get("model_kwargs") or {}
        head = [v for k, v in state.items() if k.endswith(("classifier.weight", "fc.weight", "head.fc.weight"))]
        num_classes = int(head[0].shape[0]) if head else None
        class_to_idx = ckpt.get("class_to_idx")
    elif pretrained:
        source = "pretrained weights"
        class_to_idx = None
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
    except (ValueError, RuntimeError) as e:
        raise TrainingError(f"cannot create {model_name!r}: {e}") from None
    if state is not None:
        load_weights(model, state, str(checkpoint))
    dataset = image_folder(folder, min_classes=1, class_map=class_to_idx)
    if class_to_idx is None and len(class_names(dataset)) > model.num_classes:
        raise DataError(f"{folder} has {len(class_names(dataset))} classes, the model predicts {model.num_classes}")
    data_config = resolve_data_config(model=model, args={"input_size": (3, img_size, img_size)} if img_size else {})
    dataset.transform = eval_transform(data_config)
    run_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(run_device)

    start = time.perf_counter()
    metrics = evaluate(model, eval_loader(dataset, batch_size, workers, 0, 1), run_device)
    elapsed = time.perf_counter() - start
    return {"model": model_name, "weights": source, "data": str(folder), "images": len(dataset),
            "input_size": data_config["input_size"][-1], "crop_pct": data_config["crop_pct"],
            "interpolation": data_config["interpolation"], "top1": round(metrics["top1"], 4),
            "top5": round(metrics["top5"], 4), "loss": round(metrics["loss"], 6),
            "img_per_s": round(len(dataset) / max(elapsed, 1e-9), 1)}
