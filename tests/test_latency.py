"""timm_tinynet.latency: the measuring callable behind latency budgets, and its cache.

Every test but the two ``slow`` ones replaces ``latency.build_runner`` (looked up when a meter measures) with a
runner that builds no model and logs its runs, so they count builds and see the order of runs."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
from typing import Callable, List

import pytest
import torch

from timm_tinynet import latency, timing
from timm_tinynet.baselines import get_baseline
from timm_tinynet.latency import LatencyMeter, Measurement
from tinynet_core.cube import Cube

B0 = "efficientnet_b0"
TINY = Cube(0.3, 0.3, 0.3)
TINY_OTHER_DECIMALS = Cube(0.3004, 0.3002, 0.3003)  # same input size and layers as TINY
OTHER = Cube(0.5, 0.5, 0.5)
FINGERPRINT_FIELDS = {"device", "device_name", "backend", "threads", "batch_size", "torch", "timm", "python",
                      "machine"}
needs_onnxruntime = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None,
                                       reason="onnxruntime is not installed")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYNET_CACHE_DIR", str(tmp_path / "cache"))


class FakeRunners:
    """Stands in for ``latency.build_runner``: counts builds; each runner logs its network's label when run."""

    def __init__(self) -> None:
        self.builds: List[str] = []
        self.runs: List[str] = []
        self.threads_seen: List[int] = []

    def __call__(self, baseline: str, cube: Cube, device: str, backend: str, threads: int,
                 batch_size: int) -> Callable[[], None]:
        label = f"{baseline}:{cube}"
        self.builds.append(label)

        def run() -> None:
            self.runs.append(label)
            self.threads_seen.append(torch.get_num_threads())

        return run


@pytest.fixture
def fake(monkeypatch) -> FakeRunners:
    runners = FakeRunners()
    monkeypatch.setattr(latency, "build_runner", runners)
    return runners


def meter(**kwargs) -> LatencyMeter:
    return LatencyMeter(**{"warmup": 0, "repeats": 3, **kwargs})


