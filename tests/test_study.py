"""tinynet-study: sampling, the trial runner (local and Ray), analysis, and bad input."""
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from timm_tinynet.cli.study import main
from timm_tinynet.study import StudyError
from timm_tinynet.study.analyze import analyze, front_ranks, keep_fronts, spearman
from timm_tinynet.study.sample import sample_plan
from timm_tinynet.study.tables import PLAN_COLUMNS, RESULT_COLUMNS, read_results, write_csv_atomic

from test_train import make_dataset

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


@pytest.mark.parametrize("kwargs,message", [
    ({"r_range": (0.5, 0.3)}, "r-range"), ({"flops_range": (0, 1)}, "flops-range"), ({"n": 0}, "--n"),
    ({"r_range": (0.35, 0.36), "d_range": (0.35, 0.36), "w_range": (0.35, 0.36), "flops_range": (0.9, 1.0)},
     "only 0 of 2 draws"),
])
def test_sample_bad_options(kwargs, message):
    options = dict(baseline="efficientnet_b0", n=2, seed=0) | kwargs
    with pytest.raises(StudyError, match=message):
        sample_plan(**options)


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


def test_analyze_keeps_the_front_and_fits_the_formula(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        c = float(rng.uniform(0.05, 0.9))
        rows.append(dict(id=f"r{i:03d}", r=0.4 + 0.5 * c, d=0.5 + 0.7 * c, w=0.5 + 0.2 * rng.uniform(), c=c,
                         flops=int(c * 4e8), top1=60 + 20 * c + float(rng.normal(0, 2))))
    rows.append(dict(id="g000", kind="giant", r=0.8, d=0.7, w=0.8, c=0.5, flops=int(2e8), top1=50.0))
    rows.append(dict(id="x000", r=0.8, d=0.7, w=0.8, c=0.5, flops=int(2e8), top1=None, status="failed", error="boom"))
    analysis = analyze(results_table(rows))
    assert len(analysis.frontier) >= 4  # at least 20 % of the 20 sampled, successful models
    ranks = front_ranks(analysis.models.query("kind == 'random'")["top1"], analysis.models.query("kind == 'random'")["flops"])
    assert (ranks[analysis.models.query("kind == 'random'")["frontier"].to_numpy()] <= ranks.max()).all()
    assert "g000" not in set(analysis.frontier["source"].str.replace("trial ", ""))
    from timm_tinynet.study.analyze import write_analysis

    paths = write_analysis(analysis, tmp_path / "analysis")
    for name in ("frontier.csv", "correlations.csv", "models.csv", "fig1_accuracy_vs_flops.png",
                 "fig3_dims_vs_flops.png"):
        assert paths[name].exists(), name
    assert "fig2_accuracy_vs_dims.png" not in paths  # no target-c models in this study

    # round trip: the study's frontier drives tinynet-formula
    from timm_tinynet.cli.formula import main as formula_main

    assert formula_main(["--c", "0.4", "--frontier", str(paths["frontier.csv"]), "--json"]) == 0


def test_analyze_needs_three_finished_models():
    rows = [dict(id="a", r=1, d=1, w=1, c=0.5, flops=1, top1=50.0), dict(id="b", r=1, d=1, w=1, c=0.6, flops=2, top1=60.0)]
    with pytest.raises(StudyError, match="at least 3"):
        analyze(results_table(rows))


# ---- run ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    data = make_dataset(root / "data", n_train=16, n_val=6)
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
    capsys.readouterr()
    assert main(run_args(root, data, results)) == 0
    assert "0 of 3 trials to run" in capsys.readouterr().out
    assert len(read_results(results)) == 3


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
    proc = subprocess.Popen([sys.executable, "-m", "timm_tinynet.cli.study", *run_args(root, data, results)],
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
def test_failing_trial_is_recorded_and_the_study_goes_on(study, tmp_path, capsys):
    root, data = study
    plan = pd.read_csv(root / "plan.csv")
    plan.loc[1, "r"] = 0.05  # a 11px input: the model cannot be built
    write_csv_atomic(tmp_path / "plan.csv", plan.to_dict("records"), PLAN_COLUMNS)
    results = tmp_path / "results.csv"
    argv = run_args(root, data, results)
    argv[1] = str(tmp_path / "plan.csv")
    assert main(argv) == 0
    table = read_results(results).set_index("id")
    assert table.loc["r001", "status"] == "failed" and "minimum is 32px" in table.loc["r001", "error"]
    assert (table.drop("r001")["status"] == "ok").all()
    assert "1 failed" in capsys.readouterr().out


# ---- bad input ------------------------------------------------------------------------------------------------

def _error_line(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and err[-1].startswith("tinynet-study: error:") and "Traceback" not in "".join(err)
    return err[-1]


def test_missing_plan(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nope.csv"), "--data-dir", str(tmp_path), "--epochs", "1"])
    assert "does not exist" in _error_line(capsys, code)


@pytest.mark.parametrize("text,message", [
    ("id,r,d\nx,1,1\n", "lacks column"),
    (",".join(PLAN_COLUMNS) + "\nx,random,efficientnet_b0,abc,1,1,224,1,1,1\n", "column 'r', row 1 is not a number"),
    ("", "is empty"),
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
    assert "needs Ray: pip install" in _error_line(capsys, code)
