import json
import subprocess
import sys

import pytest

from tinynet_cli.formula import main

CSV_OK = "c,r,d,w,flops\n0.1,0.6,0.65,0.5,38e6\n0.3,0.8,0.9,0.6,115e6\n0.6,0.85,1.1,0.8,230e6\n"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_output(capsys):
    code, out, err = run(capsys, "--c", "0.25")
    assert code == 0, err
    assert "efficientnet_b0 shrunk to c=0.25 by rule 'tiny'" in out
    for needle in ("resolution  r =", "±", "px", "blocks per stage", "channels", "eq. 5", "params", "activations",
                   "ir_r", "timm.create_model('tinynet', r="):
        assert needle in out, needle
    assert "verified" not in out  # only --verify builds the network


@pytest.mark.parametrize("baseline,rule", [("efficientnet_b0", "tiny"), ("resnet50", "giant"), ("ghostnet_a", "w")])
def test_verify_counts_the_built_network(capsys, baseline, rule):
    code, out, err = run(capsys, "--c", "0.3", "--baseline", baseline, "--rule", rule, "--tol", "0.05", "--verify")
    assert code == 0, err
    assert out.count("verified") == 3  # FLOPs, params, activations
    code, out, err = run(capsys, "--c", "0.3", "--baseline", baseline, "--rule", rule, "--tol", "0.05", "--verify",
                         "--json")
    assert json.loads(out)["verified"] is True


def test_verify_reports_a_cost_model_that_disagrees(monkeypatch):
    import dataclasses

    from timm_tinynet.verify import VerificationError, verify
    from tinynet_core.solve import shrink

    result = shrink("efficientnet_b0", 0.5, "w")
    wrong = dataclasses.replace(result, cost=dataclasses.replace(result.cost, activations=result.activations + 1))
    with pytest.raises(VerificationError, match=r"activations \d+ built vs \d+ counted"):
        verify(wrong)
    assert set(verify(result)) == {"flops", "params", "activations"}


def test_json_output_rebuilds_the_model(capsys):
    code, out, _ = run(capsys, "--c", "0.25", "--json")
    assert code == 0
    info = json.loads(out)
    for key in ("c", "baseline", "rule", "r", "r_std", "d", "d_std", "w", "img_size", "flops", "target_flops",
                "params", "arch", "create_model"):
        assert key in info, key
    assert info["rule"] == "tiny" and info["baseline"] == "efficientnet_b0"
    assert abs(info["flops"] / info["target_flops"] - 1) <= 0.01
    import timm
    import timm_tinynet

    model = eval(info["create_model"], {"timm": timm})
    assert timm_tinynet.count_flops(model) == info["flops"]
    assert model.pretrained_cfg["input_size"][-1] == info["img_size"]


