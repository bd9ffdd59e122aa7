"""``timm_tinynet.shrink``: the core's shrink, with latency measured on this machine when the target asks for it."""
from __future__ import annotations

from typing import Optional

from tinynet_core.budget import AUTO_TOLERANCE, Meter, shrink_for
from tinynet_core.solve import DEFAULT_RULE, Shrunk
from tinynet_core.targets import parse_target


def shrink(baseline: str, c: Optional[float] = None, rule: str = DEFAULT_RULE, tol: object = AUTO_TOLERANCE,
           frontier: Optional[str] = None, target: object = None, meter: Optional[Meter] = None) -> Shrunk:
    """The network of ``baseline`` that ``rule`` gives for a FLOPs ratio ``c`` (0 < c < 1, the paper's budget) or
    for a ``target``: ``'latency=8ms'``, ``'params=2.5M'``, ``'activations=1.2M'``, ``'flops=100M'``.

    ``tol``: the accepted relative error (default ``'auto'``: 1 %, for a latency target 5 %). A latency target is measured on this machine
    by ``meter`` (default ``LatencyMeter()``: CPU, torch, 1 thread, batch 1), which caches every network it has
    measured per device fingerprint; the first query measures a few dozen networks (tens of seconds).
    """
    if target is not None and meter is None and parse_target(target).kind == "latency":
        from .latency import LatencyMeter

        meter = LatencyMeter()
    return shrink_for(baseline, c, target, rule, tol, frontier, meter)
