"""Speed and peak memory of the aggregations on power-law in-degrees, against PyG's classes.

Each (aggregation, graph) pair runs in its own subprocess (one thread): the peak-memory figure is
the growth of the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``
just before; ``getrusage`` where that is not writable) over its resident set just before one
forward + backward pass, so it covers every tensor that pass allocates, autograd's saved tensors
included. ``graphlab GNP (fused)`` compiles its kernels (``torch.compile``) in its first call: that
call's time is reported in the row's note, and memory and time are measured after it. The time is
the median of
``torch.utils.benchmark.Timer(..., timer=time.process_time).blocked_autorange()`` over
forward + backward (process CPU time: the 2-core machine is shared, so wall time would mostly
measure the other tenants; a step over 2 s, i.e. PyG's padded classes, is timed by its first
run alone). Inputs are sorted
by index (PyG's LCM and LSTM need that); 32 channels.

PyG's ``LCMAggregation`` and ``LSTMAggregation`` pad to ``[nodes, max degree, channels]``: on the
100,000-node graph with maximum degree 2,000 the padded input alone is 25.6 GB, so they are not run
there (the machine has 23 GB).

    python -m benchmarks.aggr_speed [--quick] [--out benchmarks/results] [--rerun gnp]
    python -m benchmarks.aggr_speed --floor [--graphs 10k,100k]   # GNP's unavoidable passes
    python -m benchmarks.aggr_speed --ab [--graphs 10k,100k] [--rounds 5] [--p 2]   # GNP A/B
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

import torch

from graphlab.bench import register

CHANNELS = 32
#: name -> (nodes, target edges, max degree)
GRAPHS = {"2k": (2_000, 5_000, 50), "10k": (10_000, 25_000, 200),
          "100k": (100_000, 250_000, 2_000)}
#: aggregation -> (group, baseline of that group)
METHODS = {
    "graphlab LCM": ("lcm", "PyG LCM"),
    "PyG LCM": ("lcm", "PyG LCM"),
    "graphlab Recurrent (LSTM)": ("recurrent", "PyG LSTM"),
    "PyG LSTM": ("recurrent", "PyG LSTM"),
    "graphlab GNP": ("gnp", "PyG Sum"),
    "graphlab GNP (fused)": ("gnp", "PyG Sum"),
    "PyG PowerMean": ("gnp", "PyG Sum"),
    "PyG Sum": ("gnp", "PyG Sum"),
}
PADDING = {"PyG LCM", "PyG LSTM"}
#: compiled in their first call: timed and memory-measured after it
COMPILED = {"graphlab GNP (fused)"}
PAPER = {"PyG LCM": "issue: ~3 s, ~3 GB on 10k; OOM on 100k"}


def power_law_index(num_nodes: int, num_edges: int, max_degree: int, seed: int = 0) -> torch.Tensor:
    """Sorted target index with Pareto(1.5)-tailed in-degrees, one node of ``max_degree``."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(num_nodes, generator=gen)
    deg = (u.pow(-1 / 1.5)).floor().clamp(max=max_degree)  # P(d) ~ d^-2.5, mean ~2.5
    deg = (deg * num_edges / deg.sum()).round().long().clamp(max=max_degree)
    deg[0] = max_degree
    return torch.repeat_interleave(torch.arange(num_nodes), deg)


