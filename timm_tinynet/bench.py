"""Inference latency (and GPU throughput) of models at their own input sizes, torch or onnxruntime."""
from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Sequence

import torch

from .timing import BACKENDS, SETTLE_RUNS, interleaved_times, onnxruntime_runner, set_threads, torch_runner


def model_kwargs_text(kwargs: Dict[str, object]) -> str:
    """``c=0.3 rule='giant'``: the create_model kwargs a row was built with, as the CLI takes them."""
    return " ".join(f"{key}={value!r}" for key, value in kwargs.items())


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
        settle: int = SETTLE_RUNS,
) -> List[Dict]:
    """One row per model: median latency (ms per batch), spread (p10-p90), img/s and the ratio to ``reference``.

    Models are timed round-robin after a warm-up each, so ratios within one run are robust to drift; ``settle``
    untimed runs of the same model precede each timed run (``timing.interleaved_times``), so each is timed in the
    steady state it has when it runs alone (0: one run per visit, each right after a different model)."""
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
        kwargs = (model_kwargs or {}).get(name, {})
        try:
            model = timm.create_model(name, **kwargs).eval()
        except TypeError as e:  # a kwarg the model's entrypoint does not take
            raise ValueError(f"{name} does not take {', '.join(kwargs) or 'these arguments'}: {e}") from None
        images = torch.randn(batch_size, *model.pretrained_cfg["input_size"],
                             generator=torch.Generator().manual_seed(0)).to(device)
        models.append(model)
        runners.append(torch_runner(model, images, amp, channels_last) if backend == "torch"
                       else onnxruntime_runner(model, images, threads))
    rows = []
    for name, model, times in zip(names, models, interleaved_times(runners, warmup, repeats, settle)):
        size = model.pretrained_cfg["input_size"]
        deciles = statistics.quantiles(times, n=10, method="inclusive")  # within the data, even for 2 runs
        median = statistics.median(times)
        rows.append({"model": name, "model_kwargs": model_kwargs_text((model_kwargs or {}).get(name, {})),
                     "backend": backend, "device": device, "threads": threads,
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
