"""tinynet-export: export a model to ONNX (dynamic batch axis), TorchScript, or timm's Hugging Face folder layout
(--format hf: rebuilt by timm.create_model("local-dir:DIR", pretrained=True) or pushed to the Hub), and verify the
exported model against PyTorch on random input; exits non-zero on any mismatch (an earlier --out is then kept)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import KeyValues, OneLineErrorParser, number, positive_int, quiet_third_party_warnings, report_error


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-export", description=__doc__)
    p.add_argument("--model", default=None, help="timm model name (default: the checkpoint's)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None, help="tinynet-train checkpoint (EMA weights if any)")
    source.add_argument("--pretrained", action="store_true")
    p.add_argument("--num-classes", type=positive_int, default=None)
    p.add_argument("--format", choices=("onnx", "torchscript", "hf"), default="onnx",
                   help="hf: a folder with config.json (architecture, model_args: the cube a c=/target= search "
                        "resolved to) and the weights, as timm.models.save_for_hf writes it")
    p.add_argument("--img-size", type=positive_int, default=None, help="default: the model's own input size")
    p.add_argument("--opset", type=positive_int, default=17)
    p.add_argument("--atol", type=number(0.0), default=1e-4, help="max abs logit difference accepted in verification")
    p.add_argument("--rtol", type=number(0.0), default=1e-5,
                   help="plus this fraction of the logit's size (float32 rounding grows with it)")
    p.add_argument("--out", type=Path, required=True, help="output file (.onnx / .pt), or folder (--format hf)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import (MAX_CHECKPOINT_BYTES, GuardError, check_output_dir, check_output_file,
                                    checked_inputs, exit_on_termination, record_outputs)

    from tinynet_core.extras import missing_extra

    exit_on_termination()
    args = parse_args(argv)
    needs = missing_extra("deploy", "--format onnx", ("onnx", "onnxruntime")) if args.format == "onnx" else None
    if needs:
        return report_error("tinynet-export", needs)
    quiet_third_party_warnings()
    from timm_tinynet.export import export_verified
    from timm_tinynet.loading import load_model, quiet_hub_retries
    from timm_tinynet.train import CheckpointError

    try:
        inputs = checked_inputs(("--checkpoint", args.checkpoint, MAX_CHECKPOINT_BYTES))
        if args.format == "hf":
            from timm_tinynet.hub import HF_FILES

            check_output_dir(args.out, "--out", HF_FILES, inputs, args.overwrite)
        else:
            check_output_file(args.out, "--out", inputs, args.overwrite)
        if args.pretrained:
            quiet_hub_retries()
        model, checkpoint = load_model(args.model, args.model_kwargs, args.checkpoint, args.pretrained,
                                       args.num_classes)
        name = args.model or checkpoint.get("arch")
        size = model.pretrained_cfg["input_size"] if args.img_size is None else (3, args.img_size, args.img_size)
        if args.format == "hf":
            from timm_tinynet.hub import HF_FILES, export_hf_verified

            if args.img_size is not None:
                raise ValueError("--img-size does not apply to --format hf: the folder records the model's own "
                                 "input size")
            error, _ = export_hf_verified(model, args.out, size)
            record_outputs(args.out, HF_FILES, "tinynet-export")
            print(f"{args.out}: {name} in timm's Hugging Face layout (config.json, model.safetensors, "
                  f"pytorch_model.bin); rebuilt with timm.create_model('local-dir:{args.out}', pretrained=True): "
                  f"identical logits (max abs difference {error:.1e})")
            return 0
        error = export_verified(model, args.format, size, args.out, args.opset, args.atol, args.rtol)
    except (CheckpointError, GuardError, ValueError, RuntimeError, OSError) as e:
        return report_error("tinynet-export", e)
    print(f"{args.out}: {name} as {args.format}, input (batch, {size[0]}, {size[1]}, {size[2]}), dynamic batch; "
          f"verified against PyTorch at batch 1 and 3: max abs logit error {error:.2e} "
          + (f"(<= {args.atol:g})" if error <= args.atol else f"(<= {args.atol:g} + {args.rtol:g} x |logit|)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
