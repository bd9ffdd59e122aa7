"""The training run: timm's models, optimizers, schedulers, EMA, losses and transforms in one loop.

Single process, or one process per device under ``torchrun`` (DDP; NCCL on CUDA, gloo on CPU).

Short runs learn, long runs keep the paper's recipe. The recipe's BN momentum (0.01, TF's 0.99) and EMA decay
(0.9999) average over about 100 and 10,000 steps; a run of a few hundred steps would evaluate BatchNorm statistics
still made of their initial 0/1 and an EMA still made of the initial random weights (a 6-epoch, 54-step run then
stays at chance however well it trains). Three mechanisms, each the paper's recipe once the run is long:

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
* **Fair best weights**: each epoch evaluates the raw weights and the EMA; the better top-1 is the epoch's metric
  (``model_best.pth.tar``) and the checkpoint records which weights won (``eval_weights``: ``"ema"`` or
  ``"model"``, ties to the EMA), which ``tinynet-validate``, export and ``--initial-checkpoint`` then load.

* **Precise BatchNorm statistics** (``--precise-bn N``, pycls's "precise BN" of Radosavovic/Dollár et al.):
  before each evaluation the running statistics of the raw weights and of the EMA are re-estimated as the plain
  mean over ``N`` training images with the current weights. Running averages describe the weights of the last
  ``1 / momentum`` steps; early in a run the weights move so fast that those statistics do not fit the weights
  being evaluated (a 105-step SGD run on the digits evaluates at 21% top-1 with its running statistics and 89%
  with precise ones). The default is 1024 images when the run has fewer than ``100 / momentum`` steps (10,000 for
  the recipe's 0.01), else 0 (off): the paper's ImageNet runs are far longer and keep their running averages.

With a warm-up turned off, a run too short for its momentum or decay gets a warning saying so.
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import os
import random
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from timm.utils import ModelEmaV3

from tinynet_core.atomic import write_text
from tinynet_core.guard import GuardError, check_output_dir, folder_lock
from .checkpoint import (CheckpointError, build_checkpoint, load_checkpoint, load_weights, model_state, save_atomic,
                         set_rng_state)
from .data import DataError, class_names, eval_loader, eval_transform, load_splits, train_loader, train_transform
from .progress import Progress
from .recipes import apply_recipe, default_recipe_for, scaled_lr

_logger = logging.getLogger("tinynet-train")

SUMMARY_FIELDS = ("epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "ema_eval_loss", "ema_eval_top1",
                  "ema_eval_top5", "lr", "train_img_per_s", "epoch_time_s")


class TrainingError(RuntimeError):
    """A problem with the run's inputs (data, model, checkpoint, options), reported without a traceback."""


# ---- distributed ---------------------------------------------------------------------------------------------

def resolve_device(device_arg: Optional[str]) -> torch.device:
    """The ``--device`` asked for (default: CUDA when torch sees a GPU, else the CPU), or a TrainingError."""
    if not device_arg:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device_arg)
    except RuntimeError:
        raise TrainingError(f"--device {device_arg!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {device_arg} asks for CUDA, but torch sees no GPU")
    return device


def init_distributed(device_arg: Optional[str]) -> Dict[str, Any]:
    """Rank, world size and device; initialises the process group when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return {"rank": rank, "world_size": world_size, "local_rank": local_rank, "device": device}


def all_reduce_sum(values: List[float], device: torch.device, world_size: int) -> List[float]:
    if world_size == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# ---- pieces --------------------------------------------------------------------------------------------------

def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Seed every RNG from (seed, epoch, rank): an epoch's augmentation and dropout are the same whether
    the run was resumed or not."""
    value = seed + 1_000 * epoch + rank
    random.seed(value)
    np.random.seed(value % 2 ** 32)
    torch.manual_seed(value)


