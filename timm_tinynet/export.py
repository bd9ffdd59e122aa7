"""Exporting a model for deployment: ONNX (dynamic batch axis) or TorchScript, verified against PyTorch."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from tinynet_core.atomic import replace_atomically

FORMATS = ("onnx", "torchscript")
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-5


class ExportError(RuntimeError):
    """The export failed, or the exported model does not compute what the PyTorch model computes."""


def export_onnx(model: nn.Module, input_size: Sequence[int], path: Path, opset: int = 17) -> Path:
    """ONNX with a dynamic batch axis (input ``input``, output ``logits``)."""
    model = model.eval()
    example = torch.randn(1, *input_size)

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), tmp, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                              dynamo=False)

    replace_atomically(Path(path), write)
    return Path(path)


def export_torchscript(model: nn.Module, input_size: Sequence[int], path: Path) -> Path:
    """A traced TorchScript module (batch size free)."""
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.randn(1, *input_size))
    replace_atomically(Path(path), lambda tmp: traced.save(tmp))
    return Path(path)


def run_exported(path: Path, fmt: str, images: torch.Tensor, threads: int = 0) -> torch.Tensor:
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: images.numpy()})[0])
    with torch.no_grad():
        return torch.jit.load(str(path))(images)


def verify_export(model: nn.Module, path: Path, fmt: str, input_size: Sequence[int], batch_sizes=(1, 3),
                  atol: float = DEFAULT_ATOL, seed: int = 0, rtol: float = DEFAULT_RTOL) -> float:
    """Max abs difference of the exported model's logits from PyTorch's on random input at several batch sizes;
    raises ``ExportError`` when a logit differs by more than ``atol + rtol * |logit|`` (numpy's ``allclose`` rule:
    float32 rounding grows with the logits' size, so a model with large logits is not failed for it)."""
    generator = torch.Generator().manual_seed(seed)
    worst, excess = 0.0, -math.inf
    model = model.eval()
    for batch in batch_sizes:
        images = torch.randn(batch, *input_size, generator=generator)
        with torch.no_grad():
            expected = model(images)
        got = run_exported(path, fmt, images)
        if got.shape != expected.shape:
            raise ExportError(f"exported model returned shape {tuple(got.shape)} for batch {batch}, "
                              f"PyTorch {tuple(expected.shape)}")
        difference = (got - expected).abs()
        worst = max(worst, float(difference.max()))
        excess = max(excess, float((difference - atol - rtol * expected.abs()).max()))
    if not excess <= 0:  # NaN fails too
        raise ExportError(f"exported model differs from PyTorch by {worst:.3g} (max abs logit error > {atol:g} + "
                          f"{rtol:g} x |logit|)")
    return worst


def export_verified(model: nn.Module, fmt: str, input_size: Sequence[int], path: Path, opset: int = 17,
                    atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> float:
    """Export to a temporary file beside ``path``, verify it, and only then rename it over ``path``: a failed
    export or verification leaves what was at ``path`` (an earlier good export) untouched. Returns the error."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    error = []

    def write(tmp: str) -> None:
        if fmt == "onnx":
            export_onnx(model, input_size, Path(tmp), opset)
        else:
            export_torchscript(model, input_size, Path(tmp))
        error.append(verify_export(model, Path(tmp), fmt, input_size, atol=atol, rtol=rtol))

    replace_atomically(Path(path), write)
    return error[0]
