"""tinynet-export, tinynet-bench and tinynet-cam."""
import csv

import pytest
import timm
import torch
from PIL import Image

import timm_tinynet  # noqa: F401
from timm_tinynet.cam import class_activation_map, crop_box
from tinynet_cli.bench import main as bench_main
from tinynet_cli.cam import main as cam_main
from tinynet_cli.export import main as export_main
from timm_tinynet.export import ExportError, export_onnx, export_verified, verify_export


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tinynet_e", "ghostnet_a"])
def test_onnx_round_trip(tmp_path, capsys, name):
    out = tmp_path / f"{name}.onnx"
    assert export_main(["--model", name, "--out", str(out)]) == 0
    assert "max abs logit error" in capsys.readouterr().out
    model = timm.create_model(name).eval()
    size = model.pretrained_cfg["input_size"]
    path = export_onnx(model, size, tmp_path / "again.onnx")
    assert verify_export(model, path, "onnx", size, batch_sizes=(1, 2, 5)) < 1e-4  # dynamic batch axis works


def test_torchscript_round_trip(tmp_path):
    out = tmp_path / "m.pt"
    assert export_main(["--model", "tinynet", "--model-kwargs", "r=0.3", "d=0.3", "w=0.3", "--format", "torchscript",
                        "--out", str(out)]) == 0
    assert out.is_file()


def test_export_of_a_trained_checkpoint(tmp_path, make_image_folder, tiny):
    data = make_image_folder(tmp_path / "data", n_train=16, n_val=4)
    tiny.train(data, tmp_path, "x", "--epochs", "1")
    out = tmp_path / "x.onnx"
    assert export_main(["--checkpoint", str(tmp_path / "x" / "last.pth.tar"), "--out", str(out)]) == 0
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[-1] == 3  # the checkpoint's 3 classes


def test_mismatch_fails_loudly(tmp_path):
    model = timm.create_model("tinynet", r=0.3, d=0.3, w=0.3).eval()
    path = export_onnx(model, (3, 67, 67), tmp_path / "m.onnx")
    with torch.no_grad():
        model.classifier.bias.add_(1.0)  # the PyTorch model no longer matches the file
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify_export(model, path, "onnx", (3, 67, 67))


def test_failed_export_keeps_the_earlier_file(tmp_path):
    model = timm.create_model("tinynet", r=0.3, d=0.3, w=0.3).eval()
    path = tmp_path / "m.onnx"
    assert export_verified(model, "onnx", (3, 67, 67), path) < 1e-4
    good = path.read_bytes()
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_verified(model, "onnx", (3, 67, 67), path, atol=-1.0)  # no export can pass
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def tinynet_checkpoint(path):
    """A tinynet-train style checkpoint of the generic 'tinynet' at r=d=w=0.3 with 3 classes."""
    model = timm.create_model("tinynet", r=0.3, d=0.3, w=0.3, num_classes=3)
    torch.save({"arch": "tinynet", "state_dict": model.state_dict(), "class_to_idx": {"a": 0, "b": 1, "c": 2},
                "args": {"model": "tinynet", "model_kwargs": {"r": 0.3, "d": 0.3, "w": 0.3}}}, path)
    return path


