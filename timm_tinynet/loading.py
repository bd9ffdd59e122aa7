"""The model a tool works on: a checkpoint's own network with its weights, the published weights, or a random
initialisation — built through timm, with one-line reasons when it cannot be."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

HEAD_SUFFIXES = ("classifier.weight", "fc.weight", "head.fc.weight")


class ModelLoadError(ValueError):
    """A model that cannot be built or given its weights, with the reason."""


def first_line(error: BaseException) -> str:
    """An exception's message cut to its first line (its type when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def head_classes(state: Dict[str, torch.Tensor]) -> Optional[int]:
    """The number of classes the classifier in ``state`` predicts (None when it has no known classifier)."""
    head = [v for k, v in state.items() if k.endswith(HEAD_SUFFIXES)]
    return int(head[0].shape[0]) if head else None


def quiet_hub_retries() -> None:
    """The Hugging Face hub logs every retry of a failing download; the tools report the failure in one line."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        return
    hub_logging.set_verbosity_error()


def _is_download_error(e: Exception) -> bool:
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("huggingface_hub", "requests", "httpx")


def create(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` (with this plugin's models registered); ModelLoadError names what went wrong."""
    import timm

    import timm_tinynet  # noqa: F401  (registers the plugin's models)

    if not timm.is_model(name):
        raise ModelLoadError(f"unknown model {name!r} (see timm.list_models() and the timm_tinynet README)")
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except Exception as e:  # noqa: BLE001 - timm, the model's own checks and the hub client raise many types
        if pretrained and _is_download_error(e):
            raise ModelLoadError(f"the pretrained weights of {name} could not be downloaded ({type(e).__name__}); "
                                 f"check the network (or the Hugging Face cache), or use --checkpoint") from None
        if isinstance(e, (ValueError, RuntimeError, TypeError, OSError)):
            raise ModelLoadError(f"cannot create {name!r} with {kwargs}: {first_line(e)}") from None
        raise


def load_model(name: Optional[str], model_kwargs: Dict[str, Any], checkpoint: Optional[Path] = None,
               pretrained: bool = False, num_classes: Optional[int] = None,
               prefer_ema: bool = True) -> Tuple[nn.Module, Dict[str, Any]]:
    """The eval-mode model and its checkpoint ({} without one).

    ``name`` defaults to the checkpoint's arch. The checkpoint's recorded model kwargs (r=, d=, w=, ...) are used
    when none are given and ``name`` is the checkpoint's own model; the classes follow its classifier; its EMA
    weights are loaded when present and ``prefer_ema``. Raises ModelLoadError (or CheckpointError)."""
    from .train.checkpoint import load_checkpoint, load_weights, model_state

    kwargs = dict(model_kwargs)
    ckpt: Dict[str, Any] = {}
    state = None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        state = model_state(ckpt, prefer_ema=prefer_ema)
        arch = ckpt.get("arch")
        name = name or arch
        if not kwargs and arch in (None, name):
            kwargs = dict((ckpt.get("args") or {}).get("model_kwargs") or {})
        classes = head_classes(state)
        if classes is not None:
            kwargs["num_classes"] = classes
    if not name:
        raise ModelLoadError("--model is required (the checkpoint does not name its architecture)")
    if num_classes:
        kwargs["num_classes"] = num_classes
    model = create(name, pretrained=pretrained and checkpoint is None, **kwargs)
    if state is not None:
        load_weights(model, state, str(checkpoint))
    return model.eval(), ckpt
