"""Where and when a benchmark ran: the fields every file under results/ that holds a time carries."""
from __future__ import annotations

import csv
import datetime
import os
import platform
from pathlib import Path
from typing import Dict, Sequence


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fields() -> Dict[str, str]:
    """date (UTC, ISO), CPU model, visible cores, the 1-minute load average when called, Python and torch versions."""
    import torch

    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "cpu": f"{cpu_name()} ({platform.machine()})", "cores": str(os.cpu_count()),
            "load_avg_1min": f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "",
            "python": platform.python_version(), "torch": torch.__version__}


def write_rows(path: Path, rows: Sequence[Dict[str, object]]) -> None:
    """The benchmark's rows as a CSV under results/ (columns: the first row's keys), and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
