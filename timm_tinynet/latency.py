"""Measured inference latency of a twisted network on this machine, for the solver's latency budgets (issue 12).

FLOPs are counted; latency must be measured, on the user's own device, and measuring costs seconds per network. A
``LatencyMeter`` times a network (a baseline and a cube) once per setting and keeps the run times in the user's
cache folder (``user_cache.cache_dir()``, under ``latency/``), so a solver that revisits a network, in this process
or a later one, does not time it again.

* A network is identified by what decides its speed: the baseline's name, its input size and its architecture
  (``arch_key``). Cubes that differ only in decimals that build the same layers share one entry.
* Timings are comparable only on the same machine and setting: the meter's ``fingerprint`` (device and its model
  name, backend, threads, batch size, library versions, Python, architecture). One cache file per fingerprint,
  named by its hash; the file repeats the fingerprint and is used only when it matches.
* A cache file is never trusted: it is read only if it is a regular file of at most ``MAX_CACHE_BYTES`` holding
  JSON of the exact schema (hex keys, 3 to ``MAX_TIMES_PER_NETWORK`` run times each, every one a number in
  (0, ``MAX_SECONDS``]). Anything else is ignored and overwritten by the next store. It is written atomically (a
  temporary file renamed over it); a folder that cannot be written means no caching on disk, silently. Two
  processes sharing a file: the last writer wins, and a network it lacks is measured again later.
"""
from __future__ import annotations

import hashlib
import json
import platform
import re
import statistics
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import timm
import torch

from tinynet_core.cube import Cube
from tinynet_core.user_cache import cache_dir, read_regular_file, write_quietly

from . import timing
from .baselines import get_baseline

DEVICES = ("cpu", "cuda")
CACHE_VERSION = 1
MIN_REPEATS = 3  # fewer timed runs have no meaningful p10..p90 spread
MAX_TIMES_PER_NETWORK = 120  # the newest run times kept per network (4 default measurements)
MAX_NETWORKS = 1000  # per cache file; the least recently measured are dropped beyond it
MAX_SECONDS = 3600.0  # a longer "run time" is not one
# a full file (MAX_NETWORKS x MAX_TIMES_PER_NETWORK floats written by repr, <= 23 bytes each) is < 3 MB
MAX_CACHE_BYTES = 4 * 1024 * 1024
SEED = 0
_KEY = re.compile(r"[0-9a-f]{64}")

Times = List[float]  # seconds per batch, one per timed run


@dataclass(frozen=True)
class Measurement:
    """The latency of one network: ``median_s`` seconds per batch, with ``spread_s`` = half the p10..p90 range of
    the ``repeats`` timed runs behind it (a noise scale: about one standard deviation for normal noise)."""

    median_s: float
    spread_s: float
    repeats: int
    cached: bool  # read from the cache, not measured now

    @classmethod
    def of_times(cls, times: Times, cached: bool) -> "Measurement":
        deciles = statistics.quantiles(times, n=10, method="inclusive")  # within the data, even for few runs
        return cls(statistics.median(times), (deciles[-1] - deciles[0]) / 2, len(times), cached)


def network_id(baseline: str, cube: Cube) -> str:
    """What decides the network's speed, as text: baseline name, input size and architecture (NamedTuples' repr
    names every field, and floats' repr is exact, so equal networks give equal text in any process)."""
    base = get_baseline(baseline)
    return f"{base.name};img_size={base.img_size(cube)};{base.arch_key(cube)!r}"


def network_key(baseline: str, cube: Cube) -> str:
    """sha256 of ``network_id``: a fixed-length key for the cache file."""
    return hashlib.sha256(network_id(baseline, cube).encode()).hexdigest()


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else cpu_name()


