"""The training run: timm's models, optimizers, schedulers, EMA, losses and transforms in one loop.

Single process, or one process per device under ``torchrun`` (DDP; NCCL on CUDA, gloo on CPU).
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from ..atomic import write_text
from .checkpoint import build_checkpoint, load_checkpoint, load_weights, model_state, save_atomic, set_rng_state
from .data import class_names, eval_loader, eval_transform, load_splits, train_loader, train_transform
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


def create_model(args, num_classes: int, meta: bool = False) -> nn.Module:
    """The run's model with its dropout, stochastic depth and BN momentum. ``meta=True`` builds a shape-only
    copy (no weights, no download) to look at the architecture."""
    from ..flops import on_meta_device
    from ..loading import create

    kwargs = dict(args.model_kwargs, num_classes=num_classes)
    if args.drop is not None:
        kwargs["drop_rate"] = args.drop
    if args.drop_path:
        kwargs["drop_path_rate"] = args.drop_path
    with on_meta_device() if meta else nullcontext():
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
    for images, target in loader:
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
    if not path.exists():
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


def _top1(row: Dict[str, Any], ema: bool) -> float:
    value = row.get("ema_eval_top1") if ema else None
    return float(value if value not in (None, "") else row["eval_top1"])


def run(args) -> Dict[str, Any]:
    """Train as ``args`` say; returns the final summary row. Raises TrainingError on bad input."""
    from timm.data import resolve_data_config
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.utils import ModelEmaV3

    from .checkpoint import CheckpointError

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
        inherited = inherit_resumed_options(args, checkpoint, args.resume)

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
    ema = ModelEmaV3(model, decay=args.model_ema_decay, use_warmup=args.model_ema_warmup) if args.model_ema else None
    loss_fn = LabelSmoothingCrossEntropy(args.smoothing) if args.smoothing > 0 else nn.CrossEntropyLoss()

    start_epoch = 0
    if checkpoint is not None:
        start_epoch = _restore(checkpoint, model, optimizer, scheduler, ema, scaler, args.resume, len(loader))
        scheduler.step_update(num_updates=start_epoch * len(loader))
    if start_epoch >= args.epochs:
        raise TrainingError(f"checkpoint {args.resume} finished epoch {start_epoch - 1}; nothing left to train "
                            f"for --epochs {args.epochs}")

    train_model = model
    if args.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    out_dir = _output_dir(args, checkpoint)
    check_run_folder(out_dir, resuming_here=checkpoint is not None
                     and out_dir.resolve() == Path(args.resume).resolve().parent)
    rows = read_summary(out_dir / "summary.csv")[:start_epoch] if is_main else []
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_args(out_dir, args)
        _logger.info(f"{args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, "
                     f"input {args.input_size[-1]}px, {len(train_set)} train / {len(eval_set)} val images, "
                     f"{num_classes} classes, recipe {args.recipe}, lr {args.lr:.4g}, "
                     f"{args.world_size} process(es) on {device.type}")
    best = max((_top1(r, ema is not None) for r in rows), default=-1.0)

    row: Dict[str, Any] = {}
    for epoch in range(start_epoch, args.epochs):
        seed_epoch(args.seed, epoch, args.rank)
        loader.sampler.set_epoch(epoch)
        progress = Progress(epoch, args.epochs, enabled=is_main)
        train_metrics = train_one_epoch(train_model, loader, optimizer, scheduler, loss_fn, device, epoch, args,
                                        ema, scaler, progress)
        scheduler.step(epoch + 1)
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
            metric = (ema_metrics or eval_metrics)["top1"]
            state = build_checkpoint(model, optimizer, scheduler, epoch, plain_args(args), ema, scaler, metric,
                                     class_to_idx=dict(train_set.reader.class_to_idx),
                                     updates_per_epoch=len(loader))
            # summary first: a kill before last.pth.tar is written leaves an extra row that a resume drops
            write_text(out_dir / "summary.csv", summary_text(rows))
            if metric > best:
                best = metric
                save_atomic(state, out_dir / "model_best.pth.tar")
            save_atomic(state, out_dir / "last.pth.tar")
        if args.world_size > 1:
            dist.barrier()
    if args.world_size > 1:
        dist.destroy_process_group()
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
