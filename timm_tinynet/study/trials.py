"""Training every planned model: one tinynet-train process per trial, run locally or as Ray tasks.

The driver is the only writer of the results table and rewrites it atomically after each finished trial, so
killing the driver (even with SIGKILL) loses no finished result. Re-running skips trials already in the table
and restarts interrupted ones from their last checkpoint. A failing trial is recorded with its error.
"""
from __future__ import annotations

import csv
import ctypes
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..baselines import get_baseline
from . import StudyError
from .tables import PLAN_COLUMNS, RESULT_COLUMNS, read_plan, read_results, rows_of, write_csv_atomic

EXECUTORS = ("local", "ray")


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
    """The EMA's metric when the run kept one, else the model's."""
    value = row.get(f"ema_eval_{name}") or row.get(f"eval_{name}")
    return float(value)


def trial_command(spec: Dict) -> List[str]:
    model = get_baseline(spec["baseline"]).generic_model
    cmd = [sys.executable, "-m", "timm_tinynet.cli.train", "--data-dir", str(spec["data_dir"]), "--model", model,
           "--model-kwargs", f"r={spec['r']}", f"d={spec['d']}", f"w={spec['w']}",
           "--output", str(spec["trials_dir"]), "--experiment", spec["id"], "--epochs", str(spec["epochs"]),
           "--log-interval", "1000000", *spec["train_args"]]
    last = Path(spec["trials_dir"]) / spec["id"] / "last.pth.tar"
    if last.exists():
        cmd += ["--resume", str(last)]
    return cmd


def run_trial(spec: Dict) -> Dict:
    """Train one planned model to ``spec['epochs']`` epochs (resuming if it was interrupted) and report."""
    trial_dir = Path(spec["trials_dir"]) / spec["id"]
    start = time.perf_counter()
    row = {k: spec[k] for k in PLAN_COLUMNS}
    done = _summary(trial_dir)
    if len(done) < spec["epochs"]:
        proc = subprocess.run(trial_command(spec), capture_output=True, text=True, preexec_fn=_die_with_parent)
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            error = lines[-1] if lines else f"exit code {proc.returncode}"
            return dict(row, top1="", top5="", epochs=len(_summary(trial_dir)),
                        wall_time_s=round(time.perf_counter() - start, 1), status="failed", error=error[:500])
        done = _summary(trial_dir)
    last = done[-1]
    return dict(row, top1=_metric(last, "top1"), top5=_metric(last, "top5"), epochs=len(done),
                wall_time_s=round(time.perf_counter() - start, 1), status="ok", error="")


def _execute_local(specs: Sequence[Dict], workers: int, on_result: Callable[[Dict], None]) -> None:
    if workers == 1:
        for spec in specs:
            on_result(run_trial(spec))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads only wait on trial processes
        futures = [pool.submit(run_trial, spec) for spec in specs]
        for future in as_completed(futures):
            on_result(future.result())


def _execute_ray(specs: Sequence[Dict], address: Optional[str], cpus: float, gpus: float,
                 on_result: Callable[[Dict], None]) -> None:
    try:
        import ray
    except ImportError:
        raise StudyError("the ray executor needs Ray: pip install 'timm-tinynet[ray]' (or pip install ray)") from None
    if address in (None, "", "local"):
        ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    else:
        try:
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise StudyError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(run_trial)
    pending = [task.remote(spec) for spec in specs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        on_result(ray.get(done[0]))


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
    """Train every planned trial not yet in the results table; returns counts of what happened."""
    if executor not in EXECUTORS:
        raise StudyError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if workers < 1:
        raise StudyError(f"--workers must be >= 1, got {workers}")
    if not Path(data_dir).is_dir():
        raise StudyError(f"data dir {data_dir} does not exist")
    plan = read_plan(plan_path)
    results = read_results(results_path, allow_missing=True)
    keep = results if not retry_failed else results[results["status"] == "ok"]
    finished = set(keep["id"].astype(str))
    rows = rows_of(keep)
    trials_dir = Path(trials_dir or results_path.parent / "trials")
    specs = [dict(row, data_dir=str(Path(data_dir).resolve()), trials_dir=str(trials_dir.resolve()), epochs=epochs,
                  train_args=list(train_args))
             for row in rows_of(plan) if str(row["id"]) not in finished]
    counts = {"planned": len(plan), "skipped": len(plan) - len(specs), "ok": 0, "failed": 0}
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
