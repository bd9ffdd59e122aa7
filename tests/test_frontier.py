import pandas as pd
import pytest

from tinynet_core.frontier import DEFAULT_FRONTIER, FrontierError, load_frontier, released_tinynet_frontier

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


# ---- bounded input: file kind, size, rows, duplicates ----------------------------------------------------------

import os
import warnings

from tinynet_core.frontier import MAX_FRONTIER_BYTES, MAX_POINTS, FrontierWarning


def test_pipe_and_device_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # nobody writes to it: reading would block for ever
    with pytest.raises(FrontierError, match="is not a regular file"):
        load_frontier(fifo)
    with pytest.raises(FrontierError, match="is not a regular file"):
        load_frontier("/dev/zero")


def test_too_large_file_is_refused(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write(GOOD)
        f.truncate(MAX_FRONTIER_BYTES + 1)
    with pytest.raises(FrontierError, match=r"is 1 MB, more than the 1 MB this command reads"):
        load_frontier(path)


def test_too_many_rows_are_refused_with_the_limit(tmp_path):
    rows = "".join(f"{0.01 + i * 0.0004:.5f},0.6,0.7,0.5,1e6\n" for i in range(MAX_POINTS + 1))
    with pytest.raises(FrontierError, match=f"has {MAX_POINTS + 1} distinct rows; the formula accepts at most "
                                            f"{MAX_POINTS}"):
        load_frontier(write(tmp_path, "c,r,d,w,flops\n" + rows))
    load_frontier(write(tmp_path, "c,r,d,w,flops\n" + rows.split("\n", 1)[1], "ok.csv"))  # exactly MAX_POINTS


def test_duplicate_rows_are_merged_with_a_warning_that_counts_them(tmp_path):
    body = GOOD.split("\n", 1)[1]
    with pytest.warns(FrontierWarning, match=r"3 duplicate row\(s\) merged .* 3 distinct model\(s\) fitted"):
        merged = load_frontier(write(tmp_path, GOOD + body))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        original = load_frontier(write(tmp_path, GOOD, "original.csv"))
    pd.testing.assert_frame_equal(merged, original)


def test_duplicated_frontier_gives_exactly_the_original_network(tmp_path):
    from timm_tinynet import shrink

    shipped = DEFAULT_FRONTIER.read_text()
    doubled = write(tmp_path, shipped + shipped.split("\n", 1)[1], "doubled.csv")
    with pytest.warns(FrontierWarning, match="5 duplicate row"):
        twice = shrink("efficientnet_b0", 0.3, frontier=str(doubled))
    once = shrink("efficientnet_b0", 0.3)
    assert twice.cube == once.cube and twice.extras == once.extras


def test_same_c_with_different_dims_is_kept(tmp_path):
    from tinynet_core.formula import TinyFormula

    df = load_frontier(write(tmp_path, GOOD + "0.3,0.82,0.95,0.55,115e6\n"))
    assert len(df) == 4 and df["c"].tolist().count(0.3) == 2
    p = TinyFormula(df).predict(0.3, warn=False)
    assert 0.79 <= p.r <= 0.83 and 0.89 <= p.d <= 0.96  # between (or at) the two measurements


@pytest.mark.parametrize("value", [5, 0.3, ["a.csv"], True, pd.DataFrame()])
def test_frontier_must_be_a_path(value):
    from tinynet_core.formula import get_formula

    with pytest.raises(FrontierError, match="frontier must be the path of a frontier CSV file, got"):
        load_frontier(value)
    with pytest.raises(FrontierError, match="frontier must be the path of a frontier CSV file, got"):
        get_formula(value)


def test_unreadable_csv_is_one_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b'c,r,d,w,flops\n"0.1,0.6\n')
    with pytest.raises(FrontierError, match="is not a readable CSV") as info:
        load_frontier(path)
    assert "\n" not in str(info.value)
