"""tinynet-cam: class activation map of a model's top prediction for an image, saved as a PNG overlay of the
image's own size (paper Fig. 5). Any EfficientNet-family or GhostNet model of the plugin (and most timm CNNs)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from ._common import KeyValues, OneLineErrorParser, number, quiet_third_party_warnings, report_error, seed_int

SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = OneLineErrorParser(prog="tinynet-cam", description=__doc__)
    p.add_argument("--model", default=None, help="timm model name (default: the checkpoint's)")
    p.add_argument("--model-kwargs", nargs="*", default={}, action=KeyValues)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None)
    source.add_argument("--pretrained", action="store_true")
    image = p.add_mutually_exclusive_group(required=True)
    image.add_argument("--image", type=Path, help="an image file")
    image.add_argument("--skimage", choices=SKIMAGE_PHOTOS, help="a photo shipped with scikit-image")
    p.add_argument("--class-index", type=int, default=None, help="explain this class (default: the top prediction)")
    p.add_argument("--alpha", type=number(0.0, 1.0), default=0.5, help="opacity of the heat map, 0..1")
    p.add_argument("--seed", type=seed_int, default=0,
                   help="seed of the random initialisation (without --pretrained / --checkpoint)")
    p.add_argument("--out", type=Path, required=True, help="image to write (.png; or .jpg, ...)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def load_image(args):
    """The --image (or --skimage photo) as RGB; ValueError with the reason when it cannot be one."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    if args.skimage:
        import skimage.data

        return Image.fromarray(getattr(skimage.data, args.skimage)()).convert("RGB")
    try:  # main() checked --image as an input file
        with warnings.catch_warnings():
            # PIL warns above MAX_IMAGE_PIXELS and raises above twice that; both are refused here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(args.image) as image:
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"--image {args.image} is too large to decode safely (a decompression bomb?): "
                         f"{str(e).strip().splitlines()[0]}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):  # PIL raises these for broken files
        raise ValueError(f"--image {args.image} is not an image PIL can read") from None


def check_image_path(path: Path) -> str:
    """The PIL format that ``path``'s extension names; ValueError when it names none."""
    from PIL import Image

    Image.init()
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"--out {path}: {path.suffix or 'no extension'} is not an image format PIL writes "
                         f"(use .png)")
    return fmt


def main(argv: Optional[List[str]] = None) -> int:
    from tinynet_core.guard import (MAX_CHECKPOINT_BYTES, MAX_IMAGE_BYTES, GuardError, check_output_file,
                                    checked_inputs, exit_on_termination)

    from tinynet_core.extras import missing_extra

    exit_on_termination()
    args = parse_args(argv)
    needs = missing_extra("deploy", "a class activation map" + (" of a scikit-image sample" if args.skimage else ""),
                          ("matplotlib",) + (("skimage",) if args.skimage else ()))
    if needs:
        return report_error("tinynet-cam", needs)
    quiet_third_party_warnings()
    import torch

    from tinynet_core.atomic import replace_atomically
    from timm_tinynet.cam import cam_for_image
    from timm_tinynet.loading import load_model, quiet_hub_retries
    from timm_tinynet.train import CheckpointError

    try:
        fmt = check_image_path(args.out)
        inputs = checked_inputs(("--image", args.image, MAX_IMAGE_BYTES),
                                ("--checkpoint", args.checkpoint, MAX_CHECKPOINT_BYTES))
        check_output_file(args.out, "--out", inputs, args.overwrite)
        image = load_image(args)
        if args.pretrained:
            quiet_hub_retries()
        torch.manual_seed(args.seed)  # the random initialisation, when neither weights nor checkpoint are given
        model, checkpoint = load_model(args.model, args.model_kwargs, args.checkpoint, args.pretrained)
        names = None
        if checkpoint.get("class_to_idx"):
            mapping = checkpoint["class_to_idx"]
            names = sorted(mapping, key=mapping.get)
        elif model.num_classes == 1000:
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            names = [info.index_to_description(i) for i in range(1000)]
        picture, result = cam_for_image(model, image, args.class_index, args.alpha, names)
        replace_atomically(args.out, lambda tmp: picture.save(tmp, format=fmt))
    except (CheckpointError, GuardError, ValueError, RuntimeError, OSError) as e:
        return report_error("tinynet-cam", e)
    label = (lambda i: names[i]) if names else (lambda i: f"class {i}")
    print(f"{args.out}: {picture.width}x{picture.height} CAM of {label(result.class_index)} "
          f"(p={result.probability:.3f}); top-5: " + ", ".join(f"{label(i)} {p:.3f}" for i, p in result.top5))
    if not args.pretrained and args.checkpoint is None:
        print(f"note: random weights (seed {args.seed}; no --pretrained / --checkpoint): the map shows the "
              f"mechanics, not a trained model's attention", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