def _onnxruntime_version() -> str:
    from tinynet_core.extras import missing_extra

    needs = missing_extra("deploy", "backend='onnxruntime'", ("onnx", "onnxruntime"))
    if needs:
        raise ValueError(needs)
    import onnxruntime

    return onnxruntime.__version__


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_settings(device: str, backend: str, threads: int, batch_size: int, warmup: int, repeats: int) -> None:
    """ValueError naming the argument and what it allows; the backend's and device's availability included."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if backend not in timing.BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(timing.BACKENDS)}, got {backend!r}")
    _check_int("threads", threads, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("warmup", warmup, 0)
    _check_int("repeats", repeats, MIN_REPEATS)
    if backend == "onnxruntime" and device != "cpu":
        raise ValueError("backend='onnxruntime' runs on the CPU here (CPUExecutionProvider only); use device='cpu'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but there is no CUDA device (torch.cuda.is_available() is False)")


def make_fingerprint(device: str, backend: str, threads: int, batch_size: int) -> Dict[str, str]:
    """What must be equal for two timings to be comparable (checked settings)."""
    fingerprint = {"device": device, "device_name": device_name(device), "backend": backend,
                   "threads": str(threads), "batch_size": str(batch_size), "torch": torch.__version__,
                   "timm": timm.__version__, "python": platform.python_version(), "machine": platform.machine()}
    if backend == "onnxruntime":
        fingerprint["onnxruntime"] = _onnxruntime_version()
    return fingerprint


def cache_path(fingerprint: Dict[str, str]) -> Optional[Path]:
    """``<cache folder>/latency/<sha256 of the fingerprint>.json``; None when there is no cache folder."""
    base = cache_dir()
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    return None if base is None else base / "latency" / f"{digest}.json"


def _parse_times(value: object) -> Optional[Times]:
    if not isinstance(value, list) or not MIN_REPEATS <= len(value) <= MAX_TIMES_PER_NETWORK:
        return None
    # the comparison also refuses NaN and infinities; it comes before any float() that a huge int would overflow
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= MAX_SECONDS for t in value):
        return None
    return [float(t) for t in value]


def parse_cache(text: bytes, fingerprint: Dict[str, str]) -> Optional[Dict[str, Times]]:
    """Network key -> run times, if ``text`` is a valid cache file for this fingerprint; None otherwise (never
    raises). One bad entry rejects the file: it was not written by this module."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, truncated, nested too deep, an int too long
        return None
    if (not isinstance(body, dict) or set(body) != {"version", "fingerprint", "networks"}
            or type(body["version"]) is not int or body["version"] != CACHE_VERSION
            or body["fingerprint"] != fingerprint):
        return None
    networks = body["networks"]
    if not isinstance(networks, dict) or len(networks) > MAX_NETWORKS:
        return None
    entries = {}
    for key, value in networks.items():
        times = _parse_times(value)
        if times is None or not _KEY.fullmatch(key):
            return None
        entries[key] = times
    return entries


def cache_json(fingerprint: Dict[str, str], entries: Dict[str, Times]) -> str:
    """The file ``parse_cache`` reads (floats written by repr: they read back exactly)."""
    body = {"version": CACHE_VERSION, "fingerprint": fingerprint, "networks": entries}
    return json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n"


def read_cache(path: Optional[Path], fingerprint: Dict[str, str]) -> Dict[str, Times]:
    """The valid entries at ``path``, else none."""
    text = None if path is None else read_regular_file(path, MAX_CACHE_BYTES)
    return (None if text is None else parse_cache(text, fingerprint)) or {}


def write_cache(path: Optional[Path], fingerprint: Dict[str, str], entries: Dict[str, Times]) -> None:
    write_quietly(path, cache_json(fingerprint, entries))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``timing.set_threads`` for the block, then the caller's intra-op thread count again (torch keeps one count
    per process). The inter-op count stays at 1 when this process had not yet fixed it: torch allows one setting."""
    before = torch.get_num_threads()
    timing.set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_runner(baseline: str, cube: Cube, device: str, backend: str, threads: int,
                 batch_size: int) -> Callable[[], None]:
    """A closure that runs one batch of the network (eval mode, inference mode; weights and input from a fixed
    seed, without touching the caller's random state)."""
    base = get_baseline(baseline)
    size = base.img_size(cube)
    with torch.random.fork_rng(devices=[]):  # the ONNX export draws its example input from the global generator too
        torch.manual_seed(SEED)
        model = base.create("latency", cube, pretrained_cfg=base.pretrained_cfg(cube)).eval()
        images = torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(SEED)).to(device)
        if backend == "onnxruntime":
            return timing.onnxruntime_runner(model, images, threads)
        return timing.torch_runner(model, images)