def set_bn_momentum(model: nn.Module, momentum: Optional[float]) -> None:
    if momentum is None:
        return
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


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
    """BatchNorm running-statistics warm-up (see the module's docstring): the ``t``-th update of a layer weighs
    the new batch by ``max(momentum, 1 / (t + 1))``. Returns the number of layers it applies to (those with running
    statistics and a momentum; ``momentum=None`` is PyTorch's cumulative average already)."""
    count = 0
    for module in model.modules():
        if (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
                and module.momentum is not None and 0 < module.momentum < 1):
            module._bn_warmup_momentum = module.momentum
            module._bn_warmup_seen = None
            module._bn_warmup_handle = module.register_forward_pre_hook(_bn_warmup_hook)
            count += 1
    return count


PRECISE_BN_IMAGES = 1024
PRECISE_BN_HORIZONS = 100  # runs shorter than this many BN averaging horizons (1 / momentum steps) get precise BN


def default_precise_bn(bn_momentum: Optional[float], total_steps: int) -> int:
    """Images for precise BN when the run is too short for running averages to describe its weights, else 0."""
    momentum = bn_momentum if bn_momentum is not None else 0.1
    return PRECISE_BN_IMAGES if total_steps < PRECISE_BN_HORIZONS / momentum else 0


@torch.no_grad()
def precise_bn(model: nn.Module, loader, images: int, device: torch.device, world_size: int = 1,
               amp_dtype: Optional[str] = None, channels_last: bool = False) -> int:
    """Re-estimate every BatchNorm layer's running mean and variance as the plain average over about ``images``
    training images (whole batches, each process its shard, averaged over processes) with the current weights.
    Momenta, ``num_batches_tracked`` and the train/eval mode are left as they were. Returns the images used."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
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
            x = batch[0].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
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
        for m in layers:
            for buffer in (m.running_mean, m.running_var):
                dist.all_reduce(buffer)
                buffer.div_(world_size)
    return seen


class ModelEma(ModelEmaV3):
    """timm's ModelEmaV3 whose warm-up (``use_warmup``) is TensorFlow's: ``ExponentialMovingAverage(decay,
    num_updates=step)`` uses ``min(decay, (1 + step) / (10 + step))``, as the official EfficientNet (and so TinyNet)
    training code does. Without warm-up the decay is constant (the first update copies the weights)."""

    def get_decay(self, step: Optional[int] = None) -> float:
        if step is None or not self.use_warmup:
            return super().get_decay(step)
        return min(self.decay, (1.0 + step) / (10.0 + step))


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


def accuracy(logits: torch.Tensor, target: torch.Tensor, topk=(1, 5)) -> List[int]:
    """Number of samples whose target is within the top-k predictions, for each k."""
    maxk = min(max(topk), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hits = pred.eq(target[:, None])
    return [int(hits[:, :min(k, maxk)].any(dim=1).sum()) for k in topk]


def autocast_context(amp_dtype: Optional[str], device: torch.device):
    """Mixed precision in ``amp_dtype`` ('float16' / 'bfloat16'), or nothing when it is None."""
    if not amp_dtype:
        return nullcontext()
    dtype = torch.bfloat16 if amp_dtype == "bfloat16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _amp(args) -> Optional[str]:
    return args.amp_dtype if args.amp else None


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, world_size: int = 1, amp_dtype: Optional[str] = None,
             channels_last: bool = False) -> Dict[str, float]:
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    totals = [0.0, 0.0, 0.0, 0.0]  # loss sum, top1 hits, top5 hits, count
    for batch in loader:
        if batch is None:  # every image of the batch was unreadable (each one named in a warning)
            continue
        images, target = batch
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(amp_dtype, device):
            logits = model(images)
        top1, top5 = accuracy(logits.float(), target)
        totals[0] += float(loss_fn(logits.float(), target))
        totals[1] += top1
        totals[2] += top5
        totals[3] += target.shape[0]
    loss, top1, top5, count = all_reduce_sum(totals, device, world_size)
    count = max(count, 1.0)
    return {"loss": loss / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count}


def train_one_epoch(model, loader, optimizer, scheduler, loss_fn, device, epoch: int, args, ema=None,
                    scaler=None, progress: Optional[Progress] = None) -> Dict[str, float]:
    from timm.utils import dispatch_clip_grad

    model.train()
    updates_per_epoch = len(loader)
    num_updates = epoch * updates_per_epoch
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # summed on the device: no sync per step
    seen = 0
    start = time.perf_counter()
    for step, (images, target) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(_amp(args), device):
            loss = loss_fn(model(images), target)
        optimizer.zero_grad(set_to_none=True)
        clip = getattr(args, "clip_grad", None)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                dispatch_clip_grad(model.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip:
                dispatch_clip_grad(model.parameters(), clip)
            optimizer.step()
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
    totals = all_reduce_sum([float(loss_sum), float(seen), elapsed], device, args.world_size)
    return {"loss": totals[0] / max(totals[1], 1.0), "img_per_s": totals[1] / max(elapsed, 1e-9),
            "time_s": elapsed}


# ---- outputs -------------------------------------------------------------------------------------------------

def summary_text(rows: List[Dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_summary(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():  # missing (or not a regular file: a pipe would block)
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plain_args(args) -> Dict[str, Any]:
    """The run's options as YAML/pickle-safe primitives."""
    out = {}
    for key, value in sorted(vars(args).items()):
        if key in ("rank", "world_size", "local_rank", "explicit"):
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


