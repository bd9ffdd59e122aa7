"""Exporting a model for deployment: ONNX (dynamic batch axis) or TorchScript, verified against PyTorch; and
what the deployment tools share: the model to work on (checkpoint, pretrained or random) and output checks."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .atomic import replace_atomically

FORMATS = ("onnx", "torchscript")
DEFAULT_ATOL = 1e-4


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
                  atol: float = DEFAULT_ATOL, seed: int = 0) -> float:
    """Max abs difference of the exported model's logits from PyTorch's on random input at several batch sizes;
    raises ``ExportError`` when it exceeds ``atol``."""
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    model = model.eval()
    for batch in batch_sizes:
        images = torch.randn(batch, *input_size, generator=generator)
        with torch.no_grad():
            expected = model(images)
        got = run_exported(path, fmt, images)
        if got.shape != expected.shape:
            raise ExportError(f"exported model returned shape {tuple(got.shape)} for batch {batch}, "
                              f"PyTorch {tuple(expected.shape)}")
        worst = max(worst, float((got - expected).abs().max()))
    if not worst <= atol:
        raise ExportError(f"exported model differs from PyTorch by {worst:.3g} (max abs logit error > {atol:g})")
    return worst


def export_verified(model: nn.Module, fmt: str, input_size: Sequence[int], path: Path, opset: int = 17,
                    atol: float = DEFAULT_ATOL) -> float:
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
        error.append(verify_export(model, Path(tmp), fmt, input_size, atol=atol))

    replace_atomically(Path(path), write)
    return error[0]


def check_output_path(path: Path) -> None:
    """Raise ValueError unless a file can be written at ``path``: checked before the work, not after it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write --out {path}: {e.strerror or e}") from None


def _is_download_error(e: Exception) -> bool:
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("huggingface_hub", "requests", "httpx")


def quiet_hub_retries() -> None:
    """The Hugging Face hub logs every retry of a failing download; the tools report the failure in one line."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        return
    hub_logging.set_verbosity_error()


def load_model(name: Optional[str], model_kwargs: Dict[str, Any], checkpoint: Optional[Path] = None,
               pretrained: bool = False, num_classes: Optional[int] = None) -> Tuple[nn.Module, Dict[str, Any]]:
    """The eval-mode model of a deployment tool and its checkpoint ({} without one).

    ``name`` defaults to the checkpoint's arch. The checkpoint's recorded model kwargs (r=, d=, w=, ...) are used
    when none are given and ``name`` is the checkpoint's own model; the classes follow its classifier. Raises
    ValueError (or CheckpointError) with a one-line reason."""
    import timm

    from .train import load_checkpoint, model_state
    from .train.checkpoint import load_weights

    kwargs = dict(model_kwargs)
    ckpt: Dict[str, Any] = {}
    state = None
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        state = model_state(ckpt)
        arch = ckpt.get("arch")
        name = name or arch
        if not kwargs and arch in (None, name):
            kwargs = dict((ckpt.get("args") or {}).get("model_kwargs") or {})
        head = [v for k, v in state.items() if k.endswith(("classifier.weight", "fc.weight"))]
        if head:
            kwargs["num_classes"] = int(head[0].shape[0])
    if not name:
        raise ValueError("--model is required")
    if not timm.is_model(name):
        raise ValueError(f"unknown model {name!r}")
    if num_classes:
        kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        raise ValueError(f"cannot build {name} with {kwargs}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the hub client raises its own types for network trouble
        if pretrained and _is_download_error(e):
            raise ValueError(f"the pretrained weights of {name} could not be downloaded ({type(e).__name__}); "
                             f"check the network (or the Hugging Face cache), or use --checkpoint") from None
        raise
    if state is not None:
        load_weights(model, state, str(checkpoint))
    return model.eval(), ckpt
