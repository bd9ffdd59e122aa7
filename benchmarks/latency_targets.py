"""Issue 12's evidence: shrinking EfficientNet-B0 to a latency budget measured on this machine, against the FLOPs
proxy a user would otherwise use, and the tiny rule against the giant rule at equal latency.

For each backend (torch and onnxruntime, 1 thread, batch 1) and three latency budgets L (by default 25 %, 45 % and
65 % of B0's measured latency: the TinyNet range, TinyNet-E measuring 8-20 % of B0), three networks:

1. latency target, tiny rule:  ``shrink("efficientnet_b0", target=f"latency={L}ms", rule="tiny", meter=meter)``
2. FLOPs proxy, tiny rule:     ``shrink("efficientnet_b0", c=L / latency(B0), rule="tiny")`` (latency taken to
                               scale with FLOPs; latency(B0) from the same meter)
3. latency target, giant rule: as 1 with ``rule="giant"``

A latency target not met within the default 5 % is retried with ``tol=0.1`` (the row says which tol was used);
one still not met is a row holding the error text. Then every network of the backend (B0 and TinyNet-E as
reference rows) is measured again, together, with one ``LatencyMeter.remeasure(items, --repeats)`` on a meter
without cache (so that only these runs count): round-robin, each timed run preceded by
``timing.SETTLE_RUNS`` untimed runs of the same network, i.e. in the steady state in which the solver's meter
measured each network of its path (``timing.interleaved_times``; the library also settles glibc's allocator once
per process before any timing).

The meter's cache is a fresh temporary folder (``--cache-dir`` to keep or reuse one), so the run does not lean on
earlier measurements. Writes ``<out-dir>/latency_targets.csv`` and ``<out-dir>/latency_targets.md``, each row with
the date, CPU, cores and the 1-minute load average when that backend's final measurement started.

    python benchmarks/latency_targets.py [--backends torch,onnxruntime] [--budgets-torch 6,10,14]
                                         [--budgets-ort 1.6,3,4.3] [--repeats 60] [--out-dir results]
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_fields  # noqa: E402

BASELINE = "efficientnet_b0"
BACKENDS = ("torch", "onnxruntime")
FRACTIONS = (0.25, 0.45, 0.65)  # of B0's latency, when no budgets are given
RETRY_TOL = 0.1
DEFAULT_LATENCY_TOL = 0.05  # tinynet_core.targets.DEFAULT_TOLERANCE["latency"]
METHODS = (("latency target", "tiny"), ("FLOPs proxy", "tiny"), ("latency target", "giant"))
FIELDS = ("backend", "budget_ms", "method", "rule", "tol", "target", "c", "r", "d", "w", "img_size", "flops_m",
          "params_m", "activations_m", "latency_ms", "spread_ms", "latency_over_budget", "search_latency_ms",
          "search_runs", "search_s", "error")
REFERENCE_REPEATS = 60  # more runs of B0 and TinyNet-E, each alone, before the budgets are set


def log(text: str) -> None:
    print(text, flush=True)


def parse_budgets(text: Optional[str]) -> Optional[List[float]]:
    if text is None:
        return None
    try:
        budgets = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"budgets must be comma-separated milliseconds, e.g. 6,10,14; got {text!r}") from None
    if not budgets or any(not b > 0 for b in budgets):
        raise SystemExit(f"budgets must be positive milliseconds; got {text!r}")
    return budgets


def parse_backends(text: str) -> List[str]:
    backends = [part.strip() for part in text.split(",") if part.strip()]
    bad = [b for b in backends if b not in BACKENDS]
    if bad or not backends:
        raise SystemExit(f"--backends takes a comma-separated subset of {', '.join(BACKENDS)}; got {text!r}")
    return backends


def network_fields(shrunk) -> Dict[str, object]:
    cube = shrunk.cube
    return {"c": round(shrunk.c, 4), "r": round(cube.r, 4), "d": round(cube.d, 4), "w": round(cube.w, 4),
            "img_size": shrunk.img_size, "flops_m": round(shrunk.flops / 1e6, 3),
            "params_m": round(shrunk.params / 1e6, 3), "activations_m": round(shrunk.activations / 1e6, 3)}


def solve_row(backend: str, budget_ms: float, method: str, rule: str, meter, b0_s: float) -> Dict[str, object]:
    """One network for the budget: the shrink, with the retry at RETRY_TOL for a latency target."""
    from timm_tinynet import shrink
    from timm_tinynet import TargetError, UnreachableTargetError

    row: Dict[str, object] = {"backend": backend, "budget_ms": budget_ms, "method": method, "rule": rule,
                              "error": ""}
    start = time.perf_counter()
    if method == "FLOPs proxy":
        c = budget_ms / 1e3 / b0_s
        row.update(target=f"c={c:.4f}", tol="")  # the FLOPs ratio's own 1 % tolerance: not a latency tol
        try:
            shrunk = shrink(BASELINE, c=c, rule=rule)
        except (TargetError, UnreachableTargetError, ValueError) as error:
            shrunk, row["error"] = None, str(error)
    else:
        target = f"latency={budget_ms:g}ms"
        row["target"] = target
        shrunk = None
        for tol in ("auto", RETRY_TOL):
            row["tol"] = DEFAULT_LATENCY_TOL if tol == "auto" else tol
            try:
                shrunk = shrink(BASELINE, target=target, rule=rule, meter=meter, tol=tol)
                row["error"] = ""
                break
            except (TargetError, UnreachableTargetError) as error:
                row["error"] = str(error)
                log(f"    {rule} rule, tol {row['tol']}: {error}")
    row["search_s"] = round(time.perf_counter() - start, 1)
    if shrunk is not None:
        row.update(network_fields(shrunk))
        row["cube"] = shrunk.cube
        latency_s = shrunk.extras.get("latency_s")
        row["search_latency_ms"] = "" if latency_s is None else round(latency_s * 1e3, 3)
        row["search_runs"] = int(shrunk.extras.get("latency_repeats", 0)) or ""
    return row


def reference_row(backend: str, name: str, cube) -> Dict[str, object]:
    from tinynet_core.cost import cube_cost_analytic
    from tinynet_core.cube import Cube

    cost = cube_cost_analytic(BASELINE, cube)
    c = cost.flops / cube_cost_analytic(BASELINE, Cube()).flops
    return {"backend": backend, "budget_ms": "", "method": f"reference: {name}", "rule": "", "tol": "",
            "target": "", "c": round(c, 4), "r": cube.r, "d": cube.d, "w": cube.w, "img_size": cost.img_size,
            "flops_m": round(cost.flops / 1e6, 3), "params_m": round(cost.params / 1e6, 3),
            "activations_m": round(cost.activations / 1e6, 3), "search_latency_ms": "", "search_s": "",
            "error": "", "cube": cube}


def final_measurement(backend: str, rows: List[Dict[str, object]], repeats: int) -> None:
    """Every network of the backend measured again, together: one ``LatencyMeter.remeasure`` on a meter without
    cache (only these runs count), round-robin with ``SETTLE_RUNS`` untimed runs before each timed one."""
    from timm_tinynet.latency import LatencyMeter
    from timm_tinynet.timing import SETTLE_RUNS

    measured = [row for row in rows if "cube" in row]
    items = [(BASELINE, row["cube"]) for row in measured]
    log(f"[{backend}] final measurement (LatencyMeter.remeasure): {len(measured)} networks, {repeats} timed runs "
        f"each, round-robin, {SETTLE_RUNS} untimed runs before each timed one")
    final = LatencyMeter(device="cpu", backend=backend, threads=1, batch_size=1, cache=False)
    for row, result in zip(measured, final.remeasure(items, repeats)):
        row["latency_ms"] = round(result.median_s * 1e3, 3)
        row["spread_ms"] = round(result.spread_s * 1e3, 3)
        if row["budget_ms"] != "":
            row["latency_over_budget"] = round(row["latency_ms"] / row["budget_ms"], 3)
        log(f"    {row['method']:<28} {row['rule']:<5} {row['budget_ms'] or '':>6}  {row['latency_ms']:7.3f} ms "
            f"(±{row['spread_ms']:.3f})")


def run_backend(backend: str, budgets: Optional[List[float]], repeats: int) -> List[Dict[str, object]]:
    from timm_tinynet.latency import LatencyMeter
    from tinynet_core.cube import Cube
    from tinynet_core.named import TINYNET_CUBES

    meter = LatencyMeter(device="cpu", backend=backend, threads=1, batch_size=1)
    tiny_e = TINYNET_CUBES["tinynet_e"]
    log(f"[{backend}] {meter.describe()}: measuring B0 and TinyNet-E")
    # each measured alone (as the solver's meter measures every network of its path), B0 with REFERENCE_REPEATS
    # more runs: it sets the budgets and the FLOPs proxy's c
    for cube in (Cube(), tiny_e):
        meter(BASELINE, cube)
        meter.remeasure([(BASELINE, cube)], REFERENCE_REPEATS)
    b0_s, e_s = meter(BASELINE, Cube()).median_s, meter(BASELINE, tiny_e).median_s
    log(f"[{backend}] B0 {b0_s * 1e3:.3f} ms, TinyNet-E {e_s * 1e3:.3f} ms ({e_s / b0_s:.1%} of B0)")
    if budgets is None:
        budgets = [round(f * b0_s * 1e3, 2) for f in FRACTIONS]
        log(f"[{backend}] budgets {', '.join(f'{b:g} ms' for b in budgets)} "
            f"({', '.join(f'{f:.0%}' for f in FRACTIONS)} of B0)")
    for budget in budgets:
        if not e_s * 1e3 < budget < b0_s * 1e3:
            log(f"[{backend}] note: {budget:g} ms is outside TinyNet-E..B0 ({e_s * 1e3:.2f}..{b0_s * 1e3:.2f} ms)")

    rows = [reference_row(backend, "efficientnet_b0", Cube()), reference_row(backend, "tinynet_e", tiny_e)]
    for budget in budgets:
        for method, rule in METHODS:
            log(f"[{backend}] {budget:g} ms: {method}, {rule} rule ...")
            row = solve_row(backend, budget, method, rule, meter, b0_s)
            rows.append(row)
            if row["error"]:
                log(f"    failed after {row['search_s']} s: {row['error']}")
            else:
                search = row["search_latency_ms"]
                log(f"    {row['cube']} {row['img_size']}px {row['flops_m']} MFLOPs in {row['search_s']} s"
                    + (f", search measured {search} ms over {row['search_runs']} runs" if search != "" else ""))

    machine = machine_fields()  # the load when the final measurement starts
    log(f"[{backend}] load average (1 min) {machine['load_avg_1min']}")
    final_measurement(backend, rows, repeats)
    for row in rows:
        row.pop("cube", None)
        row.update(machine)
        for field in FIELDS:
            row.setdefault(field, "")
    return rows


# ---- the sentences, computed from the rows ----------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x * 100:+.0f} %"


def _span(values: Sequence[float], fmt) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}"


def _ok(row: Dict[str, object]) -> bool:
    return not row["error"] and row.get("latency_over_budget", "") != ""


def label(row: Dict[str, object]) -> str:
    """'torch, TinyNet-E (reference)' or 'onnxruntime, latency target, giant rule, 4 ms'."""
    if row["budget_ms"] == "":
        return f"{row['backend']}, {row['method'].replace('reference: ', '')} (reference)"
    return f"{row['backend']}, {row['method']}, {row['rule']} rule, {row['budget_ms']:g} ms"


def sentences(rows: List[Dict[str, object]], backends: List[str]) -> List[str]:
    out = []
    # 1. the FLOPs proxy, per backend
    parts = []
    for backend in backends:
        proxy = [r for r in rows if r["backend"] == backend and r["method"] == "FLOPs proxy" and _ok(r)]
        if not proxy:
            continue
        ratios = [r["latency_over_budget"] - 1 for r in proxy]
        within = sum(abs(x) <= DEFAULT_LATENCY_TOL for x in ratios)
        direction = ("under" if all(x < 0 for x in ratios) else "over" if all(x > 0 for x in ratios) else "")
        words = f"{backend} {_span(ratios, _pct)}"
        if direction:
            words += f" (all {direction} budget"
            words += ")" if within == 0 else f", {within} of {len(ratios)} within 5 %)"
        else:
            words += f" ({within} of {len(ratios)} within 5 %)"
        parts.append(words)
    if parts:
        out.append("Turning the latency budget into a FLOPs ratio (c = budget / latency of B0, i.e. assuming latency "
                   "scales with FLOPs) gives tiny-rule networks whose measured latency, against the budget, is "
                   + "; ".join(parts) + ".")

    # 2. how close the latency-target networks came, in the final interleaved measurement
    target_rows = [r for r in rows if r["method"] == "latency target" and r["budget_ms"] != ""]
    ok = [r for r in target_rows if _ok(r)]
    failed = [r for r in target_rows if r["error"]]
    if ok:
        errors = [abs(r["latency_over_budget"] - 1) for r in ok]
        worst = max(ok, key=lambda r: abs(r["latency_over_budget"] - 1))
        within5 = sum(e <= 0.05 for e in errors)
        within10 = sum(e <= 0.10 for e in errors)
        text = (f"{within5} of the {len(ok)} networks solved for a latency target come within 5 % and "
                f"{within10} within 10 % of their budget in the final measurement (worst: "
                f"{label(worst)}, {_pct(worst['latency_over_budget'] - 1)})")
        retried = [r for r in ok if r["tol"] == RETRY_TOL]
        if retried:
            text += (f"; {len(retried)} were accepted only at tol={RETRY_TOL:g} (the search reported none within "
                     f"5 %)")
        if failed:
            text += (f"; {len(failed)} could not be solved even with tol={RETRY_TOL:g} (" +
                     ", ".join(f"{r['backend']} {r['rule']} {r['budget_ms']:g} ms" for r in failed) + ")")
        out.append(text + ".")
    elif failed:
        out.append(f"None of the {len(failed)} latency targets could be solved (see the error column).")

    # 3. tiny against giant at the same latency: only budgets where both measure within 5 % of it
    def on_budget(row: Dict[str, object]) -> bool:
        return _ok(row) and abs(row["latency_over_budget"] - 1) <= DEFAULT_LATENCY_TOL

    budgets = [(b, budget) for b in backends
               for budget in sorted({r["budget_ms"] for r in rows if r["backend"] == b and r["budget_ms"] != ""})]

    def pick(backend: str, budget: float, method: str, rule: str) -> Optional[Dict[str, object]]:
        found = [r for r in rows if r["backend"] == backend and r["budget_ms"] == budget and r["method"] == method
                 and r["rule"] == rule]
        return found[0] if found else None

    pairs, left_out = [], 0
    for backend, budget in budgets:
        tiny, giant = pick(backend, budget, "latency target", "tiny"), pick(backend, budget, "latency target", "giant")
        if tiny is not None and giant is not None and on_budget(tiny) and on_budget(giant):
            pairs.append((tiny, giant))
        else:
            left_out += 1
    fmt = lambda x: f"{x:.2f}x"  # noqa: E731
    if pairs:
        def ratio(key: str) -> List[float]:
            return [t[key] / g[key] for t, g in pairs]

        sizes = [t["img_size"] - g["img_size"] for t, g in pairs]
        text = (f"At equal latency ({len(pairs)} budget{'s' if len(pairs) != 1 else ''} where both rules' networks "
                f"measure within 5 % of it; tiny/giant latency {_span(ratio('latency_ms'), fmt)}), the tiny-rule "
                f"network has {_span(ratio('flops_m'), fmt)} the FLOPs (median "
                f"{statistics.median(ratio('flops_m')):.2f}x), {_span(ratio('params_m'), fmt)} the parameters and "
                f"{_span(ratio('activations_m'), fmt)} the activations of the giant-rule network, its input "
                f"{_span(sizes, lambda x: f'{x:+d}')} px against the giant network's")
        if left_out:
            text += (f" ({left_out} budget{'s' if left_out != 1 else ''} left out: a network missing or off by "
                     f"more than 5 %)")
        out.append(text + ".")

    # 4. the latency-target tiny network against the FLOPs proxy's, in FLOPs
    gains = []
    for backend, budget in budgets:
        solved, proxy = pick(backend, budget, "latency target", "tiny"), pick(backend, budget, "FLOPs proxy", "tiny")
        if solved is not None and proxy is not None and on_budget(solved) and _ok(proxy):
            gains.append(solved["flops_m"] / proxy["flops_m"])
    if gains:
        out.append(f"Where the tiny rule's latency-target network is within 5 % of its budget ({len(gains)} "
                   f"budget{'s' if len(gains) != 1 else ''}), it has {_span(gains, fmt)} the FLOPs of the "
                   f"FLOPs-proxy network for the same budget: on this CPU a latency budget buys "
                   f"{'fewer' if max(gains) < 1 else 'more' if min(gains) > 1 else 'different'} FLOPs than the "
                   f"proportional rule suggests.")

    # 5. what it does not show
    machines = sorted({f"{r['cpu']}, {r['cores']} cores" for r in rows})
    loads = ", ".join(f"{b} {next(r['load_avg_1min'] for r in rows if r['backend'] == b)}" for b in backends)
    out.append("What the table does not show: accuracy (nothing here is trained, so whether the tiny or the giant "
               "network is better at equal latency is not measured); other machines (one: " + "; ".join(machines)
               + f", shared, 1-minute load average {loads} before the final measurements); and other settings "
               "(latency is the median of warm runs, 1 thread, batch 1, weights and inputs already in memory).")
    return out


def markdown(rows: List[Dict[str, object]], backends: List[str], repeats: int, run_s: float) -> str:
    from timm_tinynet.timing import SETTLE_RUNS

    lines = ["| backend | budget ms | method | rule | tol | r | d | w | input | MFLOPs | M params | M activations | "
             "latency ms (spread) | latency / budget |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        budget = "" if r["budget_ms"] == "" else f"{r['budget_ms']:g}"
        if r["error"]:
            lines.append(f"| {r['backend']} | {budget} | {r['method']} | {r['rule']} | {r['tol']} | "
                         f"| | | | | | | failed: {r['error']} | |")
            continue
        size = f"{r['img_size']}px"
        latency = f"{r['latency_ms']:.3f} (±{r['spread_ms']:.3f})"
        over = "" if r["latency_over_budget"] == "" else f"{r['latency_over_budget']:.3f}"
        lines.append(f"| {r['backend']} | {budget} | {r['method']} | {r['rule']} | {r['tol']} | {r['r']:g} | "
                     f"{r['d']:g} | {r['w']:g} | {size} | {r['flops_m']:.3f} | {r['params_m']:.3f} | "
                     f"{r['activations_m']:.3f} | {latency} | {over} |")
    first = rows[0]
    loads = ", ".join(f"{b} {next(r['load_avg_1min'] for r in rows if r['backend'] == b)}" for b in backends)
    lines.append("")
    lines.append(f"{first['date']}, {first['cpu']}, {first['cores']} cores, torch {first['torch']}, "
                 f"Python {first['python']}; 1 thread, batch 1. Latency: after the searches, all networks of a "
                 f"backend are measured again together (LatencyMeter.remeasure, without cache), {repeats} timed "
                 f"runs each, round-robin, each timed run preceded by {SETTLE_RUNS} untimed runs of the same network "
                 f"(the steady state in which the solver measured each network of its path); glibc's allocator is "
                 f"settled once per process before any timing (timing.settle_allocator). Median; spread = half the "
                 f"p10-p90 range. Load average (1 min) before those measurements: {loads}. tol: the latency "
                 f"tolerance the search was given (the FLOPs proxy is a FLOPs ratio, solved to 1 % in FLOPs). "
                 f"Whole run: {run_s / 60:.1f} min.")
    lines.append("")
    lines.extend(sentences(rows, backends))
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: torch,onnxruntime")
    parser.add_argument("--budgets-torch", help="ms, comma-separated (default: 25,45,65 %% of B0's latency)")
    parser.add_argument("--budgets-ort", help="ms, comma-separated, for onnxruntime (default as for torch)")
    parser.add_argument("--repeats", type=int, default=60, help="runs per network in the final measurement")
    parser.add_argument("--out-dir", type=Path, default=Path("results"))
    parser.add_argument("--cache-dir", type=Path, help="the meter's cache folder (default: a fresh temporary one)")
    args = parser.parse_args()
    backends = parse_backends(args.backends)
    budgets = {"torch": parse_budgets(args.budgets_torch), "onnxruntime": parse_budgets(args.budgets_ort)}
    if args.repeats < 3:
        raise SystemExit("--repeats must be at least 3")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinynet-latency-") as scratch:
        cache = args.cache_dir if args.cache_dir is not None else Path(scratch)
        os.environ["TINYNET_CACHE_DIR"] = str(cache.resolve())
        log(f"cache folder: {os.environ['TINYNET_CACHE_DIR']}")
        rows: List[Dict[str, object]] = []
        for backend in backends:
            rows.extend(run_backend(backend, budgets[backend], args.repeats))
    run_s = time.perf_counter() - start

    args.out_dir.mkdir(parents=True, exist_ok=True)
    machine_keys = [key for key in rows[0] if key not in FIELDS]
    with open(args.out_dir / "latency_targets.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(FIELDS) + machine_keys)
        writer.writeheader()
        writer.writerows(rows)
    text = markdown(rows, backends, args.repeats, run_s)
    (args.out_dir / "latency_targets.md").write_text(text)
    log(text)
    log(f"wrote {args.out_dir / 'latency_targets.csv'} and {args.out_dir / 'latency_targets.md'} "
        f"in {run_s / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
