"""Bad inputs of tinynet-formula, tinynet-results and the formula's Python API (create_model, shrink, get_formula,
load_frontier). Every case is refused before the GP is fitted or a table computed, so each takes well under a
second."""
import math
from pathlib import Path

from bad_inputs_common import ApiCase, CliCase


# ---- files made under the case's {out} folder ------------------------------------------------------------------

def _write(name: str, text: str):
    def setup(ws, out: Path) -> None:
        (out / name).write_text(text)
    return setup


def _too_large(ws, out: Path) -> None:
    from tinynet_core.frontier import MAX_FRONTIER_BYTES

    with open(out / "big.csv", "w") as f:  # a valid header, then 1 MB + 1 of nothing (sparse: instant)
        f.write("c,r,d,w,flops\n")
        f.truncate(MAX_FRONTIER_BYTES + 1)


def _too_many_rows(ws, out: Path) -> None:
    from tinynet_core.frontier import MAX_POINTS

    rows = "".join(f"{0.01 + i * 0.0004:.5f},0.6,0.7,0.5,1e6\n" for i in range(MAX_POINTS + 1))
    (out / "many.csv").write_text("c,r,d,w,flops\n" + rows)


def _foreign_results(ws, out: Path) -> None:
    (out / "results").mkdir()
    (out / "results" / "models.csv").write_text("the user's own table\n")


HEADER = "c,r,d,w,flops\n"


# ---- the Python API --------------------------------------------------------------------------------------------

def _create(**kwargs):
    def call(ws):
        import timm

        import timm_tinynet  # noqa: F401

        return timm.create_model("tinynet", **kwargs)
    return call


def _shrink(*args, **kwargs):
    def call(ws):
        from timm_tinynet import shrink

        return shrink(*args, **kwargs)
    return call


def _get_formula(ws):
    from tinynet_core.formula import get_formula

    return get_formula(ws.paths["fifo"])


def _load_frontier(path):
    def call(ws):
        from tinynet_core.frontier import load_frontier

        return load_frontier(path(ws) if callable(path) else path)
    return call


