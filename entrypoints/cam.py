"""tinynet-cam: class activation map of a model's top prediction for an image, saved as a PNG overlay of the
image's own size (paper Fig. 5). Any EfficientNet-family or GhostNet model of the plugin (and most timm CNNs)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import KeyValues, OneLineErrorParser, quiet_third_party_warnings

SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-cam", description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None)
    source.add_argument("--pretrained", action="store_true")
    image = p.add_mutually_exclusive_group(required=True)
    image.add_argument("--image", type=Path, help="an image file")
    image.add_argument("--skimage", choices=SKIMAGE_PHOTOS, help="a photo shipped with scikit-image")
    p.add_argument("--class-index", type=int, default=None, help="explain this class (default: the top prediction)")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    return p.parse_args(argv)


def load_image(args):
    from PIL import Image, UnidentifiedImageError

    if args.skimage:
        import skimage.data

        return Image.fromarray(getattr(skimage.data, args.skimage)()).convert("RGB")
    if not args.image.is_file():
        raise ValueError(f"image {args.image} does not exist")
    try:
        return Image.open(args.image).convert("RGB")
    except (UnidentifiedImageError, OSError):
        raise ValueError(f"{args.image} is not an image PIL can read") from None


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    quiet_third_party_warnings()
    import timm

    import timm_tinynet  # noqa: F401
    from timm_tinynet.cam import cam_for_image
    from timm_tinynet.train import CheckpointError, load_checkpoint, model_state
    from timm_tinynet.train.checkpoint import load_weights

    try:
        if not timm.is_model(args.model):
            raise ValueError(f"unknown model {args.model!r}")
        image = load_image(args)
        kwargs = dict(args.model_kwargs)
        state, names = None, None
        if args.checkpoint is not None:
            checkpoint = load_checkpoint(args.checkpoint)
            if checkpoint.get("class_to_idx"):
                mapping = checkpoint["class_to_idx"]
                names = sorted(mapping, key=mapping.get)
            state = model_state(checkpoint)
            kwargs = kwargs or (checkpoint.get("args") or {}).get("model_kwargs") or {}
            head = [v for k, v in state.items() if k.endswith(("classifier.weight", "fc.weight"))]
            if head:
                kwargs["num_classes"] = int(head[0].shape[0])
        model = timm.create_model(args.model, pretrained=args.pretrained, **kwargs).eval()
        if state is not None:
            load_weights(model, state, str(args.checkpoint))
        if names is None and model.num_classes == 1000:
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            names = [info.index_to_description(i) for i in range(1000)]
        picture, result = cam_for_image(model, image, args.class_index, args.alpha, names)
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"tinynet-cam: error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    picture.save(args.out)
    label = (lambda i: names[i]) if names else (lambda i: f"class {i}")
    print(f"{args.out}: {picture.width}x{picture.height} CAM of {label(result.class_index)} "
          f"(p={result.probability:.3f}); top-5: " + ", ".join(f"{label(i)} {p:.3f}" for i, p in result.top5))
    if not args.pretrained and args.checkpoint is None:
        print("note: random weights (no --pretrained / --checkpoint): the map shows the mechanics, not a trained "
              "model's attention", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
