"""A training run from its options to its last epoch: ``open_session`` checks the inputs, builds everything and
holds the run folder (one writer); ``Session.train`` runs the epochs. ``run`` is both.

Single process, or one process per device under ``torchrun`` (DDP; NCCL on CUDA, gloo on CPU). Each epoch
evaluates the raw weights and the EMA; the better top-1 is the epoch's metric (``model_best.pth.tar``), and the
checkpoint records which weights won (``eval_weights``: ``"ema"`` or ``"model"``, ties to the EMA), which
tinynet-validate, export and ``--initial-checkpoint`` then load.
"""
from __future__ import annotations

import logging
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from tinynet_core.guard import GuardError, folder_lock
from . import build, resume, run_folder
from .checkpoint import build_checkpoint
from .data import DataError, class_names, eval_loader, eval_transform, load_splits, train_loader, train_transform
from .distributed import Processes, init_processes
from .errors import TrainingError
from .loop import amp_dtype, evaluate, seed_epoch, seed_initial_weights, train_one_epoch
from .progress import Progress
from .recipes import default_recipe_for, resolve_options
from .short_runs import bn_warmup, default_precise_bn, precise_bn, settling_warnings

_logger = logging.getLogger("tinynet-train")


@dataclass
class Session:
    """Everything one process of a run trains with; ``model`` is the network itself, ``train_model`` what the
    steps run through (DDP-wrapped across processes)."""
    args: Any
    processes: Processes
    model: nn.Module
    train_model: nn.Module
    ema: Optional[nn.Module]
    optimizer: Any
    scheduler: Any
    scaler: Any
    loss_fn: nn.Module
    loader: Any
    val_loader: Any
    folder: Path
    class_to_idx: Dict[str, int]
    start_epoch: int = 0
    rows: List[Dict[str, Any]] = field(default_factory=list)  # summary.csv so far (main process)
    best: float = -1.0  # the metric model_best.pth.tar holds

    def train(self) -> Dict[str, Any]:
        """Every epoch left; returns the last summary row."""
        row: Dict[str, Any] = {}
        try:
            for epoch in range(self.start_epoch, self.args.epochs):
                row = self.train_epoch(epoch)
        except DataError as e:  # from a loader worker: its traceback comes along in the message
            raise worker_error(e) from None
        return row

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        args, processes, device = self.args, self.processes, self.processes.device
        seed_epoch(args.seed, epoch, processes.rank)
        self.loader.sampler.set_epoch(epoch)
        progress = Progress(epoch, args.epochs, enabled=processes.is_main)
        train_metrics = train_one_epoch(self.train_model, self.loader, self.optimizer, self.scheduler, self.loss_fn,
                                        device, epoch, args, self.ema, self.scaler, progress, processes.world_size)
        self.scheduler.step(epoch + 1)
        weights = [self.model] + ([self.ema.module] if self.ema is not None else [])
        if args.precise_bn:
            for model in weights:
                precise_bn(model, self.loader, args.precise_bn, device, processes.world_size, amp_dtype(args),
                           args.channels_last)
        metrics = [evaluate(model, self.val_loader, device, processes.world_size, amp_dtype(args), args.channels_last)
                   for model in weights]
        eval_metrics, ema_metrics = metrics[0], (metrics[1] if len(metrics) > 1 else {})
        row = run_folder.summary_row(epoch, train_metrics, eval_metrics, ema_metrics,
                                     self.optimizer.param_groups[0]["lr"])
        if processes.is_main:
            progress.close(row)
            self.record(epoch, row, eval_metrics, ema_metrics)
        if processes.world_size > 1:
            dist.barrier()
        return row

    def record(self, epoch: int, row: Dict[str, Any], eval_metrics: Dict[str, float],
               ema_metrics: Dict[str, float]) -> None:
        """The epoch's row in summary.csv, then its checkpoint (last, and model_best when it improved)."""
        self.rows.append(row)
        # the better of the raw weights and the EMA (ties: the EMA) is the epoch's metric and evaluated weights
        weights = "ema" if ema_metrics and ema_metrics["top1"] >= eval_metrics["top1"] else "model"
        metric = (ema_metrics if weights == "ema" else eval_metrics)["top1"]
        state = build_checkpoint(self.model, self.optimizer, self.scheduler, epoch, run_folder.plain_args(self.args),
                                 self.ema, self.scaler, metric, class_to_idx=self.class_to_idx,
                                 updates_per_epoch=len(self.loader), best_weights=weights)
        improved = metric > self.best
        self.best = max(self.best, metric)
        run_folder.record_epoch(self.folder, self.rows, state, improved)


