"""Figures the paper reports, for checking this implementation against it (FLOPs and parameters)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class PaperModel:
    label: str  # how the paper names it
    model: str  # timm model name
    kwargs: Dict[str, Any] = field(default_factory=dict)
    flops_m: Optional[float] = None  # paper's FLOPs, millions of multiply-adds
    params_m: Optional[float] = None  # paper's parameters, millions
    source: str = ""


PAPER_MODELS: Tuple[PaperModel, ...] = (
    PaperModel("EfficientNet-B0", "efficientnet_b0", {}, 387, 5.3, "Table 3"),
    PaperModel("TinyNet-A", "tinynet_a", {}, 339, 6.2, "Table 3"),
    PaperModel("TinyNet-B", "tinynet_b", {}, 202, 3.7, "Table 3"),
    PaperModel("TinyNet-C", "tinynet_c", {}, 100, 2.5, "Table 3"),
    PaperModel("TinyNet-D", "tinynet_d", {}, 52, 2.3, "Table 3"),
    PaperModel("TinyNet-E", "tinynet_e", {}, 24, 2.0, "Table 3"),
    PaperModel("EfficientNet-B^-1", "efficientnet_bm1", {}, 201, 3.6, "Table 3"),
    PaperModel("EfficientNet-B^-2", "efficientnet_bm2", {}, 98, 3.0, "Table 3"),
    PaperModel("EfficientNet-B^-3", "efficientnet_bm3", {}, 51, 2.0, "Table 3"),
    PaperModel("EfficientNet-B^-4", "efficientnet_bm4", {}, 24, 1.3, "Table 3"),
    PaperModel("shrink B0 by r = 0.70", "tinynet", {"r": 0.70}, 196, None, "Table 1"),
    PaperModel("shrink B0 by r = 0.46", "tinynet", {"r": 0.46}, 103, None, "Table 1"),
    PaperModel("shrink B0 by d = 0.45", "tinynet", {"d": 0.45}, 196, None, "Table 1"),
    PaperModel("shrink B0 by w = 0.65", "tinynet", {"w": 0.65}, 205, None, "Table 1"),
    PaperModel("shrink B0 by w = 0.38", "tinynet", {"w": 0.38}, 99, None, "Table 1"),
    PaperModel("B0 at minimum depth", "tinynet", {"d": 0.1}, 173, None, "Table 1 note"),
    PaperModel("ResNet-50", "resnet50", {}, 4100, None, "Table 2"),
    PaperModel("ResNet-34", "resnet34", {}, 3700, None, "Table 2"),
    PaperModel("ResNet-50 by EfficientNet rule (3.7B)", "resnet50_giant_a", {}, 3700, None, "Table 2"),
    PaperModel("ResNet-50-A (tiny formula)", "resnet50_tiny_a", {}, 3600, None, "Table 2"),
    PaperModel("ResNet-18", "resnet18", {}, 1800, None, "Table 2"),
    PaperModel("ResNet-50 by EfficientNet rule (1.8B)", "resnet50_giant_b", {}, 1800, None, "Table 2"),
    PaperModel("ResNet-50-B (tiny formula)", "resnet50_tiny_b", {}, 1800, None, "Table 2"),
    PaperModel("GhostNet-A", "ghostnet_a", {}, 591, 11.9, "Tables 6, 7"),
    PaperModel("GhostNet-B (tiny formula)", "ghostnet_b", {}, 300, 8.0, "Table 6"),
    PaperModel("GhostNet-C (tiny formula)", "ghostnet_c", {}, 141, 5.0, "Table 6"),
    PaperModel("GhostNet-D (tiny formula)", "ghostnet_d", {}, 52, 2.6, "Table 6"),
)
