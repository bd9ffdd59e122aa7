"""tinynet-train / tinynet-validate: recipes reaching the model, resuming with the run's own options, bad input."""
import csv
import hashlib
import json

import pytest
import timm
import torch

from tinynet_cli.train import main as train_main
from tinynet_cli.train import parse_args
from tinynet_cli.validate import main as validate_main
from timm_tinynet.train import open_session
from timm_tinynet.train.checkpoint import CheckpointError, load_checkpoint, load_weights
from timm_tinynet.train.validate import imagenet_class_map


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_image_folder):
    return make_image_folder(tmp_path_factory.mktemp("data"), n_train=16, n_val=8)


def _model_as_trained(argv):
    """The model exactly as the training loop receives it (the session is opened, and closed before any step)."""
    with open_session(parse_args(argv)) as session:
        return session.model


def test_default_recipe_reaches_the_model(data, tmp_path):
    model = _model_as_trained(["--data-dir", str(data), "--model", "tinynet_e", "-b", "8", "-j", "0",
                                            "--output", str(tmp_path), "--epochs", "1"])
    assert model.drop_rate == 0.2
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.01}


def test_flags_override_the_recipe_in_the_model(data, tmp_path, tiny):
    model = _model_as_trained(["--data-dir", str(data), *tiny.SMALL, "--output", str(tmp_path),
                                            "--epochs", "1", "--drop", "0.3", "--drop-path", "0.1",
                                            "--bn-momentum", "0.2"])
    assert model.drop_rate == 0.3
    assert {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.2}
    assert max(getattr(m, "drop_prob", 0.0) for m in model.modules()) > 0


def test_initial_checkpoint_starts_from_its_weights(data, tmp_path, tiny):
    first = tiny.train(data, tmp_path, "first", "--epochs", "1")
    model = _model_as_trained(["--data-dir", str(data), *tiny.SMALL, "--output", str(tmp_path),
                                            "--experiment", "second", "--epochs", "1",
                                            "--initial-checkpoint", str(first / "last.pth.tar")])
    checkpoint = load_checkpoint(first / "last.pth.tar")
    chosen = checkpoint["state_dict_ema" if checkpoint["eval_weights"] == "ema" else "state_dict"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, chosen[key]), key  # the weights the checkpoint names as the better ones


def _parameter_change(argv):
    """How far one session's training moves the weights (norm of the change of all parameters), and its steps."""
    with open_session(parse_args(argv)) as session:
        before = torch.cat([p.detach().flatten().clone() for p in session.model.parameters()])
        session.train()
        after = torch.cat([p.detach().flatten() for p in session.model.parameters()])
        return float((after - before).norm()), session.args.epochs * len(session.loader)


def test_gradient_clipping_is_applied(data, tmp_path, tiny):
    # plain SGD (no momentum, no weight decay): each step moves the weights by lr times the clipped gradient
    argv = ["--data-dir", str(data), "--output", str(tmp_path), *tiny.SMALL, *tiny.FAST, "--epochs", "1",
            "--opt", "momentum", "--momentum", "0", "--weight-decay", "0", "--lr", "0.02"]
    clipped, steps = _parameter_change([*argv, "--experiment", "clip", "--clip-grad", "1e-4"])
    free, _ = _parameter_change([*argv, "--experiment", "free"])
    bound = steps * 0.02 * 1e-4
    assert 0 < clipped <= bound * 1.001
    assert free > 100 * bound  # unclipped, the same steps move the weights far more


