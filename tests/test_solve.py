import math
import re

import pytest

from timm_tinynet import Cube, UnreachableTargetError, shrink
from tinynet_core.cost import cube_cost_analytic
from tinynet_core.named import B_MINUS_CUBES, RESNET50_GIANT_PHI
from tinynet_core.solve import efficientnet_b_minus, shortest_r_for_size


@pytest.mark.parametrize("baseline,c,rule", [
    ("efficientnet_b0", 0.5, "giant"), ("efficientnet_b0", 0.25, "giant"), ("efficientnet_b0", 0.5, "r"),
    ("efficientnet_b0", 0.5, "w"), ("efficientnet_b0", 0.9, "w"), ("resnet50", 0.9, "d"),
    ("resnet50", 0.9, "giant"), ("ghostnet_a", 0.5, "giant"), ("ghostnet_a", 0.13, "r"),
])
def test_solution_hits_target_within_one_percent(baseline, c, rule):
    result = shrink(baseline, c, rule)
    c0 = cube_cost_analytic(baseline, Cube()).flops
    assert result.flops == cube_cost_analytic(baseline, result.cube).flops
    assert abs(result.flops / (c * c0) - 1) <= 0.01
    free = {"r": ("d", "w"), "d": ("r", "w"), "w": ("r", "d")}.get(rule, ())
    assert all(getattr(result.cube, dim) == 1.0 for dim in free)


def test_giant_rule_follows_the_compound_path():
    result = shrink("ghostnet_a", 0.25, "giant")
    phi = result.extras["phi"]
    assert "tuned_r" not in result.extras and "tuned_w" not in result.extras
    assert result.cube == Cube.giant(phi)
    assert -3.5 < phi < -2


def test_single_dimension_results_are_short_decimals():
    result = shrink("efficientnet_b0", 0.5, "w")
    assert result.cube.w == round(result.cube.w, 3)


def test_depth_underflow_is_the_papers_table_1_case():
    with pytest.raises(UnreachableTargetError, match=r"minimum depth .* 173\.2M FLOPs"):
        shrink("efficientnet_b0", 0.25, "d")


def test_target_inside_a_step_raises_and_tol_accepts():
    with pytest.raises(UnreachableTargetError, match=r"depth moves in whole blocks; pass tol=0.02"):
        shrink("efficientnet_b0", 0.5, "d")
    result = shrink("efficientnet_b0", 0.5, "d", tol=0.02)
    assert cube_cost_analytic("efficientnet_b0", result.cube) == cube_cost_analytic("efficientnet_b0", Cube(d=0.45))  # Table 1
    assert result.rel_error == pytest.approx(0.018, abs=0.002)


@pytest.mark.parametrize("c", [0.0, 1.0, 1.5, -0.1, float("nan"), "0.5", None])
def test_bad_ratio(c):
    with pytest.raises(ValueError, match="c must be"):
        shrink("efficientnet_b0", c, "r")


def test_unknown_rule_and_baseline():
    with pytest.raises(ValueError, match="unknown rule 'x'"):
        shrink("efficientnet_b0", 0.5, "x")
    with pytest.raises(ValueError, match="unknown baseline"):
        shrink("mobilenet", 0.5, "r")


@pytest.mark.parametrize("phi", [1, 2, 3, 4])
def test_frozen_b_minus_models_follow_the_stated_rule(phi):
    assert efficientnet_b_minus(phi) == B_MINUS_CUBES[f"efficientnet_bm{phi}"]


def test_b_minus_1_is_the_papers_stated_dims():
    assert efficientnet_b_minus(1) == Cube(0.86, 0.8, 0.89)


@pytest.mark.parametrize("name,reference", [("resnet50_giant_a", "resnet34"), ("resnet50_giant_b", "resnet18")])
def test_frozen_resnet_giants_rederive(name, reference):
    import timm
    from timm_tinynet import count_flops

    c = count_flops(timm.create_model(reference)) / cube_cost_analytic("resnet50", Cube()).flops
    result = shrink("resnet50", c, "giant")
    assert math.isclose(result.extras["phi"], RESNET50_GIANT_PHI[name])


def test_shortest_r_for_size():
    assert shortest_r_for_size(192, 224) == 0.86
    assert shortest_r_for_size(112, 224) == 0.5
    for px in range(32, 300):
        assert int(224 * shortest_r_for_size(px, 224)) == px


# ---- rule 'tiny' (the formula) ------------------------------------------------------------------------------

import warnings as _warnings

import numpy as np

from tinynet_core.formula import ExtrapolationWarning
from tinynet_core.frontier import load_frontier
from tinynet_core.named import FORMULA_CUBES, FORMULA_TARGETS


@pytest.mark.parametrize("row", load_frontier().to_dict("records"), ids=lambda r: f"c={r['c']:.3f}")
def test_tiny_formula_reproduces_the_released_tinynets(row):
    result = shrink("efficientnet_b0", row["c"], "tiny")
    assert abs(result.img_size - int(224 * row["r"])) <= 4
    assert abs(result.cube.d - row["d"]) <= 0.06
    assert abs(result.cube.w - row["w"]) <= 0.06
    assert abs(result.rel_error) <= 0.01


