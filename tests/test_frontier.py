import pandas as pd
import pytest

from timm_tinynet.frontier import DEFAULT_FRONTIER, FrontierError, load_frontier, released_tinynet_frontier

GOOD = "c,r,d,w,flops\n0.1,0.6,0.6,0.5,38e6\n0.3,0.8,0.9,0.6,115e6\n0.6,0.85,1.1,0.8,230e6\n"


def write(tmp_path, text, name="frontier.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_frontier_is_the_released_tinynets_at_measured_ratios():
    shipped = load_frontier()
    regenerated = released_tinynet_frontier()
    pd.testing.assert_frame_equal(shipped[["c", "r", "d", "w", "flops"]], regenerated[["c", "r", "d", "w", "flops"]])
    assert shipped["c"].round(3).tolist() == [0.063, 0.134, 0.258, 0.52, 0.873]


def test_results_copy_matches_the_packaged_frontier():
    import pathlib

    copy = pathlib.Path(__file__).resolve().parents[1] / "results" / "frontier_efficientnet_b0.csv"
    pd.testing.assert_frame_equal(load_frontier(copy), load_frontier(DEFAULT_FRONTIER))


def test_good_frontier_loads_sorted(tmp_path):
    df = load_frontier(write(tmp_path, "c,r,d,w,flops,top1,source\n0.6,0.85,1.1,0.8,230e6,80.1,x\n"
                                       "0.1,0.6,0.6,0.5,38e6,70,y\n0.3,0.8,0.9,0.6,115e6,,z\n"))
    assert df["c"].tolist() == [0.1, 0.3, 0.6]
    assert df["top1"].isna().sum() == 1


@pytest.mark.parametrize("text,message", [
    ("", "is empty"),
    ("c,r,d,w,flops\n", "has no rows"),
    ("c,r,d\n0.1,0.5,0.5\n0.2,0.6,0.6\n0.3,0.7,0.7\n", "lacks column.* w, flops"),
    (GOOD.replace("0.8,0.9", "0.8,abc"), r"column 'd', row 2 is not a number: 'abc'"),
    (GOOD.replace("0.85,1.1", "-0.85,1.1"), "column 'r' must be finite and > 0"),
    ("c,r,d,w,flops\n0.1,0.6,0.6,0.5,38e6\n0.3,0.8,0.9,0.6,115e6\n", "at least 3"),
    ("c,r,d,w,flops\n0.1,0.6,0.6,0.5,1\n0.1,0.8,0.9,0.6,1\n0.1,0.9,0.9,0.6,1\n", "same c"),
])
def test_bad_frontiers_name_the_problem(tmp_path, text, message):
    with pytest.raises(FrontierError, match=message):
        load_frontier(write(tmp_path, text))


def test_missing_frontier_file(tmp_path):
    with pytest.raises(FrontierError, match="does not exist"):
        load_frontier(tmp_path / "nope.csv")
    with pytest.raises(FrontierError, match="is a directory"):
        load_frontier(tmp_path)
