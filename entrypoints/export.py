"""tinynet-export: export a model to ONNX (dynamic batch axis) or TorchScript and verify the exported model
against PyTorch on random input; exits non-zero on any mismatch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import KeyValues, OneLineErrorParser, positive_int, quiet_third_party_warnings


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-export", description=__doc__)
    p.add_argument("--model", default=None, help="timm model name (default: the checkpoint's)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None, help="tinynet-train checkpoint (EMA weights if any)")
    source.add_argument("--pretrained", action="store_true")
    p.add_argument("--num-classes", type=positive_int, default=None)
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--img-size", type=positive_int, default=None, help="default: the model's own input size")
    p.add_argument("--opset", type=positive_int, default=17)
    p.add_argument("--atol", type=float, default=1e-4, help="max abs logit difference accepted in verification")
    p.add_argument("--out", type=Path, required=True, help="output file (.onnx / .pt)")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    quiet_third_party_warnings()
    import timm

    import timm_tinynet  # noqa: F401
    from timm_tinynet.export import ExportError, export_onnx, export_torchscript, verify_export
    from timm_tinynet.train import CheckpointError, load_checkpoint, model_state
    from timm_tinynet.train.checkpoint import load_weights

    def fail(message: str) -> int:
        print(f"tinynet-export: error: {message}", file=sys.stderr)
        return 2

    try:
        kwargs = dict(args.model_kwargs)
        state = None
        name = args.model
        if args.checkpoint is not None:
            checkpoint = load_checkpoint(args.checkpoint)
            state = model_state(checkpoint)
            name = name or checkpoint.get("arch")
            kwargs = kwargs or (checkpoint.get("args") or {}).get("model_kwargs") or {}
            head = [v for k, v in state.items() if k.endswith(("classifier.weight", "fc.weight"))]
            if head:
                kwargs["num_classes"] = int(head[0].shape[0])
        if not name:
            return fail("--model is required")
        if not timm.is_model(name):
            return fail(f"unknown model {name!r}")
        if args.num_classes:
            kwargs["num_classes"] = args.num_classes
        model = timm.create_model(name, pretrained=args.pretrained, **kwargs).eval()
        if state is not None:
            load_weights(model, state, str(args.checkpoint))
        size = model.pretrained_cfg["input_size"] if args.img_size is None else (3, args.img_size, args.img_size)
        if args.format == "onnx":
            export_onnx(model, size, args.out, args.opset)
        else:
            export_torchscript(model, size, args.out)
        error = verify_export(model, args.out, args.format, size, atol=args.atol)
    except (CheckpointError, ValueError, RuntimeError) as e:
        if isinstance(e, ExportError) and args.out.exists():
            args.out.unlink()  # never leave an export that was shown to be wrong
        return fail(str(e))
    print(f"{args.out}: {name} as {args.format}, input (batch, {size[0]}, {size[1]}, {size[2]}), dynamic batch; "
          f"verified against PyTorch at batch 1 and 3: max abs logit error {error:.2e} (<= {args.atol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