@pytest.mark.parametrize("c", np.round(np.geomspace(0.03, 0.95, 10), 4).tolist())
def test_tiny_formula_hits_the_budget_across_the_range(c):
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", ExtrapolationWarning)
        result = shrink("efficientnet_b0", c, "tiny")
    assert abs(result.flops / (c * cube_cost_analytic("efficientnet_b0", Cube()).flops) - 1) <= 0.01
    assert result.flops == cube_cost_analytic("efficientnet_b0", result.cube).flops
    assert abs(result.extras.get("nudged_px", 0)) <= 8


def test_tiny_is_the_default_rule_and_records_the_formula():
    result = shrink("efficientnet_b0", 0.25)
    assert result.rule == "tiny"
    for key in ("r_formula", "r_std", "d_formula", "d_std", "w_eq5"):
        assert key in result.extras
    assert result.extras["r_std"] > 0
    assert abs(result.cube.d - result.extras["d_formula"]) < 0.01  # d is the formula's, shortened


@pytest.mark.filterwarnings("ignore::tinynet_core.formula.ExtrapolationWarning")
@pytest.mark.parametrize("name", sorted(FORMULA_CUBES))
def test_frozen_formula_models_rederive(name):
    baseline, target = FORMULA_TARGETS[name]
    result = shrink(baseline, target / cube_cost_analytic(baseline, Cube()).flops, "tiny")
    assert result.cube == FORMULA_CUBES[name]
    assert abs(result.flops / target - 1) <= 0.01