# ---- the run -------------------------------------------------------------------------------------------------

def resolve_options(args, recipe: str, keep: Sequence[str] = ()) -> None:
    """Recipe defaults for unset options (except ``keep``: a resumed run's recorded ones, None included), then
    the learning rate from the global batch size."""
    options = apply_recipe({k: getattr(args, k, None) for k in vars(args)}, recipe)
    for key, value in options.items():
        if key not in keep:
            setattr(args, key, value)
    args.recipe = recipe
    if getattr(args, "bn_warmup", None) is None:  # on from random weights; given weights keep their statistics
        args.bn_warmup = not (getattr(args, "pretrained", False) or getattr(args, "initial_checkpoint", None))
    if args.aa in ("none", ""):
        args.aa = None
    args.global_batch_size = args.batch_size * args.world_size
    if args.lr is None:
        args.lr = scaled_lr(args.lr_base, args.lr_base_size, args.global_batch_size)


def _optimizer(args, model: nn.Module):
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


def _scheduler(args, optimizer, updates_per_epoch: int):
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


# Options a resumed run must keep: changing them would make the restored state meaningless or fail later.
RESUME_FIXED = ("model", "model_kwargs", "num_classes", "opt", "sched", "recipe")
# Options never taken from the checkpoint: where and how this process runs, not what is trained.
RESUME_LOCAL = ("resume", "initial_checkpoint", "pretrained", "data_dir", "train_split", "val_split", "output",
                "experiment", "device", "workers", "log_interval", "explicit")


def explicit_options(args) -> set:
    """Options the user set; without the CLI's record, every option that is not None counts as set."""
    recorded = getattr(args, "explicit", None)
    if recorded is not None:
        return set(recorded)
    return {key for key, value in vars(args).items() if value is not None}


def inherit_resumed_options(args, checkpoint: Dict[str, Any], source: str) -> List[str]:
    """A resumed run continues with its recorded options; flags given now override all but RESUME_FIXED.
    Returns the options taken from the checkpoint."""
    saved = checkpoint.get("args") or {}
    explicit = explicit_options(args)
    for key in RESUME_FIXED:
        if key in explicit and key in saved and saved[key] is not None and saved[key] != getattr(args, key, None):
            raise TrainingError(
                f"{source} was trained with --{key.replace('_', '-')} {saved[key]}, not {getattr(args, key)}; a "
                f"resumed run keeps it (start a new run with --initial-checkpoint {source} to change it)")
    inherited = [key for key in saved if key not in explicit and key not in RESUME_LOCAL and hasattr(args, key)]
    for key in inherited:
        setattr(args, key, saved[key])
    if not args.model:
        raise TrainingError(f"{source} does not name its model; give --model")
    return inherited


