import pytest

from tinynet_cli.subset import main
from timm_tinynet.subset import SubsetError, plan_subset


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """A fake ImageNet tree: 12 classes, 9 training and 3 validation images each (empty files suffice)."""
    root = tmp_path_factory.mktemp("imagenet")
    for k in range(12):
        wnid = f"n{k:08d}"
        for split, n in (("train", 9), ("val", 3)):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{wnid}_{split}_{i}.JPEG").write_bytes(b"")
        (root / "train" / wnid / "notes.txt").write_text("not an image")
    return root


def test_counts_and_layout(imagenet, tmp_path, capsys):
    out = tmp_path / "in100"
    assert main(["--imagenet", str(imagenet), "--out", str(out), "--classes", "5", "--train-per-class", "4"]) == 0
    assert "5 classes, 20 train and 15 val images" in capsys.readouterr().out
    classes = (out / "classes.txt").read_text().split()
    assert len(classes) == 5 and classes == sorted(classes)
    for wnid in classes:
        train = list((out / "train" / wnid).iterdir())
        assert len(train) == 4 and all(p.is_symlink() and p.resolve().parent.name == wnid for p in train)
        assert len(list((out / "val" / wnid).iterdir())) == 3
    assert sum(1 for _ in (out / "train").rglob("*.txt")) == 0


def test_deterministic_by_seed(imagenet):
    a = plan_subset(imagenet, 5, 4, seed=1)
    assert a == plan_subset(imagenet, 5, 4, seed=1)
    assert a != plan_subset(imagenet, 5, 4, seed=2)


def test_filelist_mode(imagenet, tmp_path):
    out = tmp_path / "lists"
    assert main(["--imagenet", str(imagenet), "--out", str(out), "--classes", "3", "--train-per-class", "2",
                 "--mode", "filelist"]) == 0
    lines = (out / "train.txt").read_text().splitlines()
    assert len(lines) == 6 and all(line.startswith(str(imagenet.resolve() / "train" / "n")) for line in lines)
    assert {line.split()[-1] for line in lines} == {"0", "1", "2"}
    assert len((out / "val.txt").read_text().splitlines()) == 9
    assert not (out / "train").exists()  # nothing copied or linked


@pytest.mark.parametrize("argv,message", [
    (["--classes", "20"], "fewer than the 20 asked for"),
    (["--classes", "2", "--train-per-class", "50"], "fewer than 50"),
])
def test_bad_requests(imagenet, tmp_path, capsys, argv, message):
    assert main(["--imagenet", str(imagenet), "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinynet-subset: error:") and message in err


def test_never_overwrites(imagenet, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["--imagenet", str(imagenet), "--out", str(out), "--classes", "2", "--train-per-class", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


def test_flat_validation_folder_is_explained(tmp_path):
    root = tmp_path / "flat"
    (root / "train" / "n1").mkdir(parents=True)
    (root / "train" / "n1" / "a.JPEG").write_bytes(b"")
    (root / "val").mkdir()
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(SubsetError, match="class folders first"):
        plan_subset(root, 1, 1)


@pytest.mark.slow
def test_train_and_validate_read_the_file_lists(tmp_path, capsys, make_image_folder):
    from tinynet_cli.train import main as train_main
    from tinynet_cli.validate import main as validate_main

    source = make_image_folder(tmp_path / "imagenet", n_train=12, n_val=4)
    out = tmp_path / "lists"
    assert main(["--imagenet", str(source), "--out", str(out), "--classes", "3", "--train-per-class", "8",
                 "--val-split", "validation", "--mode", "filelist"]) == 0
    assert train_main(["--data-dir", str(out), "--model", "tinynet", "--model-kwargs", "r=0.3", "d=0.3", "w=0.3",
                       "-b", "8", "-j", "0", "--epochs", "1", "--opt", "sgd", "--lr", "0.01", "--warmup-epochs",
                       "0", "--output", str(tmp_path), "--experiment", "run"]) == 0
    import torch

    checkpoint = torch.load(tmp_path / "run" / "last.pth.tar", map_location="cpu", weights_only=True)
    assert list(checkpoint["class_to_idx"]) == (out / "classes.txt").read_text().split()
    capsys.readouterr()
    assert validate_main(["--data-dir", str(out), "--checkpoint", str(tmp_path / "run" / "last.pth.tar"),
                          "-j", "0"]) == 0
    assert "on 12 images of " + str(out / "val.txt") in capsys.readouterr().out


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("inside", ["x", "train/new", "val/n00000001/sub"])
def test_the_imagenet_folder_never_gains_anything(imagenet, capsys, inside):
    before = _tree(imagenet)
    assert main(["--imagenet", str(imagenet), "--out", str(imagenet / inside), "--classes", "2",
                 "--train-per-class", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lies inside the input folder --imagenet" in err[0]
    assert _tree(imagenet) == before


def test_an_interrupted_subset_leaves_no_half_folder(imagenet, tmp_path, monkeypatch):
    import os

    calls = []

    def symlink(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt
        os.symlink(source, target)

    monkeypatch.setattr("timm_tinynet.subset.os.symlink", symlink)
    with pytest.raises(KeyboardInterrupt):
        main(["--imagenet", str(imagenet), "--out", str(tmp_path / "in100"), "--classes", "2",
              "--train-per-class", "2"])
    assert list(tmp_path.iterdir()) == []  # neither the subset nor its temporary folder


@pytest.mark.parametrize("seed", ["-1", str(2 ** 32), "1.5"])
def test_bad_seed(imagenet, tmp_path, capsys, seed):
    with pytest.raises(SystemExit) as e:
        main(["--imagenet", str(imagenet), "--out", str(tmp_path / "o"), "--seed", seed])
    assert e.value.code == 2 and "--seed: must be" in capsys.readouterr().err
