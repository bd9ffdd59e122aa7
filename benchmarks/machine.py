"""Where and when a benchmark ran: the fields every file under results/ that holds a time carries."""
from __future__ import annotations

import datetime
import os
import platform
from typing import Dict


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
