"""Short runs learn, long runs keep the paper's recipe.

The recipe's BN momentum (0.01, TF's 0.99) and EMA decay (0.9999) average over about 100 and 10,000 steps; a run
of a few hundred steps would evaluate BatchNorm statistics still made of their initial 0/1 and an EMA still made of
the initial random weights (a 6-epoch, 54-step run then stays at chance however well it trains). Each mechanism
here is the paper's recipe once the run is long:

* **EMA warm-up** (``--model-ema-warmup``, on in both recipes): the decay at update ``t`` is
  ``min(decay, (1 + t) / (10 + t))``, TensorFlow's ``ExponentialMovingAverage(decay, num_updates=global_step)``
  as the official EfficientNet code trains with; it reaches 0.9999 after 90,000 updates (72 of ImageNet's 450
  epochs at batch 1024), so the paper's runs used it too.
* **BatchNorm statistics warm-up** (``--bn-warmup``, on for a run from random weights): the weight of the new batch
  in a BN layer's running statistics is ``max(momentum, 1 / (t + 1))`` at that layer's ``t``-th update
  (``t`` from 0, counted by its ``num_batches_tracked``), so the initial 0/1 are forgotten at once and the
  statistics are the mean over the batches seen until ``1 / momentum`` updates (100 for the recipe), after which
  the configured momentum holds exactly. Off by default for ``--pretrained`` / ``--initial-checkpoint``, whose
  running statistics are kept.
* **Precise BatchNorm statistics** (``--precise-bn N``, pycls's "precise BN" of Radosavovic/Dollár et al.):
  before each evaluation the running statistics of the raw weights and of the EMA are re-estimated as the plain
  mean over ``N`` training images with the current weights. Running averages describe the weights of the last
  ``1 / momentum`` steps; early in a run the weights move so fast that those statistics do not fit the weights
  being evaluated (a 105-step SGD run on the digits evaluates at 21% top-1 with its running statistics and 89%
  with precise ones). The default is 1024 images when the run has fewer than ``100 / momentum`` steps (10,000 for
  the recipe's 0.01), else 0 (off): the paper's ImageNet runs are far longer and keep their running averages.

With a warm-up turned off, a run too short for its momentum or decay gets a warning saying so. (The fourth
mechanism, fair best weights between the EMA and the raw ones, is the session's choice of ``model_best``.)
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
from timm.utils import ModelEmaV3, distribute_bn

from .loop import autocast_context, to_device

PRECISE_BN_IMAGES = 1024
PRECISE_BN_HORIZONS = 100  # runs shorter than this many BN averaging horizons (1 / momentum steps) get precise BN


class ModelEma(ModelEmaV3):
    """timm's ModelEmaV3 whose warm-up (``use_warmup``) is TensorFlow's: ``ExponentialMovingAverage(decay,
    num_updates=step)`` uses ``min(decay, (1 + step) / (10 + step))``, as the official EfficientNet (and so TinyNet)
    training code does. Without warm-up the decay is constant (the first update copies the weights)."""

    def get_decay(self, step: Optional[int] = None) -> float:
        if step is None or not self.use_warmup:
            return super().get_decay(step)
        return min(self.decay, (1.0 + step) / (10.0 + step))


def _bn_layers(model: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _bn_warmup_hook(module: nn.Module, inputs) -> None:
    if not module.training or getattr(module, "_precise_bn", False):
        return
    seen = module._bn_warmup_seen
    if seen is None:  # the first update of this process: a resumed run goes on where it stopped
        seen = int(module.num_batches_tracked)
    base = module._bn_warmup_momentum
    module.momentum = max(base, 1.0 / (seen + 1))
    module._bn_warmup_seen = seen + 1
    if module.momentum == base:  # warm-up over: the configured momentum from now on, and no more hook
        module._bn_warmup_handle.remove()


def bn_warmup(model: nn.Module) -> int:
    """BatchNorm running-statistics warm-up: the ``t``-th update of a layer weighs the new batch by
    ``max(momentum, 1 / (t + 1))``. Returns the number of layers it applies to (those with running statistics and a
    momentum; ``momentum=None`` is PyTorch's cumulative average already)."""
    count = 0
    for module in _bn_layers(model):
        if module.track_running_stats and module.momentum is not None and 0 < module.momentum < 1:
            module._bn_warmup_momentum = module.momentum
            module._bn_warmup_seen = None
            module._bn_warmup_handle = module.register_forward_pre_hook(_bn_warmup_hook)
            count += 1
    return count


def default_precise_bn(bn_momentum: Optional[float], total_steps: int) -> int:
    """Images for precise BN when the run is too short for running averages to describe its weights, else 0."""
    momentum = bn_momentum if bn_momentum is not None else 0.1
    return PRECISE_BN_IMAGES if total_steps < PRECISE_BN_HORIZONS / momentum else 0


@torch.no_grad()
def precise_bn(model: nn.Module, loader, images: int, device: torch.device, world_size: int = 1,
               amp_dtype: Optional[str] = None, channels_last: bool = False) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance as the plain average over about ``images``
    training images (whole batches, each process its shard, averaged over processes by timm's ``distribute_bn``)
    with the current weights. Momenta, ``num_batches_tracked`` and the train/eval mode are left as they were.
    Returns the images this process used."""
    layers = [m for m in _bn_layers(model) if m.track_running_stats]
    if not layers or images <= 0:
        return 0
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # PyTorch's cumulative average over the batches that follow
        m._precise_bn = True
    model.train()
    seen = 0
    try:
        for batch in loader:
            if batch is None:
                continue
            x = to_device(batch[0], device, channels_last)
            with autocast_context(amp_dtype, device):
                model(x)
            seen += x.shape[0]
            if seen * world_size >= images:
                break
    finally:
        for m, (momentum, tracked) in zip(layers, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
            m._precise_bn = False
        model.train(was_training)
    if world_size > 1:
        distribute_bn(model, world_size, reduce=True)
    return seen


def settling_warnings(args, total_steps: int) -> List[str]:
    """What cannot settle within ``total_steps`` updates: BatchNorm statistics or an EMA without their warm-up
    keeping more than 5% of their initial values at the end of the run."""
    out = []
    momentum = args.bn_momentum if args.bn_momentum is not None else 0.1
    if not args.bn_warmup and not getattr(args, "precise_bn", 0) and (1 - momentum) ** total_steps > 0.05:
        out.append(f"BatchNorm running statistics with momentum {momentum:g} still hold "
                   f"{(1 - momentum) ** total_steps:.0%} of their initial values after this run's {total_steps} "
                   f"steps, so evaluation will be poor: use --bn-warmup, --precise-bn or a larger --bn-momentum")
    if args.model_ema and not args.model_ema_warmup and args.model_ema_decay ** total_steps > 0.05:
        out.append(f"the EMA with decay {args.model_ema_decay:g} is still {args.model_ema_decay ** total_steps:.0%} "
                   f"the initial random weights after this run's {total_steps} steps: use --model-ema-warmup or a "
                   f"smaller --model-ema-decay")
    return out
