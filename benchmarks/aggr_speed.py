"""Speed and peak memory of the aggregations on power-law in-degrees, against PyG's classes.

Each (aggregation, graph) pair runs in its own subprocess (one thread) through
:func:`benchmarks.common.measure.measure_in_subprocess`: the peak-memory figure is the growth of
the process's peak resident set over one forward + backward pass, so it covers every tensor that
pass allocates, autograd's saved tensors included. ``graphlab GNP (fused)`` compiles its kernels
(``torch.compile``) in its first call: that call's time is reported in the row's note, and memory
and time are measured after it. The time is the median CPU time of forward + backward
(:func:`benchmarks.common.measure.cpu_time`; a step over 2 s, i.e. PyG's padded classes, is timed
by its first run alone). Inputs are sorted by index (PyG's LCM and LSTM need that); 32 channels.

PyG's ``LCMAggregation`` and ``LSTMAggregation`` pad to ``[nodes, max degree, channels]``: on the
100,000-node graph with maximum degree 2,000 the padded input alone is 25.6 GB, so they are not run
there (the machine has 23 GB).

Issue 21's rows (``bench = "interleaved vs anchor and sum"``, also :func:`anchor_rows` for the
combined anchor table): graphlab's LCM (eager, and ``fused=True``: compiled in the warm-up call
before the rounds), its recurrent aggregation, PyG's padded classes and PyG's
``SumAggregation`` timed one after the other in each of 7 rounds of one process on the 10k graph
(max degree 200), the 100k graph with max degree 20 and the 100k graph with max degree 2,000:
median and range of the per-round ratios to the anchor (``ratio_*``) and to Sum (``vs_sum``),
peak-memory ratio to the anchor from fresh processes, and the exponent of time against edges
fitted on 125k-1M edges (``scaling`` rows; Sum's exponent beside it).

    python -m benchmarks.aggr_speed [--quick] [--out runs/aggr_speed]
    python -m benchmarks.aggr_speed --floor [--graphs 10k,100k]   # GNP's unavoidable passes
    python -m benchmarks.aggr_speed --ab [--graphs 10k,100k] [--rounds 5] [--p 2]   # GNP A/B
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import TaskResult, format_table, register, run_script
from benchmarks.common.figures import bar_chart
from benchmarks.common.measure import cpu_time, measure_in_subprocess

CHANNELS = 32
#: name -> (nodes, target edges, max degree)
GRAPHS = {"2k": (2_000, 5_000, 50), "10k": (10_000, 25_000, 200),
          "100k-d20": (100_000, 250_000, 20), "100k": (100_000, 250_000, 2_000)}
#: issue 21's workloads for the interleaved comparison (quick: the 2k graph)
SUM_FLOOR_GRAPHS = ["10k", "100k-d20", "100k"]
#: nodes of the scaling series (2.5 edges per node, max degree 200): ~125k to 1M edges
SCALING_NODES = [50_000, 100_000, 200_000, 400_000]
QUICK_SCALING_NODES = [4_000, 8_000, 16_000]
#: ours -> its padded PyG anchor
#: (LCMAggregation(fused=True) runs these same eager passes on the CPU: no row of its own)
ANCHORS = {"graphlab LCM": "PyG LCM",
           "graphlab Recurrent (LSTM)": "PyG LSTM"}
ANCHOR_NAMES = {"PyG LCM": "PyG LCMAggregation (padded)",
                "PyG LSTM": "PyG LSTMAggregation (padded)"}
#: padded input [nodes, max degree, C] above this many floats is not run (25.6 GB on 100k)
PADDED_LIMIT = 200_000_000
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


def make_step(method: str, graph: str):
    """One forward + backward of ``method`` on ``graph`` (the factory the measurement calls)."""
    torch.manual_seed(0)
    nodes, edges, max_deg = GRAPHS[graph]
    index = power_law_index(nodes, edges, max_deg)
    x = torch.randn(index.numel(), CHANNELS, requires_grad=True)
    module = build(method)

    def step() -> None:
        module(x, index, dim_size=nodes).sum().backward()

    return step


def measure(method: str, graph: str, min_run_time: float, memory: bool = True) -> dict:
    """Time (and, with ``memory``, peak memory in a fresh process) of one method on one graph."""
    if memory:
        res = measure_in_subprocess("benchmarks.aggr_speed:make_step",
                                    {"method": method, "graph": graph},
                                    warmup=method in COMPILED, min_run_time=min_run_time,
                                    slow_s=2.0)
    else:  # in-process: time only (quick mode)
        torch.set_num_threads(1)
        step = make_step(method, graph)
        start = time.process_time()
        if method in COMPILED:
            step()
        res = {"warmup_s": time.process_time() - start,
               "time_s": cpu_time(step, min_run_time, slow_s=2.0), "peak_mb": float("nan")}
    if "error" not in res:
        res["edges"] = int(power_law_index(*GRAPHS[graph]).numel())
        if method in COMPILED:
            res["note"] = f"first call (compiles) {res['warmup_s']:.1f} s CPU, not in the time"
    return res


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


def _fit_exponent(edges: list[int], times: list[float]) -> float:
    """Least-squares slope of log(time) against log(edges)."""
    xs, ys = [math.log(e) for e in edges], [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _step(module, x: torch.Tensor, index: torch.Tensor, nodes: int):
    def step() -> None:
        module(x, index, dim_size=nodes).sum().backward()
    return step


def _padded_too_large(method: str, nodes: int, max_deg: int) -> bool:
    return method in PADDING and nodes * max_deg * CHANNELS > PADDED_LIMIT


def interleaved_times(graph: tuple[int, int, int], methods: list[str], rounds: int,
                      min_run_time: float) -> dict[str, list[float]]:
    """CPU seconds of fwd+bwd per method and round, the methods timed one after the other in
    every round of one single-threaded process (so they see the same load); a step over 2 s is
    timed by one call."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    nodes, edges, max_deg = graph
    index = power_law_index(nodes, edges, max_deg)
    x = torch.randn(index.numel(), CHANNELS, requires_grad=True)
    steps = {m: _step(build(m), x, index, nodes) for m in methods}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(rounds):
        for m in methods:
            times[m].append(cpu_time(steps[m], min_run_time, slow_s=2.0))
    return times


