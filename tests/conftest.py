import warnings

import pytest
import torch

import timm_tinynet  # noqa: F401  (registers the models)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one intra-op thread for a module that runs many real forwards: on a shared 2-core machine the
    threads spin against each other (10-30x slower); the count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="session", autouse=True)
def _formula_cache_for_the_session(tmp_path_factory):
    """No test, not even a module-scoped fixture, writes to the user's cache folder (tinynet_core/gp_cache.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYNET_CACHE_DIR", str(tmp_path_factory.mktemp("tinynet-cache")))
        yield


@pytest.fixture(autouse=True)
def _formula_cache_per_test(tmp_path, monkeypatch):
    """Each test starts from an empty cache, so a test whose subprocess must fit (test_results' cross-CPU check)
    is not answered by a state that an earlier test cached."""
    monkeypatch.setenv("TINYNET_CACHE_DIR", str(tmp_path / "tinynet-cache"))


# ---- shared by the training tests (test_train*, test_study, test_subset, test_deploy, test_timm_scripts) ----------

COLORS = [(220, 40, 40), (40, 200, 60), (50, 70, 230)]


def _make_image_folder(root, n_train: int = 48, n_val: int = 16, classes: int = 3, seed: int = 0):
    """``root/{train,validation}/class<k>/<i>.png``: easily separable classes, a coloured square at a random place
    on dark noise (48 px)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("validation", n_val)):
        for k, color in enumerate(COLORS[:classes]):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 60, (48, 48, 3)).astype(np.uint8)
                x, y = rng.integers(4, 24, 2)
                img[y:y + 20, x:x + 20] = color
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def make_image_folder():
    """``make_image_folder(root, n_train=48, n_val=16, classes=3, seed=0)``: a small generated image folder."""
    return _make_image_folder


class TinyTraining:
    """tinynet-train of a tiny TinyNet (r = d = w = 0.3) with a fast override recipe, as the training tests run it."""

    SMALL = ["--model", "tinynet", "--model-kwargs", "r=0.3", "d=0.3", "w=0.3", "-b", "16", "-j", "0"]
    FAST = ["--opt", "sgd", "--lr", "0.02", "--bn-momentum", "0.1", "--warmup-epochs", "0", "--decay-epochs", "2",
            "--decay-rate", "0.5", "--drop", "0", "--smoothing", "0", "--aa", "none", "--model-ema-decay", "0.5"]

    def train(self, data, out, name, *extra):
        """A run in ``out/name`` that must succeed; returns its folder."""
        from tinynet_cli.train import main as train_main

        code = train_main(["--data-dir", str(data), "--output", str(out), "--experiment", name, *self.SMALL,
                           *self.FAST, *extra])
        assert code == 0
        return out / name

    @staticmethod
    def summary(run_dir):
        import csv

        with open(run_dir / "summary.csv", newline="") as f:
            return list(csv.DictReader(f))

    def launch_until_first_epoch(self, data, output, experiment: str, settle_s: float = 1.0):
        """A 40-epoch tinynet-train in its own process, returned once its first epoch is written (plus
        ``settle_s``, so it is inside a later epoch): (process, run folder)."""
        import subprocess
        import sys
        import time

        args = ["--data-dir", str(data), "--output", str(output), "--experiment", experiment, *self.SMALL,
                *self.FAST, "--epochs", "40"]
        proc = subprocess.Popen([sys.executable, "-m", "tinynet_cli.train", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = output / experiment
        deadline = time.time() + 240
        while time.time() < deadline and not (run / "summary.csv").exists():
            time.sleep(0.2)
        time.sleep(settle_s)
        return proc, run


@pytest.fixture(scope="session")
def tiny():
    return TinyTraining()


@pytest.fixture
def one_line_error(capsys):
    """``one_line_error(code, prog="tinynet-train")``: the command's error line, after checking it exited 2 with one
    ``prog: error: ...`` line and no traceback."""
    def check(code, prog: str = "tinynet-train") -> str:
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, err
        assert err and err[-1].startswith(f"{prog}: error: "), err
        assert not any("Traceback" in line for line in err)
        return err[-1]

    return check
