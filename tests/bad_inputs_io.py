"""Bad inputs of the file-handling CLIs: validate, export, cam, bench, subset, study, timm_train.

Outputs that would replace an input, land inside an input folder, replace a file the user did not ask to
replace, or cannot be written; inputs that are pipes, devices, missing or too big to decode; bad numbers and seeds.
Every case is refused before any work (none trains or benchmarks)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

from bad_inputs_common import CliCase

HUGE_SEED = str(2 ** 32)


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` pixels but holds almost no data: what a decompression bomb
    looks like to a reader before it decodes (PIL checks the size when it opens the file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _bomb(side: int):
    def setup(ws, out: Path) -> None:
        png_header(out / "bomb.png", side, side)

    return setup


def _garbage_images(ws, out: Path) -> None:
    """A class-folder tree (the checkpoint's classes a, b, c) whose every image is text, not an image."""
    for name in ("a", "b", "c"):
        folder = out / "garbage" / "validation" / name
        folder.mkdir(parents=True)
        for i in range(2):
            (folder / f"{i}.png").write_text("this is not a picture\n")


def _plan(ws, out: Path) -> None:
    """A valid one-trial study plan in the case's folder."""
    (out / "plan.csv").write_text("id,kind,baseline,r,d,w,img_size,flops,params,c\n"
                                  "r000,random,efficientnet_b0,0.2,0.3,0.3,44,1,1,0.01\n")


RUN = ["run", "{out}/plan.csv", "--data-dir", "{data}", "--epochs", "1"]
VALIDATE = ["--data-dir", "{data}", "--checkpoint", "{ckpt}"]

CASES = [
    # ---- tinynet-validate --------------------------------------------------------------------------------------
    CliCase("io-validate-img-size-huge", "validate", [*VALIDATE, "--img-size", "100000"], "argument --img-size"),
    CliCase("io-validate-results-is-checkpoint", "validate", [*VALIDATE, "--results-file", "{ckpt}", "--overwrite"],
            "is also the input --checkpoint"),
    CliCase("io-validate-results-inside-data", "validate", [*VALIDATE, "--results-file", "{data}/validation/r.csv"],
            "lies inside the input folder --data-dir"),
    CliCase("io-validate-results-existing-file", "validate", [*VALIDATE, "--results-file", "{csv}"],
            "already exists; pass --overwrite"),
    CliCase("io-validate-results-unwritable", "validate", [*VALIDATE, "--results-file", "/proc/tinynet/r.csv"],
            "cannot write --results-file"),
    CliCase("io-validate-results-parent-is-a-file", "validate", [*VALIDATE, "--results-file", "{photo}/r.csv"],
            "is a file, not a folder"),
    CliCase("io-validate-results-suffix", "validate", [*VALIDATE, "--results-file", "{out}/r.txt"],
            "must end in .csv or .json"),
    CliCase("io-validate-checkpoint-fifo", "validate", ["--data-dir", "{data}", "--checkpoint", "{fifo}"],
            "is not a regular file"),
    CliCase("io-validate-checkpoint-missing", "validate", ["--data-dir", "{data}", "--checkpoint", "{ws}/no.pth.tar"],
            "does not exist"),
    CliCase("io-validate-data-missing", "validate", ["--data-dir", "{ws}/nowhere", "--checkpoint", "{ckpt}"],
            "does not exist"),
    CliCase("io-validate-unreadable-images", "validate", ["--data-dir", "{out}/garbage", "--checkpoint", "{ckpt}",
                                                          "-j", "0"],
            "cannot decode", setup=_garbage_images),
    CliCase("io-validate-batch-size-zero", "validate", [*VALIDATE, "-b", "0"], "--batch-size"),

    # ---- tinynet-export ----------------------------------------------------------------------------------------
    CliCase("io-export-out-is-checkpoint", "export", ["--checkpoint", "{ckpt}", "--out", "{ckpt}", "--overwrite"],
            "is also the input --checkpoint"),
    CliCase("io-export-out-existing-file", "export", ["--model", "tinynet_e", "--out", "{csv}"],
            "already exists; pass --overwrite"),
    CliCase("io-export-checkpoint-fifo", "export", ["--checkpoint", "{fifo}", "--out", "{out}/m.onnx"],
            "is not a regular file"),
    CliCase("io-export-checkpoint-device", "export", ["--checkpoint", "/dev/zero", "--out", "{out}/m.onnx"],
            "is not a regular file"),
    CliCase("io-export-out-unwritable", "export", ["--model", "tinynet_e", "--out", "/proc/m.onnx"],
            "cannot write --out"),
    CliCase("io-export-atol-nan", "export", ["--model", "tinynet_e", "--atol", "nan", "--out", "{out}/m.onnx"],
            "--atol"),
    CliCase("io-export-rtol-negative", "export", ["--model", "tinynet_e", "--rtol", "-1", "--out", "{out}/m.onnx"],
            "--rtol"),

    # ---- tinynet-cam -------------------------------------------------------------------------------------------
    CliCase("io-cam-out-is-image", "cam", ["--model", "tinynet_e", "--image", "{photo}", "--out", "{photo}",
                                           "--overwrite"],
            "is also the input --image"),
    CliCase("io-cam-out-existing-image", "cam", ["--model", "tinynet_e", "--skimage", "coffee", "--out", "{photo}"],
            "already exists; pass --overwrite"),
    CliCase("io-cam-image-fifo", "cam", ["--model", "tinynet_e", "--image", "{fifo}", "--out", "{out}/c.png"],
            "is not a regular file"),
    CliCase("io-cam-image-missing", "cam", ["--model", "tinynet_e", "--image", "{ws}/none.png", "--out", "{out}/c.png"],
            "does not exist"),
    CliCase("io-cam-checkpoint-fifo", "cam", ["--checkpoint", "{fifo}", "--skimage", "cat", "--out", "{out}/c.png"],
            "is not a regular file"),
    CliCase("io-cam-decompression-bomb", "cam", ["--model", "tinynet_e", "--image", "{out}/bomb.png",
                                                 "--out", "{out}/c.png"],
            "decompression bomb", setup=_bomb(100_000)),
    CliCase("io-cam-decompression-bomb-warning", "cam", ["--model", "tinynet_e", "--image", "{out}/bomb.png",
                                                         "--out", "{out}/c.png"],
            "decompression bomb", setup=_bomb(10_000)),
    CliCase("io-cam-seed-huge", "cam", ["--model", "tinynet_e", "--skimage", "cat", "--seed", HUGE_SEED,
                                        "--out", "{out}/c.png"],
            "--seed: must be a seed in [0, 2**32)"),
    CliCase("io-cam-seed-negative", "cam", ["--model", "tinynet_e", "--skimage", "cat", "--seed", "-1",
                                            "--out", "{out}/c.png"],
            "--seed: must be a seed"),
    CliCase("io-cam-out-parent-is-a-file", "cam", ["--model", "tinynet_e", "--skimage", "cat", "--out",
                                                   "{photo}/c.png"],
            "is a file, not a folder"),
    CliCase("io-cam-alpha-nan", "cam", ["--model", "tinynet_e", "--skimage", "cat", "--alpha", "nan",
                                        "--out", "{out}/c.png"],
            "--alpha"),

    # ---- tinynet-bench -----------------------------------------------------------------------------------------
    CliCase("io-export-hf-out-is-a-file", "export", ["--model", "tinynet_e", "--format", "hf", "--out", "{csv}"],
            "is a file, not a folder"),
    CliCase("io-export-hf-foreign-config", "export", ["--model", "tinynet_e", "--format", "hf", "--out", "{out}/hf"],
            "which this command did not write",
            setup=lambda ws, out: ((out / "hf").mkdir(), (out / "hf" / "config.json").write_text("{}"))),
    CliCase("io-export-hf-img-size", "export", ["--model", "tinynet_e", "--format", "hf", "--img-size", "64",
                                               "--out", "{out}/hf"], "--img-size does not apply to --format hf"),
    CliCase("io-bench-model-kwargs-bad-c", "bench", ["--models", "tinynet", "--model-kwargs", "c=3"],
            "c must be in (0, 1)"),
    CliCase("io-bench-model-kwargs-not-pairs", "bench", ["--models", "tinynet", "--model-kwargs", "c"],
            "argument --model-kwargs: expected key=value, got 'c'"),
    CliCase("io-bench-model-kwargs-not-taken", "bench", ["--models", "tinynet_e", "--model-kwargs", "c=0.3"],
            "tinynet_e does not take c"),
    CliCase("io-bench-settle-negative", "bench", ["--models", "tinynet_e", "--settle", "-1"], "argument --settle"),
    CliCase("io-bench-settle-text", "bench", ["--models", "tinynet_e", "--settle", "six"], "argument --settle"),
    CliCase("io-bench-out-existing-csv", "bench", ["--models", "tinynet_e", "--out", "{csv}"],
            "already exists; pass --overwrite"),
    CliCase("io-bench-out-unwritable", "bench", ["--models", "tinynet_e", "--out", "/proc/bench.csv"],
            "cannot write --out"),
    CliCase("io-bench-out-is-a-folder", "bench", ["--models", "tinynet_e", "--out", "{ws}"], "is a folder"),
    CliCase("io-bench-repeats-one", "bench", ["--models", "tinynet_e", "--repeats", "1"], "--repeats"),

    # ---- tinynet-subset ----------------------------------------------------------------------------------------
    CliCase("io-subset-out-inside-imagenet", "subset", ["--imagenet", "{imagenet}", "--out", "{imagenet}/x",
                                                        "--classes", "1", "--train-per-class", "1"],
            "lies inside the input folder --imagenet"),
    CliCase("io-subset-out-is-imagenet", "subset", ["--imagenet", "{imagenet}", "--out", "{imagenet}",
                                                    "--classes", "1", "--train-per-class", "1"],
            "is also the input --imagenet"),
    CliCase("io-subset-out-not-empty", "subset", ["--imagenet", "{imagenet}", "--out", "{data}", "--classes", "1",
                                                  "--train-per-class", "1"],
            "already holds train"),
    CliCase("io-subset-imagenet-missing", "subset", ["--imagenet", "{ws}/nowhere", "--out", "{out}/s"],
            "does not exist"),
    CliCase("io-subset-imagenet-is-a-file", "subset", ["--imagenet", "{csv}", "--out", "{out}/s"],
            "is not a folder"),
    CliCase("io-subset-seed-huge", "subset", ["--imagenet", "{imagenet}", "--out", "{out}/s", "--seed", HUGE_SEED],
            "--seed: must be a seed in [0, 2**32)"),

    # ---- tinynet-study -----------------------------------------------------------------------------------------
    CliCase("io-study-plan-fifo", "study", ["run", "{fifo}", "--data-dir", "{data}", "--epochs", "1"],
            "is not a regular file"),
    CliCase("io-study-plan-missing", "study", ["run", "{ws}/plan.csv", "--data-dir", "{data}", "--epochs", "1"],
            "does not exist"),
    CliCase("io-study-results-is-plan", "study", [*RUN, "--results", "{out}/plan.csv"],
            "is also the input plan", setup=_plan),
    CliCase("io-study-results-inside-data", "study", [*RUN, "--results", "{data}/results.csv"],
            "lies inside the input folder --data-dir", setup=_plan),
    CliCase("io-study-trials-inside-data", "study", [*RUN, "--results", "{out}/r.csv", "--trials-dir", "{data}/t"],
            "lies inside the input folder --data-dir", setup=_plan),
    CliCase("io-study-results-foreign-csv", "study", [*RUN, "--results", "{csv}"], "lacks column(s)", setup=_plan),
    CliCase("io-study-results-unwritable", "study", [*RUN, "--results", "/proc/tinynet/r.csv"], "cannot write --results",
            setup=_plan),
    CliCase("io-study-data-missing", "study", ["run", "{out}/plan.csv", "--data-dir", "{ws}/nowhere", "--epochs", "1"],
            "does not exist", setup=_plan),
    CliCase("io-study-sample-out-existing", "study", ["sample", "--n", "2", "--out", "{csv}"],
            "already exists; pass --overwrite"),
    CliCase("io-study-sample-baseline-unknown", "study", ["sample", "--n", "2", "--baseline", "vgg16", "--out",
                                                          "{out}/p.csv"], "argument --baseline: invalid choice: 'vgg16'"),
    CliCase("io-study-sample-seed-huge", "study", ["sample", "--n", "2", "--seed", HUGE_SEED, "--out", "{out}/p.csv"],
            "--seed: must be a seed in [0, 2**32)"),
    CliCase("io-study-analyze-results-fifo", "study", ["analyze", "{fifo}", "--out", "{out}/a"],
            "is not a regular file"),
    CliCase("io-study-analyze-out-is-results", "study", ["analyze", "{csv}", "--out", "{csv}"],
            "is also the input results"),
    CliCase("io-study-analyze-out-unwritable", "study", ["analyze", "{csv}", "--out", "/proc/tinynet-analysis"],
            "cannot write --out"),
    CliCase("io-study-demo-out-foreign-files", "study", ["demo", "--work", "{out}/work", "--out", "{ws}"],
            "already holds frontier.csv, which this command did not write"),
    CliCase("io-study-demo-out-is-work", "study", ["demo", "--work", "{out}/w", "--out", "{out}/w"],
            "is the demo's --work folder"),
    CliCase("io-study-demo-seed-huge", "study", ["demo", "--seed", HUGE_SEED], "--seed: must be a seed"),

    # ---- tinynet-timm-train ------------------------------------------------------------------------------------
    CliCase("io-timm-train-script-fifo", "timm_train", ["{fifo}", "--model", "tinynet_e"], "is not a regular file"),
    CliCase("io-timm-train-script-missing", "timm_train", ["{ws}/train.py"], "does not exist"),
    CliCase("io-timm-train-script-folder", "timm_train", ["{ws}"], "is a folder, not a file"),
    CliCase("io-timm-train-no-script", "timm_train", [], "give the script to run"),
]