def check_run_folder(out_dir: Path, resuming_here: bool) -> None:
    """Never train over another run's results: a folder with a checkpoint or summary is resumed, not reused."""
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"run folder {out_dir} is a file")
    if resuming_here:
        return
    taken = [name for name in ("last.pth.tar", "summary.csv") if (out_dir / name).exists()]
    if taken:
        raise TrainingError(f"{out_dir} already holds a run ({', '.join(taken)}); resume it with --resume "
                            f"{out_dir / 'last.pth.tar'} or choose another --experiment")


def _top1(row: Dict[str, Any]) -> float:
    """The epoch's metric: the better top-1 of the raw weights and the EMA."""
    values = []
    for key in ("eval_top1", "ema_eval_top1"):
        try:
            values.append(float(row.get(key)))
        except (TypeError, ValueError):
            pass
    return max(values, default=-1.0)


def _row_epoch(row: Dict[str, Any]) -> Optional[int]:
    try:
        return int(row.get("epoch"))
    except (TypeError, ValueError):
        return None


def _checkpoint_epoch(path: Path) -> Optional[int]:
    """The epoch recorded in the checkpoint at ``path`` (None when there is none or it cannot be read), read
    without loading the tensors."""
    try:
        if not path.is_file():  # also no pipe: it would block
            return None
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["epoch"])
    except Exception:  # noqa: BLE001 - missing, foreign or damaged: it records no newer epoch
        return None


def check_history(out_dir: Path, source: str, epoch: int) -> None:
    """Resuming ``source`` (saved after ``epoch`` + 1 epochs) in ``out_dir`` must not overwrite newer history:
    the folder's last.pth.tar must not be newer, and summary.csv may run at most one epoch past it (the epoch a
    kill interrupted between writing its row and its checkpoint, which the resume redoes)."""
    last = out_dir / "last.pth.tar"
    newest = []
    if not (last.exists() and os.path.samefile(last, source)):
        last_epoch = _checkpoint_epoch(last)
        if last_epoch is not None and last_epoch > epoch:
            newest.append((last_epoch, "last.pth.tar"))
    rows = [e for e in map(_row_epoch, read_summary(out_dir / "summary.csv")) if e is not None]
    if rows and max(rows) > epoch + 1:
        newest.append((max(rows), "summary.csv"))
    if newest:
        done, where = max(newest)
        raise TrainingError(
            f"{source} was saved after {epoch + 1} epoch(s), but {out_dir} already records {done + 1} ({where}); "
            f"resuming there would overwrite the newer epochs. Continue the run with --resume {last}, or branch "
            f"off from this checkpoint into a new run folder with --resume {source} --experiment NEW_NAME")