def _digest(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_new_run_never_overwrites_a_finished_one(data, tmp_path, capsys, tiny):
    run = tiny.train(data, tmp_path, "done", "--epochs", "1")
    before = _digest(run)
    code = train_main(["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "done", *tiny.SMALL, *tiny.FAST,
                       "--epochs", "2", "--seed", "7"])
    assert code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert _digest(run) == before


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_needs_only_the_checkpoint_and_reproduces(data, tmp_path, workers, tiny):
    full = tiny.summary(tiny.train(data, tmp_path, "full", "--epochs", "3", "-j", workers))
    part = tiny.train(data, tmp_path, "part", "--epochs", "2", "-j", workers)
    options_before = (part / "args.yaml").read_text()
    checkpoint = torch.load(part / "last.pth.tar", map_location="cpu", weights_only=True)
    for key in ("state_dict", "state_dict_ema", "optimizer", "scheduler", "epoch", "rng", "args", "class_to_idx",
                "updates_per_epoch"):
        assert key in checkpoint, key
    assert checkpoint["epoch"] == 1
    assert train_main(["--data-dir", str(data), "--resume", str(part / "last.pth.tar"), "--epochs", "3",
                       "-j", workers]) == 0
    resumed = tiny.summary(part)
    assert [int(r["epoch"]) for r in resumed] == [0, 1, 2]
    for a, b in zip(full, resumed):
        for key in ("train_loss", "eval_loss", "eval_top1", "ema_eval_top1", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-6), (a["epoch"], key)
    changed = {"epochs", "resume"}  # what this resume asked to change (and recorded that it did)
    after = (part / "args.yaml").read_text()
    assert [line for line in after.splitlines() if line.split(":")[0] not in changed] == \
        [line for line in options_before.splitlines() if line.split(":")[0] not in changed]


def test_resume_with_another_optimizer_or_model_is_refused(data, tmp_path, capsys, tiny):
    run = tiny.train(data, tmp_path, "r", "--epochs", "1")
    before = _digest(run)
    for flags, needle in ((["--opt", "rmsproptf"], "--opt sgd"), (["--model", "tinynet_e"], "--model tinynet")):
        code = train_main(["--data-dir", str(data), "--resume", str(run / "last.pth.tar"), "--epochs", "3",
                           "-j", "0", *flags])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and "Traceback" not in err, err
    assert _digest(run) == before  # a refused resume writes nothing


def test_resume_turning_on_ema_starts_it_from_the_restored_weights(data, tmp_path, tiny):
    run = tiny.train(data, tmp_path, "noema", "--epochs", "1", "--no-model-ema")
    checkpoint = torch.load(run / "last.pth.tar", map_location="cpu", weights_only=True)
    assert "state_dict_ema" not in checkpoint
    with open_session(parse_args(["--data-dir", str(data), "--resume", str(run / "last.pth.tar"), "--epochs", "2",
                                  "-j", "0", "--model-ema"])) as session:
        seen = {k: v.clone() for k, v in session.ema.module.state_dict().items()}  # as the loop receives it
        session.train()
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(seen[key], value), key
    assert tiny.summary(run)[-1]["ema_eval_top1"] != ""


@pytest.mark.parametrize("flags,needle", [
    (["--model-kwargs", "foo=1"], "cannot create 'tinynet'"),
    (["--aa", "bogus"], "--aa 'bogus'"),
    (["--sched", "bogus"], "scheduler 'bogus'"),
    (["--drop", "2"], "--drop: must be in [0, 1)"),
    (["--smoothing", "1.5"], "--smoothing"),
    (["--device", "bogus"], "--device 'bogus'"),
    (["--num-classes", "2"], "--num-classes 2 is fewer than the 3"),
    (["--decay-epochs", "0"], "--decay-epochs: must be > 0"),
    (["--scale", "1", "0.5"], "MIN must not exceed MAX"),
    (["--hflip", "5"], "--hflip"),
    (["--img-size", "5"], "--img-size: must be >= 32"),
    (["--model-ema-decay", "2"], "--model-ema-decay"),
    (["--decay-rate", "-1"], "--decay-rate"),
    (["--warmup-epochs", "-1"], "--warmup-epochs"),
    (["--bn-momentum", "0"], "--bn-momentum"),
    (["--lr", "nan"], "--lr"),
])
def test_bad_flags_give_one_line(data, tmp_path, tiny, one_line_error, flags, needle):
    try:
        code = train_main(["--data-dir", str(data), *tiny.SMALL, *tiny.FAST, "--output", str(tmp_path), "--epochs", "1",
                           *flags])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert needle in one_line_error(code)
    assert not (tmp_path / "summary.csv").exists()


def test_output_that_is_a_file(data, tmp_path, tiny, one_line_error):
    target = tmp_path / "file"
    target.write_text("keep me")
    code = train_main(["--data-dir", str(data), *tiny.SMALL, *tiny.FAST, "--output", str(target), "--epochs", "1"])
    assert "is a file" in one_line_error(code)
    assert target.read_text() == "keep me"


def test_resume_from_a_bare_state_dict_points_to_initial_checkpoint(data, tmp_path, one_line_error):
    path = tmp_path / "weights.pth"
    import timm

    torch.save(timm.create_model("tinynet", r=0.3, d=0.3, w=0.3, num_classes=3).state_dict(), path)
    code = train_main(["--data-dir", str(data), "--resume", str(path), "--epochs", "1", "-j", "0"])
    assert "--initial-checkpoint" in one_line_error(code)


def test_weights_that_do_not_fit_name_the_tensor():
    import timm

    small = timm.create_model("tinynet", r=0.3, d=0.3, w=0.3, num_classes=3)
    wide = timm.create_model("tinynet", r=0.3, d=0.3, w=0.5, num_classes=3)
    with pytest.raises(CheckpointError, match=r"differ in shape, e\.g\. conv_stem|blocks\..* in the checkpoint"):
        load_weights(small, wide.state_dict(), "wide.pth")


def test_timm_train_py_checkpoints_load(tmp_path):
    import argparse

    path = tmp_path / "timm.pth.tar"
    torch.save({"epoch": 3, "arch": "tinynet_e", "state_dict": {"w": torch.zeros(2)},
                "args": argparse.Namespace(model="tinynet_e", img_size=None, model_kwargs={})}, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint["args"]["model"] == "tinynet_e"


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("trained")
    return tiny.train(data, out, "v", "--epochs", "1", "--img-size", "40")


def test_validate_uses_the_training_input_size_and_quotes_csv(data, trained, tmp_path, capsys, tiny):
    results = tmp_path / "odd, name" / "r.csv"
    assert validate_main(["--data-dir", str(data), "--checkpoint", str(trained / "last.pth.tar"), "-j", "0",
                          "--results-file", str(results)]) == 0
    assert "at 40px" in capsys.readouterr().out
    row = next(csv.DictReader(open(results)))
    last = tiny.summary(trained)[-1]
    best = max(float(last["eval_top1"]), float(last["ema_eval_top1"]))  # the better weights are evaluated
    assert row["input_size"] == "40" and float(row["top1"]) == pytest.approx(best)


def test_validate_with_another_model_or_foreign_classes(data, trained, tmp_path, make_image_folder,
                                                        one_line_error):
    code = validate_main(["--data-dir", str(data), "--checkpoint", str(trained / "last.pth.tar"), "--model",
                          "tinynet_e", "-j", "0"])
    assert "does not fit the model" in one_line_error(code, "tinynet-validate")
    other = make_image_folder(tmp_path / "other", n_train=2, n_val=2, classes=2)
    (other / "validation" / "class0").rename(other / "validation" / "cats")
    code = validate_main(["--data-dir", str(other), "--checkpoint", str(trained / "last.pth.tar"), "-j", "0"])
    assert "not trained on (cats)" in one_line_error(code, "tinynet-validate")


def test_validate_matches_imagenet_synsets_by_name(tmp_path, capsys):
    for name in ("n01443537", "n01440764"):
        (tmp_path / "inet" / name).mkdir(parents=True)
    assert imagenet_class_map(tmp_path / "inet", 1000) == {"n01440764": 0, "n01443537": 1}
    assert imagenet_class_map(tmp_path / "inet", 100) is None
    (tmp_path / "inet" / "cats").mkdir()
    assert imagenet_class_map(tmp_path / "inet", 1000) is None


def test_validate_refuses_to_match_labels_by_order_across_class_counts(data, tmp_path, one_line_error):
    import timm

    path = tmp_path / "in1k.pth"
    torch.save(timm.create_model("tinynet", r=0.3, d=0.3, w=0.3).state_dict(), path)  # 1000 classes
    code = validate_main(["--data-dir", str(data), "--checkpoint", str(path), "--model", "tinynet",
                          "--model-kwargs", "r=0.3", "d=0.3", "w=0.3", "-j", "0"])
    assert "cannot be matched by order" in one_line_error(code, "tinynet-validate")


def test_validate_results_json(data, trained, tmp_path):
    results = tmp_path / "r.json"
    assert validate_main(["--data-dir", str(data), "--checkpoint", str(trained / "last.pth.tar"), "-j", "0",
                          "--no-ema", "--results-file", str(results)]) == 0
    assert json.loads(results.read_text())["weights"].endswith("(model weights)")


def test_init_from_starts_a_smaller_network_from_a_trained_one(data, tmp_path, tiny, caplog):
    """--init-from: a run of a narrower, shallower tinynet starts from the parent's weights, cut by weight selection
    (the fixed 32-channel stem whole), says so in one line, and keeps its inherited BatchNorm statistics."""
    import logging

    from timm_tinynet.inherit import inherit

    parent_run = tiny.train(data, tmp_path, "parent", "--epochs", "1")
    parent = load_checkpoint(parent_run / "model_best.pth.tar")
    argv = ["--data-dir", str(data), "--output", str(tmp_path), "--experiment", "child", "--model", "tinynet",
            "--model-kwargs", "r=0.3", "d=0.2", "w=0.2", "-b", "16", "-j", "0", "--epochs", "1",
            "--init-from", str(parent_run / "model_best.pth.tar"), "--init-selection", "uniform"]
    with caplog.at_level(logging.INFO, logger="timm_tinynet"):
        model = _model_as_trained(argv)
    from timm_tinynet.train.checkpoint import model_state

    state = model_state(parent)
    assert torch.equal(model.state_dict()["conv_stem.weight"], state["conv_stem.weight"])
    expected = timm.create_model("tinynet", r=0.3, d=0.2, w=0.2, num_classes=3)
    result = inherit(expected, state, "uniform")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.state_dict().items())
    line = [r.message for r in caplog.records if "inherited" in r.message]
    assert line == [f"inherited {result.inherited} of {result.total} tensors from {parent_run / 'model_best.pth.tar'} "
                    f"({result.whole} whole, {result.inherited - result.whole} cut to shape by uniform channel "
                    f"selection); {len(result.kept)} kept as initialised"]
    assert result.inherited == result.total
    recorded = parse_args(argv)
    from timm_tinynet.train.build import starts_from_weights

    assert starts_from_weights(recorded)  # no BatchNorm warm-up by default: the statistics are the parent's
