"""Class activation maps (paper Fig. 5) for any timm classifier with ``forward_features`` / ``forward_head``.

Grad-CAM on the last feature map: the channel weights are the spatially averaged gradients of the class score.
For a network whose head is global pooling followed by a linear classifier (EfficientNet, TinyNet) this is
exactly Zhou et al.'s CAM, up to scale; it also covers GhostNet's non-linear 1x1-conv head.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass
class CamResult:
    cam: np.ndarray  # (H, W) in [0, 1] at the model's input size
    class_index: int
    probability: float
    top5: Tuple[Tuple[int, float], ...]


def class_activation_map(model: torch.nn.Module, images: torch.Tensor, class_index: Optional[int] = None) -> CamResult:
    """CAM of ``class_index`` (default: the top prediction) for one preprocessed image (1, C, H, W)."""
    if images.shape[0] != 1:
        raise ValueError("class_activation_map takes one image")
    model = model.eval()
    with torch.enable_grad():
        features = model.forward_features(images)
        if features.ndim != 4:
            raise ValueError(f"{type(model).__name__} features are not a spatial map (shape {tuple(features.shape)})")
        logits = model.forward_head(features)
        probabilities = logits.detach().softmax(dim=1)[0]
        if class_index is None:
            class_index = int(probabilities.argmax())
        if not 0 <= class_index < logits.shape[1]:
            raise ValueError(f"class index {class_index} is outside 0..{logits.shape[1] - 1}")
        grads = torch.autograd.grad(logits[0, class_index], features)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    cam = (cam / cam.max()).numpy() if float(cam.max()) > 0 else cam.numpy()
    top = probabilities.topk(min(5, len(probabilities)))
    top5 = tuple((int(i), float(p)) for p, i in zip(top.values, top.indices))
    return CamResult(cam, class_index, float(probabilities[class_index]), top5)


def crop_box(width: int, height: int, size: int, crop_pct: float) -> Tuple[float, float, float, float]:
    """The region of the original image that timm's eval transform (resize shorter side to size/crop_pct,
    centre crop ``size``) feeds the model: (left, top, right, bottom) in original pixels."""
    scale = int(size / crop_pct) / min(width, height)
    side = size / scale
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def overlay(image: Image.Image, cam: np.ndarray, box: Tuple[float, float, float, float], alpha: float = 0.5,
            label: Optional[str] = None) -> Image.Image:
    """The CAM as a heat map over ``image`` (same size as the image); outside the model's crop is dimmed."""
    import matplotlib

    image = image.convert("RGB")
    left, top, right, bottom = box
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(
        (max(1, round(right - left)), max(1, round(bottom - top))), Image.BILINEAR)
    full = np.zeros((image.height, image.width), dtype=np.float32)
    mask = np.zeros_like(full)
    x0, y0 = round(left), round(top)
    heat_arr = np.asarray(heat, dtype=np.float32) / 255.0
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(image.width, x0 + heat_arr.shape[1]), min(image.height, y0 + heat_arr.shape[0])
    full[ys:ye, xs:xe] = heat_arr[ys - y0:ye - y0, xs - x0:xe - x0]
    mask[ys:ye, xs:xe] = 1.0
    colors = matplotlib.colormaps["jet"](full)[..., :3]
    base = np.asarray(image, dtype=np.float32) / 255.0
    blended = np.where(mask[..., None] > 0, (1 - alpha) * base + alpha * colors, 0.4 * base)
    out = Image.fromarray((blended * 255).clip(0, 255).astype(np.uint8))
    if label:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(out)
        draw.rectangle((0, 0, 8 + 7 * len(label), 18), fill=(0, 0, 0))
        draw.text((4, 3), label, fill=(255, 255, 255))
    return out


def cam_for_image(model: torch.nn.Module, image: Image.Image, class_index: Optional[int] = None,
                  alpha: float = 0.5, label_names=None) -> Tuple[Image.Image, CamResult]:
    """Preprocess with the model's own eval transform, compute the CAM, and overlay it on the whole image."""
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config(model=model)
    transform = create_transform(**config)
    images = transform(image.convert("RGB")).unsqueeze(0)
    result = class_activation_map(model, images, class_index)
    box = crop_box(image.width, image.height, config["input_size"][-1], config["crop_pct"])
    name = label_names[result.class_index] if label_names is not None else f"class {result.class_index}"
    return overlay(image, result.cam, box, alpha, f"{name}: p={result.probability:.2f}"), result