def scaling_exponents(nodes_list: list[int], rounds: int, min_run_time: float
                      ) -> tuple[dict[str, float], list[dict]]:
    """Fitted exponent of time against edges (2.5 edges per node, max degree 200) for PyG Sum
    and ours, with the per-size rows."""
    methods = ["PyG Sum", *ANCHORS]
    per_size, edges = [], []
    for nodes in nodes_list:
        graph = (nodes, int(2.5 * nodes), 200)
        edges.append(int(power_law_index(*graph).numel()))
        per_size.append({m: statistics.median(t) for m, t in
                         interleaved_times(graph, methods, rounds, min_run_time).items()})
    exponents = {m: round(_fit_exponent(edges, [t[m] for t in per_size]), 3) for m in methods}
    rows = [{"bench": "scaling", "graph": f"{n} nodes", "edges": e,
             **{f"{m} ms": round(1e3 * t[m], 2) for m in methods}}
            for n, e, t in zip(nodes_list, edges, per_size)]
    return exponents, rows


def anchor_rows(quick: bool) -> list[dict]:
    """The rows of :func:`floor_rows` without the per-size scaling rows (for the combined
    anchor table)."""
    return floor_rows(quick)[0]


def floor_rows(quick: bool) -> tuple[list[dict], list[dict]]:
    """graphlab's LCM and recurrent aggregation against PyG's padded classes and PyG Sum on
    issue 21's workloads (quick: the 2k graph): interleaved rounds in one process (median and
    range of the per-round ratios), peak-memory ratio from fresh processes (full run only),
    ``vs_sum`` = ours / PyG Sum and ``exponent`` = ours' time against edges up to ~1M edges
    (quick: up to 40k). No side effects beyond the measurements."""
    rounds, min_run_time = (3, 0.1) if quick else (7, 0.5)
    graphs = ["2k"] if quick else SUM_FLOOR_GRAPHS
    exponents, scaling = scaling_exponents(QUICK_SCALING_NODES if quick else SCALING_NODES,
                                     1 if quick else 3, min_run_time)
    rows = []
    for graph in graphs:
        nodes, _, max_deg = GRAPHS[graph]
        methods = ["PyG Sum", *ANCHORS]
        methods += list(dict.fromkeys(a for a in ANCHORS.values()
                                      if not _padded_too_large(a, nodes, max_deg)))
        times = interleaved_times(GRAPHS[graph], methods, rounds, min_run_time)
        for ours, anchor in ANCHORS.items():
            vs_sum = [t / s for t, s in zip(times[ours], times["PyG Sum"])]
            row = {"graph": graph, "method": ours.removeprefix("graphlab "),
                   "workload": f"{ours.removeprefix('graphlab ')} fwd+bwd, {graph} "
                               f"({nodes} nodes, max degree {max_deg})",
                   "graphlab_ms": round(1e3 * statistics.median(times[ours]), 2),
                   "anchor": ANCHOR_NAMES[anchor], "anchor_ms": None, "ratio_median": None,
                   "ratio_min": None, "ratio_max": None, "memory_ratio": None,
                   "vs_sum": round(statistics.median(vs_sum), 2),
                   "vs_sum_range": f"{min(vs_sum):.2f}-{max(vs_sum):.2f}",
                   "exponent": exponents[ours], "sum_exponent": exponents["PyG Sum"]}
            if anchor in times:
                ratios = [t / a for t, a in zip(times[ours], times[anchor])]
                row |= {"anchor_ms": round(1e3 * statistics.median(times[anchor]), 2),
                        "ratio_median": round(statistics.median(ratios), 4),
                        "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4)}
                if not quick:
                    mem = {m: measure_in_subprocess("benchmarks.aggr_speed:make_step",
                                                    {"method": m, "graph": graph})
                           for m in (ours, anchor)}
                    if all("peak_mb" in r and r["peak_mb"] > 0 for r in mem.values()):
                        row["memory_ratio"] = round(mem[ours]["peak_mb"] / mem[anchor]["peak_mb"], 4)
            else:
                row["note"] = (f"{anchor} not run: pads to [nodes, max degree, C] = "
                               f"{4 * nodes * max_deg * CHANNELS / 1e9:.1f} GB for the input alone")
            rows.append(row)
    return rows, scaling


NOTES = ("Separate-process rows: one process per (aggregation, graph), one thread; peak MB = "
         "growth of the peak resident set over one forward + backward pass. A/B rows: PyG Sum and "
         "the eager and fused GNP timed one after the other in each round of one process, so all "
         "three see the same load; median over rounds and the per-round ratio to Sum. Times are "
         "process CPU time (the machine is shared).")


@register("aggr-speed", "LCM / recurrent / GNP speed and memory vs PyG on power-law degrees",
          paper="PyG issue on LCMAggregation memory; Ong & Velickovic 2022; Ko et al. 2021")
def run(quick: bool, out: Path, graphs: list[str] | None = None, ab_rounds: int = 9) -> TaskResult:
    """Measure every (aggregation, graph) case in its own process (quick: in-process, time
    only), then (full run) the same-process A/B of GNP against PyG Sum."""
    from tqdm import tqdm

    graphs = graphs or (["2k"] if quick else ["10k", "100k"])
    min_run_time = 0.2 if quick else 0.5
    jobs = [(m, g) for g in graphs for m in METHODS]
    results: dict[tuple[str, str], dict] = {}
    for method, graph in tqdm(jobs, desc="aggr-speed"):
        if _padded_too_large(method, *GRAPHS[graph][::2]):
            results[method, graph] = {"skipped": "not run: pads to [nodes, max degree, C] = "
                                                 "25.6 GB for the input alone"}
        else:
            # quick mode (the demo) times in-process: starting one interpreter per case costs
            # more than the measurements; the full run isolates each case to read its memory
            results[method, graph] = measure(method, graph, min_run_time, memory=not quick)
    rows = []
    for method, graph in jobs:
        res = results[method, graph]
        _, base = METHODS[method]
        row = {"bench": "in-process" if quick else "separate processes", "graph": graph,
               "aggregation": method,
               "baseline": base}
        if "time_s" in res:
            row |= {"edges": res["edges"], "fwd+bwd ms": round(1e3 * res["time_s"], 2),
                    "peak MB": round(res["peak_mb"], 1)}
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
    floor, scaling = floor_rows(quick)  # LCM / recurrent against the anchors and the sum floor
    rows += [{"bench": "interleaved vs anchor and sum", **r} for r in floor] + scaling
    if not quick:  # the GNP headline: same-process A/B against PyG Sum
        rows += [{"bench": "A/B same process", **r} for g in graphs
                 for r in interleaved_ab(g, ab_rounds, min_run_time)]
    figure = bar_chart(out / "aggr-speed.png", graphs,
                       {m: [1e3 * results[m, g].get("time_s", float("nan")) for g in graphs]
                        for m in METHODS},
                       ylabel="forward + backward CPU ms (log)", log=True,
                       title="Aggregations on power-law in-degrees")
    return TaskResult(rows, paper=PAPER["PyG LCM"], ours=_headline(rows), notes=NOTES,
                      figures=[figure] if figure else [],
                      config={"graphs": graphs, "channels": CHANNELS,
                              "min_run_time": min_run_time, "ab_rounds": ab_rounds})


def _headline(rows: list[dict]) -> str:
    """graphlab LCM vs PyG LCM on the largest graph both ran, and the fused GNP vs Sum."""
    parts = []
    for ours, base in (("graphlab LCM", "PyG LCM"), ("graphlab GNP (fused)", "PyG Sum")):
        pair = [r for r in rows if r.get("aggregation") == ours
                and r["bench"] != "A/B same process" and "baseline / time" in r]
        if pair:
            r = pair[-1]
            parts.append(f"{ours} {r['fwd+bwd ms']:.4g} ms vs {base} "
                         f"{r['fwd+bwd ms'] * r['baseline / time']:.4g} ms ({r['graph']})")
    ab = [r for r in rows if r["bench"] == "A/B same process"
          and r.get("aggregation") == "graphlab GNP (fused)"]
    if ab:
        parts.append("A/B fused GNP " + ", ".join(f"{r['x sum (median)']}x sum ({r['graph']})"
                                                  for r in ab))
    floor = [r for r in rows if r["bench"] == "interleaved vs anchor and sum"]
    if floor:
        parts.append("vs PyG Sum " + ", ".join(f"{r['method']} {r['vs_sum']}x ({r['graph']})"
                                                for r in floor))
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/aggr_speed"))
    parser.add_argument("--graphs", default=None, help="comma-separated subset of " + ",".join(GRAPHS))
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the A/B timing")
    parser.add_argument("--floor", action="store_true",
                        help="only time the passes GNP cannot skip against PyG sum "
                             "(see primitive_floor)")
    parser.add_argument("--ab", action="store_true",
                        help="only the same-process interleaved timing of PyG Sum and the eager "
                             "and fused GNP")
    parser.add_argument("--p", type=float, default=2.0, help="GNP exponent of --ab")
    args = parser.parse_args(argv)
    graphs = args.graphs.split(",") if args.graphs else None
    if args.floor:  # diagnostics, printed only
        print(format_table([row for g in graphs or ["10k"] for row in primitive_floor(g)]))
        return 0
    if args.ab:
        print(format_table([row for g in graphs or ["10k", "100k"]
                            for row in interleaved_ab(g, args.rounds, p=args.p)]))
        return 0
    return run_script("aggr-speed", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, graphs, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