def worker_error(error: DataError) -> DataError:
    """A DataError raised in a loader worker comes back with the worker's traceback: its last line only."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else str(error)
    return DataError(text.split("DataError: ", 1)[-1])


def _check_settings(args, processes: Processes) -> None:
    if args.amp and args.amp_dtype == "float16" and processes.device.type != "cuda":
        raise TrainingError("--amp with float16 needs CUDA; use --amp-dtype bfloat16 on CPU")
    if args.sync_bn and processes.device.type != "cuda":
        raise TrainingError("--sync-bn needs CUDA (SyncBatchNorm has no CPU implementation)")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise TrainingError(f"--output {args.output} is a file, not a folder")


@contextmanager
def open_session(args) -> Iterator[Session]:
    """Check the run's inputs and outputs, build the model, data, optimizer and the rest (restored when resuming),
    then hold the run folder (one writer) while the caller trains. Raises TrainingError (or DataError,
    CheckpointError, ModelLoadError) on bad input before anything is written."""
    processes = init_processes(args.device)
    try:
        with _opened(args, processes) as session:
            yield session
    finally:
        if processes.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def _opened(args, processes: Processes) -> Iterator[Session]:
    args.rank, args.world_size, args.local_rank = processes.rank, processes.world_size, processes.local_rank
    device = processes.device
    _check_settings(args, processes)
    checkpoint = resume.load_training_checkpoint(args.resume) if args.resume else None
    inherited = resume.inherit_resumed_options(args, checkpoint, args.resume) if checkpoint is not None else []

    # where the run will write, checked before any work: writable, not inside the data, not newer history
    data_dir = Path(args.data_dir)
    if checkpoint is None or "output" in resume.explicit_options(args):
        run_folder.check_output(Path(args.output), "--output", data_dir)
    folder = run_folder.run_dir(args, checkpoint is not None) if checkpoint is not None or args.experiment else None
    if folder is not None:
        run_folder.check_output(folder, "run folder", data_dir)
        if checkpoint is not None and resume.resuming_in(folder, args.resume):
            resume.check_history(folder, args.resume, int(checkpoint["epoch"]))

    train_set, eval_set = load_splits(data_dir, args.train_split, args.val_split)
    data_classes = len(class_names(train_set))
    num_classes = args.num_classes or data_classes
    if num_classes < data_classes:
        raise TrainingError(f"--num-classes {num_classes} is fewer than the {data_classes} class folders of the data")

    resolve_options(args, args.recipe or default_recipe_for(build.create_model(args, num_classes, meta=True)),
                    inherited)
    if args.bn_momentum is not None and args.bn_momentum > 0.5:
        _logger.warning(f"--bn-momentum {args.bn_momentum} is in PyTorch's sense (the weight of the new batch); "
                        f"TensorFlow's {args.bn_momentum} is {1 - args.bn_momentum:.3g} here")
    model, data_config = _model_and_data_config(args, num_classes, device)
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

    optimizer = build.create_optimizer(args, model)
    scheduler = build.create_scheduler(args, optimizer, len(loader))
    scaler = build.create_scaler(args, device)
    ema = build.create_ema(args, model)
    start_epoch = 0
    if checkpoint is not None:
        start_epoch = resume.restore(checkpoint, model, optimizer, scheduler, ema, scaler, args.resume, len(loader))
    if start_epoch >= args.epochs:
        raise TrainingError(f"checkpoint {args.resume} finished epoch {start_epoch - 1}; nothing left to train "
                            f"for --epochs {args.epochs}")
    if args.bn_warmup:
        bn_warmup(model)  # after the EMA's copy and the restored num_batches_tracked
    if getattr(args, "precise_bn", None) is None:
        args.precise_bn = default_precise_bn(args.bn_momentum, args.epochs * len(loader))
    if processes.is_main:
        for warning in settling_warnings(args, args.epochs * len(loader)):
            _logger.warning(f"warning: {warning}")

    train_model = model
    if args.world_size > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    if folder is None:
        folder = run_folder.run_dir(args, False)
        run_folder.check_output(folder, "run folder", data_dir)
    resuming_here = resume.resuming_in(folder, args.resume)
    resume.check_run_folder(folder, resuming_here)  # refused before the lock: a refused run touches nothing
    session = Session(args, processes, model, train_model, ema, optimizer, scheduler, scaler, build.create_loss(args),
                      loader, val_loader, folder, dict(train_set.reader.class_to_idx), start_epoch)
    with ExitStack() as stack:
        if processes.is_main:  # one writer per run folder, for the whole run
            try:
                stack.enter_context(folder_lock(folder, "run folder"))
            except GuardError as e:
                raise TrainingError(str(e)) from None
            resume.check_run_folder(folder, resuming_here)  # again, now that no other run can write there
            if resuming_here:
                resume.check_history(folder, args.resume, start_epoch - 1)
            if checkpoint is not None:
                session.rows = resume.carried_rows(args.resume, resuming_here, start_epoch)
            session.best = resume.best_so_far(session.rows, resuming_here)
            run_folder.write_args(folder, args)
            _logger.info(f"{args.model}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, "
                         f"input {args.input_size[-1]}px, {len(train_set)} train / {len(eval_set)} val images, "
                         f"{num_classes} classes, recipe {args.recipe}, lr {args.lr:.4g}, "
                         f"{args.world_size} process(es) on {device.type}")
        yield session


def _model_and_data_config(args, num_classes: int, device: torch.device):
    """The model on its device, from its initial weights, and timm's data config for its input size (recorded in
    ``args.input_size``)."""
    from timm.data import resolve_data_config

    seed_initial_weights(args.seed)
    model = build.create_model(args, num_classes)
    build.load_initial_weights(model, args)
    data_config = resolve_data_config(model=model, args={"input_size": (3, args.img_size, args.img_size)}
                                      if args.img_size else {})
    args.input_size = list(data_config["input_size"])
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.sync_bn and args.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, data_config


def run(args) -> Dict[str, Any]:
    """Train as ``args`` say; returns the final summary row. Raises TrainingError on bad input."""
    with open_session(args) as session:
        return session.train()
