"""tinynet-study: sampling, the trial runner (local and Ray), analysis, and bad input."""
import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from pathlib import Path

from tinynet_cli.study import main
from tinynet_core.cube import Cube
from tinynet_core.cost import cube_cost_analytic
from tinynet_core.study import StudyError
from tinynet_core.study import sample as sample_module
from timm_tinynet.study.analyze import analyze, check_out_dir, front_ranks, keep_fronts, spearman, write_analysis
from tinynet_core.study.sample import sample_plan
from tinynet_core.study.tables import PLAN_COLUMNS, RESULT_COLUMNS, read_results, write_csv_atomic
from timm_tinynet.study.trials import driver_lock, node_fits


TRAIN_FLAGS = ["--", "-b", "16", "-j", "0", "--opt", "sgd", "--lr", "0.02", "--bn-momentum", "0.1",
               "--warmup-epochs", "0", "--aa", "none", "--smoothing", "0", "--no-model-ema"]


# ---- sample ---------------------------------------------------------------------------------------------------

def test_sample_bounds_count_and_flops_filter():
    plan = sample_plan("efficientnet_b0", 30, seed=3, r_range=(0.4, 1.2), d_range=(0.5, 1.5), w_range=(0.4, 1.6),
                       flops_range=(0.1, 0.6))
    assert len(plan) == 30 and list(plan.columns) == list(PLAN_COLUMNS)
    assert plan["r"].between(0.4, 1.2).all() and plan["d"].between(0.5, 1.5).all() and plan["w"].between(0.4, 1.6).all()
    assert plan["c"].between(0.1, 0.6).all()
    assert (plan["img_size"] == (224 * plan["r"]).astype(int)).all()
    assert plan["id"].is_unique


