"""One table of bad inputs over every CLI and the Python API (the case lists are in ``bad_inputs_*.py``).

For each CLI case: exit code 2, exactly one line on stderr, which names the problem, no traceback, and every
input file byte-identical afterwards. For each API case: the documented error type with the same message."""
from __future__ import annotations

import importlib
import warnings

import pytest

from bad_inputs_common import ApiCase, CliCase, build_workspace, error_lines, run_cli

AREAS = ("bad_inputs_io", "bad_inputs_train", "bad_inputs_formula")


def _cases():
    cases = []
    for area in AREAS:
        try:
            module = importlib.import_module(area)
        except ModuleNotFoundError as e:
            if e.name != area:
                raise
            continue
        cases.extend(module.CASES)
    ids = [case.id for case in cases]
    duplicated = {i for i in ids if ids.count(i) > 1}
    assert not duplicated, f"duplicate case ids: {duplicated}"
    return cases


CASES = _cases()
CLI_CASES = [case for case in CASES if isinstance(case, CliCase)]
API_CASES = [case for case in CASES if isinstance(case, ApiCase)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("bad-inputs"))


def test_the_table_is_large_and_covers_every_cli():
    import pkgutil

    import tinynet_cli as cli_package

    clis = {m.name for m in pkgutil.iter_modules(cli_package.__path__) if not m.name.startswith("_")}
    covered = {case.cli for case in CLI_CASES}
    assert clis - covered == set(), f"CLIs without a bad-input case: {sorted(clis - covered)}"
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_cli_refuses_bad_input(case: CliCase, workspace):
    out = workspace.root / "cases" / case.id
    out.mkdir(parents=True)
    if case.setup is not None:
        case.setup(workspace, out)
    before = workspace.digest()
    argv = [workspace.fmt(arg, out) for arg in case.argv]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code, stdout, stderr, escaped = run_cli(case.cli, argv)
    assert escaped is None, f"exception escaped: {type(escaped).__name__}: {escaped}"
    lines = error_lines(stderr)
    assert code == 2, f"exit {code}, stderr: {stderr!r}"
    assert "Traceback" not in stderr
    assert len(lines) == 1, f"expected one line, got {lines}"
    assert case.message in lines[0], f"{case.message!r} not in {lines[0]!r}"
    assert workspace.digest() == before, "an input file changed"


@pytest.mark.parametrize("case", API_CASES, ids=[case.id for case in API_CASES])
def test_api_refuses_bad_input(case: ApiCase, workspace):
    before = workspace.digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error) as info:
            case.call(workspace)
    assert case.message in str(info.value), f"{case.message!r} not in {str(info.value)!r}"
    assert "\n" not in str(info.value).strip()
    assert workspace.digest() == before, "an input file changed"