def _worker_error(error: DataError) -> DataError:
    """A DataError raised in a loader worker comes back with the worker's traceback: its last line only."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else str(error)
    return DataError(text.split("DataError: ", 1)[-1])


def run(args) -> Dict[str, Any]:
    """Train as ``args`` say; returns the final summary row. Raises TrainingError on bad input."""
    from timm.data import resolve_data_config
    from timm.loss import LabelSmoothingCrossEntropy

    env = init_distributed(args.device)
    args.rank, args.world_size, args.local_rank = env["rank"], env["world_size"], env["local_rank"]
    device = env["device"]
    is_main = args.rank == 0
    if args.amp and args.amp_dtype == "float16" and device.type != "cuda":
        raise TrainingError("--amp with float16 needs CUDA; use --amp-dtype bfloat16 on CPU")
    if args.sync_bn and device.type != "cuda":
        raise TrainingError("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise TrainingError(f"--output {args.output} is a file, not a folder")

    checkpoint = load_checkpoint(args.resume) if args.resume else None
    inherited: List[str] = []
    if checkpoint is not None:
        missing = [k for k in ("state_dict", "optimizer", "epoch") if k not in checkpoint]
        if missing:
            raise CheckpointError(f"{args.resume} is not a training checkpoint (it lacks {', '.join(missing)}); "
                                  f"use --initial-checkpoint to start a new run from its weights")
        if not isinstance(checkpoint["epoch"], int) or checkpoint["epoch"] < 0:
            raise CheckpointError(f"{args.resume} records epoch {checkpoint['epoch']!r}, not a finished epoch's "
                                  f"number")
        inherited = inherit_resumed_options(args, checkpoint, args.resume)
        if "output" not in explicit_options(args):  # a resumed run's new folder goes beside the old one
            args.output = str(Path(args.resume).resolve().parent.parent)

    # where the run will write, checked before any work: writable, not inside the data, not newer history
    if checkpoint is None or "output" in explicit_options(args):
        _check_output(Path(args.output), "--output", Path(args.data_dir))
    out_dir = _output_dir(args, checkpoint) if checkpoint is not None or args.experiment else None
    if out_dir is not None:
        _check_output(out_dir, "run folder", Path(args.data_dir))
    if checkpoint is not None and out_dir is not None and _resuming_in(out_dir, args.resume):
        check_history(out_dir, args.resume, int(checkpoint["epoch"]))

    train_set, eval_set = load_splits(Path(args.data_dir), args.train_split, args.val_split)
    data_classes = len(class_names(train_set))
    num_classes = args.num_classes or data_classes
    if num_classes < data_classes:
        raise TrainingError(f"--num-classes {num_classes} is fewer than the {data_classes} class folders of the data")

    resolve_options(args, args.recipe or default_recipe_for(create_model(args, num_classes, meta=True)), inherited)
    if args.bn_momentum is not None and args.bn_momentum > 0.5:
        _logger.warning(f"--bn-momentum {args.bn_momentum} is in PyTorch's sense (the weight of the new batch); "
                        f"TensorFlow's {args.bn_momentum} is {1 - args.bn_momentum:.3g} here")
    seed_epoch(args.seed, -1, 0)  # the same initial weights on every process and every run
    model = create_model(args, num_classes)
    if args.initial_checkpoint:
        load_weights(model, model_state(load_checkpoint(args.initial_checkpoint)), args.initial_checkpoint)
    data_config = resolve_data_config(model=model, args={"input_size": (3, args.img_size, args.img_size)}
                                      if args.img_size else {})
    args.input_size = list(data_config["input_size"])
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.sync_bn and args.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)

    try:
        train_set.transform = train_transform(data_config, args.aa, scale=tuple(args.scale), hflip=args.hflip,
                                              color_jitter=args.color_jitter, reprob=args.reprob)
    except (AssertionError, ValueError, KeyError, IndexError) as e:
        raise TrainingError(f"--aa {args.aa!r} is not a timm augmentation policy (e.g. rand-m9-mstd0.5, "
                            f"augmix-m5, original): {e or type(e).__name__}") from None
    eval_set.transform = eval_transform(data_config)
    pin = device.type == "cuda"
    loader = train_loader(train_set, args.batch_size, args.workers, args.rank, args.world_size, args.seed, pin)
    val_loader = eval_loader(eval_set, args.validation_batch_size or args.batch_size, args.workers, args.rank,
                             args.world_size, pin)

    optimizer = _optimizer(args, model)
    scheduler = _scheduler(args, optimizer, len(loader))
    scaler = torch.amp.GradScaler("cuda") if args.amp and args.amp_dtype == "float16" else None
    ema = ModelEma(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup) if args.model_ema else None
    loss_fn = LabelSmoothingCrossEntropy(args.smoothing) if args.smoothing > 0 else nn.CrossEntropyLoss()

    start_epoch = 0
    if checkpoint is not None:
        start_epoch = _restore(checkpoint, model, optimizer, scheduler, ema, scaler, args.resume, len(loader))
        scheduler.step_update(num_updates=start_epoch * len(loader))
    if start_epoch >= args.epochs:
        raise TrainingError(f"checkpoint {args.resume} finished epoch {start_epoch - 1}; nothing left to train "
                            f"for --epochs {args.epochs}")
    if args.bn_warmup:
        bn_warmup(model)  # after the EMA's copy and the restored num_batches_tracked
    if getattr(args, "precise_bn", None) is None:
        args.precise_bn = default_precise_bn(args.bn_momentum, args.epochs * len(loader))
    if is_main:
        for warning in settling_warnings(args, args.epochs * len(loader)):
            _logger.warning(f"warning: {warning}")

    train_model = model
    if args.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    if out_dir is None:
        out_dir = _output_dir(args, checkpoint)
        _check_output(out_dir, "run folder", Path(args.data_dir))
    resuming_here = checkpoint is not None and _resuming_in(out_dir, args.resume)
    check_run_folder(out_dir, resuming_here)  # refused before the lock: a refused run touches nothing
    with ExitStack() as stack:
        if is_main:  # one writer per run folder, for the whole run
            try:
                stack.enter_context(folder_lock(out_dir, "run folder"))
            except GuardError as e:
                raise TrainingError(str(e)) from None
            check_run_folder(out_dir, resuming_here)  # again, now that no other run can write there
            if resuming_here:
                check_history(out_dir, args.resume, start_epoch - 1)
        # the summary goes on from the resumed checkpoint's own run folder (its rows up to that checkpoint)
        rows = []
        source_dir = Path(args.resume).parent if checkpoint is not None else None
        if is_main and source_dir is not None and (resuming_here or (source_dir / "args.yaml").is_file()):
            rows = [r for r in read_summary(source_dir / "summary.csv")
                    if _row_epoch(r) is not None and _row_epoch(r) < start_epoch]
        if is_main:
            _write_args(out_dir, args)
            _logger.info(f"{args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, "
                         f"input {args.input_size[-1]}px, {len(train_set)} train / {len(eval_set)} val images, "
                         f"{num_classes} classes, recipe {args.recipe}, lr {args.lr:.4g}, "
                         f"{args.world_size} process(es) on {device.type}")
        # model_best.pth.tar is the best of this folder's epochs
        best = max((_top1(r) for r in rows), default=-1.0) if resuming_here else -1.0
        try:
            row = _train_epochs(args, start_epoch, loader, val_loader, train_model, model, optimizer, scheduler,
                                loss_fn, device, ema, scaler, rows, best, out_dir,
                                dict(train_set.reader.class_to_idx), is_main)
        except DataError as e:  # from a loader worker: its traceback comes along in the message
            raise _worker_error(e) from None
    if args.world_size > 1:
        dist.destroy_process_group()
    return row


def _train_epochs(args, start_epoch, loader, val_loader, train_model, model, optimizer, scheduler, loss_fn, device,
                  ema, scaler, rows, best, out_dir, class_to_idx, is_main) -> Dict[str, Any]:
    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, args.epochs):
        seed_epoch(args.seed, epoch, args.rank)
        loader.sampler.set_epoch(epoch)
        progress = Progress(epoch, args.epochs, enabled=is_main)
        train_metrics = train_one_epoch(train_model, loader, optimizer, scheduler, loss_fn, device, epoch, args,
                                        ema, scaler, progress)
        scheduler.step(epoch + 1)
        for weights in (model, ema.module if ema is not None else None):
            if weights is not None and args.precise_bn:
                precise_bn(weights, loader, args.precise_bn, device, args.world_size, _amp(args), args.channels_last)
        eval_metrics = evaluate(model, val_loader, device, args.world_size, _amp(args), args.channels_last)
        ema_metrics = (evaluate(ema.module, val_loader, device, args.world_size, _amp(args), args.channels_last)
                       if ema is not None else {})
        row = {"epoch": epoch, "train_loss": round(train_metrics["loss"], 6),
               "eval_loss": round(eval_metrics["loss"], 6), "eval_top1": round(eval_metrics["top1"], 4),
               "eval_top5": round(eval_metrics["top5"], 4),
               "ema_eval_loss": round(ema_metrics["loss"], 6) if ema_metrics else "",
               "ema_eval_top1": round(ema_metrics["top1"], 4) if ema_metrics else "",
               "ema_eval_top5": round(ema_metrics["top5"], 4) if ema_metrics else "",
               "lr": optimizer.param_groups[0]["lr"], "train_img_per_s": round(train_metrics["img_per_s"], 1),
               "epoch_time_s": round(train_metrics["time_s"], 2)}
        if is_main:
            progress.close(row)
            rows.append(row)
            # the better of the raw weights and the EMA (ties: the EMA) is the epoch's metric and evaluated weights
            weights = "ema" if ema_metrics and ema_metrics["top1"] >= eval_metrics["top1"] else "model"
            metric = (ema_metrics if weights == "ema" else eval_metrics)["top1"]
            state = build_checkpoint(model, optimizer, scheduler, epoch, plain_args(args), ema, scaler, metric,
                                     class_to_idx=class_to_idx, updates_per_epoch=len(loader), best_weights=weights)
            # summary first: a kill before last.pth.tar is written leaves an extra row that a resume drops
            write_text(out_dir / "summary.csv", summary_text(rows))
            improved = metric > best
            best = max(best, metric)
            # model_best first, then last: the checksum of the state is computed once for both
            save_atomic(state, *([out_dir / "model_best.pth.tar"] if improved else []), out_dir / "last.pth.tar")
        if args.world_size > 1:
            dist.barrier()
    return row


def _restore(checkpoint, model, optimizer, scheduler, ema, scaler, source, updates_per_epoch: int) -> int:
    from .checkpoint import CheckpointError

    load_weights(model, checkpoint["state_dict"], str(source))
    if ema is not None:
        # a run that kept no EMA so far starts it from the restored weights, not from the initial ones
        load_weights(ema.module, checkpoint.get("state_dict_ema") or checkpoint["state_dict"], f"{source} (EMA)")
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{source}: optimizer state does not fit ({e}); was it trained with another --opt?") from None
    if checkpoint.get("scheduler") and checkpoint.get("updates_per_epoch", updates_per_epoch) == updates_per_epoch:
        scheduler.load_state_dict(checkpoint["scheduler"])
    elif checkpoint.get("scheduler"):
        # timm's schedulers count optimizer updates; with another batch or world size they are rebuilt for the
        # new count of updates per epoch so the schedule stays the same in epochs
        _logger.info(f"{updates_per_epoch} updates per epoch now, {checkpoint['updates_per_epoch']} before: the "
                     f"learning-rate schedule is rebuilt in epochs")
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    if checkpoint.get("rng"):
        set_rng_state(checkpoint["rng"])
    return int(checkpoint["epoch"]) + 1


def _resuming_in(out_dir: Path, resume: str) -> bool:
    return out_dir.resolve() == Path(resume).resolve().parent


def _check_output(folder: Path, what: str, data_dir: Path) -> None:
    """``folder`` can be written (checked without leaving anything) and is not inside the data: a run folder
    under --data-dir would become a class folder of the next run."""
    try:
        check_output_dir(folder, what, inputs=[("--data-dir", data_dir)])
    except GuardError as e:
        raise TrainingError(str(e)) from None


def _output_dir(args, checkpoint) -> Path:
    if checkpoint is not None and not args.experiment:
        run_dir = Path(args.resume).resolve().parent
        args.output, args.experiment = str(run_dir.parent), run_dir.name  # recorded in args.yaml as they are
        return run_dir
    name = args.experiment or f"{time.strftime('%Y%m%d-%H%M%S')}-{args.model}-{args.input_size[-1]}"
    return Path(args.output) / name


def _write_args(out_dir: Path, args) -> None:
    import yaml

    write_text(out_dir / "args.yaml", yaml.safe_dump(plain_args(args), sort_keys=True))