CASES = [
    # tinynet-formula: the frontier file
    # tinynet-formula: targets (issue 12) and where a latency target is measured
    CliCase("formula-target-no-unit", "formula", ["--target", "latency=8"], "a latency needs a unit (s, ms or us)"),
    CliCase("formula-target-bad-unit", "formula", ["--target", "latency=8 parsecs"], "unknown unit 'parsecs'"),
    CliCase("formula-target-negative", "formula", ["--target", "latency=-1ms"], "the value must be > 0"),
    CliCase("formula-target-zero", "formula", ["--target", "params=0"], "the value must be > 0"),
    CliCase("formula-target-unknown-kind", "formula", ["--target", "speed=3ms"], "unknown target kind 'speed'"),
    CliCase("formula-target-no-equals", "formula", ["--target", "8ms"], "target must be KIND=VALUE"),
    CliCase("formula-target-and-c", "formula", ["--c", "0.3", "--target", "params=2M"], "not allowed with argument"),
    CliCase("formula-no-budget", "formula", [], "one of the arguments --c --target is required"),
    CliCase("formula-target-below-the-smallest", "formula", ["--target", "params=100"],
            "outside what rule 'tiny' reaches for efficientnet_b0: from"),
    CliCase("formula-target-above-the-baseline", "formula", ["--target", "activations=90M"],
            "(the baseline itself)"),
    CliCase("formula-flops-target-above-the-baseline", "formula", ["--target", "flops=1G"],
            "is not below efficientnet_b0's own 385.8M FLOPs"),
    CliCase("formula-device-without-latency", "formula", ["--target", "params=2M", "--device", "cpu"],
            "--device only applies to a latency target"),
    CliCase("formula-threads-with-c", "formula", ["--c", "0.3", "--threads", "2"],
            "--threads only applies to a latency target"),
    CliCase("formula-threads-zero", "formula", ["--target", "latency=8ms", "--threads", "0"], "argument --threads"),
    CliCase("formula-batch-not-a-number", "formula", ["--target", "latency=8ms", "-b", "x"],
            "argument -b/--batch-size"),
    CliCase("formula-backend-unknown", "formula", ["--target", "latency=8ms", "--backend", "tvm"],
            "argument --backend: invalid choice: 'tvm'"),
    CliCase("formula-device-unknown", "formula", ["--target", "latency=8ms", "--device", "tpu"],
            "argument --device: invalid choice: 'tpu'"),
    CliCase("formula-verify-with-compare", "formula", ["--c", "0.3", "--verify", "--compare"],
            "--verify checks one network"),
    CliCase("formula-verify-with-value", "formula", ["--c", "0.3", "--verify=yes"], "ignored explicit argument"),
    CliCase("formula-frontier-missing", "formula", ["--c", "0.3", "--frontier", "{ws}/nope.csv"], "does not exist"),
    CliCase("formula-frontier-fifo", "formula", ["--c", "0.3", "--frontier", "{fifo}"], "is not a regular file"),
    CliCase("formula-frontier-dev-zero", "formula", ["--c", "0.3", "--frontier", "/dev/zero"],
            "/dev/zero is not a regular file"),
    CliCase("formula-frontier-folder", "formula", ["--c", "0.3", "--frontier", "{ws}"], "is a directory"),
    CliCase("formula-frontier-too-large", "formula", ["--c", "0.3", "--frontier", "{out}/big.csv"],
            "more than the 1 MB this command reads", setup=_too_large),
    CliCase("formula-frontier-too-many-rows", "formula", ["--c", "0.3", "--frontier", "{out}/many.csv"],
            "has 201 distinct rows; the formula accepts at most 200", setup=_too_many_rows),
    CliCase("formula-frontier-empty", "formula", ["--c", "0.3", "--frontier", "{out}/empty.csv"], "is empty",
            setup=_write("empty.csv", "")),
    CliCase("formula-frontier-header-only", "formula", ["--c", "0.3", "--frontier", "{out}/h.csv"], "has no rows",
            setup=_write("h.csv", HEADER)),
    CliCase("formula-frontier-other-table", "formula", ["--c", "0.3", "--frontier", "{csv}"],
            "lacks column(s) c, r, d, w, flops"),
    CliCase("formula-frontier-non-numeric", "formula", ["--c", "0.3", "--frontier", "{out}/x.csv"],
            "column 'd', row 2 is not a number: 'abc'",
            setup=_write("x.csv", HEADER + "0.1,0.6,0.6,0.5,38e6\n0.3,0.8,abc,0.6,115e6\n0.6,0.85,1.1,0.8,230e6\n")),
    CliCase("formula-frontier-negative", "formula", ["--c", "0.3", "--frontier", "{out}/n.csv"],
            "column 'r' must be finite and > 0",
            setup=_write("n.csv", HEADER + "0.1,0.6,0.6,0.5,38e6\n0.3,-0.8,0.9,0.6,115e6\n0.6,0.85,1.1,0.8,230e6\n")),
    CliCase("formula-frontier-only-duplicates", "formula", ["--c", "0.3", "--frontier", "{out}/dup.csv"],
            "has 1 row(s); the formula needs at least 3",
            setup=_write("dup.csv", HEADER + "0.3,0.8,0.9,0.6,1e8\n" * 4)),
    CliCase("formula-frontier-binary", "formula", ["--c", "0.3", "--frontier", "{out}/bin.csv"],
            "is not a readable CSV", setup=lambda ws, out: (out / "bin.csv").write_bytes(bytes(range(128, 256)) * 8)),
    CliCase("formula-frontier-with-giant", "formula", ["--c", "0.3", "--rule", "giant", "--frontier", "{frontier}"],
            "--frontier only applies to --rule tiny"),
    # tinynet-formula: numbers and choices
    CliCase("formula-c-nan", "formula", ["--c", "nan"], "--c"),
    CliCase("formula-c-above-one", "formula", ["--c", "1.5"],
            "argument --c: must be in (0, 1) (a FLOPs ratio for shrinking), got 1.5"),
    CliCase("formula-c-zero", "formula", ["--c", "0"], "argument --c: must be in (0, 1)"),
    CliCase("formula-c-text", "formula", ["--c", "a quarter"], "argument --c: must be a number, got 'a quarter'"),
    CliCase("formula-tol-nan", "formula", ["--c", "0.3", "--tol", "nan"], "argument --tol: must be in (0, 1), got nan"),
    CliCase("formula-tol-inf", "formula", ["--c", "0.3", "--tol", "inf"], "argument --tol: must be in (0, 1), got inf"),
    CliCase("formula-rule-unknown", "formula", ["--c", "0.3", "--rule", "sideways"],
            "argument --rule: invalid choice: 'sideways'"),
    CliCase("formula-baseline-unknown", "formula", ["--c", "0.3", "--baseline", "vgg16"],
            "argument --baseline: invalid choice: 'vgg16'"),
    # tinynet-results: the output folder (refused before any table is computed)
    CliCase("results-out-dir-proc", "results", ["--out-dir", "/proc/tinynet-results"], "cannot write --out-dir"),
    CliCase("results-out-dir-is-a-file", "results", ["--out-dir", "{csv}"], "is not a directory"),
    CliCase("results-out-dir-under-a-file", "results", ["--out-dir", "{csv}/results"], "is a file, not a folder"),
    CliCase("results-out-dir-foreign-file", "results", ["--out-dir", "{out}/results"],
            "already holds models.csv, which this command did not write; choose another folder or pass --overwrite",
            setup=_foreign_results),
    CliCase("results-only-unknown", "results", ["--only", "latency"], "argument --only: invalid choice: 'latency'"),
    # the Python API: the same checks, the same words
    ApiCase("api-create-model-target-no-unit", _create(target="latency=8"), "a latency needs a unit"),
    ApiCase("api-create-model-target-kind", _create(target="speed=3"), "unknown target kind 'speed'"),
    ApiCase("api-create-model-target-and-c", _create(target="params=2M", c=0.3), "not both"),
    ApiCase("api-create-model-target-tol-nan", _create(target="params=2M", tol=math.nan), "tol must be in (0, 1)"),
    ApiCase("api-shrink-target-out-of-reach", _shrink("efficientnet_b0", target="params=100"),
            "outside what rule 'tiny' reaches for efficientnet_b0: from"),
    ApiCase("api-shrink-target-negative", _shrink("efficientnet_b0", target="activations=-2M"), "must be > 0"),
    ApiCase("api-shrink-target-not-text", _shrink("efficientnet_b0", target=2.5e6), "target must be KIND=VALUE"),
    ApiCase("api-create-model-tol-nan", _create(c=0.5, tol=math.nan), "tol must be in (0, 1), got nan"),
    ApiCase("api-create-model-tol-text", _create(c=0.5, tol="0.1"), "tol must be a number in (0, 1), got '0.1'"),
    ApiCase("api-create-model-c-above-one", _create(c=1.5), "c must be in (0, 1) (a FLOPs ratio for shrinking)"),
    ApiCase("api-create-model-rule-empty", _create(c=0.5, rule=""), "unknown rule ''; choose from tiny, giant"),
    ApiCase("api-create-model-r-text", _create(r="0.5"), "r must be a number, got '0.5'"),
    ApiCase("api-create-model-inherit-from-a-pipe", lambda ws: _create(
        c=0.3, pretrained=True, pretrained_cfg_overlay=dict(file=str(ws.paths["fifo"])))(ws), "is not a regular file"),
    ApiCase("api-create-model-inherit-from-a-missing-file", lambda ws: _create(
        c=0.3, pretrained=True, pretrained_cfg_overlay=dict(file=str(ws.root / "nothing.pth")))(ws), "nothing.pth does not exist"),
    ApiCase("api-create-model-inherit-from-a-text-file", lambda ws: _create(
        c=0.3, pretrained=True, pretrained_cfg_overlay=dict(file=str(ws.paths["csv"])))(ws), "cannot"),
    ApiCase("api-create-model-inherit-from-another-family", lambda ws: _create(
        baseline="resnet18", c=0.3, pretrained=True, pretrained_cfg_overlay=dict(file=str(ws.paths["ckpt"])))(ws),
        "are not of a network of resnet18's family"),
    ApiCase("api-create-model-inherit-ghostnet-without-a-file", lambda ws: _create(baseline="ghostnet_a", c=0.3,
                                                                                     pretrained=True)(ws),
            "no published weights exist in ghostnet_a's family"),
    ApiCase("api-create-model-baseline-unknown", _create(c=0.3, baseline="vgg16"), "unknown baseline 'vgg16'"),
    ApiCase("api-create-model-baseline-not-text", _create(r=0.5, baseline=["resnet18"]),
            "unknown baseline ['resnet18']"),
    ApiCase("api-create-model-frontier-folder", lambda ws: _create(c=0.3, frontier=str(ws.root))(ws),
            "is a directory"),
    ApiCase("api-shrink-c-nan", _shrink("efficientnet_b0", math.nan), "c must be in (0, 1)"),
    ApiCase("api-shrink-tol-none", _shrink("efficientnet_b0", 0.5, "r", None),
            "tol must be a number in (0, 1), got None"),
    ApiCase("api-shrink-rule-unknown", _shrink("efficientnet_b0", 0.5, "sideways"), "unknown rule 'sideways'"),
    ApiCase("api-shrink-baseline-unknown", _shrink("vgg16", 0.5), "unknown baseline 'vgg16'"),
    ApiCase("api-shrink-frontier-not-a-path", _shrink("efficientnet_b0", 0.5, frontier=0.3),
            "frontier must be the path of a frontier CSV file, got float 0.3"),
    ApiCase("api-get-formula-fifo", _get_formula, "is not a regular file"),
    ApiCase("api-load-frontier-dev-zero", _load_frontier("/dev/zero"), "is not a regular file"),
    ApiCase("api-load-frontier-other-table", _load_frontier(lambda ws: ws.paths["csv"]), "lacks column(s)"),
]
