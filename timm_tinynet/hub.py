"""Share a shrunk network the way timm shares models: its Hugging Face layout (``config.json`` with the
architecture and ``model_args``, weights beside it), which ``timm.create_model("local-dir:PATH")`` or
``"hf-hub:ORG/NAME"`` rebuilds once ``timm_tinynet`` is imported.

A network asked for by ``c=`` or ``target=`` is saved as the cube the search resolved it to (``r``, ``d``, ``w``):
rebuilding it then repeats no search, so a newer formula, another frontier or another machine's latency cannot
change the network the weights belong to.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn

SEARCH_ARGS = ("c", "rule", "tol", "frontier", "target", "latency_meter")
HF_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")  # what save_for_hf writes (safetensors + bin)


def reconstruction_args(model: nn.Module) -> Dict[str, Any]:
    """The ``create_model`` kwargs that rebuild ``model`` without a search: those timm recorded, with a shrink
    (c, rule, tol, frontier, target, latency_meter) replaced by the cube it resolved to."""
    args = dict(getattr(model, "_model_args", {}))
    if any(key in args for key in SEARCH_ARGS):
        cube = getattr(model, "tinynet_cube", None)
        if cube is None:
            raise ValueError("the model was shrunk by a search but does not record its cube; build it with "
                             "timm.create_model after importing timm_tinynet")
        args = {key: value for key, value in args.items() if key not in SEARCH_ARGS}
        args.update(r=cube.r, d=cube.d, w=cube.w)
    return args


def save_for_hf(model: nn.Module, directory: Union[str, Path], safe_serialization: Union[bool, str] = "both") -> Path:
    """``timm.models.save_for_hf`` with ``reconstruction_args``: ``config.json`` (architecture, model_args,
    pretrained cfg) and the weights (safetensors and/or pytorch_model.bin) in ``directory``."""
    from timm.models import save_for_hf as timm_save_for_hf

    recorded = getattr(model, "_model_args", None)
    model._model_args = reconstruction_args(model)
    try:
        timm_save_for_hf(model, str(directory), safe_serialization=safe_serialization)
    finally:
        if recorded is None:
            del model._model_args
        else:
            model._model_args = recorded
    return Path(directory)


def rebuild(directory: Union[str, Path]) -> nn.Module:
    """The network saved in ``directory``, rebuilt the way a user does: ``timm.create_model("local-dir:...",
    pretrained=True)`` (this package imported, so its architectures are registered)."""
    import timm

    from . import models as _models  # noqa: F401  (registers the architectures config.json may name)

    return timm.create_model(f"local-dir:{Path(directory).resolve()}", pretrained=True)


def export_hf_verified(model: nn.Module, out: Union[str, Path], input_size: Sequence[int]) -> Tuple[float, Path]:
    """Save ``model`` in timm's Hugging Face layout into ``out`` and check the round trip: the rebuilt network's
    logits on random input (batch 2) against the model's. The files are written to a temporary folder beside
    ``out`` and moved in only after the check (max abs logit difference returned), so a failed export leaves an
    earlier ``out`` as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        save_for_hf(model, tmp)
        rebuilt = rebuild(tmp).eval()
        x = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            error = float((model(x) - rebuilt(x)).abs().max())
        if error > 0:
            raise RuntimeError(f"the rebuilt network's logits differ by up to {error:.2e}: not saved")
        out.mkdir(exist_ok=True)
        for name in HF_FILES:  # save_for_hf writes all three (safe_serialization "both")
            os.replace(Path(tmp) / name, out / name)
    return error, out
