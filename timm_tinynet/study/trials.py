"""Training every planned model: one tinynet-train process per trial, run locally or as Ray tasks.

The driver is the only writer of the results table (a lock file keeps a second driver off it) and of the trials
folder (a second driver with other --results but the same --trials-dir is refused too), and rewrites the table
atomically after each finished trial, so killing the driver (even with SIGKILL) loses no finished result.
Re-running skips trials already in the table and restarts interrupted ones from their last checkpoint. Before
anything runs, the results table and every trial folder are checked against the plan (same baseline, r, d, w;
same epochs), so results of other models are never taken for this plan's. A failing trial is recorded with
its error.
"""
from __future__ import annotations

import csv
import ctypes
import fcntl
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import pandas as pd

from tinynet_core.explain import create_model_args
from tinynet_core.guard import folder_lock
from . import StudyError
from tinynet_core.study.tables import PLAN_COLUMNS, RESULT_COLUMNS, read_plan, read_results, rows_of, write_csv_atomic

EXECUTORS = ("local", "ray")
STOP_GRACE_S = 10.0  # how long a stopped driver lets its trials clean up before it kills them
RAY_CONNECT_TIMEOUT_S = 10.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the trial process gets SIGKILL when the driver dies, so a killed study leaves no orphans."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _summary(trial_dir: Path) -> List[Dict[str, str]]:
    path = trial_dir / "summary.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _metric(row: Dict[str, str], name: str) -> float:
    """The better of the raw weights' and the EMA's metric (as tinynet-train picks its best weights), or the raw
    weights' when the run kept no EMA."""
    values = [float(v) for v in (row.get(f"eval_{name}"), row.get(f"ema_eval_{name}")) if v not in (None, "")]
    return max(values)


