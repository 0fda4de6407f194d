"""Speed of PathNN path enumeration on ogbg-molhiv: graphlab (tensor ops) vs a networkx loop.

Enumerates every simple path with up to 4 edges of every molecule (both directions, as PathNN
stores them) with :func:`graphlab.utils.paths.enumerate_paths` on the whole dataset as one
disjoint graph, and with a Python loop over ``networkx.all_simple_paths`` (graphs are converted
to networkx *outside* the timed region, which favours the baseline). Counts must be identical.
Also reports paths/second and the peak resident-memory increase of ``kind="all_shortest"``
(and ``"all_simple"``), sampled in a fresh subprocess (see :func:`_peak_memory`).

    python -m benchmarks.pathnn_speed [--quick | --all-molecules-only | --all-molecules-vs-networkx]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from graphlab.bench import load_bundle_or_skip, register
from graphlab.utils.paths import enumerate_paths

MAX_LENGTH = 4
QUICK_GRAPHS = 2000
#: molecules in the networkx comparison of the full run (the networkx loop over all 41,127
#: molecules takes ~15 min of a free core; graphlab additionally enumerates all of them)
FULL_COMPARE_GRAPHS = 4000


def _load_molhiv(num_graphs: int | None) -> tuple[torch.Tensor, int, list[tuple[int, int]]] | None:
    """(edge_index of the disjoint union, number of nodes, per-graph (node, edge) slices)."""
    bundle = load_bundle_or_skip("ogbg-molhiv", "pathnn-speed")
    if bundle is None:
        return None
    ds = bundle.dataset
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
    t0 = time.perf_counter()
    for g in tqdm(graphs, desc="networkx all_simple_paths", mininterval=5):
        for source in g:
            targets = [v for v in g if v != source]
            for path in nx.all_simple_paths(g, source, targets, cutoff=max_length):
                counts[len(path) - 2] += 1
    return counts, time.perf_counter() - t0


def _time_ours(edge_index: torch.Tensor, num_nodes: int, kind: str) -> tuple[list[int], float]:
    from torch.utils.benchmark import Timer

    paths = enumerate_paths(edge_index, num_nodes, MAX_LENGTH, kind=kind)
    timer = Timer("enumerate_paths(ei, n, L, kind=kind)",
                  globals={"enumerate_paths": enumerate_paths, "ei": edge_index,
                           "n": num_nodes, "L": MAX_LENGTH, "kind": kind})
    median = timer.blocked_autorange(min_run_time=2.0).median
    return paths.counts(), median


def _peak_memory(kind: str, edge_index: torch.Tensor, num_nodes: int) -> float:
    """Peak resident-set increase (MiB) over one enumerate_paths call in a fresh subprocess.

    RSS is sampled every millisecond from ``/proc/self/statm`` by a thread (torch releases the
    GIL inside its kernels); the result is the sampled peak minus the RSS just before the call.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.pt"
        torch.save({"edge_index": edge_index, "num_nodes": num_nodes}, path)
        code = (
            "import threading, time, torch\n"
            "torch.set_num_threads(1)\n"
            "from graphlab.utils.paths import enumerate_paths\n"
            "def rss():\n"
            "    with open('/proc/self/statm') as f:\n"
            "        return int(f.read().split()[1]) * 4096 / 2 ** 20\n"
            f"g = torch.load({str(path)!r}, weights_only=True)\n"
            "enumerate_paths(g['edge_index'][:, :100], g['num_nodes'], 2)\n"  # warm-up
            "base, peak, done = rss(), [0.0], [False]\n"
            "def poll():\n"
            "    while not done[0]:\n"
            "        peak[0] = max(peak[0], rss())\n"
            "        time.sleep(0.001)\n"
            "t = threading.Thread(target=poll)\n"
            "t.start()\n"
            f"p = enumerate_paths(g['edge_index'], g['num_nodes'], {MAX_LENGTH}, kind={kind!r})\n"
            "peak[0] = max(peak[0], rss())\n"
            "done[0] = True\n"
            "t.join()\n"
            "print(peak[0] - base)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parent.parent)
    return float(out.stdout.strip().splitlines()[-1])


@register("pathnn-speed", "PathNN path enumeration on ogbg-molhiv: tensor ops vs networkx loop")
def run(quick: bool, out: Path) -> list[dict]:
    torch.set_num_threads(1)
    num_graphs = QUICK_GRAPHS if quick else FULL_COMPARE_GRAPHS
    loaded = _load_molhiv(num_graphs)
    if loaded is None:
        return []
    edge_index, num_nodes, slices = loaded
    rows = []
    if not quick:  # every molecule of ogbg-molhiv, graphlab only
        all_ei, all_n, all_slices = _load_molhiv(None)
        for kind in ("all_simple", "all_shortest"):
            counts, secs = _time_ours(all_ei, all_n, kind)
            rows.append({"task": f"{kind}, L<={MAX_LENGTH}", "graphs": len(all_slices),
                         "paths": sum(counts), "counts_equal_networkx": "-",
                         "graphlab_s": round(secs, 3), "networkx_s": "-",
                         "speedup_vs_networkx": "-", "target": "-",
                         "paths_per_s": f"{sum(counts) / secs:.3g}",
                         "peak_mem_MiB": round(_peak_memory(kind, all_ei, all_n), 1)})
            print(rows[-1])
    ours_counts, ours_s = _time_ours(edge_index, num_nodes, "all_simple")
    nx_counts, nx_s = _networkx_counts(edge_index, slices, MAX_LENGTH)
    total = sum(ours_counts)
    rows.append({"task": f"all_simple, L<={MAX_LENGTH}", "graphs": len(slices),
                 "paths": total, "counts_equal_networkx": ours_counts == nx_counts,
                 "graphlab_s": round(ours_s, 3), "networkx_s": round(nx_s, 2),
                 "speedup_vs_networkx": round(nx_s / ours_s, 1), "target": ">= 20x",
                 "paths_per_s": f"{total / ours_s:.3g}",
                 "peak_mem_MiB": round(_peak_memory("all_simple", edge_index, num_nodes), 1)})
    print(rows[-1])
    sp_counts, sp_s = _time_ours(edge_index, num_nodes, "all_shortest")
    rows.append({"task": f"all_shortest, L<={MAX_LENGTH}", "graphs": len(slices),
                 "paths": sum(sp_counts), "counts_equal_networkx": "-",
                 "graphlab_s": round(sp_s, 3), "networkx_s": "-", "speedup_vs_networkx": "-",
                 "target": "-", "paths_per_s": f"{sum(sp_counts) / sp_s:.3g}",
                 "peak_mem_MiB": round(_peak_memory("all_shortest", edge_index, num_nodes), 1)})
    print(rows[-1])
    out.mkdir(parents=True, exist_ok=True)
    meta = {"rows": rows, "counts_graphlab": ours_counts, "counts_networkx": nx_counts,
            "machine": "2-core CPU (shared), torch 2.13 CPU, torch.set_num_threads(1)",
            "memory_method": "peak RSS (sampled every 1 ms from /proc/self/statm) minus RSS "
                             "before one call, in a fresh subprocess",
            "timing_method": "graphlab: torch.utils.benchmark.Timer.blocked_autorange median; "
                             "networkx: one timed pass (perf_counter)",
            "peak_rss_MiB_this_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    suffix = "_quick" if quick else ""
    (out / f"pathnn_speed{suffix}.json").write_text(json.dumps(meta, indent=2))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--all-molecules-only", action="store_true",
                        help="only graphlab on every molecule: time, paths/s, peak memory")
    parser.add_argument("--all-molecules-vs-networkx", action="store_true",
                        help="every molecule, graphlab vs the networkx loop, one timed pass each")
    args = parser.parse_args()
    if args.all_molecules_vs_networkx:
        torch.set_num_threads(1)
        loaded = _load_molhiv(None)
        if loaded is not None:
            ei, n, sl = loaded
            t0 = time.perf_counter()
            ours = enumerate_paths(ei, n, MAX_LENGTH, kind="all_simple").counts()
            ours_s = time.perf_counter() - t0
            theirs, nx_s = _networkx_counts(ei, sl, MAX_LENGTH)
            row = {"task": f"all_simple, L<={MAX_LENGTH}", "graphs": len(sl), "paths": sum(ours),
                   "counts_graphlab": ours, "counts_networkx": theirs,
                   "counts_equal_networkx": ours == theirs, "graphlab_s": round(ours_s, 2),
                   "networkx_s": round(nx_s, 1), "speedup_vs_networkx": round(nx_s / ours_s, 1),
                   "target": ">= 20x", "timing_method": "one timed pass each (perf_counter); "
                   "graphlab: one call on the disjoint union of all molecules"}
            print(row)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "pathnn_speed_all_molecules_vs_networkx.json").write_text(
                json.dumps(row, indent=2))
    elif args.all_molecules_only:
        torch.set_num_threads(1)
        loaded = _load_molhiv(None)
        if loaded is not None:
            ei, n, sl = loaded
            rows = []
            for kind in ("all_simple", "all_shortest"):
                t0 = time.perf_counter()
                counts = enumerate_paths(ei, n, MAX_LENGTH, kind=kind).counts()
                secs = time.perf_counter() - t0
                rows.append({"task": f"{kind}, L<={MAX_LENGTH}", "graphs": len(sl),
                             "paths": sum(counts), "counts": counts, "graphlab_s": round(secs, 2),
                             "paths_per_s": f"{sum(counts) / secs:.3g}",
                             "peak_mem_MiB": round(_peak_memory(kind, ei, n), 1)})
                print(rows[-1])
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "pathnn_speed_all_molecules.json").write_text(json.dumps(rows, indent=2))
    else:
        run(args.quick, args.out)
