"""Inference latency (and GPU throughput) of models at their own input sizes, torch or onnxruntime."""
from __future__ import annotations

import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

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


def interleaved_times(runners: Sequence[Callable[[], None]], warmup: int, repeats: int) -> List[List[float]]:
    """Milliseconds per run for each runner, measured round-robin (one run of each per round), so that drift
    in the machine's speed (other load, frequency scaling) hits every model alike."""
    for run in runners:
        for _ in range(warmup):
            run()
    times: List[List[float]] = [[] for _ in runners]
    for _ in range(repeats):
        for run, bucket in zip(runners, times):
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


def bench_models(
        names: Sequence[str],
        threads: int = 1,
        batch_size: int = 1,
        warmup: int = 10,
        repeats: int = 50,
        backend: str = "torch",
        device: str = "cpu",
        amp: bool = False,
        channels_last: bool = False,
        reference: Optional[str] = None,
        model_kwargs: Optional[Dict[str, dict]] = None,
) -> List[Dict]:
    """One row per model: median latency (ms per batch), spread (p10-p90), img/s and the ratio to ``reference``.

    Models are timed round-robin after a warm-up each, so ratios within one run are robust to drift."""
    import timm

    import timm_tinynet  # noqa: F401
    from .flops import count_flops, count_params

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and device != "cpu":
        raise ValueError("the onnxruntime backend runs on the CPU here; use --device cpu")
    if len(set(names)) != len(names):
        raise ValueError("a model is listed twice")
    set_threads(threads)
    models, runners = [], []
    for name in names:
        model = timm.create_model(name, **(model_kwargs or {}).get(name, {})).eval()
        images = torch.randn(batch_size, *model.pretrained_cfg["input_size"],
                             generator=torch.Generator().manual_seed(0)).to(device)
        models.append(model)
        runners.append(torch_runner(model, images, amp, channels_last) if backend == "torch"
                       else onnxruntime_runner(model, images, threads))
    rows = []
    for name, model, times in zip(names, models, interleaved_times(runners, warmup, repeats)):
        size = model.pretrained_cfg["input_size"]
        deciles = statistics.quantiles(times, n=10, method="inclusive")  # within the data, even for 2 runs
        median = statistics.median(times)
        rows.append({"model": name, "backend": backend, "device": device, "threads": threads,
                     "batch_size": batch_size, "input_size": size[-1], "flops_m": round(count_flops(model) / 1e6, 1),
                     "params_m": round(count_params(model) / 1e6, 3), "median_ms": round(median, 3),
                     "p10_ms": round(deciles[0], 3), "p90_ms": round(deciles[-1], 3),
                     "img_per_s": round(batch_size / median * 1e3, 1), "repeats": repeats})
    if reference is not None:
        ref = {row["model"]: row["median_ms"] for row in rows}.get(reference)
        if ref is None:
            raise ValueError(f"reference {reference!r} is not among the benchmarked models")
        for row in rows:
            row[f"ratio_to_{reference}"] = round(row["median_ms"] / ref, 3)
    return rows
