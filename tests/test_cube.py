import math

import pytest

from timm_tinynet import Cube
from tinynet_core.cube import eq5_width


@pytest.mark.parametrize("name", ["r", "d", "w"])
@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf"), 1e-6, 50.0, "0.5", True, None])
def test_bad_multiplier_names_the_argument(name, bad):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        Cube(**{name: bad})


def test_values_are_floats_and_hashable():
    cube = Cube(1, 0.5, 2)
    assert cube == Cube(1.0, 0.5, 2.0) and hash(cube) == hash(Cube(1.0, 0.5, 2.0))
    assert isinstance(cube.r, float)


def test_giant_formula_is_efficientnet_compound_scaling():
    cube = Cube.giant(-1)
    assert cube.d == pytest.approx(1 / 1.2)
    assert cube.w == pytest.approx(1 / 1.1)
    assert cube.r == pytest.approx(1 / 1.15)
    assert Cube.giant(0) == Cube()


def test_eq5_width_inverts_the_flops_model():
    w = eq5_width(0.25, 0.8, 0.9)
    assert 0.8 ** 2 * 0.9 * w ** 2 == pytest.approx(0.25)
    assert eq5_width(1.0, 1.0, 1.0) == 1.0
    assert math.isclose(eq5_width(0.5, 1.0, 0.5), 1.0)
