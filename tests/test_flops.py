import pytest
import timm
import torch

from timm_tinynet import Cube, count_flops, count_params
from timm_tinynet.baselines import get_baseline
from tinynet_core.cost import cube_cost_analytic


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # fvcore runs real forwards (tests/conftest.py)


# Paper figures (Tables 1-3, 6) and how close the counted FLOPs must be.
PAPER_FLOPS = [
    ("efficientnet_b0", {}, 387e6, 0.02),
    ("tinynet_a", {}, 339e6, 0.02),
    ("tinynet_b", {}, 202e6, 0.02),
    ("tinynet_c", {}, 100e6, 0.02),
    ("tinynet_d", {}, 52e6, 0.02),
    ("tinynet_e", {}, 24e6, 0.02),
    ("tinynet", {"r": 0.70}, 196e6, 0.02),
    ("tinynet", {"r": 0.46}, 103e6, 0.02),
    ("tinynet", {"d": 0.45}, 196e6, 0.02),
    ("tinynet", {"w": 0.65}, 205e6, 0.02),
    ("tinynet", {"w": 0.38}, 99e6, 0.02),
    ("tinynet", {"d": 0.01}, 173e6, 0.02),
    ("efficientnet_bm1", {}, 201e6, 0.03),
    ("efficientnet_bm2", {}, 98e6, 0.03),
    ("efficientnet_bm3", {}, 51e6, 0.03),
    ("efficientnet_bm4", {}, 24e6, 0.03),
    ("resnet50_giant_a", {}, 3.7e9, 0.03),
    ("resnet50_giant_b", {}, 1.8e9, 0.03),
    ("ghostnet_a", {}, 591e6, 0.03),
]


@pytest.mark.parametrize("name,kwargs,paper,tol", PAPER_FLOPS)
def test_flops_match_the_paper(name, kwargs, paper, tol):
    flops = count_flops(timm.create_model(name, **kwargs))
    assert abs(flops / paper - 1) <= tol, f"{name} {kwargs}: {flops / 1e6:.1f}M vs paper {paper / 1e6:.0f}M"


def test_reference_counts_are_exact():
    # fvcore conv + linear multiply-adds, timm builders (issue reference figures)
    assert count_flops(timm.create_model("efficientnet_b0")) == 385_814_752
    assert round(count_flops(timm.create_model("tinynet_a")) / 1e5) == 3369
    assert round(count_flops(timm.create_model("tinynet", d=0.45)) / 1e5) == 1964


@pytest.mark.parametrize("name,params,tol", [
    ("tinynet_a", 6.19e6, 0.01), ("tinynet_e", 2.04e6, 0.01), ("efficientnet_bm1", 3.6e6, 0.03),
    ("efficientnet_bm2", 3.0e6, 0.03), ("efficientnet_bm3", 2.0e6, 0.03), ("efficientnet_bm4", 1.3e6, 0.05),
    ("ghostnet_a", 11.9e6, 0.05),
])
def test_params_match_the_paper(name, params, tol):
    assert abs(count_params(timm.create_model(name)) / params - 1) <= tol


@pytest.mark.parametrize("baseline", ["efficientnet_b0", "efficientnet_b0_compound", "resnet50", "ghostnet_a"])
def test_cached_cube_cost_equals_fvcore_on_odd_cubes(baseline):
    base = get_baseline(baseline)
    for cube in (Cube(0.37, 0.55, 0.43), Cube(0.93, 1.3, 0.71)):
        model = base.create("x", cube, pretrained_cfg=base.pretrained_cfg(cube))
        size = base.img_size(cube)
        cost = cube_cost_analytic(baseline, cube)
        assert (cost.flops, cost.params) == (count_flops(model, (3, size, size)), count_params(model))


def test_count_flops_uses_model_input_size_and_keeps_training_mode():
    model = timm.create_model("tinynet_e").train()
    assert count_flops(model) == count_flops(model, (3, 106, 106))
    assert 3.0 < count_flops(model, (3, 212, 212)) / count_flops(model) < 4.0
    assert model.training


def test_count_flops_rejects_bad_input_size():
    with pytest.raises(ValueError, match="input_size"):
        count_flops(torch.nn.Linear(3, 3), (3, 8))
    with pytest.raises(ValueError, match="input_size is required"):
        count_flops(torch.nn.Conv2d(3, 3, 1))


def test_formula_and_count_flops_print_no_dependency_warnings():
    import subprocess
    import sys

    code = ("import timm, timm_tinynet; "  # count_flops imports fvcore.nn; c= fits the formula's GPs (GPyTorch)
            "print(timm_tinynet.count_flops(timm.create_model('tinynet', c=0.25)))")
    result = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
