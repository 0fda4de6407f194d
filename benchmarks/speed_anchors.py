"""One speed table against the anchors themselves: the authors' code and published packages.

Every speed script that has anchors exposes ``anchor_rows(quick) -> list[dict]`` (keys
``workload, graphlab_ms, anchor, anchor_ms, ratio_median, ratio_min, ratio_max, memory_ratio``,
plus extras such as ``exponent``); this task calls each of them and composes one table:

* ``egnn_speed``: ``EGNNConv`` vs the authors' ``E_GCL`` and ``egnn_pytorch.EGNN_Sparse``;
* ``prmpnn_speed``: ``k_subset_marginals`` vs the authors' SIMPLE circuit (PR-MPNN);
* ``sheaf_speed``: sheaf diffusion vs the authors' ``Discrete*SheafDiffusion``;
* ``pathnn_speed``: path enumeration vs the authors' igraph code (PathNNs_expressive);
* ``aggr_speed``: LCM / recurrent aggregation vs PyG's classes and ``SumAggregation``;
* here: the fused GNP aggregation vs PyG's ``PowerMeanAggregation`` and ``SumAggregation``
  (unless ``aggr_speed`` already has GNP rows).

Ratios are graphlab / anchor per round of interleaved timing in one process (below 1: graphlab is
faster), reported as the median and range over rounds, so that load on the shared machine hits
both sides alike. The verdict column compares the median with the row's target: 1.0x for an
anchor that computes the same thing, 10x (LCM) and 20x (recurrent) for PyG's ``SumAggregation``,
the cheapest aggregation there is (a floor, not a competitor; GNP's row against it has no
target). Authors' code comes from ``--anchor-dir`` (see ``benchmarks/common/anchors.py``); an
anchor that is not there is listed in the notes with the reason, as are the shims used for
compiled packages that are not installed.

    python -m benchmarks --anchor-dir ANCHORS --record speed-anchors
    python -m benchmarks.speed_anchors [--quick] [--device cuda] [--anchor-dir ANCHORS]
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import TaskResult, TaskSkipped, format_table, register, run_script
from benchmarks.common.anchors import (
    AnchorMissing,
    anchor_row,
    interleaved_times,
    peak_memory,
    scaling_exponent,
    set_anchor_dir,
    shims_used,
    skipped_anchors,
)

#: the scripts whose ``anchor_rows`` make up the table, in table order
SOURCES = ["egnn_speed", "prmpnn_speed", "sheaf_speed", "pathnn_speed", "aggr_speed"]
#: GNP graphs (from ``aggr_speed.GRAPHS``) timed for the scaling fit, and those given rows
GNP_GRAPHS = {False: (["2k", "10k", "100k"], ["10k", "100k"]), True: (["2k", "10k"], ["10k"])}
GNP_METHODS = {"PyG PowerMean": "PyG PowerMeanAggregation (p learnable)",
               "PyG Sum": "PyG SumAggregation (floor)"}
#: ratio targets other than 1.0 (matched on workload and anchor, lower case)
SUM_TARGETS = {"lcm": 10.0, "recurrent": 20.0, "lstm": 20.0}


def gnp_rows(quick: bool, device: str = "cpu") -> list[dict]:
    """The fused GNP (p = 2, q = 0.5, signed, 32 channels; ``aggr_speed``'s configuration)
    against PyG's PowerMean and Sum on ``aggr_speed``'s power-law graphs, forward + backward."""
    from tqdm import tqdm

    from benchmarks.aggr_speed import GRAPHS, make_step, power_law_index

    torch.set_num_threads(1)
    rounds, min_run_time = (3, 0.05) if quick else (7, 0.3)
    timed_graphs, row_graphs = GNP_GRAPHS[quick]
    methods = ["graphlab GNP (fused)", *GNP_METHODS]
    times, edges = {}, {}
    for graph in tqdm(timed_graphs, desc="GNP vs PyG", leave=False):
        edges[graph] = int(power_law_index(*GRAPHS[graph]).numel())
        steps = {m: _on_device(make_step, m, graph, device) for m in methods}
        times[graph] = interleaved_times(steps, rounds, min_run_time, device)
    exponent = {m: scaling_exponent([edges[g] for g in timed_graphs],
                                    [statistics.median(times[g][m]) for g in timed_graphs])
                for m in methods}
    agreement = gnp_agreement()
    rows = []
    for graph in row_graphs:
        memory = {}
        if not quick:
            memory = {m: peak_memory("benchmarks.aggr_speed:make_step",
                                     {"method": m, "graph": graph}, device) for m in methods}
        nodes, _, max_degree = GRAPHS[graph]
        for method, anchor in GNP_METHODS.items():
            rows.append(anchor_row(
                f"GNP aggregation fwd+bwd, {nodes:,} nodes, {edges[graph]:,} edges (max degree "
                f"{max_degree:,}), 32 ch", anchor, times[graph]["graphlab GNP (fused)"],
                times[graph][method], memory.get("graphlab GNP (fused)"), memory.get(method),
                device=device, rounds=rounds, edges=edges[graph],
                exponent=round(exponent["graphlab GNP (fused)"], 3),
                anchor_exponent=round(exponent[method], 3),
                exponent_over=f"{edges[timed_graphs[0]]:,}-{edges[timed_graphs[-1]]:,} edges",
                target=1.0 if method == "PyG PowerMean" else None,
                max_abs_diff=agreement if method == "PyG PowerMean" else "n/a (a different "
                                                                         "function)"))
    return rows


def _on_device(make_step, method: str, graph: str, device: str):
    if torch.device(device).type == "cpu":
        return make_step(method, graph)
    # aggr_speed builds its steps on the CPU; move the module and the inputs
    from benchmarks.aggr_speed import CHANNELS, GRAPHS, build, power_law_index

    torch.manual_seed(0)
    nodes, edges, max_deg = GRAPHS[graph]
    index = power_law_index(nodes, edges, max_deg).to(device)
    x = torch.randn(index.numel(), CHANNELS, device=device, requires_grad=True)
    module = build(method).to(device)

    def step() -> None:
        module(x, index, dim_size=nodes).sum().backward()

    return step


def gnp_agreement() -> float:
    """Largest difference between GNP and PyG's PowerMean where they define the same function
    (p = 2, q = 1, inputs in [0.1, 5): PyG clamps inputs and the mean of squares to [1e-4, 100];
    eps 1e-12), float64, on the 2k graph's non-empty segments (an empty one is 0.01 in PyG, 0 in
    GNP)."""
    from torch_geometric.nn import aggr as pyg

    from benchmarks.aggr_speed import GRAPHS, power_law_index
    from graphlab.aggr import GNPAggregation

    nodes, edges, max_degree = GRAPHS["2k"]
    index = power_law_index(nodes, edges, max_degree)
    x = torch.rand(index.numel(), 32, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64) * 4.9 + 0.1
    ours = GNPAggregation(32, p=2.0, q=1.0, signed=False, eps=1e-12).double()
    theirs = pyg.PowerMeanAggregation(p=2.0, learn=False).double()
    present = torch.bincount(index, minlength=nodes) > 0
    with torch.no_grad():
        diff = ours(x, index, dim_size=nodes) - theirs(x, index, dim_size=nodes)
    return diff[present].abs().max().item()


def _target(row: dict[str, Any]) -> float | None:
    if "target" in row:
        return row["target"]
    anchor = str(row.get("anchor", "")).lower()
    if "sum" in anchor:
        workload = str(row.get("workload", "")).lower()
        return next((t for key, t in SUM_TARGETS.items() if key in workload), None)
    return 1.0


def _call(fn, quick: bool, device: str) -> list[dict]:
    if "device" in inspect.signature(fn).parameters:
        return fn(quick, device=device)
    if torch.device(device).type != "cpu":
        raise AnchorMissing(f"{fn.__module__}.anchor_rows runs on the CPU only")
    return fn(quick)


def collect(quick: bool, device: str = "cpu") -> tuple[list[dict], list[str]]:
    """Every script's anchor rows (with ``source`` and ``target``) and what could not run."""
    from tqdm import tqdm

    rows, problems = [], []
    for name in tqdm(SOURCES, desc="speed-anchors"):
        module = importlib.import_module(f"benchmarks.{name}")
        fn = getattr(module, "anchor_rows", None)
        if fn is None:
            problems.append(f"{name}.anchor_rows missing")
            continue
        try:
            got = _call(fn, quick, device)
        except TaskSkipped as missing:  # missing data too; find_anchor's are in skipped_anchors()
            if str(missing) not in skipped_anchors().values():
                problems.append(f"{name}: {missing}")
            continue
        rows += [{"source": name, **row} for row in got]
    if not any("gnp" in str(r.get("workload", "")).lower() for r in rows):
        rows += [{"source": "speed_anchors", **row} for row in gnp_rows(quick, device)]
    for row in rows:
        row["target"] = _target(row)
        workload = str(row.get("workload", "")).lower()
        if row.get("vs_sum") is not None:  # LCM / recurrent: also against the Sum floor
            row["sum_target"] = next((t for key, t in SUM_TARGETS.items() if key in workload),
                                     None)
        checks = [row.get(value) <= target
                  for value, target in (("ratio_median", row["target"]),
                                        ("vs_sum", row.get("sum_target")))
                  if target is not None and row.get(value) is not None]
        row["at_target"] = all(checks) if checks else None
    return rows, problems


