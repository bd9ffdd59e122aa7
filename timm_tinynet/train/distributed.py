"""One process, or one per device under torchrun: timm's ``init_distributed_device`` and ``reduce_tensor``."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

import torch
from timm.utils import init_distributed_device, reduce_tensor

from .errors import TrainingError


@dataclass(frozen=True)
class Processes:
    """Where this process trains and its place among the run's processes."""
    device: torch.device
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def requested_device(device_arg: Optional[str]) -> torch.device:
    """The ``--device`` asked for (default: CUDA when torch sees a GPU, else the CPU), or a one-line TrainingError
    (timm's init_distributed_device asserts instead)."""
    if not device_arg:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device_arg)
    except RuntimeError:
        raise TrainingError(f"--device {device_arg!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {device_arg} asks for CUDA, but torch sees no GPU")
    return device


def init_processes(device_arg: Optional[str]) -> Processes:
    """The device checked, then timm's ``init_distributed_device``: the process group under torchrun (NCCL on CUDA,
    gloo on the CPU), and each process on its local rank's GPU."""
    env = argparse.Namespace(device=str(requested_device(device_arg)))  # timm writes rank and world size into it
    device = init_distributed_device(env)
    return Processes(device=device, rank=env.rank, world_size=env.world_size, local_rank=env.local_rank)


def sum_over_processes(totals: torch.Tensor, world_size: int) -> torch.Tensor:
    """``totals`` summed over the processes (timm's ``reduce_tensor`` divides by its ``n``: 1 keeps the sum)."""
    return totals if world_size == 1 else reduce_tensor(totals, 1)
