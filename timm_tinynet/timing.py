"""How networks are timed: one closure per model that runs a batch and waits for it, run round-robin.

Shared by ``bench.py`` (tinynet-bench's tables) and ``latency.py`` (the solver's latency budgets).
"""
from __future__ import annotations

import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, List, Sequence

import torch

BACKENDS = ("torch", "onnxruntime")


def torch_runner(model: torch.nn.Module, images: torch.Tensor, amp: bool = False,
                 channels_last: bool = False) -> Callable[[], None]:
    """A closure that runs one batch and waits for it to finish."""
    device = images.device
    model = model.eval().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run() -> None:
        autocast = torch.autocast(device.type, dtype=torch.float16) if amp and device.type == "cuda" else nullcontext()
        with torch.inference_mode(), autocast:
            model(images)
        sync()

    return run


def onnxruntime_runner(model: torch.nn.Module, images: torch.Tensor, threads: int) -> Callable[[], None]:
    import onnxruntime as ort

    from .export import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, tuple(images.shape[1:]), Path(tmp) / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: images.cpu().numpy()}
    return lambda: session.run(None, feed)


SETTLE_RUNS = 6  # untimed runs of a network before each timed one when several are timed round-robin
ALLOCATOR_BLOCK_BYTES = 32 * 2 ** 20 - 2 ** 16  # just under glibc's largest dynamic mmap threshold (32 MiB)
_allocator_settled = False


def settle_allocator() -> None:
    """Once per process, before the first timing: allocate and free one block just under 32 MiB.

    glibc's malloc serves blocks above its mmap threshold (128 KiB at start) with fresh mmap calls, and raises the
    threshold only when such a block is freed. Until then every large activation of a network is mapped and unmapped
    on each run: torch efficientnet_b0 measured 22-24 ms in a fresh process here against 16.4-16.6 ms after this
    (1 thread, batch 1), so whichever network a process timed first looked a third slower. Harmless elsewhere."""
    global _allocator_settled
    if not _allocator_settled:
        block = torch.empty(ALLOCATOR_BLOCK_BYTES, dtype=torch.uint8)
        block.fill_(0)
        del block
        _allocator_settled = True


def interleaved_times(runners: Sequence[Callable[[], None]], warmup: int, repeats: int,
                      settle: int = 0) -> List[List[float]]:
    """Milliseconds per run for each runner, measured round-robin (one timed run of each per round), so that drift
    in the machine's speed (other load, frequency scaling) hits every model alike.

    ``settle`` untimed runs of the same model precede each timed run. A model run right after a different one is
    slower than one run repeatedly (its weights and activations are not in the CPU's caches): up to 2x for small
    networks on this CPU, and one untimed run is not enough; about six are. With ``settle`` > 0 every timed run is
    in that steady state, as when the model runs alone, while the rounds still interleave the models."""
    settle_allocator()
    for run in runners:
        for _ in range(warmup):
            run()
    times: List[List[float]] = [[] for _ in runners]
    for _ in range(repeats):
        for run, bucket in zip(runners, times):
            for _ in range(settle):
                run()
            start = time.perf_counter()
            run()
            bucket.append((time.perf_counter() - start) * 1e3)
    return times


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # may be set only once per process
        pass