def _score(row: dict[str, Any]) -> float:
    """The largest of a row's ratios over its target (above 1: the target is missed)."""
    return max(row[value] / target for value, target in (("ratio_median", row["target"]),
                                                          ("vs_sum", row.get("sum_target")))
               if target is not None and row.get(value) is not None)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _memory(value: float | None) -> str:
    """A peak-memory ratio; at or below zero (ours grew the peak resident set by nothing, within
    noise) it reads "<0.01", and small ratios keep two significant digits."""
    if value is None:
        return "-"
    if value <= 0:
        return "<0.01"
    return f"{value:.2g}" if value < 0.01 else f"{value:.2f}"


def _ratio(row: dict[str, Any]) -> str:
    if row.get("ratio_median") is None:
        return "-"
    text = f"{row['ratio_median']:.3g}x"
    if row.get("ratio_min") is not None and row.get("ratio_max") is not None:
        text += f" [{row['ratio_min']:.3g}-{row['ratio_max']:.3g}]"
    return text


def markdown_table(rows: list[dict]) -> str:
    """The table: workload, graphlab, anchor, ratio median [range], memory ratio, exponents,
    target and verdict."""
    out = []
    for row in rows:
        exponent = "-"
        if row.get("exponent") is not None:
            exponent = _fmt(row["exponent"])
            if row.get("anchor_exponent") is not None:
                exponent += f" / {_fmt(row['anchor_exponent'])}"
        if exponent != "-" and row.get("sum_exponent") is not None:
            exponent += f" (Sum {_fmt(row['sum_exponent'])})"
        targets = []
        if row["target"] is not None and row.get("ratio_median") is not None:
            targets.append(f"<= {row['target']:g}x")
        if row.get("sum_target") is not None:
            targets.append(f"Sum <= {row['sum_target']:g}x")
        verdict = ("- (floor)" if row["target"] is None and not targets else
                   "-" if row["at_target"] is None else
                   ("yes" if row["at_target"] else "NO") + f" ({'; '.join(targets)})")
        vs_sum = "-"
        if row.get("vs_sum") is not None:
            vs_sum = f"{_fmt(row['vs_sum'])}x" + (f" [{row['vs_sum_range']}]"
                                                   if row.get("vs_sum_range") else "")
        out.append({
            "workload": row["workload"], "graphlab ms": _fmt(row.get("graphlab_ms")),
            "anchor": row["anchor"], "anchor ms": _fmt(row.get("anchor_ms")),
            "ratio median [min-max]": _ratio(row),
            "vs Sum [min-max]": vs_sum, "memory ratio": _memory(row.get("memory_ratio")),
            "exponent (ours / anchor)": exponent, "at or below target?": verdict,
            "max abs diff": (f"{row['max_abs_diff']:.2g}" if isinstance(row.get("max_abs_diff"),
                                                                         float)
                             else _fmt(row.get("max_abs_diff"))),
        })
    return format_table(out)