@pytest.mark.parametrize("baseline,rule", [("resnet50", "giant"), ("ghostnet_a", "tiny"), ("efficientnet_b0", "w")])
def test_other_baselines_and_rules(capsys, baseline, rule):
    code, out, err = run(capsys, "--c", "0.5", "--baseline", baseline, "--rule", rule, "--tol", "0.02", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["baseline"] == baseline and info["rule"] == rule
    assert abs(info["flops_rel_error"]) <= 0.02


def test_compare(capsys):
    code, out, _ = run(capsys, "--c", "0.25", "--compare")
    assert code == 0
    for rule in ("tiny", "giant", "r ", "d ", "w "):
        assert f"\n  {rule}" in out
    assert "unreachable: rule 'd' cannot shrink" in out  # depth underflow at c=0.25
    assert "params" in out and "acts" in out
    code, out, _ = run(capsys, "--c", "0.25", "--compare", "--json")
    rows = json.loads(out)["compare"]
    assert [row["rule"] for row in rows] == ["tiny", "giant", "r", "d", "w"]
    assert all(row["activations"] > 0 and row["params"] > 0 for row in rows if "error" not in row)


def test_custom_frontier(capsys, tmp_path):
    path = tmp_path / "frontier.csv"
    path.write_text(CSV_OK)
    code, out, _ = run(capsys, "--c", "0.3", "--frontier", str(path), "--json")
    assert code == 0
    assert json.loads(out)["d"] == pytest.approx(0.9, abs=0.05)


def test_extrapolation_warning_on_stderr(capsys):
    code, _, err = run(capsys, "--c", "0.03")
    assert code == 0
    assert "warning: c=0.03 is outside the frontier's range" in err and "±" in err


@pytest.mark.parametrize("argv,message", [
    (["--c", "0"], "argument --c: must be in (0, 1)"),
    (["--c", "1"], "argument --c: must be in (0, 1)"),
    (["--c", "1.5"], "argument --c: must be in (0, 1)"),
    (["--c", "-0.2"], "argument --c: must be in (0, 1)"),
    (["--c", "nan"], "argument --c: must be in (0, 1)"),
    (["--c", "abc"], "argument --c: must be a number, got 'abc'"),
    ([], "one of the arguments --c --target is required"),
    (["--c", "0.5", "--baseline", "vgg"], "argument --baseline: invalid choice: 'vgg'"),
    (["--c", "0.5", "--rule", "sideways"], "argument --rule: invalid choice: 'sideways'"),
    (["--c", "0.5", "--rule", "giant", "--frontier", "x.csv"], "--frontier only applies to --rule tiny"),
    (["--c", "0.5", "--tol", "2"], "argument --tol: must be in (0, 1)"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinynet-formula: error: ")
    assert message in err


@pytest.mark.parametrize("text,message", [
    (None, "does not exist"),
    ("", "is empty"),
    ("c,r,d\n0.1,0.5,0.5\n", "lacks column"),
    (CSV_OK.replace("0.9,0.6", "x,0.6"), "column 'd', row 2 is not a number"),
])
def test_bad_frontier_exit_2(capsys, tmp_path, text, message):
    path = tmp_path / "frontier.csv"
    if text is not None:
        path.write_text(text)
    code, out, err = run(capsys, "--c", "0.3", "--frontier", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_resolution_below_32px_exit_2(capsys, tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("c,r,d,w,flops\n0.2,0.2,0.5,1,1\n0.4,0.35,0.7,1,1\n0.8,0.6,0.9,1,1\n")
    code, _, err = run(capsys, "--c", "0.05", "--frontier", str(path))
    assert code == 2
    assert "below the 32px minimum" in err.splitlines()[-1]


def test_console_script_no_traceback():
    result = subprocess.run([sys.executable, "-m", "tinynet_cli.formula", "--c", "nan"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "tinynet-formula: error: argument --c: must be in (0, 1) (a FLOPs ratio for shrinking), got nan"


def test_json_keys_are_the_documented_ones(capsys):
    from tinynet_cli.formula import JSON_KEYS, JSON_OPTIONAL_KEYS

    for argv, optional in ((["--c", "0.25"], {"r_formula", "d_formula", "extrapolating", "nudged_px", "frontier",
                                              "frontier_baselines", "formula_carried_over"}),
                           (["--c", "0.5", "--rule", "giant"], {"phi", "tuned_r"})):
        code, out, err = run(capsys, *argv, "--json")
        assert code == 0, err
        keys = list(json.loads(out))
        assert set(keys) == set(JSON_KEYS) | optional
        assert optional <= set(JSON_OPTIONAL_KEYS)


def test_every_baseline_is_a_choice_and_says_where_its_formula_comes_from(capsys, tmp_path):
    from tinynet_core.baselines import BASELINES

    from tinynet_cli.formula import BASELINES as CHOICES

    assert set(CHOICES) == set(BASELINES)
    code, out, _ = run(capsys, "--c", "0.3", "--baseline", "mobilenetv3_large_100")
    assert code == 0
    assert "r(c) and d(c) from the shipped EfficientNet-B0 frontier" in out
    assert "carried over to mobilenetv3_large_100 as the paper carries its formula" in out
    assert "timm.create_model('tinynet', baseline='mobilenetv3_large_100', r=" in out
    code, out, _ = run(capsys, "--c", "0.3")
    assert "carried over" not in out and "from the shipped EfficientNet-B0 frontier" in out
    own = tmp_path / "resnet18_frontier.csv"  # a study of resnet18 itself: nothing is carried over
    own.write_text("c,r,d,w,flops,baseline\n" + "".join(
        f"{c},{r},{d},1,1,resnet18\n" for c, r, d in ((0.1, 0.5, 0.6), (0.3, 0.7, 0.8), (0.6, 0.85, 1.0))))
    code, out, err = run(capsys, "--c", "0.3", "--baseline", "resnet18", "--frontier", str(own), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["frontier"], info["frontier_baselines"], info["formula_carried_over"]) == (
        str(own), ["resnet18"], False)
    code, out, _ = run(capsys, "--c", "0.3", "--baseline", "resnet50", "--frontier", str(own))
    assert f"from frontier {own} (measured on resnet18)" in out and "carried over to resnet50" in out


def test_every_baseline_meets_c_0_3_through_the_cli(capsys):
    from tinynet_core.baselines import BASELINES

    for baseline in BASELINES:  # issue 13: tinynet-formula --baseline X --c 0.3 within the default tolerance
        code, out, err = run(capsys, "--c", "0.3", "--baseline", baseline, "--json")
        assert code == 0, (baseline, err)
        info = json.loads(out)
        assert info["baseline"] == baseline and abs(info["flops_rel_error"]) <= 0.01, baseline
        assert info["formula_carried_over"] == (baseline != "efficientnet_b0")


def test_duplicate_frontier_rows_warn_on_stderr(capsys, tmp_path):
    path = tmp_path / "frontier.csv"
    path.write_text(CSV_OK + CSV_OK.split("\n", 1)[1])
    code, out, err = run(capsys, "--c", "0.3", "--frontier", str(path), "--json")
    assert code == 0
    assert "tinynet-formula: warning: frontier file" in err and "3 duplicate row(s) merged" in err
    single = tmp_path / "single.csv"
    single.write_text(CSV_OK)
    code, out_single, _ = run(capsys, "--c", "0.3", "--frontier", str(single), "--json")
    assert code == 0
    for key in ("r", "d", "w", "flops"):
        assert json.loads(out)[key] == json.loads(out_single)[key]


@pytest.mark.parametrize("flag,kwarg", [("--tol", "tol"), ("--c", "c")])
@pytest.mark.parametrize("value", ["nan", "2", "0", "-0.5", "inf"])
def test_cli_and_api_refuse_a_fraction_with_the_same_words(capsys, flag, kwarg, value):
    from timm_tinynet import shrink

    argv = ["--c", "0.5", flag, value] if flag == "--tol" else [flag, value]
    with pytest.raises(SystemExit):
        main(argv)
    cli = capsys.readouterr().err.strip().split(f"argument {flag}: ", 1)[1]
    kwargs = {"c": 0.5, "rule": "r", kwarg: float(value)}
    with pytest.raises(ValueError) as info:
        shrink("efficientnet_b0", **kwargs)
    assert str(info.value) == f"{kwarg} {cli}"
