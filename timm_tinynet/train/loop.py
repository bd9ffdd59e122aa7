"""The loop: one epoch of training steps, an evaluation pass, and the seeds each epoch starts from.

Built on timm's utilities as its ``train.py`` uses them: ``accuracy``, ``NativeScaler`` / ``dispatch_clip_grad``
for the update, ``random_seed``, and ``reduce_tensor`` (``distributed.sum_over_processes``) across processes.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.utils import accuracy, dispatch_clip_grad, random_seed

from .distributed import sum_over_processes
from .errors import TrainingError
from .progress import Progress


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed Python, NumPy and torch from (seed, epoch, rank) with timm's ``random_seed``: an epoch's augmentation and
    dropout are the same whether the run was resumed or not. (NumPy takes seeds below 2**32, hence the modulo.)"""
    random_seed((seed + 1_000 * epoch + rank) % 2 ** 32)


def seed_initial_weights(seed: int) -> None:
    """The same initial weights on every process and every run: torch's generator, which draws them, seeded from
    ``seed - 1000`` (the seed of an epoch -1, which no epoch's seed repeats; Python's and NumPy's generators are
    seeded by the first epoch before anything draws from them)."""
    torch.manual_seed(seed - 1_000)


def autocast_context(amp_dtype: Optional[str], device: torch.device):
    """Mixed precision in ``amp_dtype`` ('float16' / 'bfloat16'), or nothing when it is None."""
    if not amp_dtype:
        return nullcontext()
    dtype = torch.bfloat16 if amp_dtype == "bfloat16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def amp_dtype(args) -> Optional[str]:
    """The run's autocast dtype, None without ``--amp``."""
    return args.amp_dtype if args.amp else None


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def optimizer_update(loss: torch.Tensor, model: nn.Module, optimizer, scaler=None,
                     clip_grad: Optional[float] = None) -> None:
    """Backward and one optimizer step, as timm's train.py: through the ``NativeScaler`` (scale, unscale, clip,
    step) with float16 AMP, else backward, ``dispatch_clip_grad`` and step."""
    if scaler is not None:
        scaler(loss, optimizer, clip_grad=clip_grad or None, parameters=model.parameters())
        return
    loss.backward()
    if clip_grad:
        dispatch_clip_grad(model.parameters(), clip_grad)
    optimizer.step()


def train_one_epoch(model: nn.Module, loader, optimizer, scheduler, loss_fn, device: torch.device, epoch: int, args,
                    ema=None, scaler=None, progress: Optional[Progress] = None,
                    world_size: int = 1) -> Dict[str, float]:
    """One pass over ``loader``: the mean training loss, images per second and seconds, over all processes."""
    model.train()
    updates_per_epoch = len(loader)
    num_updates = epoch * updates_per_epoch
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # summed on the device: no sync per step
    seen = 0
    start = time.perf_counter()
    for step, (images, target) in enumerate(loader):
        images = to_device(images, device, args.channels_last)
        target = target.to(device, non_blocking=True)
        with autocast_context(amp_dtype(args), device):
            loss = loss_fn(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        optimizer_update(loss, model, optimizer, scaler, getattr(args, "clip_grad", None))
        num_updates += 1
        if ema is not None:
            ema.update(model, step=num_updates)
        scheduler.step_update(num_updates=num_updates)
        loss_sum += loss.detach().double() * target.shape[0]
        seen += target.shape[0]
        if progress is not None:
            progress.advance(step + 1, updates_per_epoch)
        if (step + 1) % args.log_interval == 0 or step + 1 == updates_per_epoch:
            mean_loss = float(loss_sum) / seen
            if not math.isfinite(mean_loss):
                raise TrainingError(f"loss became {mean_loss} in epoch {epoch}: lower --lr or check the data")
            if progress is not None:
                progress.update(step + 1, updates_per_epoch, mean_loss, seen / (time.perf_counter() - start),
                                optimizer.param_groups[0]["lr"])
    elapsed = time.perf_counter() - start
    loss_total, images = sum_over_processes(
        torch.stack([loss_sum, torch.tensor(float(seen), dtype=torch.float64, device=device)]), world_size).tolist()
    return {"loss": loss_total / max(images, 1.0), "img_per_s": images / max(elapsed, 1e-9), "time_s": elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, world_size: int = 1, amp_dtype: Optional[str] = None,
             channels_last: bool = False) -> Dict[str, float]:
    """Loss, top-1 and top-5 (%) over every process's share of the evaluation set."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top-1 hits, top-5 hits, images
    for batch in loader:
        if batch is None:  # every image of the batch was unreadable (each one named in a warning)
            continue
        images, target = batch
        images = to_device(images, device, channels_last)
        target = target.to(device, non_blocking=True)
        with autocast_context(amp_dtype, device):
            logits = model(images).float()
        n = target.shape[0]
        top1, top5 = accuracy(logits, target, topk=(1, 5))  # percentages of the batch, as hit counts below
        totals += torch.stack([F.cross_entropy(logits, target, reduction="sum").double(),
                               (top1.double() * n / 100).round(), (top5.double() * n / 100).round(),
                               torch.tensor(float(n), dtype=torch.float64, device=device)])
    loss, top1, top5, count = sum_over_processes(totals, world_size).tolist()
    count = max(count, 1.0)
    return {"loss": loss / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count}