def test_tiny_resolution_floor(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("c,r,d,w,flops\n0.2,0.2,0.5,1,1\n0.4,0.35,0.7,1,1\n0.8,0.6,0.9,1,1\n")
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", ExtrapolationWarning)
        with pytest.raises(UnreachableTargetError, match="below the 32px minimum"):
            shrink("efficientnet_b0", 0.05, "tiny", frontier=str(path))


def test_frontier_only_for_tiny():
    with pytest.raises(ValueError, match="frontier only applies to rule 'tiny'"):
        shrink("efficientnet_b0", 0.5, "giant", frontier="x.csv")


@pytest.mark.parametrize("kwargs,message", [
    ({"tol": float("nan")}, "tol must be in (0, 1), got nan"),
    ({"tol": "0.1"}, "tol must be a number in (0, 1), got '0.1'"),
    ({"tol": None}, "tol must be a number in (0, 1), got None"),
    ({"rule": None}, "unknown rule None"),
    ({"frontier": 1.5}, "frontier must be the path of a frontier CSV file, got float 1.5"),
])
def test_shrink_validates_every_argument(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        shrink("efficientnet_b0", 0.5, **kwargs)


def test_unknown_unhashable_baseline_is_a_value_error():
    with pytest.raises(ValueError, match=r"unknown baseline \['resnet50'\]"):
        shrink(["resnet50"], 0.5)


# Until the solver became one search (issue 11), these three models were frozen with other decimals: the same
# networks (architecture and input size), since the search landed anywhere inside a step. The search now keeps the
# largest x with the nearest FLOPs and writes it short, so the decimals changed and the networks must not have.
CUBES_BEFORE_ONE_SEARCH = {
    "resnet50_tiny_a": ("resnet50", Cube(0.86, 1.22, 0.9844)),
    "ghostnet_d": ("ghostnet_a", Cube(0.556, 0.64, 0.52143)),
    "resnet50_giant_b": ("resnet50", Cube.giant(-1.33)),
}


@pytest.mark.parametrize("name", sorted(CUBES_BEFORE_ONE_SEARCH))
def test_renamed_decimals_build_the_same_networks(name):
    from tinynet_core.baselines import get_baseline
    from tinynet_core.named import NAMED_CUBES

    baseline, before = CUBES_BEFORE_ONE_SEARCH[name]
    now = NAMED_CUBES[name][1]
    base = get_baseline(baseline)
    assert now != before
    assert (base.arch_key(now), base.img_size(now)) == (base.arch_key(before), base.img_size(before))


# ---- the tiny rule's neighbours (input-size and depth nudges) -------------------------------------------------

def test_tiny_neighbours_come_cheapest_first():
    from tinynet_core.baselines import get_baseline
    from tinynet_core.solve import MAX_NUDGE_PX, NUDGE_DEPTH_STDS, tiny_neighbours

    base = get_baseline("efficientnet_b0")
    cube = Cube(0.83, 0.86, 0.53)  # 185 px
    solved = []

    def solve_w(r, d):
        solved.append((r, d))
        return Cube(r, d, 0.6)

    got = list(tiny_neighbours(base, cube, 0.02, solve_w))
    sizes = [base.img_size(k) for k, _, _ in got]
    # 1. the same width and depth, input size 184, 186, 183, 187, ...
    first = got[:2 * MAX_NUDGE_PX]
    assert [n for _, n, _ in first] == [n for step in range(1, MAX_NUDGE_PX + 1) for n in (-step, step)]
    assert sizes[:2 * MAX_NUDGE_PX] == [185 + n for _, n, _ in first]
    assert all((k.d, k.w) == (cube.d, cube.w) and shift == 0.0 for k, _, shift in first)
    # 2. then each depth within 2 std, width re-solved, at 185 px and nudged
    depths = [round(0.86 + k * 0.02, 9) for step in NUDGE_DEPTH_STDS for k in (-step, step)]
    assert [round(d, 9) for _, d in solved[:len(depths)]] == depths
    second = got[2 * MAX_NUDGE_PX:2 * MAX_NUDGE_PX + 1 + 2 * MAX_NUDGE_PX]
    assert second[0][1] == 0 and second[0][2] == pytest.approx(-0.5 * 0.02) and second[0][0].w == 0.6
    # 3. the formula's depth at each nudged size, width re-solved; 4. then every other depth at each nudged size
    third = solved[len(depths):]
    assert [round(d, 9) for _, d in third] == [0.86] * (2 * MAX_NUDGE_PX) + [
        d for d in depths for _ in range(2 * MAX_NUDGE_PX)]
    assert [base.img_size(Cube(r, d)) for r, d in third] == [185 + n for n in (
        n for step in range(1, MAX_NUDGE_PX + 1) for n in (-step, step))] * (1 + len(depths))
    assert [(n, round(shift, 9)) for _, n, shift in got[-2 * MAX_NUDGE_PX:]] == [
        (n, round(depths[-1] - 0.86, 9)) for step in range(1, MAX_NUDGE_PX + 1) for n in (-step, step)]
    assert len(got) == 2 * MAX_NUDGE_PX + len(depths) * (1 + 2 * MAX_NUDGE_PX) + (1 + len(depths)) * 2 * MAX_NUDGE_PX


def test_every_baseline_reaches_c_0_3_and_the_results_table_budgets():
    from tinynet_core.baselines import BASELINES

    for baseline in BASELINES:  # issue 13: tinynet-formula --baseline X --c 0.3 within the default tolerance
        for c in (0.5, 0.3, 0.25):
            result = shrink(baseline, c)
            assert abs(result.rel_error) <= 0.01, (baseline, c)
            assert result.flops == cube_cost_analytic(baseline, result.cube).flops


def test_tiny_rule_nudges_only_when_the_width_alone_misses():
    from tinynet_core.baselines import get_baseline
    from tinynet_core.solve import nearest_step, width_scalar

    result = shrink("efficientnet_b0", 0.25, "tiny")  # the README's example
    c0 = cube_cost_analytic("efficientnet_b0", Cube()).flops
    r, d = result.extras["r_formula"], result.extras["d_formula"]
    width_only = width_scalar(r, d).make_cube(
        nearest_step(get_baseline("efficientnet_b0"), width_scalar(r, d), 0.25 * c0, 0.01, "tiny", 0.25, c0))
    assert abs(cube_cost_analytic("efficientnet_b0", width_only).flops / (0.25 * c0) - 1) > 0.01
    assert result.extras["nudged_px"] == 2 and abs(result.rel_error) <= 0.01
    assert result.img_size == int(224 * r) + 2
    assert shrink("efficientnet_b0", 0.5, "w").extras == {}  # single-dimension rules never nudge


@pytest.mark.parametrize("baseline", ["efficientnet_b0", "resnet50", "ghostnet_a"])
@pytest.mark.parametrize("rule", ["r", "d", "w", "giant"])
def test_nearest_step_is_nearest(baseline, rule):
    """No network of the rule's path between the rule's bounds is nearer the target than the answer, and of the
    networks with the answer's FLOPs, the answer is the one with the largest free scalar (on a fine grid)."""
    import numpy as np

    from tinynet_core.baselines import get_baseline
    from tinynet_core.solve import free_scalar, nearest_step

    base = get_baseline(baseline)
    scalar = free_scalar(rule, base)
    c0 = cube_cost_analytic(baseline, Cube()).flops
    for c in (0.3, 0.55, 0.8):
        try:
            x = nearest_step(base, scalar, c * c0, 0.5, rule, c, c0)
        except UnreachableTargetError:
            continue
        best = abs(cube_cost_analytic(baseline, scalar.make_cube(x)).flops - c * c0)
        grid = np.linspace(scalar.lo, scalar.hi, 3001)
        flops = np.array([cube_cost_analytic(baseline, scalar.make_cube(float(v))).flops for v in grid])
        assert np.abs(flops - c * c0).min() >= best
        same = grid[flops == cube_cost_analytic(baseline, scalar.make_cube(x)).flops]
        if len(same):  # the last network with these FLOPs is the answer's (x itself is written short)
            largest, answer = scalar.make_cube(float(same.max())), scalar.make_cube(x)
            assert (base.arch_key(largest), base.img_size(largest)) == (base.arch_key(answer), base.img_size(answer))
