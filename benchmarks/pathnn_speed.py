"""Speed of PathNN path enumeration on ogbg-molhiv: graphlab (tensor ops) vs a networkx loop.

Enumerates every simple path with up to 4 edges of every molecule (both directions, as PathNN
stores them) with :func:`graphlab.utils.paths.enumerate_paths` on the whole dataset as one
disjoint graph, and with a Python loop over ``networkx.all_simple_paths`` (graphs are converted
to networkx *outside* the timed region, which favours the baseline). Counts must be identical.
The full run covers all 41,127 molecules (the networkx loop takes ~15 CPU-minutes); ``--quick``
the first 2,000. Also reports paths/second and the peak resident-memory growth of one
``enumerate_paths`` call for ``kind="all_simple"`` and ``"all_shortest"``, in a fresh process
(:func:`benchmarks.common.measure.measure_in_subprocess`). Times: graphlab, median CPU time
(``blocked_autorange``); networkx, the CPU time of one pass.

    python -m benchmarks.pathnn_speed [--quick] [--out runs/pathnn_speed]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks.common import TaskResult, load_dataset, register, run_script
from benchmarks.common.measure import cpu_time, measure_in_subprocess
from graphlab.utils.paths import enumerate_paths

MAX_LENGTH = 4
QUICK_GRAPHS = 2000


def _load_molhiv(num_graphs: int | None) -> tuple[torch.Tensor, int, list[tuple[int, int]]]:
    """(edge_index of the disjoint union, number of nodes, per-graph (node, edge) slices)."""
    ds = load_dataset("ogbg-molhiv").dataset
    node_ptr = ds.slices["x"]
    edge_ptr = ds.slices["edge_index"]
    count = len(ds) if num_graphs is None else min(num_graphs, len(ds))
    num_nodes = int(node_ptr[count])
    num_edges = int(edge_ptr[count])
    local = ds._data.edge_index[:, :num_edges]
    graph_of_edge = torch.repeat_interleave(torch.arange(count), edge_ptr[1:count + 1].diff(
        prepend=edge_ptr[:1]))
    edge_index = local + node_ptr[graph_of_edge]
    slices = [(int(node_ptr[i]), int(node_ptr[i + 1])) for i in range(count)]
    return edge_index, num_nodes, slices


def _networkx_counts(edge_index: torch.Tensor, slices: list[tuple[int, int]],
                     max_length: int) -> tuple[list[int], float]:
    import networkx as nx

    graphs = []
    src, dst = edge_index.tolist()
    edges_by_graph: list[list[tuple[int, int]]] = [[] for _ in slices]
    starts = torch.tensor([s for s, _ in slices])
    owner = (torch.searchsorted(starts, edge_index[0], right=True) - 1).tolist()
    for s, d, gid in zip(src, dst, owner):
        edges_by_graph[gid].append((s, d))
    for (lo, hi), edges in zip(slices, edges_by_graph):
        g = nx.Graph()
        g.add_nodes_from(range(lo, hi))
        g.add_edges_from(edges)
        graphs.append(g)
    counts = [0] * max_length
    t0 = time.process_time()  # CPU time, as graphlab's (the machine may be shared)
    for g in tqdm(graphs, desc="networkx all_simple_paths", mininterval=5):
        for source in g:
            targets = [v for v in g if v != source]
            for path in nx.all_simple_paths(g, source, targets, cutoff=max_length):
                counts[len(path) - 2] += 1
    return counts, time.process_time() - t0


def _time_ours(edge_index: torch.Tensor, num_nodes: int, kind: str) -> tuple[list[int], float]:
    paths = enumerate_paths(edge_index, num_nodes, MAX_LENGTH, kind=kind)
    secs = cpu_time(lambda: enumerate_paths(edge_index, num_nodes, MAX_LENGTH, kind=kind), 2.0)
    return paths.counts(), secs


def enumerate_step(path: str, kind: str):
    """One ``enumerate_paths`` call on the saved graph (the memory worker's factory); a call
    on a small part of it first loads the kernels."""
    g = torch.load(path, weights_only=True)
    enumerate_paths(g["edge_index"][:, :100], g["num_nodes"], 2)
    return lambda: enumerate_paths(g["edge_index"], g["num_nodes"], MAX_LENGTH, kind=kind)


def _peak_memory(kind: str, edge_index: torch.Tensor, num_nodes: int) -> float | None:
    """Peak resident-set growth (MiB) of one enumerate_paths call, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "graph.pt")
        torch.save({"edge_index": edge_index, "num_nodes": num_nodes}, path)
        res = measure_in_subprocess("benchmarks.pathnn_speed:enumerate_step",
                                    {"path": path, "kind": kind}, warmup=False)
    return round(res["peak_mb"], 1) if "peak_mb" in res else None


@register("pathnn-speed", "PathNN path enumeration on ogbg-molhiv: tensor ops vs networkx loop",
          paper="Michel et al. 2023 (PathNN; the authors enumerate paths with networkx)")
def run(quick: bool, out: Path) -> TaskResult:
    torch.set_num_threads(1)
    edge_index, num_nodes, slices = _load_molhiv(QUICK_GRAPHS if quick else None)
    ours_counts, ours_s = _time_ours(edge_index, num_nodes, "all_simple")
    nx_counts, nx_s = _networkx_counts(edge_index, slices, MAX_LENGTH)
    total = sum(ours_counts)
    rows = [{"task": f"all_simple, L<={MAX_LENGTH}", "graphs": len(slices), "paths": total,
             "counts_equal_networkx": ours_counts == nx_counts, "graphlab_s": round(ours_s, 3),
             "networkx_s": round(nx_s, 2), "speedup_vs_networkx": round(nx_s / ours_s, 1),
             "paths_per_s": f"{total / ours_s:.3g}",
             "peak_mem_MiB": _peak_memory("all_simple", edge_index, num_nodes),
             "counts_graphlab": ours_counts, "counts_networkx": nx_counts}]
    sp_counts, sp_s = _time_ours(edge_index, num_nodes, "all_shortest")
    rows.append({"task": f"all_shortest, L<={MAX_LENGTH}", "graphs": len(slices),
                 "paths": sum(sp_counts), "graphlab_s": round(sp_s, 3),
                 "paths_per_s": f"{sum(sp_counts) / sp_s:.3g}",
                 "peak_mem_MiB": _peak_memory("all_shortest", edge_index, num_nodes)})
    if not rows[0]["counts_equal_networkx"]:
        raise RuntimeError(f"path counts differ from networkx: {ours_counts} vs {nx_counts}")
    return TaskResult(rows, paper="target: >= 20x the networkx loop, identical counts",
                      ours=f"{rows[0]['speedup_vs_networkx']}x networkx on {len(slices):,} "
                           f"molecules, identical counts",
                      notes="graphlab: one enumerate_paths call on the disjoint union of the "
                            "molecules, median CPU time; networkx: CPU time of one pass over the "
                            "per-molecule graphs (built outside the timed region).",
                      config={"max_length": MAX_LENGTH, "graphs": len(slices)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/pathnn_speed"))
    args = parser.parse_args(argv)
    return run_script("pathnn-speed", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out))


if __name__ == "__main__":
    sys.exit(main())