def test_checkpoint_of_another_model_is_a_clear_error(tmp_path, capsys):
    """--model tinynet_e with a 'tinynet' checkpoint: its r=, d=, w= are not forced onto tinynet_e (a TypeError
    before); the weights simply do not fit, and the error says so."""
    ckpt = tinynet_checkpoint(tmp_path / "t.pth.tar")
    assert export_main(["--model", "tinynet_e", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not fit the model" in capsys.readouterr().err
    assert cam_main(["--model", "tinynet_e", "--checkpoint", str(ckpt), "--skimage", "coffee",
                     "--out", str(tmp_path / "c.png")]) == 2
    assert "does not fit the model" in capsys.readouterr().err
    # without --model (or with the checkpoint's own) its recorded kwargs build the right network
    assert cam_main(["--checkpoint", str(ckpt), "--skimage", "coffee", "--out", str(tmp_path / "c.png")]) == 0


def test_pretrained_without_network_is_one_line(tmp_path, capsys, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr("timm.models._builder.load_pretrained", offline)
    assert export_main(["--model", "tinynet_e", "--pretrained", "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pretrained weights of tinynet_e could not be downloaded" in err and "Traceback" not in err
    assert cam_main(["--model", "tinynet_e", "--pretrained", "--skimage", "cat", "--out", str(tmp_path / "c.png")]) == 2
    assert "could not be downloaded" in capsys.readouterr().err


def test_export_bad_input(tmp_path, capsys):
    assert export_main(["--model", "nope", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        export_main(["--model", "tinynet_e", "--atol", "nan", "--out", str(tmp_path / "x.onnx")])
    assert e.value.code == 2 and "--atol" in capsys.readouterr().err
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"garbage")
    assert export_main(["--checkpoint", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_bench_csv_and_ratio(tmp_path, capsys, backend):
    out = tmp_path / "bench.csv"
    assert bench_main(["--models", "tinynet_e,efficientnet_bm4", "--repeats", "5", "--warmup", "1",
                       "--backend", backend, "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["model"] for r in rows] == ["tinynet_e", "efficientnet_bm4"]
    assert [int(r["input_size"]) for r in rows] == [106, 112]  # each at its own size
    for r in rows:
        assert 0 < float(r["p10_ms"]) <= float(r["median_ms"]) <= float(r["p90_ms"])
    assert float(rows[0]["ratio_to_tinynet_e"]) == 1.0
    ratio = float(rows[1]["ratio_to_tinynet_e"])
    assert ratio == pytest.approx(float(rows[1]["median_ms"]) / float(rows[0]["median_ms"]), rel=1e-2)
    assert "x tinynet_e" in capsys.readouterr().out


def test_bench_bad_input(capsys):
    assert bench_main(["--models", "tinynet_e,nope"]) == 2
    assert "unknown model(s): nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_main(["--models", "tinynet_e", "--reference", "tinynet_a"])
    with pytest.raises(SystemExit) as e:
        bench_main(["--models", "tinynet_e", "--device", "foo"])
    assert e.value.code == 2 and "--device: expected cpu, cuda or cuda:N, got 'foo'" in capsys.readouterr().err


def test_bench_checks_the_output_before_benchmarking(tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("benchmarked before checking --out")

    monkeypatch.setattr("timm_tinynet.bench.bench_models", never)
    (tmp_path / "file").write_text("")
    for out in ("/proc/x.csv", str(tmp_path), str(tmp_path / "file" / "x.csv")):
        assert bench_main(["--models", "tinynet_e", "--out", out]) == 2
        assert "tinynet-bench: error: " in capsys.readouterr().err


def test_bench_spread_stays_within_the_measurements(monkeypatch):
    import timm_tinynet.bench as bench

    monkeypatch.setattr(bench, "interleaved_times", lambda runners, warmup, repeats, settle: [[1.0, 10.0]])
    row = bench.bench_models(["tinynet_e"], repeats=2, warmup=0)[0]
    assert 1.0 <= row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] <= 10.0


@pytest.mark.parametrize("name", ["tinynet_e", "ghostnet_d", "efficientnet_bm4"])
def test_cam_has_the_input_size(tmp_path, capsys, name):
    out = tmp_path / "cam.png"
    assert cam_main(["--model", name, "--skimage", "chelsea", "--out", str(out)]) == 0
    import skimage.data

    photo = skimage.data.chelsea()
    picture = Image.open(out)
    assert picture.size == (photo.shape[1], photo.shape[0])
    assert "CAM of" in capsys.readouterr().out


def test_cam_of_a_checkpoint_names_its_classes(tmp_path, capsys):
    model = timm.create_model("tinynet", r=0.3, d=0.3, w=0.3, num_classes=3)
    path = tmp_path / "ckpt.pth.tar"
    torch.save({"state_dict": model.state_dict(), "class_to_idx": {"zebra": 2, "ant": 0, "moth": 1},
                "args": {"model_kwargs": {"r": 0.3, "d": 0.3, "w": 0.3}}}, path)
    out = tmp_path / "cam.png"
    assert cam_main(["--model", "tinynet", "--checkpoint", str(path), "--skimage", "coffee", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    top5 = printed.split("top-5: ")[1]
    assert sorted(name.split()[0] for name in top5.split(", ")) == ["ant", "moth", "zebra"]
    assert "class 0" not in printed


def test_cam_locates_the_evidence():
    """On a linear-head network the CAM must light up where the class evidence is."""
    model = timm.create_model("tinynet", r=0.3, d=0.3, w=0.3, num_classes=2).eval()
    image = torch.zeros(1, 3, 64, 64)
    image[..., 40:60, 40:60] = 3.0
    with torch.no_grad():
        features = model.forward_features(image)
    # make class 1 respond to the mean activation of channels that fire on the bright patch
    patch = features[0, :, -1, -1] - features[0, :, 0, 0]
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[1] = patch
    result = class_activation_map(model, image, class_index=1)
    cam = result.cam
    assert cam.shape == (64, 64)
    assert cam[40:60, 40:60].mean() > cam[0:20, 0:20].mean()


def test_random_weights_cam_is_reproducible(tmp_path):
    outs = [tmp_path / name for name in ("a.png", "b.png", "c.png")]
    for out, seed in zip(outs, ("0", "0", "1")):
        assert cam_main(["--model", "tinynet_e", "--skimage", "chelsea", "--seed", seed, "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes() != outs[2].read_bytes()


def test_cam_bad_input(tmp_path, capsys):
    (tmp_path / "not.png").write_text("text")
    assert cam_main(["--model", "tinynet_e", "--image", str(tmp_path / "not.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert "is not an image" in capsys.readouterr().err
    assert cam_main(["--model", "tinynet_e", "--image", str(tmp_path / "none.png"), "--out", str(tmp_path / "o.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cam_main(["--model", "tinynet_e", "--skimage", "cat", "--out", str(tmp_path / "cam" / "x.txt")]) == 2
    assert ".txt is not an image format PIL writes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cam_main(["--model", "tinynet_e", "--skimage", "cat", "--alpha", "5", "--out", str(tmp_path / "o.png")])
    assert e.value.code == 2 and "--alpha: must be in [0, 1]" in capsys.readouterr().err


def test_crop_box_matches_timms_eval_crop():
    left, top, right, bottom = crop_box(400, 300, 224, 0.875)
    assert right - left == pytest.approx(224 / (256 / 300)) and (left + right) / 2 == pytest.approx(200)


# ---- outputs never replace an input or a file the user did not ask to replace ----------------------------------

def fake_bench(monkeypatch):
    rows = [{"model": "tinynet_e", "input_size": 106, "flops_m": 24.3, "median_ms": 1.0, "p10_ms": 1.0,
             "p90_ms": 1.0, "img_per_s": 1000.0}]
    monkeypatch.setattr("timm_tinynet.bench.bench_models", lambda *a, **k: rows)


def test_bench_keeps_an_existing_csv_unless_overwrite(tmp_path, capsys, monkeypatch):
    fake_bench(monkeypatch)
    notes = tmp_path / "notes.csv"
    notes.write_text("name,value\nkeep,1\n")
    assert bench_main(["--models", "tinynet_e", "--out", str(notes)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert notes.read_text() == "name,value\nkeep,1\n"
    assert bench_main(["--models", "tinynet_e", "--out", str(notes), "--overwrite"]) == 0
    assert notes.read_text().startswith("model,")


def test_export_never_writes_over_its_checkpoint(tmp_path, capsys):
    ckpt = tinynet_checkpoint(tmp_path / "t.pth.tar")
    before = ckpt.read_bytes()
    assert export_main(["--checkpoint", str(ckpt), "--out", str(ckpt), "--overwrite"]) == 2
    assert "is also the input --checkpoint" in capsys.readouterr().err
    assert ckpt.read_bytes() == before


def test_export_replaces_an_earlier_export_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "m.pt"
    argv = ["--model", "tinynet", "--model-kwargs", "r=0.3", "d=0.3", "w=0.3", "--format", "torchscript",
            "--out", str(out)]
    out.write_bytes(b"an earlier export")
    assert export_main(argv) == 2 and "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier export"
    assert export_main([*argv, "--overwrite"]) == 0 and out.read_bytes() != b"an earlier export"


def test_cam_never_writes_over_its_image(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(photo)
    before = photo.read_bytes()
    assert cam_main(["--model", "tinynet_e", "--image", str(photo), "--out", str(photo), "--overwrite"]) == 2
    assert "is also the input --image" in capsys.readouterr().err
    assert photo.read_bytes() == before
    out = tmp_path / "cam.png"
    assert cam_main(["--model", "tinynet_e", "--image", str(photo), "--out", str(out)]) == 0
    assert cam_main(["--model", "tinynet_e", "--image", str(photo), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert cam_main(["--model", "tinynet_e", "--image", str(photo), "--out", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("side", [10_000, 100_000])  # PIL warns above ~89 Mpixels and refuses above twice that
def test_cam_refuses_a_decompression_bomb(tmp_path, capsys, side):
    from bad_inputs_io import png_header

    bomb = png_header(tmp_path / "bomb.png", side, side)
    assert cam_main(["--model", "tinynet_e", "--image", str(bomb), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is too large to decode safely (a decompression bomb?)" in err[0]
    assert not (tmp_path / "o.png").exists()


def test_cam_image_that_is_a_pipe_does_not_block(tmp_path, capsys):
    import os

    os.mkfifo(tmp_path / "pipe")
    assert cam_main(["--model", "tinynet_e", "--image", str(tmp_path / "pipe"), "--out", str(tmp_path / "o.png")]) == 2
    assert "is not a regular file" in capsys.readouterr().err


def test_hubconf_lists_every_third_party_module_the_models_import(tmp_path):
    """torch.hub checks ``dependencies`` before loading: each module that building tinynet(c=...) imports from
    the plugin's code (pandas for the tiny formula, gpytorch to fit a frontier not seen before) must be listed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    frontier = tmp_path / "frontier.csv"  # a frontier with no cached fit: c= fits it
    frontier.write_text("c,r,d,w,flops\n0.1,0.6,0.65,0.5,38e6\n0.3,0.8,0.9,0.6,115e6\n0.6,0.85,1.1,0.8,230e6\n")
    script = (
        "import ast, sys\n"
        "import hubconf\n"
        f"hubconf.tinynet(c=0.3, frontier={str(frontier)!r})\n"
        "found = set()\n"
        "for name in [n for n in sys.modules if n.startswith(('timm_tinynet', 'tinynet_core'))]:\n"
        "    for node in ast.walk(ast.parse(open(sys.modules[name].__file__).read())):\n"
        "        if isinstance(node, ast.Import):\n"
        "            found |= {a.name.split('.')[0] for a in node.names}\n"
        "        elif isinstance(node, ast.ImportFrom) and node.level == 0:\n"
        "            found.add(node.module.split('.')[0])\n"
        "        elif isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'import_quietly':\n"
        "            found.add(node.args[0].value.split('.')[0])\n"
        "print(' '.join(sorted(found - set(sys.stdlib_module_names) - {'timm_tinynet', 'tinynet_core'})))\n"
        "print(' '.join(hubconf.dependencies))\n")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, TINYNET_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    imported, listed = (set(line.split()) for line in proc.stdout.strip().splitlines()[-2:])
    assert {"gpytorch", "pandas"} <= imported and imported <= listed, imported - listed


def test_interleaved_times_settle_each_timed_run_on_its_own_network():
    from timm_tinynet.timing import interleaved_times

    log = []
    runners = [lambda: log.append("a"), lambda: log.append("b")]
    times = interleaved_times(runners, warmup=1, repeats=2, settle=2)
    assert log == ["a", "b"] + ["a", "a", "a", "b", "b", "b"] * 2
    assert [len(t) for t in times] == [2, 2]


@pytest.mark.parametrize("argv,settle", [([], 6), (["--settle", "0"], 0), (["--settle", "2"], 2)])
def test_bench_settles_each_timed_run(monkeypatch, capsys, argv, settle):
    import timm_tinynet.bench as bench

    seen = []

    def fake_times(runners, warmup, repeats, settle_runs):
        seen.append(settle_runs)
        return [[1.0, 2.0] for _ in runners]

    monkeypatch.setattr(bench, "interleaved_times", fake_times)
    assert bench_main(["--models", "tinynet_e", "--repeats", "2", "--warmup", "0", *argv]) == 0
    assert seen == [settle] and f"{settle} untimed before each" in capsys.readouterr().out


def test_bench_takes_model_kwargs(capsys, tmp_path):
    from tinynet_core.solve import shrink

    out = tmp_path / "bench.csv"
    assert bench_main(["--models", "tinynet", "--model-kwargs", "c=0.3", "--repeats", "2", "--warmup", "0",
                       "--settle", "0", "--out", str(out)]) == 0
    assert "c=0.3" in capsys.readouterr().out
    row = next(csv.DictReader(open(out)))
    assert row["model_kwargs"] == "c=0.3"
    assert int(row["input_size"]) == shrink("efficientnet_b0", 0.3).img_size


# ---- Hugging Face layout round trip (issue 14) ---------------------------------------------------------------

@pytest.mark.parametrize("name,kwargs", [
    ("tinynet", dict(c=0.3, num_classes=7)),
    ("ghostnet_tiny", dict(target="params=3M")),
    ("resnet50_tiny", dict(c=0.2, rule="giant", num_classes=5)),
    ("ghostnet_b", {}),
    ("tinynet", dict(baseline="mobilenetv3_large_100", c=0.3)),  # issue 13's baselines share the same way
    ("tinynet", dict(baseline="resnet18d", target="params=4M", num_classes=3)),
])
def test_a_shrunk_network_round_trips_through_local_dir(tmp_path, name, kwargs):
    import json

    from timm_tinynet.hub import SEARCH_ARGS, save_for_hf

    model = timm.create_model(name, **kwargs).eval()
    save_for_hf(model, tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architecture"] == name
    args = config.get("model_args", {})
    assert not set(SEARCH_ARGS) & set(args)  # the search's result is saved, not the search
    if "c" in kwargs or "target" in kwargs:
        cube = model.tinynet_cube
        assert (args["r"], args["d"], args["w"]) == (cube.r, cube.d, cube.w)
    assert args.get("baseline") == kwargs.get("baseline")
    rebuilt = timm.create_model(f"local-dir:{tmp_path / 'hf'}", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
    assert rebuilt.pretrained_cfg["input_size"] == model.pretrained_cfg["input_size"]
    assert model._model_args == {k: v for k, v in kwargs.items()} | {k: v for k, v in model._model_args.items()
                                                                       if k not in kwargs}  # left as it was


def test_a_searched_model_without_its_cube_is_refused():
    from timm_tinynet.hub import reconstruction_args

    model = torch.nn.Linear(2, 2)
    model._model_args = {"c": 0.3}
    with pytest.raises(ValueError, match="does not record its cube"):
        reconstruction_args(model)


def test_export_hf_cli(tmp_path, capsys):
    out = tmp_path / "shared"
    assert export_main(["--model", "tinynet", "--model-kwargs", "c=0.3", "num_classes=4", "--format", "hf",
                        "--out", str(out)]) == 0
    assert "identical logits" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "pytorch_model.bin"} <= {p.name for p in out.iterdir()}
    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert model.num_classes == 4
    assert export_main(["--model", "tinynet", "--model-kwargs", "c=0.5", "--format", "hf", "--out", str(out)]) == 0
    assert timm.create_model(f"local-dir:{out}", pretrained=True).num_classes == 1000  # ours: replaced
