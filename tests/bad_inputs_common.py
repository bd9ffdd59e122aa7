"""The bad-input table's shared pieces: the case format, a workspace of real input files, and the in-process CLI
runner. The case lists live in ``bad_inputs_*.py`` beside this file, one per area; ``test_bad_inputs.py`` runs
them all and asserts, for every case: exit code 2, one line on stderr naming the problem, no traceback, and every
file of the workspace byte-identical afterwards."""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Type, Union

import numpy as np
import torch
from PIL import Image

Argv = Union[Sequence[str], Callable[["Workspace"], Sequence[str]]]


@dataclass
class CliCase:
    """``tinynet-<cli> ARGV`` must exit 2 with one stderr line containing ``message``.

    ``argv`` strings are formatted with the workspace's paths: ``{ws}`` (the folder), ``{ckpt}``, ``{frontier}``,
    ``{photo}``, ``{data}``, ``{imagenet}``, ``{csv}``, ``{fifo}``, ``{out}`` (a fresh folder for this case)."""

    id: str
    cli: str  # module under tinynet_cli: "formula", "train", "validate", ...
    argv: Sequence[str]
    message: str
    setup: Optional[Callable[["Workspace", Path], None]] = None  # makes extra files under the case's {out}


@dataclass
class ApiCase:
    """``call(workspace)`` must raise ``error`` (a ValueError subclass unless said) with ``message`` in its text."""

    id: str
    call: Callable[["Workspace"], object]
    message: str
    error: Type[BaseException] = ValueError


@dataclass
class Workspace:
    root: Path
    paths: Dict[str, Path] = field(default_factory=dict)

    def fmt(self, text: str, out: Path) -> str:
        return text.format(ws=self.root, out=out, **self.paths)

    def digest(self) -> Dict[str, str]:
        """sha256 of every regular file under the workspace's inputs (the per-case output folders excluded)."""
        digests = {}
        for path in sorted(self.root.rglob("*")):
            if "cases" in path.relative_to(self.root).parts[:1]:
                continue
            if path.is_file() and not path.is_symlink():
                digests[str(path.relative_to(self.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        return digests


def _image(path: Path, value: int, size: int = 24) -> None:
    rng = np.random.default_rng(value)
    array = np.clip(rng.normal(40 + 60 * value, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def image_folder(root: Path, classes: Sequence[str] = ("a", "b", "c"), per_class: int = 4) -> Path:
    for value, name in enumerate(classes):
        for i in range(per_class):
            _image(root / name / f"{i}.png", value)
    return root


def build_workspace(root: Path) -> Workspace:
    """Real inputs of every kind the CLIs take (made once per test module)."""
    import timm

    import timm_tinynet  # noqa: F401
    from tinynet_core.frontier import DEFAULT_FRONTIER
    from timm_tinynet.train.checkpoint import save_atomic

    ws = Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    ws.paths["frontier"] = root / "frontier.csv"
    ws.paths["frontier"].write_bytes(DEFAULT_FRONTIER.read_bytes())
    torch.manual_seed(0)
    model = timm.create_model("tinynet", r=0.2, d=0.3, w=0.2, num_classes=3)
    ws.paths["ckpt"] = root / "model.pth.tar"
    save_atomic({"epoch": 0, "arch": "tinynet", "args": {"model": "tinynet", "model_kwargs": dict(r=0.2, d=0.3, w=0.2)},
                 "state_dict": model.state_dict(), "class_to_idx": {"a": 0, "b": 1, "c": 2}}, ws.paths["ckpt"])
    ws.paths["photo"] = root / "photo.png"
    _image(ws.paths["photo"], 1, size=64)
    ws.paths["data"] = root / "data"
    image_folder(root / "data" / "train")
    image_folder(root / "data" / "validation", per_class=2)
    ws.paths["imagenet"] = root / "imagenet"
    image_folder(root / "imagenet" / "train", classes=("n01", "n02"), per_class=3)
    image_folder(root / "imagenet" / "val", classes=("n01", "n02"), per_class=2)
    ws.paths["csv"] = root / "notes.csv"
    ws.paths["csv"].write_text("name,value\nkeep,1\n")
    ws.paths["fifo"] = root / "pipe"
    os.mkfifo(ws.paths["fifo"])
    return ws


def run_cli(cli: str, argv: Sequence[str]) -> tuple:
    """Run ``tinynet_cli.<cli>.main(argv)`` in this process: (exit code, stdout, stderr, escaped exception)."""
    module = importlib.import_module(f"tinynet_cli.{cli}")
    out, err = io.StringIO(), io.StringIO()
    code, escaped = None, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = module.main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # noqa: BLE001 - an escaped exception is exactly what the table looks for
            escaped = e
    return code, out.getvalue(), err.getvalue(), escaped


def error_lines(stderr: str) -> List[str]:
    """stderr's lines without progress bars and log lines other than errors."""
    return [line for line in stderr.splitlines() if line.strip()]