def build(method: str):
    from torch_geometric.nn import aggr as pyg

    from graphlab.aggr import GNPAggregation, LCMAggregation, RecurrentAggregation

    return {
        "graphlab LCM": lambda: LCMAggregation(CHANNELS, CHANNELS),
        "PyG LCM": lambda: pyg.LCMAggregation(CHANNELS, CHANNELS),
        "graphlab Recurrent (LSTM)": lambda: RecurrentAggregation(CHANNELS, CHANNELS),
        "PyG LSTM": lambda: pyg.LSTMAggregation(CHANNELS, CHANNELS),
        "graphlab GNP": lambda: GNPAggregation(CHANNELS, p=2.0, q=0.5),
        "graphlab GNP (fused)": lambda: GNPAggregation(CHANNELS, p=2.0, q=0.5, fused=True),
        "PyG PowerMean": lambda: pyg.PowerMeanAggregation(p=2.0, learn=True, channels=CHANNELS),
        "PyG Sum": lambda: pyg.SumAggregation(),
    }[method]()


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def _reset_peak() -> bool:
    """Reset the process's peak resident set (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_kb(reset: bool) -> int:
    if reset:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(method: str, graph: str, min_run_time: float, memory: bool = True) -> dict:
    """One measurement in a fresh process (called through ``--worker``)."""
    from torch.utils.benchmark import Timer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    nodes, edges, max_deg = GRAPHS[graph]
    index = power_law_index(nodes, edges, max_deg)
    x = torch.randn(index.numel(), CHANNELS, requires_grad=True)
    module = build(method)

    def step() -> None:
        out = module(x, index, dim_size=nodes)
        out.sum().backward()

    start = time.process_time()
    if method in COMPILED:
        step()  # compiles
    compile_s = time.process_time() - start
    before = _rss_kb()
    reset = _reset_peak()
    start = time.process_time()
    step()
    first = time.process_time() - start
    peak_mb = (_peak_kb(reset) - before) / 1024
    # CPU time of this (single-threaded) process: the machine is shared, and wall time would
    # mostly measure the other tenants
    timer = Timer("step()", globals={"step": step}, timer=time.process_time)
    if first > 2.0:  # PyG's padded classes: the first run is all the time budget allows
        median = first
    else:
        median = timer.blocked_autorange(min_run_time=min_run_time).median
    res = {"edges": int(index.numel()), "time_s": median,
           "peak_mb": peak_mb if memory else float("nan")}
    if method in COMPILED:
        res["note"] = f"first call (compiles) {compile_s:.1f} s CPU, not in the time"
    return res


def _measure(method: str, graph: str, min_run_time: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.aggr_speed", "--worker", method, graph,
           str(min_run_time)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def primitive_floor(graph: str, min_run_time: float = 0.5) -> list[dict]:
    """CPU time of the passes no eager implementation of the stable, signed GNP can skip, next
    to PyG's sum fwd+bwd on the same graph: one log per entry and channel, one exp per entry and
    branch ([E, 2C]), one sum scatter and one gather of [E, 2C], one log and one exp per segment
    and branch ([N, 2C]). Everything else GNP does is elementwise passes on top of these."""
    from torch.utils.benchmark import Timer
    from torch_geometric.nn import aggr as pyg

    torch.set_num_threads(1)
    nodes, edges, max_deg = GRAPHS[graph]
    index = power_law_index(nodes, edges, max_deg)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(index.numel(), CHANNELS, generator=gen, requires_grad=True)
    narrow = torch.rand(index.numel(), CHANNELS, generator=gen) + 0.5
    wide = torch.rand(index.numel(), 2 * CHANNELS, generator=gen) + 0.5
    per_node = torch.rand(nodes, 2 * CHANNELS, generator=gen) + 0.5
    # preallocated outputs: the floor counts arithmetic and memory traffic, not page faults
    out_n, out_w, out_node = torch.empty_like(narrow), torch.empty_like(wide), torch.empty_like(per_node)
    total = torch.zeros(nodes, 2 * CHANNELS)
    sum_aggr = pyg.SumAggregation()
    cases = {
        "PyG Sum fwd+bwd": lambda: sum_aggr(x, index, dim_size=nodes).sum().backward(),
        "log [E, C]": lambda: torch.log(narrow, out=out_n),
        "exp [E, 2C]": lambda: torch.exp(wide, out=out_w),
        "sum scatter [E, 2C]": lambda: total.zero_().index_add_(0, index, wide),
        "gather [E, 2C] (backward)": lambda: torch.index_select(per_node, 0, index, out=out_w),
        "log + exp [N, 2C]": lambda: torch.log(per_node, out=out_node).exp_(),
    }
    times = {name: Timer("fn()", globals={"fn": fn}, timer=time.process_time)
             .blocked_autorange(min_run_time=min_run_time).median for name, fn in cases.items()}
    base = times.pop("PyG Sum fwd+bwd")
    rows = [{"graph": graph, "pass": name, "ms": round(1e3 * t, 2), "x sum": round(t / base, 2)}
            for name, t in times.items()]
    floor = sum(times.values())
    return rows + [{"graph": graph, "pass": "floor (all of the above)", "ms": round(1e3 * floor, 2),
                    "x sum": round(floor / base, 2)},
                   {"graph": graph, "pass": "PyG Sum fwd+bwd", "ms": round(1e3 * base, 2),
                    "x sum": 1.0}]


def interleaved_ab(graph: str, rounds: int, min_run_time: float = 0.5, p: float = 2.0) -> list[dict]:
    """PyG Sum, the eager and the fused GNP (exponent ``p``; 2 as in the table, 50 takes the exact
    per-segment shift) in one single-threaded process, timed one after the other in each round
    (``blocked_autorange``, process CPU time), so that all three see the same load; per method the
    median over rounds and the range, and the per-round ratio to Sum."""
    import os
    import statistics

    from torch.utils.benchmark import Timer

    from graphlab.aggr import GNPAggregation, gnp

    torch.set_num_threads(1)
    torch.manual_seed(0)
    nodes, edges, max_deg = GRAPHS[graph]
    index = power_law_index(nodes, edges, max_deg)
    x = torch.randn(index.numel(), CHANNELS, requires_grad=True)
    methods = ["PyG Sum", "graphlab GNP", "graphlab GNP (fused)"]
    modules = {"PyG Sum": build("PyG Sum"), "graphlab GNP": GNPAggregation(CHANNELS, p=p, q=0.5),
               "graphlab GNP (fused)": GNPAggregation(CHANNELS, p=p, q=0.5, fused=True)}

    def step(module) -> None:
        module(x, index, dim_size=nodes).sum().backward()

    start = time.process_time()
    step(modules["graphlab GNP (fused)"])  # compiles (or loads the compiled code from the cache)
    compile_s = time.process_time() - start
    exact = not gnp.shift_plan(x.detach(), abs(p), modules["graphlab GNP"].eps)[1]
    load = os.getloadavg()[0]
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:
            timer = Timer("step(m)", globals={"step": step, "m": modules[m]}, timer=time.process_time)
            times[m].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    rows = []
    for m in methods:
        ratios = [t / s for t, s in zip(times[m], times["PyG Sum"])]
        rows.append({"graph": graph, "aggregation": m, "p": p, "rounds": rounds,
                     "median ms": round(1e3 * statistics.median(times[m]), 2),
                     "min-max ms": f"{1e3 * min(times[m]):.2f}-{1e3 * max(times[m]):.2f}",
                     "x sum (median)": round(statistics.median(ratios), 2),
                     "x sum (min-max)": f"{min(ratios):.2f}-{max(ratios):.2f}"})
    rows[-1]["note"] = (f"{'exact per-segment' if exact else 'per-channel'} shift; first call "
                        f"(compiles) {compile_s:.1f} s CPU; load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    return rows


@register("aggr-speed", "LCM / recurrent / GNP speed and memory vs PyG on power-law degrees")
def run(quick: bool, out: Path, graphs: list[str] | None = None,
        rerun: list[str] | None = None) -> list[dict]:
    """Measure every (aggregation, graph) case; with ``rerun`` (groups such as ``["gnp"]``), only
    those groups' cases are measured again and the other rows are kept from ``aggr_speed.json``
    (each row records when it was measured)."""
    from tqdm import tqdm

    graphs = graphs or (["2k"] if quick else ["10k", "100k"])
    min_run_time = 0.2 if quick else 0.5
    jobs = [(m, g) for g in graphs for m in METHODS]
    results: dict[tuple[str, str], dict] = {}
    if rerun:
        for row in json.loads((out / "aggr_speed.json").read_text()):
            if METHODS[row["aggregation"]][0] not in rerun and "fwd+bwd ms" in row:
                results[row["aggregation"], row["graph"]] = {
                    "edges": row["edges"], "time_s": row["fwd+bwd ms"] / 1e3,
                    "peak_mb": row["peak MB"], "measured": row.get("measured", ""),
                    "note": row.get("note", "")}
    todo = []
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for method, graph in jobs:
        if (method, graph) in results:
            continue
        if graph == "100k" and method in PADDING:
            results[method, graph] = {"skipped": "not run: pads to [nodes, max degree, C] = "
                                                 "25.6 GB for the input alone"}
        else:
            todo.append((method, graph))
    if quick:
        # quick mode (the demo) measures time in-process: starting one interpreter per case costs
        # more than the measurements; the full run isolates each case to read its peak memory
        for method, graph in tqdm(todo, desc="aggr-speed"):
            results[method, graph] = worker(method, graph, min_run_time, memory=False)
    else:
        # each case is its own single-threaded process, one after the other (the machine is
        # shared; CPU time is measured per process)
        with ThreadPoolExecutor(max_workers=1) as pool:
            futures = {pool.submit(_measure, m, g, min_run_time): (m, g) for m, g in todo}
            for fut in tqdm(as_completed(futures), total=len(futures), desc="aggr-speed"):
                results[futures[fut]] = fut.result()
                print(json.dumps({" / ".join(futures[fut]): results[futures[fut]]}), flush=True)
    rows = []
    for method, graph in jobs:
        res = results[method, graph]
        group, base = METHODS[method]
        row = {"graph": graph, "aggregation": method, "baseline": base}
        if "time_s" in res:
            row |= {"edges": res["edges"], "fwd+bwd ms": round(1e3 * res["time_s"], 2),
                    "peak MB": round(res["peak_mb"], 1), "measured": res.get("measured", now)}
            ref = results.get((base, graph), {})
            if "time_s" in ref:
                row["time / baseline"] = round(res["time_s"] / ref["time_s"], 3)
                row["baseline / time"] = round(ref["time_s"] / res["time_s"], 1)
            if res.get("note"):
                row["note"] = res["note"]
        else:
            row["note"] = res.get("skipped") or res.get("error")
        if method in PAPER:
            row["paper"] = PAPER[method]
        rows.append(row)
    if not quick:
        out.mkdir(parents=True, exist_ok=True)
        (out / "aggr_speed.json").write_text(json.dumps(rows, indent=2))
    return rows


def _write_markdown(rows: list[dict], path: Path, command: str) -> None:
    from graphlab.cli import format_table

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # the notes below the table are written by hand: keep them
    notes = path.read_text().partition("\nNotes\n") if path.exists() else ("", "", "")
    path.write_text(f"# aggr-speed\n\n`{command}`, {date}, machine: 2-core CPU (shared), torch 2.13 "
                    f"CPU, one thread per measurement (column `measured`: when each row was "
                    f"measured).\n\n```\n{format_table(rows)}\n```\n" + "".join(notes[1:]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        method, graph, mrt = sys.argv[2], sys.argv[3], float(sys.argv[4])
        print(json.dumps(worker(method, graph, mrt)))
        return
    from graphlab.cli import format_table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--graphs", default=None, help="comma-separated subset of " + ",".join(GRAPHS))
    parser.add_argument("--floor", action="store_true",
                        help="time the passes GNP cannot skip against PyG sum (see primitive_floor)")
    parser.add_argument("--ab", action="store_true",
                        help="same-process interleaved timing of PyG Sum and the eager and fused GNP")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --ab")
    parser.add_argument("--p", type=float, default=2.0, help="GNP exponent of --ab")
    parser.add_argument("--rerun", default=None,
                        help="comma-separated groups (lcm, recurrent, gnp) to measure again; the "
                             "other rows are kept from aggr_speed.json")
    args = parser.parse_args()
    if args.floor:
        print(format_table([row for g in (args.graphs or "10k").split(",")
                            for row in primitive_floor(g)]))
        return
    out = Path(args.out)
    if args.ab:
        rows = [row for g in (args.graphs or "10k,100k").split(",")
                for row in interleaved_ab(g, args.rounds, p=args.p)]
        print(format_table(rows))
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        name = "aggr_speed_ab.json" if args.p == 2.0 else f"aggr_speed_ab_p{args.p:g}.json"
        (out / name).write_text(json.dumps(
            {"command": "python -m benchmarks.aggr_speed " + " ".join(sys.argv[1:]), "date": date,
             "rows": rows}, indent=2))
        return
    rerun = args.rerun.split(",") if args.rerun else None
    rows = run(args.quick, out, args.graphs.split(",") if args.graphs else None, rerun)
    print(format_table(rows))
    if not args.quick:
        _write_markdown(rows, out / "aggr_speed.md", "python -m benchmarks.aggr_speed"
                        + (f" --rerun {args.rerun}" if rerun else ""))


if __name__ == "__main__":
    main()