def the_cache_file(m: LatencyMeter):
    path = latency.cache_path(m.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- fingerprint and cache file ---------------------------------------------------------------------------------

def test_fingerprint_names_what_makes_timings_comparable():
    m = meter(threads=2, batch_size=4)
    assert set(m.fingerprint) == FINGERPRINT_FIELDS
    assert all(isinstance(v, str) and v for v in m.fingerprint.values())
    assert m.fingerprint["device"] == "cpu" and m.fingerprint["device_name"] == latency.cpu_name()
    assert (m.fingerprint["backend"], m.fingerprint["threads"], m.fingerprint["batch_size"]) == ("torch", "2", "4")
    assert m.fingerprint["torch"] == torch.__version__
    assert m.describe() == f"cpu ({latency.cpu_name()}), torch, 2 threads, batch 4"
    assert meter().describe().endswith(", torch, 1 thread, batch 1")


@needs_onnxruntime
def test_onnxruntime_fingerprint_names_its_version():
    import onnxruntime

    assert meter(backend="onnxruntime").fingerprint["onnxruntime"] == onnxruntime.__version__


@pytest.mark.parametrize("change", [{"threads": 2}, {"batch_size": 2},
                                    pytest.param({"backend": "onnxruntime"}, marks=needs_onnxruntime)])
def test_each_setting_has_its_own_cache_file(tmp_path, change):
    path = latency.cache_path(meter().fingerprint)
    assert path.parent == tmp_path / "cache" / "latency"
    assert latency.cache_path(meter(warmup=3, repeats=5).fingerprint) == path  # not what timings depend on
    assert latency.cache_path(meter(**change).fingerprint) != path


def test_network_identity_is_baseline_input_size_and_layers():
    base = get_baseline(B0)
    assert (base.arch_key(TINY), base.img_size(TINY)) == (base.arch_key(TINY_OTHER_DECIMALS),
                                                          base.img_size(TINY_OTHER_DECIMALS))
    assert latency.network_key(B0, TINY) == latency.network_key(B0, TINY_OTHER_DECIMALS)
    assert latency.network_key(B0, TINY) != latency.network_key(B0, OTHER)
    assert latency.network_key(B0, TINY) != latency.network_key("efficientnet_b0_compound", TINY)
    assert latency.network_id(B0, TINY).startswith("efficientnet_b0;img_size=67;EffNetArch(stem=32")


def test_measurement_median_and_spread():
    m = Measurement.of_times([float(t) for t in range(10, -1, -1)], cached=False)
    assert (m.median_s, m.spread_s, m.repeats, m.cached) == (5.0, 4.0, 11, False)  # p10 = 1, p90 = 9


# --- caching --------------------------------------------------------------------------------------------------

def test_second_call_is_served_from_the_cache(fake):
    m = meter()
    first = m(B0, TINY)
    assert not first.cached and first.repeats == 3 and first.median_s > 0 and first.spread_s >= 0
    assert fake.builds == [f"{B0}:{TINY}"] and len(fake.runs) == 3
    again = m(B0, TINY)
    fresh = meter()(B0, TINY)  # another meter (another process): from the file
    assert again == fresh == Measurement(first.median_s, first.spread_s, first.repeats, cached=True)
    assert len(fake.builds) == 1 and len(fake.runs) == 3


def test_other_decimals_of_the_same_network_hit_the_cache(fake):
    m = meter()
    m(B0, TINY)
    assert m(B0, TINY_OTHER_DECIMALS).cached
    assert not m(B0, OTHER).cached
    assert len(fake.builds) == 2


def test_no_cache_measures_every_time_and_writes_nothing(fake, tmp_path):
    m = meter(cache=False)
    assert not m(B0, TINY).cached and not m(B0, TINY).cached
    assert len(fake.builds) == 2
    assert not (tmp_path / "cache").exists()


def test_unwritable_cache_folder_measures_without_error(fake, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TINYNET_CACHE_DIR", str(blocker / "cache"))  # a folder cannot be made under a file
    m = meter()
    assert not m(B0, TINY).cached
    assert m(B0, TINY).cached  # still kept for this meter
    assert not meter()(B0, TINY).cached
    assert len(fake.builds) == 2 and blocker.read_text() == ""


def test_oldest_networks_and_runs_are_dropped_beyond_the_limits(fake, monkeypatch):
    monkeypatch.setattr(latency, "MAX_NETWORKS", 2)
    monkeypatch.setattr(latency, "MAX_TIMES_PER_NETWORK", 5)
    m = meter()
    m(B0, TINY)
    m(B0, OTHER)
    assert [r.repeats for r in m.remeasure([(B0, TINY)], repeats=3)] == [5]  # 3 + 3 runs, newest 5 kept
    m("resnet50", TINY)  # a third network: OTHER, the least recently measured, goes
    stored = latency.read_cache(latency.cache_path(m.fingerprint), m.fingerprint)
    assert list(stored) == [latency.network_key(B0, TINY), latency.network_key("resnet50", TINY)]
    assert len(stored[latency.network_key(B0, TINY)]) == 5


def test_a_full_cache_file_is_within_the_size_limit():
    fingerprint = meter().fingerprint
    worst = [1.2345678901234567e-05, 3599.1234567890123]  # the longest reprs: 22 and 18 characters
    entries = {f"{i:064x}": worst * (latency.MAX_TIMES_PER_NETWORK // 2) for i in range(latency.MAX_NETWORKS)}
    text = latency.cache_json(fingerprint, entries).encode()
    assert len(text) <= latency.MAX_CACHE_BYTES
    assert latency.parse_cache(text, fingerprint) == entries


# --- hostile cache files ----------------------------------------------------------------------------------------

def _valid_body(m: LatencyMeter) -> dict:
    return {"version": latency.CACHE_VERSION, "fingerprint": dict(m.fingerprint),
            "networks": {latency.network_key(B0, TINY): [0.001, 0.002, 0.003]}}


def _with(**changes):
    """A valid body with top-level fields changed; ``times`` replaces the entry's run times and
    ``fingerprint_threads`` the fingerprint's thread count."""
    def make(m: LatencyMeter) -> bytes:
        body = _valid_body(m)
        for name, value in changes.items():
            if name == "times":
                body["networks"] = {latency.network_key(B0, TINY): value}
            elif name == "fingerprint_threads":
                body["fingerprint"]["threads"] = value
            else:
                body[name] = value
        return json.dumps(body).encode()
    return make


CORRUPT = {
    "not JSON": lambda m: b"latency: 8ms\n",
    "not UTF-8": lambda m: b"\xff\xfe\x00{",
    "truncated": lambda m: json.dumps(_valid_body(m)).encode()[:-5],
    "nested too deep": lambda m: b"[" * 100_000 + b"]" * 100_000,
    "a list": lambda m: b"[1, 2, 3]",
    "wrong fingerprint": _with(fingerprint_threads="8"),
    "fingerprint with an int": _with(fingerprint_threads=1),
    "wrong version": _with(version=99),
    "version true": _with(version=True),
    "extra field": _with(note="hello"),
    "negative time": _with(times=[0.001, -0.002, 0.003]),
    "zero time": _with(times=[0.0, 0.002, 0.003]),
    "NaN time": lambda m: json.dumps(_valid_body(m)).replace("0.002", "NaN").encode(),
    "infinite time": lambda m: json.dumps(_valid_body(m)).replace("0.002", "1e400").encode(),
    "huge int time": lambda m: json.dumps(_valid_body(m)).replace("0.002", "9" * 400).encode(),
    "over an hour": _with(times=[0.001, 4000.0, 0.003]),
    "bool time": _with(times=[0.001, True, 0.003]),
    "string time": _with(times=[0.001, "0.002", 0.003]),
    "too few times": _with(times=[0.001, 0.002]),
    "too many times": _with(times=[0.001] * (latency.MAX_TIMES_PER_NETWORK + 1)),
    "bad key": _with(networks={"../../etc": [0.001, 0.002, 0.003]}),
    "huge file": lambda m: json.dumps(_valid_body(m)).encode() + b" " * latency.MAX_CACHE_BYTES,
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_cache_file_is_ignored_and_replaced(fake, kind):
    m = meter()
    path = the_cache_file(m)
    path.write_bytes(CORRUPT[kind](m))
    assert not m(B0, TINY).cached
    replaced = latency.parse_cache(path.read_bytes(), m.fingerprint)  # a valid file of this measurement only
    assert replaced is not None and list(replaced) == [latency.network_key(B0, TINY)]
    assert len(replaced[latency.network_key(B0, TINY)]) == 3
    assert meter()(B0, TINY).cached
    assert len(fake.builds) == 1


def test_the_valid_body_of_the_corruption_cases_is_read(fake):
    m = meter()
    the_cache_file(m).write_bytes(json.dumps(_valid_body(m)).encode())
    assert m(B0, TINY) == Measurement.of_times([0.001, 0.002, 0.003], cached=True)
    assert fake.builds == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_at_the_cache_path_is_not_read_and_is_replaced(fake):
    m = meter()
    path = the_cache_file(m)
    os.mkfifo(path)  # reading it would block forever
    assert not m(B0, TINY).cached
    assert meter()(B0, TINY).cached


def test_folder_at_the_cache_path_is_ignored(fake):
    m = meter()
    path = the_cache_file(m)
    (path / "inside").mkdir(parents=True)  # a folder is not deleted to make room: no caching on disk
    assert not m(B0, TINY).cached
    assert not meter()(B0, TINY).cached
    assert (path / "inside").is_dir()


# --- arguments --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"device": "gpu"}, "device must be one of cpu, cuda, got 'gpu'"),
    ({"backend": "tensorrt"}, "backend must be one of torch, onnxruntime, got 'tensorrt'"),
    ({"threads": 0}, "threads must be an integer >= 1, got 0"),
    ({"threads": 1.5}, "threads must be an integer >= 1, got 1.5"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"batch_size": True}, "batch_size must be an integer >= 1, got True"),
    ({"warmup": -1}, "warmup must be an integer >= 0, got -1"),
    ({"repeats": 2}, "repeats must be an integer >= 3, got 2"),
    ({"backend": "onnxruntime", "device": "cuda"}, "backend='onnxruntime' runs on the CPU here"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        LatencyMeter(**kwargs)


def test_cuda_without_a_cuda_device_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        LatencyMeter(device="cuda")


def test_onnxruntime_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(ValueError, match=re.escape("needs the 'deploy' extra (onnxruntime is not installed): "
                                                   "pip install 'timm-tinynet[deploy]'")):
        LatencyMeter(backend="onnxruntime")


def test_bad_network_or_repeats_is_refused(fake):
    m = meter()
    with pytest.raises(ValueError, match="unknown baseline"):
        m("vgg16", TINY)
    with pytest.raises(ValueError, match="repeats must be an integer >= 3, got 2"):
        m.remeasure([(B0, TINY)], repeats=2)
    assert fake.builds == []


# --- threads and remeasure --------------------------------------------------------------------------------------

def test_threads_are_set_for_the_measurement_and_restored(fake):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        meter(threads=1)(B0, TINY)
        assert set(fake.threads_seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_remeasure_is_interleaved_merged_and_stored(fake):
    m = meter(warmup=1)
    m(B0, TINY)
    fake.runs.clear()
    a, b = f"{B0}:{TINY_OTHER_DECIMALS}", f"{B0}:{OTHER}"  # TINY and its other decimals: one network, timed once
    out = m.remeasure([(B0, TINY), (B0, OTHER), (B0, TINY_OTHER_DECIMALS)], repeats=4)
    settled = timing.SETTLE_RUNS + 1  # untimed runs of the same network before each timed one
    assert fake.runs == [a, b] + ([a] * settled + [b] * settled) * 4  # warm-up of each, then round-robin
    assert [r.repeats for r in out] == [3 + 4, 4, 3 + 4]
    assert not any(r.cached for r in out) and out[0] == out[2]
    again = meter()
    assert again(B0, TINY) == Measurement(out[0].median_s, out[0].spread_s, 7, cached=True)
    assert again(B0, OTHER).repeats == 4
    assert m.remeasure([], repeats=3) == []


# --- real measurements ------------------------------------------------------------------------------------------

def _is_real(result: Measurement) -> bool:
    return (math.isfinite(result.median_s) and result.median_s > 0 and math.isfinite(result.spread_s)
            and result.spread_s >= 0 and result.repeats == 5 and not result.cached)


@pytest.mark.slow
def test_real_measurement_torch():
    before = torch.get_num_threads()
    assert _is_real(LatencyMeter(repeats=5, warmup=2)(B0, TINY))
    assert torch.get_num_threads() == before


@pytest.mark.slow
@needs_onnxruntime
def test_real_measurement_onnxruntime():
    assert _is_real(LatencyMeter(backend="onnxruntime", repeats=5, warmup=2)(B0, TINY))


# ---- answers: a repeated query measures nothing ------------------------------------------------------------

def test_an_answer_is_kept_for_the_next_meter_of_the_same_setting(fake):
    first = meter()
    first.remember("query", TINY, 0.25)
    assert meter().recall("query") == (TINY, 0.25)  # a new meter, as in the next process
    assert meter().recall("another query") is None
    assert meter(threads=2).recall("query") is None  # another setting, another file
    assert meter(cache=False).recall("query") is None
    path = latency.answers_path(first.fingerprint)
    assert path.name.endswith(".answers.json") and path.parent == latency.cache_path(first.fingerprint).parent
    assert fake.builds == []  # remembering measures nothing


@pytest.mark.parametrize("body", [
    "not json",
    '{"version": 1, "fingerprint": {}, "answers": {}}',  # another setting's
    "ANSWER_NAN",
    "ANSWER_BAD_CUBE",
    "ANSWER_EXTRA_FIELD",
])
def test_a_bad_answers_file_is_ignored_and_replaced(fake, body):
    m = meter()
    m.remember("query", TINY, 0.25)
    path = latency.answers_path(m.fingerprint)
    good = json.loads(path.read_text())
    key = next(iter(good["answers"]))
    if body == "ANSWER_NAN":
        body = path.read_text().replace("0.25", "NaN")
    elif body == "ANSWER_BAD_CUBE":
        good["answers"][key]["r"] = 1e-9
        body = json.dumps(good)
    elif body == "ANSWER_EXTRA_FIELD":
        good["answers"][key]["x"] = 1.0
        body = json.dumps(good)
    path.write_text(body)
    assert meter().recall("query") is None
    replacing = meter()
    replacing.remember("other", OTHER, 0.5)
    assert meter().recall("other") == (OTHER, 0.5)


def test_an_answers_file_that_is_a_fifo_is_not_waited_on(fake):
    m = meter()
    path = latency.answers_path(m.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    assert m.recall("query") is None