def test_sample_is_deterministic_by_seed(tmp_path, capsys):
    args = ["sample", "--n", "8", "--r-range", "0.3", "1", "--flops-range", "0.05", "0.8"]
    assert main([*args, "--seed", "5", "--out", str(tmp_path / "a.csv")]) == 0
    assert main([*args, "--seed", "5", "--out", str(tmp_path / "b.csv")]) == 0
    assert main([*args, "--seed", "6", "--out", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_sample_target_c_and_giant_references():
    plan = sample_plan("efficientnet_b0", 4, seed=0, target_c=0.5, giant_c=(0.5, 0.25))
    target = plan[plan["kind"] == "target"]
    assert len(target) == 4 and (abs(target["c"] / 0.5 - 1) <= 0.03).all()
    giant = plan[plan["kind"] == "giant"]
    assert len(giant) == 2 and abs(giant["c"].iloc[0] / 0.5 - 1) <= 0.05


def test_sample_keeps_every_valid_draw():
    """The plan is exactly what counting every draw gives: small networks, whose FLOPs are several times
    r^2 d w^2, are not discarded by a pre-filter (the old one dropped them and biased the plan)."""
    ranges = [(0.15, 0.3), (0.35, 0.6), (0.35, 0.6)]
    lo, hi = 0.008, 0.012
    plan = sample_plan("efficientnet_b0", 6, seed=0, r_range=ranges[0], d_range=ranges[1], w_range=ranges[2],
                       flops_range=(lo, hi))
    c0 = cube_cost_analytic("efficientnet_b0", Cube()).flops
    rng, expected = np.random.default_rng(0), []
    while len(expected) < 6:
        r, d, w = (round(float(rng.uniform(*rg)), 4) for rg in ranges)
        if lo <= round(cube_cost_analytic("efficientnet_b0", Cube(r, d, w)).flops / c0, 6) <= hi:
            expected.append((r, d, w))
    assert list(zip(plan["r"], plan["d"], plan["w"])) == expected
    assert (plan["r"] ** 2 * plan["d"] * plan["w"] ** 2 < lo / 2.5).any()  # ones the old filter dropped


def test_flops_grow_with_every_dimension():
    """The sampler decides draws by dominance, which holds only if FLOPs never fall when r, d or w grows."""
    rng = np.random.default_rng(1)
    for _ in range(4):
        cube = Cube(*(round(float(v), 3) for v in rng.uniform(0.2, 1.2, 3)))
        base = cube_cost_analytic("efficientnet_b0", cube).flops
        for dim in "rdw":
            bigger = Cube(**dict(cube.as_dict(), **{dim: getattr(cube, dim) * 1.07}))
            assert cube_cost_analytic("efficientnet_b0", bigger).flops >= base, (cube, dim)


def test_sample_target_c_solves_w_within_the_w_range():
    plan = sample_plan("efficientnet_b0", 2, seed=0, target_c=0.5, w_range=(0.9, 1.0))
    assert plan["w"].between(0.9, 1.0).all() and (abs(plan["c"] / 0.5 - 1) <= 0.03).all()


@pytest.mark.parametrize("kwargs,message", [
    ({"r_range": (0.5, 0.3)}, "r-range"), ({"flops_range": (0, 1)}, "flops-range"), ({"n": 0}, "--n"),
    ({"seed": -1}, "--seed"), ({"flops_range": (50, 60)}, "<= 1.5"), ({"target_c": 0.0}, "--target-c"),
    ({"target_c": float("nan")}, "--target-c"), ({"giant_c": (0.0,)}, "--giant-c"), ({"giant_c": (5,)}, "--giant-c"),
    ({"r_range": (0.35, 0.36), "d_range": (0.35, 0.36), "w_range": (0.35, 0.36), "flops_range": (0.9, 1.0)},
     "give FLOPs ratios 0.0202-0.0209 C0, none in --flops-range 0.9 1"),
    ({"target_c": 1e-4}, "none within 3% of --target-c 0.0001"),
])
def test_sample_bad_options(kwargs, message):
    options = dict(baseline="efficientnet_b0", n=2, seed=0) | kwargs
    with pytest.raises(StudyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sample_plan(**options)


def test_sample_gives_up_quickly_on_a_range_no_network_hits(monkeypatch):
    monkeypatch.setattr(sample_module, "_JUDGE_AFTER", 10)
    with pytest.raises(StudyError, match=r"gave up after \d+ draws \(10 counted\): 0 of 2 models in --flops-range "
                                         r"0.5 0.5000001"):
        sample_plan("efficientnet_b0", 2, seed=0, flops_range=(0.5, 0.5000001))


@pytest.mark.parametrize("found,counted,n,hopeless", [
    (0, 99, 2, False), (0, 100, 2, True), (60, 100, 100, False), (1, 100, 100, True)])
def test_sampler_give_up_rule(found, counted, n, hopeless):
    assert sample_module._hopeless(found, counted, n) is hopeless


@pytest.mark.parametrize("argv,message", [
    (["--seed", "-1"], "--seed: must be a seed in [0, 2**32), got -1"),
    (["--seed", str(2 ** 32)], "--seed: must be a seed in [0, 2**32)"), (["--target-c", "nan"], "--target-c"),
    (["--giant-c", "0"], "--giant-c: must be in (0, 1)"), (["--r-range", "0.3", "inf"], "--r-range"),
])
def test_sample_cli_rejects_bad_numbers(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["sample", "--n", "2", *argv, "--out", str(tmp_path / "p.csv")])
    assert e.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


# ---- analyze --------------------------------------------------------------------------------------------------

def results_table(rows):
    base = dict(kind="random", baseline="efficientnet_b0", img_size=100, params=1, top5=99.0, epochs=1,
                wall_time_s=1.0, status="ok", error="")
    return pd.DataFrame([dict(base, **row) for row in rows], columns=list(RESULT_COLUMNS))


def test_nondominated_sorting_on_a_known_table():
    # (top1, flops): a, b, c are the Pareto front; d is dominated by b; e by c; f by everything
    top1 = np.array([60, 70, 80, 65, 75, 50])
    flops = np.array([10, 20, 40, 25, 50, 60])
    ranks = front_ranks(top1, flops)
    assert ranks.tolist() == [0, 0, 0, 1, 1, 2]
    assert keep_fronts(ranks, 0.2).tolist() == [True, True, True, False, False, False]
    assert keep_fronts(ranks, 0.6).tolist() == [True, True, True, True, True, False]


def test_spearman_on_known_ranks():
    df = pd.DataFrame({"flops": [1, 2, 3, 4, 5], "r": [0.1, 0.2, 0.3, 0.4, 0.5], "d": [5, 4, 3, 2, 1],
                       "w": [2, 1, 4, 3, 5]})
    rho = spearman(df).set_index("dimension")["spearman_rho"]
    assert rho["r"] == pytest.approx(1.0) and rho["d"] == pytest.approx(-1.0)
    assert rho["w"] == pytest.approx(0.8)  # 1 - 6*sum(d^2)/(n(n^2-1)) with d = (1,-1,1,-1,0)


def study_rows(with_target: bool = True):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        c = float(rng.uniform(0.05, 0.9))
        rows.append(dict(id=f"r{i:03d}", r=0.4 + 0.5 * c, d=0.5 + 0.7 * c, w=0.5 + 0.2 * rng.uniform(), c=c,
                         flops=int(c * 4e8), top1=60 + 20 * c + float(rng.normal(0, 2))))
    rows.append(dict(id="g000", kind="giant", r=0.8, d=0.7, w=0.8, c=0.5, flops=int(2e8), top1=50.0))
    rows.append(dict(id="x000", r=0.8, d=0.7, w=0.8, c=0.5, flops=int(2e8), top1=None, status="failed", error="boom"))
    if with_target:  # Fig. 2 models at one budget, better than every random model: still not on the frontier
        rows += [dict(id=f"t{i:03d}", kind="target", r=r, d=0.9, w=0.7, c=0.3, flops=int(1.2e8), top1=99.0)
                 for i, r in enumerate((0.6, 0.8))]
    return rows


def test_analyze_keeps_the_front_and_fits_the_formula(tmp_path):
    analysis = analyze(results_table(study_rows()))
    assert len(analysis.frontier) >= 4  # at least 20 % of the 20 sampled, successful models
    random = analysis.models.query("kind == 'random'")
    ranks = front_ranks(random["top1"], random["flops"])
    assert (ranks == random["front"].to_numpy()).all()
    assert set(analysis.frontier["source"]) <= {f"trial r{i:03d}" for i in range(20)}  # no giant, no target
    assert (analysis.models.query("kind != 'random'")["front"] == -1).all()

    results = tmp_path / "results.csv"
    paths = write_analysis(analysis, tmp_path / "analysis", results)
    for name in ("frontier.csv", "correlations.csv", "models.csv", "fig1_accuracy_vs_flops.png",
                 "fig2_accuracy_vs_dims.png", "fig3_dims_vs_flops.png"):
        assert paths[name].exists(), name

    # round trip: the study's frontier drives tinynet-formula
    from tinynet_cli.formula import main as formula_main

    assert formula_main(["--c", "0.4", "--frontier", str(paths["frontier.csv"]), "--json"]) == 0

    # analysing the same results again replaces the folder's outputs: no stale Fig. 2 is left behind
    paths = write_analysis(analyze(results_table(study_rows(with_target=False))), tmp_path / "analysis", results)
    assert "fig2_accuracy_vs_dims.png" not in paths
    assert not (tmp_path / "analysis" / "fig2_accuracy_vs_dims.png").exists()


def test_analyze_out_folder_is_never_mixed(tmp_path):
    results, out = tmp_path / "results.csv", tmp_path / "analysis"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="not an analysis folder"):
        check_out_dir(out, results)
    (out / "notes.txt").unlink()
    check_out_dir(out, results)  # empty: fine
    (out / "analysis.json").write_text('{"results": "/elsewhere/results.csv"}')
    with pytest.raises(StudyError, match="holds the analysis of /elsewhere/results.csv"):
        check_out_dir(out, results)


@pytest.mark.parametrize("change,message", [
    (dict(c=float("nan")), "row 2 (id 'r001') has c = nan"),
    (dict(r=float("nan")), "row 2 (id 'r001') has r = nan"),
    (dict(flops=float("nan")), "row 2 (id 'r001') has flops = nan"),
    (dict(top1=float("inf")), "row 2 (id 'r001') has status ok but top1 = inf"),
    (dict(top1=float("nan")), "row 2 (id 'r001') has status ok but top1 = nan"),
    (dict(kind="bogus"), "row 2 (id 'r001') has kind 'bogus'"),
    (dict(status="maybe"), "row 2 (id 'r001') has status 'maybe'"),
])
def test_analyze_rejects_unusable_rows(tmp_path, capsys, change, message):
    rows = study_rows(with_target=False)
    rows[1].update(change)
    path = tmp_path / "results.csv"
    write_csv_atomic(path, results_table(rows).to_dict("records"), RESULT_COLUMNS)
    assert message in _error_line(capsys, main(["analyze", str(path)]))
    assert not (tmp_path / "analysis").exists()


def test_analyze_needs_three_finished_models():
    rows = [dict(id="a", r=1, d=1, w=1, c=0.5, flops=1, top1=50.0), dict(id="b", r=1, d=1, w=1, c=0.6, flops=2, top1=60.0)]
    with pytest.raises(StudyError, match="at least 3"):
        analyze(results_table(rows))


# ---- run ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study(tmp_path_factory, make_image_folder):
    root = tmp_path_factory.mktemp("study")
    data = make_image_folder(root / "data", n_train=16, n_val=6)
    plan = pd.DataFrame([
        dict(id=f"r{i:03d}", kind="random", baseline="efficientnet_b0", r=r, d=0.3, w=0.3, img_size=int(224 * r),
             flops=1, params=1, c=0.01) for i, r in enumerate((0.2, 0.25, 0.3))])
    write_csv_atomic(root / "plan.csv", plan.to_dict("records"), PLAN_COLUMNS)
    return root, data


def run_args(root, data, results, *extra):
    return ["run", str(root / "plan.csv"), "--data-dir", str(data), "--epochs", "1", "--results", str(results),
            "--trials-dir", str(results.parent / "trials"), *extra, *TRAIN_FLAGS]


@pytest.mark.slow
def test_local_executor_three_trials_then_idempotent(study, tmp_path, capsys):
    root, data = study
    results = tmp_path / "results.csv"
    assert main(run_args(root, data, results, "--workers", "2")) == 0
    table = read_results(results)
    assert sorted(table["id"]) == ["r000", "r001", "r002"] and (table["status"] == "ok").all()
    assert table["top1"].between(0, 100).all() and (table["epochs"] == 1).all()
    for row in table.itertuples():  # training time of all its epochs, from the trial's own summary
        with open(tmp_path / "trials" / row.id / "summary.csv") as f:
            assert row.wall_time_s == pytest.approx(sum(float(r["epoch_time_s"]) for r in csv.DictReader(f)), abs=0.06)
    capsys.readouterr()
    assert main(run_args(root, data, results)) == 0
    assert "0 of 3 trials to run" in capsys.readouterr().out
    assert len(read_results(results)) == 3

    # a lost results table: the finished trial folders are verified and reused, with their training time
    results.unlink()
    assert main(run_args(root, data, results)) == 0
    again = read_results(results).set_index("id").loc[table["id"]]
    assert again["top1"].tolist() == table["top1"].tolist()
    assert again["wall_time_s"].tolist() == table["wall_time_s"].tolist()

    # another plan's models in the same trials folder: refused, not taken for this plan's results
    other = pd.read_csv(root / "plan.csv")
    other["r"] = [0.22, 0.26, 0.31]
    write_csv_atomic(tmp_path / "other.csv", other.to_dict("records"), PLAN_COLUMNS)
    argv = run_args(root, data, tmp_path / "other_results.csv")
    argv[1] = str(tmp_path / "other.csv")
    argv[argv.index("--trials-dir") + 1] = str(tmp_path / "trials")
    line = _error_line(capsys, main(argv))
    assert "trial r000" in line and "holds a run of tinynet r=0.2" in line and "(and 2 more)" in line
    assert not (tmp_path / "other_results.csv").exists()

    # more epochs than the finished trials had: refused, not silently skipped
    argv = run_args(root, data, results)
    argv[argv.index("--epochs") + 1] = "2"
    assert "trained for 1 epochs, not --epochs 2" in _error_line(capsys, main(argv))


@pytest.mark.slow
def test_ray_executor_local_instance(study, tmp_path):
    pytest.importorskip("ray")
    root, data = study
    results = tmp_path / "results.csv"
    assert main(run_args(root, data, results, "--executor", "ray", "--ray-address", "local")) == 0
    table = read_results(results)
    assert len(table) == 3 and (table["status"] == "ok").all()


@pytest.mark.slow
def test_driver_killed_loses_no_finished_result(study, tmp_path):
    root, data = study
    results = tmp_path / "results.csv"
    proc = subprocess.Popen([sys.executable, "-m", "tinynet_cli.study", *run_args(root, data, results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not results.exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = read_results(results)  # complete and readable, never half-written
    assert 1 <= len(finished) <= 3
    assert main(run_args(root, data, results)) == 0
    table = read_results(results)
    assert sorted(table["id"]) == ["r000", "r001", "r002"]
    assert table[table["id"].isin(finished["id"])]["top1"].tolist() == finished["top1"].tolist()


@pytest.mark.slow
def test_sigterm_stops_the_driver_and_its_trials(study, tmp_path):
    """SIGTERM (a scheduler's stop) ends the driver at once: its running trials are killed, not waited for, its
    locks are released and no half-written file is left; a re-run resumes."""
    root, data = study
    results = tmp_path / "results.csv"
    proc = subprocess.Popen([sys.executable, "-m", "tinynet_cli.study",
                             *run_args(root, data, results, "--workers", "2")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trials = tmp_path / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and not any(p.is_dir() for p in trials.glob("r00*")):
        time.sleep(0.2)  # a trial process has started writing its run folder
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert code == 128 + signal.SIGTERM and "Traceback" not in stderr
    assert not [p for p in tmp_path.rglob("*.tmp")]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(trials) not in ps  # no orphaned trial process
    from tinynet_core.guard import folder_lock

    with folder_lock(trials, "--trials-dir"), driver_lock(results):  # both released
        pass


@pytest.mark.slow
def test_failing_trial_is_recorded_and_the_study_goes_on(study, tmp_path, capsys):
    root, data = study
    plan = pd.read_csv(root / "plan.csv")
    plan.loc[1, "r"] = 0.05  # a 11px input: the model cannot be built
    write_csv_atomic(tmp_path / "plan.csv", plan.to_dict("records"), PLAN_COLUMNS)
    results = tmp_path / "results.csv"
    argv = run_args(root, data, results)
    argv[1] = str(tmp_path / "plan.csv")
    assert main(argv) == 1  # the study went on, but a script must notice
    table = read_results(results).set_index("id")
    assert table.loc["r001", "status"] == "failed" and "minimum is 32px" in table.loc["r001", "error"]
    assert (table.drop("r001")["status"] == "ok").all()
    assert "1 failed" in capsys.readouterr().out
    assert main(argv) == 1  # still failed: nothing to run, but the study is not complete
    assert "1 trial(s) failed in an earlier run; --retry-failed" in capsys.readouterr().out


# ---- checks before any trial runs -----------------------------------------------------------------------------

def write_results(path, plan_path, **change):
    rows = [dict(row, top1=50.0, top5=90.0, epochs=1, wall_time_s=1.0, status="ok", error="")
            for row in pd.read_csv(plan_path, dtype={"id": str}).to_dict("records")]
    rows[0].update(change)
    write_csv_atomic(path, rows, RESULT_COLUMNS)


@pytest.mark.parametrize("change,message", [
    (dict(r=0.9), "has trial r000 as random efficientnet_b0 r=0.9 d=0.3 w=0.3, but the plan has random "
                  "efficientnet_b0 r=0.2"),
    (dict(id="r099"), "has trial 'r099', which the plan does not have"),
    (dict(epochs=3), "has trial r000 trained for 3 epochs, not --epochs 1"),
])
def test_results_of_another_plan_are_refused(study, tmp_path, capsys, change, message):
    root, data = study
    results = tmp_path / "results.csv"
    write_results(results, root / "plan.csv", **change)
    before = results.read_bytes()
    line = _error_line(capsys, main(run_args(root, data, results)))
    assert message in line and str(results) in line
    assert results.read_bytes() == before


@pytest.mark.parametrize("recorded,message", [
    (dict(model="tinynet", model_kwargs=dict(r=0.9, d=0.3, w=0.3), epochs=1), "holds a run of tinynet r=0.9"),
    (dict(model="resnet50_tiny", model_kwargs=dict(r=0.2, d=0.3, w=0.3), epochs=1), "holds a run of resnet50_tiny"),
    (dict(model="tinynet", model_kwargs=dict(r=0.2, d=0.3, w=0.3), epochs=5),
     "holds a run for 5 epochs, not --epochs 1"),
    (None, "args.yaml cannot be read"),
])
def test_trial_folder_of_another_model_is_refused(study, tmp_path, capsys, recorded, message):
    root, data = study
    trial = tmp_path / "trials" / "r000"
    trial.mkdir(parents=True)
    (trial / "summary.csv").write_text("epoch,eval_top1,eval_top5,epoch_time_s\n0,99.0,100.0,1.0\n")
    if recorded is not None:
        (trial / "args.yaml").write_text(yaml.safe_dump(recorded))
    line = _error_line(capsys, main(run_args(root, data, tmp_path / "results.csv")))
    assert line.startswith(f"tinynet-study: error: trial r000: {trial}") and message in line
    assert not (tmp_path / "results.csv").exists()


def test_a_trial_of_any_baseline_trains_the_generic_model_that_builds_it(tmp_path):
    import yaml

    from timm_tinynet.study.trials import trial_command, trial_folder_problem

    spec = dict(id="r000", baseline="resnet18", r=0.5, d=0.6, w=0.7, data_dir=tmp_path, trials_dir=tmp_path / "trials",
                epochs=1, train_args=[])
    cmd = trial_command(spec)
    assert cmd[cmd.index("--model") + 1] == "tinynet"
    assert cmd[cmd.index("--model-kwargs") + 1:][:4] == ["baseline=resnet18", "r=0.5", "d=0.6", "w=0.7"]
    folder = tmp_path / "trials" / "r000"
    folder.mkdir(parents=True)
    (folder / "summary.csv").write_text("epoch\n")
    recorded = dict(model="tinynet", model_kwargs=dict(baseline="resnet34", r=0.5, d=0.6, w=0.7), epochs=1)
    (folder / "args.yaml").write_text(yaml.safe_dump(recorded))  # the same cube of another baseline
    problem = trial_folder_problem(spec)
    assert "holds a run of tinynet (baseline resnet34) r=0.5" in problem and "tinynet (baseline resnet18)" in problem
    recorded["model_kwargs"]["baseline"] = "resnet18"
    (folder / "args.yaml").write_text(yaml.safe_dump(recorded))
    assert trial_folder_problem(spec) is None


def test_a_second_driver_on_the_same_results_is_refused(study, tmp_path, capsys):
    root, data = study
    results = tmp_path / "results.csv"
    with driver_lock(results):
        line = _error_line(capsys, main(run_args(root, data, results)))
    assert "another driver is running on" in line and not results.exists()


def test_a_second_driver_on_the_same_trials_folder_is_refused(study, tmp_path, capsys):
    """Two drivers with different --results but one --trials-dir would train into the same trial folders."""
    from tinynet_core.guard import GuardError, folder_lock
    from timm_tinynet.study.trials import run_study

    root, data = study
    trials = tmp_path / "trials"
    with folder_lock(trials, "--trials-dir"):  # the first driver, mid-run
        with pytest.raises(GuardError, match=f"--trials-dir {trials} is in use by pid {os.getpid()}"):
            run_study(root / "plan.csv", tmp_path / "b.csv", data, 1, TRAIN_FLAGS[1:], trials)
        argv = run_args(root, data, tmp_path / "c.csv")
        assert f"--trials-dir {trials} is in use" in _error_line(capsys, main(argv))
    assert not (tmp_path / "b.csv").exists() and not (tmp_path / "c.csv").exists()
    assert sorted(p.name for p in trials.iterdir()) == [".tinynet.lock"]  # no trial was started


@pytest.mark.parametrize("where,message", [
    ("plan", "--results {path} is also the input plan"),
    ("data", "lies inside the input folder --data-dir"),
])
def test_run_never_writes_over_an_input(study, tmp_path, capsys, where, message):
    root, data = study
    results = root / "plan.csv" if where == "plan" else data / "results.csv"
    before = (root / "plan.csv").read_bytes()
    line = _error_line(capsys, main(run_args(root, data, results)))
    assert message.format(path=results) in line
    assert (root / "plan.csv").read_bytes() == before and not (data / "results.csv").exists()


def test_run_refuses_a_foreign_results_file(study, tmp_path, capsys):
    root, data = study
    notes = tmp_path / "notes.csv"
    notes.write_text("name,value\nkeep,1\n")
    assert "lacks column(s)" in _error_line(capsys, main(run_args(root, data, notes)))
    assert notes.read_text() == "name,value\nkeep,1\n"


def test_plan_that_is_a_pipe_does_not_block(tmp_path, capsys):
    os.mkfifo(tmp_path / "plan.csv")
    code = main(["run", str(tmp_path / "plan.csv"), "--data-dir", str(tmp_path), "--epochs", "1"])
    assert "plan " + str(tmp_path / "plan.csv") + " is not a regular file" in _error_line(capsys, code)


def test_sample_replaces_a_plan_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    out.write_text("mine\n")
    argv = ["sample", "--n", "2", "--r-range", "0.3", "1", "--flops-range", "0.05", "0.8", "--out", str(out)]
    assert "already exists; pass --overwrite" in _error_line(capsys, main(argv))
    assert out.read_text() == "mine\n"
    assert main([*argv, "--overwrite"]) == 0 and out.read_text().startswith("id,")


def test_demo_writes_outside_the_committed_results_by_default():
    from tinynet_cli.study import build_parser

    args = build_parser().parse_args(["demo"])
    assert args.out == Path("output/study-demo/results") and args.work == Path("output/study-demo")


def test_committed_demo_may_be_regenerated_without_overwrite():
    """results/demo lists its files in its manifest: an explicit --out results/demo may replace them."""
    from tinynet_cli.study import check_demo_out
    from tinynet_core.guard import manifest_files

    demo = Path(__file__).resolve().parents[1] / "results" / "demo"
    files = {p.name for p in demo.iterdir() if not p.name.startswith(".")}
    assert manifest_files(demo) == files
    check_demo_out(Path("output/study-demo"), demo, overwrite=False)


@pytest.mark.parametrize("out,message", [
    ("work", "is the demo's --work folder"),
    ("work/trials/x", "is inside the trials folder of --work"),
    ("theirs", "already holds plan.csv, which this command did not write"),
])
def test_demo_checks_its_out_before_any_work(tmp_path, capsys, monkeypatch, out, message):
    import timm_tinynet.demo_data as demo_data

    monkeypatch.setattr(demo_data, "write_digits_folder", lambda *a, **k: pytest.fail("worked before checking"))
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "plan.csv").write_text("mine\n")
    code = main(["demo", "--work", str(tmp_path / "work"), "--out", str(tmp_path / out)])
    assert message in _error_line(capsys, code)
    assert (tmp_path / "theirs" / "plan.csv").read_text() == "mine\n" and not (tmp_path / "work").exists()


def test_demo_reuses_only_its_own_work_folder(tmp_path, capsys):
    work = tmp_path / "study"
    work.mkdir()
    (work / "plan.csv").write_text("id\n")  # some other study
    code = main(["demo", "--work", str(work), "--out", str(tmp_path / "out")])
    assert "was not created by tinynet-study demo" in _error_line(capsys, code)
    assert sorted(p.name for p in work.iterdir()) == ["plan.csv"]


def test_demo_refuses_its_folder_with_other_settings(tmp_path, capsys):
    work = tmp_path / "study"
    work.mkdir()
    (work / ".tinynet-study-demo").write_text('{"n": 12, "seed": 0, "epochs": 3}\n')
    (work / "plan.csv").write_text("id\n")  # the plan of that demo
    code = main(["demo", "--work", str(work), "--n", "20", "--out", str(tmp_path / "out")])
    assert "holds a demo with --n 12, --seed 0, --epochs 3" in _error_line(capsys, code)
    assert (work / "plan.csv").read_text() == "id\n"


@pytest.mark.parametrize("flags,needle", [
    (["--ray-address", "auto"], "apply to --executor ray"),
    (["--gpus-per-trial", "1"], "apply to --executor ray"),
    (["--executor", "ray", "--workers", "2"], "--workers applies to --executor local"),
])
def test_executor_options_must_match_the_executor(tmp_path, capsys, flags, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(tmp_path / "plan.csv"), "--data-dir", str(tmp_path), "--epochs", "1", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err


# ---- bad input ------------------------------------------------------------------------------------------------

def _error_line(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("tinynet-study: error:") and "Traceback" not in "".join(err)
    return err[-1]


def test_missing_plan(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nope.csv"), "--data-dir", str(tmp_path), "--epochs", "1"])
    assert "does not exist" in _error_line(capsys, code)


HEADER = ",".join(PLAN_COLUMNS)


@pytest.mark.parametrize("text,message", [
    ("id,r,d\nx,1,1\n", "lacks column"),
    (HEADER + "\nx,random,efficientnet_b0,abc,1,1,224,1,1,1\n", "column 'r', row 1 is not a number"),
    ("", "is empty"),
    (HEADER + "\nx,bogus,efficientnet_b0,1,1,1,224,1,1,1\n", "row 1 (id 'x') has kind 'bogus', not one of"),
    (HEADER + "\nx,random,nope,1,1,1,224,1,1,1\n", "row 1 (id 'x') has baseline 'nope', not one of efficientnet_b0"),
    (HEADER + "\n../../etc,random,efficientnet_b0,1,1,1,224,1,1,1\n", "row 1 (id '../../etc') has an unusable id"),
    (HEADER + "\nok,random,efficientnet_b0,1,1,1,224,1,1,1\n,random,efficientnet_b0,1,1,1,224,1,1,1\n",
     "row 2 (id nan) has an unusable id"),
    (HEADER + "\nx,random,efficientnet_b0,1,inf,1,224,1,1,1\n", "row 1 (id 'x') has d = inf"),
    (HEADER + "\nx,random,efficientnet_b0,1,1,1,224,1,1,\n", "row 1 (id 'x') has c = nan"),
])
def test_malformed_plan(tmp_path, capsys, text, message):
    (tmp_path / "plan.csv").write_text(text)
    code = main(["run", str(tmp_path / "plan.csv"), "--data-dir", str(tmp_path), "--epochs", "1"])
    assert message in _error_line(capsys, code)


def test_malformed_results_for_analyze(tmp_path, capsys):
    (tmp_path / "results.csv").write_text("id,top1\na,50\n")
    assert "lacks column" in _error_line(capsys, main(["analyze", str(tmp_path / "results.csv")]))


def test_unknown_executor(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "plan.csv", "--data-dir", str(tmp_path), "--epochs", "1", "--executor", "dask"])
    assert e.value.code == 2 and "unknown executor 'dask'" in capsys.readouterr().err


def test_bad_training_flag_is_caught_before_any_trial(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "plan.csv", "--data-dir", str(tmp_path), "--epochs", "1", "--", "--learning-rate", "3"])
    assert e.value.code == 2 and "unrecognized arguments: --learning-rate" in capsys.readouterr().err


def test_ray_not_installed(study, tmp_path, capsys, monkeypatch):
    root, data = study
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(run_args(root, data, tmp_path / "results.csv", "--executor", "ray"))
    assert "--executor ray needs the 'ray' extra (ray is not installed): pip install 'timm-tinynet[ray]'" in \
        _error_line(capsys, code)


@pytest.mark.parametrize("option,value", [("--cpus-per-trial", "-1"), ("--cpus-per-trial", "0"),
                                          ("--gpus-per-trial", "1.5"), ("--gpus-per-trial", "nan")])
def test_bad_ray_resources(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as e:
        main(["run", "plan.csv", "--data-dir", str(tmp_path), "--epochs", "1", "--executor", "ray", option, value])
    assert e.value.code == 2 and f"argument {option}: must be" in capsys.readouterr().err


def test_ray_resources_a_node_can_give():
    assert node_fits({"CPU": 8.0, "GPU": 1.0}, 8, 1) and node_fits({"CPU": 2.0}, 1, 0)
    assert not node_fits({"CPU": 2.0}, 1, 1) and not node_fits({"CPU": 2.0, "GPU": 4.0}, 4, 1)


def test_unreachable_ray_address_fails_fast(study, tmp_path, capsys):
    pytest.importorskip("ray")
    root, data = study
    start = time.time()
    code = main(run_args(root, data, tmp_path / "results.csv", "--executor", "ray", "--ray-address", "127.0.0.1:1"))
    assert "cannot connect to the Ray cluster at '127.0.0.1:1'" in _error_line(capsys, code)
    assert time.time() - start < 30


@pytest.mark.slow
def test_ray_trial_no_node_can_run_is_refused(study, tmp_path, capsys):
    pytest.importorskip("ray")
    root, data = study
    code = main(run_args(root, data, tmp_path / "results.csv", "--executor", "ray", "--ray-address", "local",
                         "--gpus-per-trial", "64"))
    assert "no node of the Ray cluster has 1 CPU(s) and 64 GPU(s)" in _error_line(capsys, code)