# ---- answers: a repeated query (the same network path, target and setting) needs no measurement -------------

MAX_ANSWERS = 1000
MAX_ANSWERS_BYTES = 256 * 1024
Answer = Dict[str, float]  # the cube's r, d, w and the FLOPs ratio c that set the rest of it


def answers_path(fingerprint: Dict[str, str]) -> Optional[Path]:
    """``<cache folder>/latency/<sha256 of the fingerprint>.answers.json`` next to the run times."""
    runs = cache_path(fingerprint)
    return None if runs is None else runs.with_name(runs.stem + ".answers.json")


def _parse_answer(value: object) -> Optional[Answer]:
    if not isinstance(value, dict) or set(value) != {"r", "d", "w", "c"}:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 10 for v in value.values()):
        return None  # refuses NaN, infinities and huge ints too; Cube() checks the multipliers' own range
    try:
        Cube(value["r"], value["d"], value["w"])
    except ValueError:
        return None
    return {key: float(v) for key, v in value.items()}


def parse_answers(text: bytes, fingerprint: Dict[str, str]) -> Optional[Dict[str, Answer]]:
    """Query hash -> answer, if ``text`` is a valid answers file for this fingerprint; None otherwise (never raises)."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if (not isinstance(body, dict) or set(body) != {"version", "fingerprint", "answers"}
            or type(body["version"]) is not int or body["version"] != CACHE_VERSION
            or body["fingerprint"] != fingerprint or not isinstance(body["answers"], dict)
            or len(body["answers"]) > MAX_ANSWERS):
        return None
    answers = {}
    for key, value in body["answers"].items():
        answer = _parse_answer(value)
        if answer is None or not _KEY.fullmatch(key):
            return None
        answers[key] = answer
    return answers


class LatencyMeter:
    """Latency of networks on this machine in one setting, cached by network (see the module's docstring).

    ``cache=False`` measures on every call and touches no file. With the cache, run times are kept per network:
    ``remeasure`` appends new runs to the cached ones (the newest ``MAX_TIMES_PER_NETWORK`` kept), so its median and
    spread are over every kept run, across sessions: a session on a busier machine widens the spread rather than
    replacing the estimate."""

    def __init__(self, device: str = "cpu", backend: str = "torch", threads: int = 1, batch_size: int = 1,
                 warmup: int = 10, repeats: int = 30, cache: bool = True) -> None:
        check_settings(device, backend, threads, batch_size, warmup, repeats)
        self.device, self.backend, self.threads, self.batch_size = device, backend, threads, batch_size
        self.warmup, self.repeats, self.cache = warmup, repeats, cache
        self.fingerprint: Dict[str, str] = make_fingerprint(device, backend, threads, batch_size)
        self._entries: Optional[Dict[str, Times]] = None  # the cache file's entries, read at first use
        self._answer_entries: Optional[Dict[str, Answer]] = None  # the answers file's, read at first use

    def describe(self) -> str:
        """One line, e.g. ``cpu (AMD EPYC 7B13), torch, 1 thread, batch 1``."""
        threads = f"{self.threads} thread{'' if self.threads == 1 else 's'}"
        return f"{self.device} ({self.fingerprint['device_name']}), {self.backend}, {threads}, batch {self.batch_size}"

    def __call__(self, baseline: str, cube: Cube) -> Measurement:
        """The network's latency: from the cache when it holds the network, else measured now and stored."""
        key = network_key(baseline, cube)
        times = self._known().get(key) if self.cache else None
        if times is not None:
            return Measurement.of_times(times, cached=True)
        return self._measure({key: (baseline, cube)}, self.repeats)[key]

    def remeasure(self, items: Sequence[Tuple[str, Cube]], repeats: int) -> List[Measurement]:
        """Time every network again, round-robin (``timing.interleaved_times``: drift in the machine's speed hits
        all alike, so they rank fairly), each timed run after ``timing.SETTLE_RUNS`` untimed runs of the same network (the
        steady state its first, back-to-back measurement had), merged with the cached runs and stored; one
        Measurement per item. Items that build the same network are timed once. All the models are held in memory
        at once."""
        _check_int("repeats", repeats, MIN_REPEATS)
        keys = [network_key(baseline, cube) for baseline, cube in items]
        measured = self._measure(dict(zip(keys, items)), repeats)
        return [measured[key] for key in keys]

    def recall(self, query: str) -> Optional[Tuple[Cube, float]]:
        """The network a solver settled on for ``query`` before, with its c (None when unknown or uncached)."""
        answer = self._answers().get(hashlib.sha256(query.encode()).hexdigest()) if self.cache else None
        return None if answer is None else (Cube(answer["r"], answer["d"], answer["w"]), answer["c"])

    def remember(self, query: str, cube: Cube, c: float) -> None:
        """Keep the solver's answer to ``query`` (atomically, newest last, at most MAX_ANSWERS)."""
        if not self.cache:
            return
        answers = self._answers()
        key = hashlib.sha256(query.encode()).hexdigest()
        answers.pop(key, None)
        answers[key] = {"r": cube.r, "d": cube.d, "w": cube.w, "c": float(c)}
        for old in list(answers)[:max(0, len(answers) - MAX_ANSWERS)]:
            del answers[old]
        body = {"version": CACHE_VERSION, "fingerprint": self.fingerprint, "answers": answers}
        write_quietly(answers_path(self.fingerprint), json.dumps(body, separators=(",", ":"), allow_nan=False) + "\n")

    def _answers(self) -> Dict[str, Answer]:
        if self._answer_entries is None:
            path = answers_path(self.fingerprint)
            text = None if path is None else read_regular_file(path, MAX_ANSWERS_BYTES)
            self._answer_entries = (None if text is None else parse_answers(text, self.fingerprint)) or {}
        return self._answer_entries

    def _measure(self, networks: Dict[str, Tuple[str, Cube]], repeats: int) -> Dict[str, Measurement]:
        with torch_threads(self.threads):
            runners = [build_runner(baseline, cube, self.device, self.backend, self.threads, self.batch_size)
                       for baseline, cube in networks.values()]
            # one network alone runs back to back (steady state); several interleave, settled before each timed
            # run, so that re-measured runs are of the same kind as the first ones they are merged with
            settle = timing.SETTLE_RUNS if len(runners) > 1 else 0
            milliseconds = timing.interleaved_times(runners, self.warmup, repeats, settle)
        times = {key: [ms / 1e3 for ms in runs] for key, runs in zip(networks, milliseconds)}
        if self.cache:
            times = self._store(times)
        return {key: Measurement.of_times(runs, cached=False) for key, runs in times.items()}

    def _known(self) -> Dict[str, Times]:
        if self._entries is None:
            self._entries = read_cache(cache_path(self.fingerprint), self.fingerprint)
        return self._entries

    def _store(self, new: Dict[str, Times]) -> Dict[str, Times]:
        """Append ``new`` to the known runs (moving those networks to the newest end), drop the oldest networks
        beyond MAX_NETWORKS, write the file; returns the merged runs of ``new``'s networks."""
        entries = self._known()
        merged = {key: (entries.pop(key, []) + runs)[-MAX_TIMES_PER_NETWORK:] for key, runs in new.items()}
        entries.update(merged)
        for key in list(entries)[:max(0, len(entries) - MAX_NETWORKS)]:
            del entries[key]
        write_cache(cache_path(self.fingerprint), self.fingerprint, entries)
        return merged
