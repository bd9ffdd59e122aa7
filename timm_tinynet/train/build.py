"""What a run trains with, built by timm's factories: the model (and the weights a new run starts from), the
optimizer, the scheduler, the EMA, the loss and the AMP scaler. Each factory's bad options become one-line errors."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn as nn

from .checkpoint import load_checkpoint, load_weights, model_state
from .errors import TrainingError
from .short_runs import ModelEma


def set_bn_momentum(model: nn.Module, momentum: Optional[float]) -> None:
    if momentum is None:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def create_model(args, num_classes: int, meta: bool = False) -> nn.Module:
    """The run's model with its dropout, stochastic depth and BN momentum. ``meta=True`` builds a shape-only
    copy on the meta device (no storage, no weights, no download) to look at the architecture."""
    from ..loading import create

    kwargs = dict(args.model_kwargs, num_classes=num_classes)
    if args.drop is not None:
        kwargs["drop_rate"] = args.drop
    if args.drop_path:
        kwargs["drop_path_rate"] = args.drop_path
    with torch.device("meta") if meta else nullcontext():
        model = create(args.model, pretrained=args.pretrained and not meta, **kwargs)
    set_bn_momentum(model, args.bn_momentum)
    return model


def starts_from_weights(args) -> bool:
    """Whether a new run starts from trained weights rather than a random initialisation (its BatchNorm statistics
    are then kept: no BN warm-up by default)."""
    return bool(getattr(args, "pretrained", False) or getattr(args, "initial_checkpoint", None)
                or getattr(args, "init_from", None))


def load_initial_weights(model: nn.Module, args) -> None:
    """The weights a new run starts from, beyond ``--pretrained`` (which ``create_model`` loads): with
    ``--initial-checkpoint``, the weights that checkpoint names as its better ones (``eval_weights``); with
    ``--init-from``, those of a larger network of the family, cut to this one by weight selection."""
    if args.initial_checkpoint:
        load_weights(model, model_state(load_checkpoint(args.initial_checkpoint)), args.initial_checkpoint)
    if getattr(args, "init_from", None):
        from ..models import baseline_of
        from ..parents import inherit_published

        try:
            inherit_published(model, baseline_of(args.model, args.model_kwargs), args.init_from,
                              args.init_selection)
        except ValueError as e:  # a file that is not weights, or weights of another family
            raise TrainingError(f"--init-from: {e}") from None


def create_optimizer(args, model: nn.Module):
    from timm.optim import create_optimizer_v2

    kwargs = dict(args.opt_kwargs)
    if args.opt_eps is not None:
        kwargs.setdefault("eps", args.opt_eps)
    if args.opt_alpha is not None and "rmsprop" in args.opt:
        kwargs.setdefault("alpha", args.opt_alpha)
    try:
        return create_optimizer_v2(model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay,
                                   momentum=args.momentum, **kwargs)
    except (ValueError, TypeError, AssertionError) as e:
        raise TrainingError(f"cannot create optimizer {args.opt!r}: {e}") from None


def create_scheduler(args, optimizer, updates_per_epoch: int):
    """timm's scheduler stepped per update (``step_on_epochs=False``), so its schedule is the same in epochs for
    any batch or world size."""
    from timm.scheduler import create_scheduler_v2

    try:
        scheduler, _ = create_scheduler_v2(
            optimizer, sched=args.sched, num_epochs=args.epochs, decay_epochs=args.decay_epochs,
            decay_rate=args.decay_rate, min_lr=args.min_lr, warmup_lr=args.warmup_lr,
            warmup_epochs=args.warmup_epochs, step_on_epochs=False, updates_per_epoch=updates_per_epoch)
    except (ValueError, TypeError, AssertionError) as e:
        raise TrainingError(f"cannot create scheduler {args.sched!r}: {e}") from None
    if scheduler is None:
        raise TrainingError(f"unknown scheduler {args.sched!r} (step, cosine, tanh, multistep, poly, ...)")
    return scheduler


def create_ema(args, model: nn.Module) -> Optional[ModelEma]:
    return ModelEma(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup) if args.model_ema else None


def create_loss(args) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy

    return LabelSmoothingCrossEntropy(args.smoothing) if args.smoothing > 0 else nn.CrossEntropyLoss()


def create_scaler(args, device: torch.device):
    """timm's ``NativeScaler`` for float16 AMP (CUDA); bfloat16 and full precision need none."""
    from timm.utils import NativeScaler

    return NativeScaler(device.type) if args.amp and args.amp_dtype == "float16" else None