def _same(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _describe(model, r, d, w, baseline=None) -> str:
    return f"{model}{f' (baseline {baseline})' if baseline else ''} r={r} d={d} w={w}"


def trial_folder_problem(spec: Mapping) -> Optional[str]:
    """Why the trial's folder cannot hold this trial's run (None when it is new or does): a run of another
    model (by its args.yaml) or one trained for another number of epochs."""
    import yaml

    folder = Path(spec["trials_dir"]) / str(spec["id"])
    if not any((folder / name).exists() for name in ("summary.csv", "last.pth.tar")):
        return None  # nothing trained there yet: tinynet-train starts afresh
    where = f"trial {spec['id']}: {folder}"
    try:
        recorded = yaml.safe_load((folder / "args.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        return f"{where} holds a run whose args.yaml cannot be read ({type(e).__name__}), so what it trained is unknown"
    want = create_model_args(spec["baseline"], spec["r"], spec["d"], spec["w"])
    model = want["model"]
    kwargs = recorded.get("model_kwargs") if isinstance(recorded.get("model_kwargs"), dict) else {}
    if recorded.get("model") != model or kwargs.get("baseline") != want["kwargs"].get("baseline") or not all(
            _same(kwargs.get(k), spec[k]) for k in "rdw"):
        found = _describe(recorded.get("model"), *(kwargs.get(k) for k in "rdw"), kwargs.get("baseline"))
        planned = _describe(model, spec["r"], spec["d"], spec["w"], want["kwargs"].get("baseline"))
        return f"{where} holds a run of {found}, but the plan's trial is {planned}; use another --trials-dir"
    if recorded.get("epochs") != spec["epochs"]:
        return (f"{where} holds a run for {recorded.get('epochs')} epochs, not --epochs {spec['epochs']}; every "
                f"model of a study trains for the same epochs: use --epochs {recorded.get('epochs')}, or new "
                f"--results and --trials-dir")
    return None


def results_plan_problem(plan: pd.DataFrame, results: pd.DataFrame, epochs: int) -> Optional[str]:
    """Why the results table does not belong to this plan and epoch count (None when it does)."""
    planned = plan.set_index("id")
    for row in results.itertuples(index=False):
        if row.id not in planned.index:
            return f"has trial {row.id!r}, which the plan does not have: a results file belongs to one plan"
        want = planned.loc[row.id]
        if (row.baseline, row.kind) != (want["baseline"], want["kind"]) or not all(
                _same(getattr(row, k), want[k]) for k in "rdw"):
            return (f"has trial {row.id} as {row.kind} {_describe(row.baseline, row.r, row.d, row.w)}, but the plan "
                    f"has {want['kind']} {_describe(want['baseline'], want['r'], want['d'], want['w'])}: it comes "
                    f"from another plan")
        if row.status == "ok" and not _same(row.epochs, epochs):
            return (f"has trial {row.id} trained for {row.epochs:g} epochs, not --epochs {epochs}; every model of a "
                    f"study trains for the same epochs: use --epochs {row.epochs:g}, or new --results and --trials-dir")
    return None


def trial_command(spec: Dict) -> List[str]:
    call = create_model_args(spec["baseline"], spec["r"], spec["d"], spec["w"])
    cmd = [sys.executable, "-m", "tinynet_cli.train", "--data-dir", str(spec["data_dir"]), "--model", call["model"],
           "--model-kwargs", *(f"{key}={value}" for key, value in call["kwargs"].items()),
           "--output", str(spec["trials_dir"]), "--experiment", spec["id"], "--epochs", str(spec["epochs"]),
           "--log-interval", "1000000", *spec["train_args"]]
    last = Path(spec["trials_dir"]) / spec["id"] / "last.pth.tar"
    if last.exists():
        cmd += ["--resume", str(last)]
    return cmd


_RUNNING: Set[subprocess.Popen] = set()  # the trial processes of this driver, killed when it is stopped
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()  # set once the driver is stopped: no further trial process starts


def _run_child(cmd: List[str]) -> Tuple[int, str]:
    """Run a trial process to its end: (exit code, stderr). Stopping the driver (Ctrl-C, SIGTERM) stops it too."""
    with _RUNNING_LOCK:
        if _STOPPING.is_set():
            raise StudyError("the study was stopped")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_die_with_parent)
        _RUNNING.add(proc)
    try:
        _, stderr = proc.communicate()
    except BaseException:
        _stop([proc])
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    return proc.returncode, stderr


def _stop(procs: Sequence[subprocess.Popen], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, so each trial removes its temporary files and releases its run folder (tinynet-train ends through
    SystemExit); SIGKILL for any still running after ``grace_s`` seconds."""
    for proc in procs:
        try:
            proc.terminate()
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stop_running() -> None:
    with _RUNNING_LOCK:
        _STOPPING.set()
        running = list(_RUNNING)
    _stop(running)


def run_trial(spec: Dict) -> Dict:
    """Train one planned model to ``spec['epochs']`` epochs (resuming if it was interrupted) and report.
    ``wall_time_s`` of a finished trial is its training time over all epochs, resumed or not."""
    trial_dir = Path(spec["trials_dir"]) / spec["id"]
    start = time.perf_counter()
    row = {k: spec[k] for k in PLAN_COLUMNS}
    done = _summary(trial_dir)
    if len(done) < spec["epochs"]:
        returncode, stderr = _run_child(trial_command(spec))
        if returncode != 0:
            lines = [line for line in stderr.strip().splitlines() if line.strip()]
            error = lines[-1] if lines else f"exit code {returncode}"
            return dict(row, top1="", top5="", epochs=len(_summary(trial_dir)),
                        wall_time_s=round(time.perf_counter() - start, 1), status="failed", error=error[:500])
        done = _summary(trial_dir)
    last = done[-1]
    seconds = sum(float(r.get("epoch_time_s") or 0) for r in done)
    return dict(row, top1=_metric(last, "top1"), top5=_metric(last, "top5"), epochs=len(done),
                wall_time_s=round(seconds, 1), status="ok", error="")


def _execute_local(specs: Sequence[Dict], workers: int, on_result: Callable[[Dict], None]) -> None:
    _STOPPING.clear()
    if workers == 1:
        for spec in specs:
            on_result(run_trial(spec))
        return
    pool = ThreadPoolExecutor(max_workers=workers)  # threads only wait on trial processes
    try:
        futures = [pool.submit(run_trial, spec) for spec in specs]
        for future in as_completed(futures):
            on_result(future.result())
    except BaseException:  # stopped (Ctrl-C, SIGTERM) or failed: no trial may run on, nor the pool wait for one
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_running()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _check_reachable(address: str) -> None:
    """A bounded TCP connect to HOST:PORT (ray.init itself retries for minutes against a dead address)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(f"--ray-address {address!r} is not auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise StudyError(f"cannot connect to the Ray cluster at {address!r}: {e.strerror or e}") from None


def node_fits(resources: Mapping[str, float], cpus: float, gpus: float) -> bool:
    """Whether a Ray node with ``resources`` can run one trial."""
    return resources.get("CPU", 0.0) >= cpus and resources.get("GPU", 0.0) >= gpus


def _connect_ray(address: Optional[str]):
    from tinynet_core.extras import missing_extra

    needs = missing_extra("ray", "the ray executor")
    if needs:
        raise StudyError(needs)
    import ray

    if address in (None, "", "local"):
        ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        return ray
    if address.startswith("ray://"):
        # grpc: what Ray Client needs beyond the minimal ray package (the 'ray' extra is ray[default,client])
        needs = missing_extra("ray", f"--ray-address {address} (Ray Client)", ("grpc",))
        if needs:
            raise StudyError(needs)
        _check_reachable(address[len("ray://"):])
    elif address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise StudyError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    return ray


def _execute_ray(specs: Sequence[Dict], address: Optional[str], cpus: float, gpus: float,
                 on_result: Callable[[Dict], None]) -> None:
    ray = _connect_ray(address)
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if not any(node_fits(node, cpus, gpus) for node in nodes):
        total = ray.cluster_resources()
        # Ray would queue such a task forever without a word (its warning goes to the muted driver log)
        raise StudyError(f"no node of the Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s) for one trial "
                         f"(the cluster has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs on "
                         f"{len(nodes)} node(s)); lower --cpus-per-trial / --gpus-per-trial")
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_trial)
    pending = [task.remote(spec) for spec in specs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        on_result(ray.get(done[0]))


@contextmanager
def driver_lock(results_path: Path) -> Iterator[Path]:
    """Hold <results>.lock for the whole run: a second driver on the same results would overwrite rows."""
    lock_path = results_path.with_name(results_path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as e:
        raise StudyError(f"cannot lock --results {results_path}: {lock_path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a pipe put in its place
        os.close(fd)
        raise StudyError(f"cannot lock --results {results_path}: {lock_path} is not a regular file")
    with os.fdopen(fd, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(f"another driver is running on {results_path} (it holds {lock_path})") from None
        yield lock_path


def _check_files(plan_path: Path, results_path: Path, data_dir: Path, trials_dir: Path,
                 epochs: int) -> pd.DataFrame:
    """The plan, the data and where the study writes, before anything runs (GuardError / StudyError): the results
    table and the trial folders never replace or land inside an input. An existing results table is resumed, so
    it must be one (read_results refuses any other file rather than overwrite it)."""
    from tinynet_core.guard import check_input_dir, check_not_an_input, check_output_dir, check_output_file

    check_input_dir(data_dir, "--data-dir")
    plan = read_plan(plan_path)
    inputs = [("plan", plan_path), ("--data-dir", data_dir)]
    check_output_file(results_path, "--results", inputs, overwrite=True)
    check_output_dir(trials_dir, "--trials-dir", inputs=inputs, overwrite=True)
    for trial in plan["id"].astype(str):
        check_not_an_input(trials_dir / trial, f"trial {trial}'s folder", inputs)
    if _resolved(results_path).parent == _resolved(trials_dir) and results_path.name in set(plan["id"].astype(str)):
        raise StudyError(f"--results {results_path} is the folder of one of the plan's trials; use another name")
    if results_path.exists():  # refused before any lock file is made beside it (checked again under the lock)
        problem = results_plan_problem(plan, read_results(results_path), epochs)
        if problem:
            raise StudyError(f"results {results_path} {problem}; use another --results")
    return plan


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def run_study(
        plan_path: Path,
        results_path: Path,
        data_dir: Path,
        epochs: int,
        train_args: Sequence[str] = (),
        trials_dir: Optional[Path] = None,
        executor: str = "local",
        workers: int = 1,
        ray_address: Optional[str] = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        retry_failed: bool = False,
        log: Callable[[str], None] = print,
) -> Dict[str, int]:
    """Train every planned trial not yet in the results table; returns counts of what happened
    (``failed_before``: failed trials of an earlier run left as they are)."""
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if workers < 1:
        raise StudyError(f"--workers must be >= 1, got {workers}")
    plan_path, results_path = Path(plan_path), Path(results_path)
    trials_dir = Path(trials_dir or results_path.parent / "trials")
    plan = _check_files(plan_path, results_path, Path(data_dir), trials_dir, epochs)
    with driver_lock(results_path), folder_lock(trials_dir, "--trials-dir"):
        results = read_results(results_path, allow_missing=True)
        problem = results_plan_problem(plan, results, epochs)
        if problem:
            raise StudyError(f"results {results_path} {problem}; use another --results")
        keep = results if not retry_failed else results[results["status"] == "ok"]
        finished = set(keep["id"].astype(str))
        rows = rows_of(keep)
        specs = [dict(row, data_dir=str(Path(data_dir).resolve()), trials_dir=str(trials_dir.resolve()),
                      epochs=epochs, train_args=list(train_args))
                 for row in rows_of(plan) if str(row["id"]) not in finished]
        problems = [p for p in map(trial_folder_problem, specs) if p]
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise StudyError(problems[0] + more)
        counts = {"planned": len(plan), "skipped": len(plan) - len(specs), "ok": 0, "failed": 0,
                  "failed_before": int((keep["status"] == "failed").sum())}
        log(f"{len(specs)} of {len(plan)} trials to run ({counts['skipped']} already in {results_path}), "
            f"executor {executor}")

        def on_result(row: Dict) -> None:
            rows.append(row)
            write_csv_atomic(results_path, rows, RESULT_COLUMNS)
            counts[row["status"]] += 1
            detail = f"top-1 {row['top1']:.2f}%" if row["status"] == "ok" else f"FAILED: {row['error']}"
            log(f"[{len(rows)}/{len(plan)}] {row['id']} r={row['r']} d={row['d']} w={row['w']} "
                f"({row['c']:.3f} C0): {detail} in {row['wall_time_s']}s")

        if specs:
            if executor == "local":
                _execute_local(specs, workers, on_result)
            else:
                _execute_ray(specs, ray_address, cpus_per_trial, gpus_per_trial, on_result)
    return counts