@register("speed-anchors", "One speed table: graphlab vs the authors' code and PyG / published "
                           "packages (EGNN, SIMPLE, sheaf, paths, LCM / recurrent / GNP)",
          paper="issue 21: every row at or below 1.0x its anchor; LCM <= 10x, recurrent <= 20x Sum")
def run(quick: bool, out: Path, device: str = "cpu") -> TaskResult:
    rows, problems = collect(quick, device)
    skipped = list(skipped_anchors().values()) + problems
    judged = [r for r in rows if r["at_target"] is not None]
    missed = [r for r in judged if not r["at_target"]]
    gpu = ("GPU: not run (no CUDA device on this machine); run "
           "`python -m benchmarks.speed_anchors --device cuda` where there is one"
           if torch.device(device).type == "cpu" else f"device: {device} (CUDA-event times)")
    notes = [
        f"Ratio = graphlab / anchor per round of {'3' if quick else '7'} interleaved rounds in one "
        "process (one thread; process CPU time on the CPU), median and range over rounds; the "
        "machine is shared, so only same-process ratios are meaningful. Memory ratio: peak "
        "memory of one forward + backward in a fresh process each (full run only). Exponent: "
        "least-squares slope of log time against log edges.",
        "Skipped anchors: " + ("; ".join(skipped) if skipped else "none") + ".",
        "Shims used for compiled packages that are not installed: "
        + (", ".join(shims_used()) or "none") + ".",
        gpu + ".",
    ]
    markdown = markdown_table(rows)  # the notes follow it in <task>.md
    worst = max(judged, key=_score, default=None)
    ours = (f"{len(judged) - len(missed)}/{len(judged)} rows at or below target"
            + (f"; worst {_score(worst):.3g}x its target ({worst['anchor']}, "
               f"{worst['workload'][:40]})" if worst else ""))
    return TaskResult(rows, paper="issue 21 targets", ours=ours, notes=" ".join(notes),
                      skipped=skipped, markdown=markdown,
                      config={"quick": quick, "device": device, "sources": SOURCES})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/speed_anchors"))
    parser.add_argument("--anchor-dir", type=Path, default=None,
                        help="folder with the authors' checkouts (benchmarks/common/anchors.py)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)
    set_anchor_dir(args.anchor_dir)
    if args.device != "cpu" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device here")
    return run_script("speed-anchors", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, args.device))


if __name__ == "__main__":
    sys.exit(main())
