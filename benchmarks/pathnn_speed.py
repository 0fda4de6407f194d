"""Speed of PathNN path enumeration on ogbg-molhiv: graphlab (tensor ops) vs a networkx loop
and vs the authors' igraph code.

Enumerates every simple path with up to 4 edges of every molecule (both directions, as PathNN
stores them) with :func:`graphlab.utils.paths.enumerate_paths` on the whole dataset as one
disjoint graph, and with a Python loop over ``networkx.all_simple_paths`` (graphs are converted
to networkx *outside* the timed region, which favours the baseline). Counts must be identical.
The full run covers all 41,127 molecules (the networkx loop takes ~15 CPU-minutes); ``--quick``
the first 2,000. Also reports paths/second and the peak resident-memory growth of one
``enumerate_paths`` call for ``kind="all_simple"`` and ``"all_shortest"``, in a fresh process
(:func:`benchmarks.common.measure.measure_in_subprocess`). Times: graphlab, median CPU time
(``blocked_autorange``); networkx, the CPU time of one pass.

**Anchors** (:func:`anchor_rows`, with ``--anchor-dir`` pointing at a checkout of
``gasmichel/PathNNs_expressive``, never copied here): on the first 2,000 molecules (``--quick``:
150), one graph at a time as a dataset pre-transform runs, the interleaved rounds time

* the *kernel*: :func:`enumerate_paths` per graph (a molecule of at most 64 nodes takes the
  NumPy small-graph growth, ``graphlab.utils.paths._small_graph_paths``; larger ones the tensor
  growth) against the authors' ``fast_generate_paths2`` (``benchmarks/utils.py``: igraph
  ``get_all_simple_paths`` / ``get_all_shortest_paths`` per node, distances for AP) on igraph
  graphs built *outside* the timed region, lists out (which favours the anchor: our side
  returns tensors and edge ids);
* the *pre-transform*: ``AddPaths`` per graph against the authors' ``PathTransform``
  (``benchmarks/preprocess_data.py``: networkx -> igraph, ``fast_generate_paths2``, tensors),
  both ``Data`` in, ``Data`` with path tensors out;
* the *batched* kernel (one call on the disjoint union) and the *chunked* pre-transform
  (``AddPaths.apply_to_dataset``), against the same anchors, with peak memory per chunk size.

Path counts are checked equal to the anchor's. igraph >= 0.11 renamed ``get_all_simple_paths``'
``cutoff`` to ``maxlen``; the authors' 2023 code passes ``cutoff``, so the anchor runs with a
one-line keyword mapping (a Python call per node on the anchor's side). Without the checkout
the rows say which anchor was skipped, and the networkx reference still runs.

    python -m benchmarks.pathnn_speed [--quick] [--out runs/pathnn_speed] [--anchor-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import gc
import inspect
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from benchmarks.common import TaskResult, load_dataset, register, run_script
from benchmarks.common.anchors import (
    AnchorMissing,
    anchor_row,
    interleaved_times,
    load_anchor_module,
    optional_package,
    peak_memory,
    set_anchor_dir,
)
from benchmarks.common.measure import cpu_time, measure_in_subprocess
from graphlab.transforms import AddPaths
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


# --------------------------------------------------------------------------- anchors
ANCHOR = "PathNNs_expressive"
ANCHOR_NAME = "authors' igraph code (PathNNs_expressive)"
ANCHOR_GRAPHS = {True: 150, False: 2000}
ANCHOR_KINDS = ("all_simple", "all_shortest")
CHUNK_SIZE = 512
MEMORY_CHUNKS = (64, 512, 2000)


@contextmanager
def _igraph_cutoff(ig) -> Iterator[None]:
    """Let the authors' ``get_all_simple_paths(v, cutoff=...)`` call run on igraph >= 0.11,
    which renamed the keyword to ``maxlen``."""
    original = ig.Graph.get_all_simple_paths
    if "cutoff" in inspect.signature(original).parameters:
        yield
        return

    def compat(self, v, to=None, cutoff=-1, mode="out"):
        return original(self, v, to, maxlen=cutoff, mode=mode)

    ig.Graph.get_all_simple_paths = compat
    try:
        yield
    finally:
        ig.Graph.get_all_simple_paths = original


def _anchor_modules():
    """(igraph, the authors' ``benchmarks/utils.py``, their ``benchmarks/preprocess_data.py``)."""
    ig = optional_package("igraph")
    utils = load_anchor_module(ANCHOR, "utils", subdir="benchmarks")
    try:
        pre = load_anchor_module(ANCHOR, "preprocess_data", subdir="benchmarks")
    except ImportError as error:  # ogb / pandas missing: the pre-transform rows are skipped
        raise AnchorMissing(f"anchor {ANCHOR} preprocess_data skipped: {error}") from None
    return ig, utils, pre


def _molhiv_graphs(count: int) -> list:
    ds = load_dataset("ogbg-molhiv").dataset
    return [ds[i] for i in range(min(count, len(ds)))]


def _igraph_graphs(ig, graphs: list) -> list:
    """Undirected simple igraph graphs, the graphs of the authors' ``ig.Graph.from_networkx(
    to_networkx(data, to_undirected=True))``."""
    out = []
    for g in graphs:
        h = ig.Graph(n=g.num_nodes, edges=g.edge_index.t().tolist(), directed=True)
        h.to_undirected(mode="collapse")
        out.append(h)
    return out


def _union(graphs: list) -> tuple[torch.Tensor, int]:
    ptr = torch.tensor([0] + [g.num_nodes for g in graphs]).cumsum(0)
    return torch.cat([g.edge_index + ptr[i] for i, g in enumerate(graphs)], 1), int(ptr[-1])


def _without_gc(step):
    """``step`` with Python's garbage collector paused, as ``timeit`` does: the anchor builds
    millions of small lists, and the collections they trigger traverse every object alive in
    the benchmark process (up to 6x the anchor's own time here), which is not the anchor's cost."""
    def run():
        enabled = gc.isenabled()
        gc.disable()
        try:
            return step()
        finally:
            if enabled:
                gc.enable()
    return run


def _steps(kind: str, graphs: list, modules) -> dict:
    """The timed passes over ``graphs`` (every one returns its output, discarded by the timer;
    the garbage collector paused during each pass)."""
    return {name: _without_gc(step) for name, step in _passes(kind, graphs, modules).items()}


def _passes(kind: str, graphs: list, modules) -> dict:
    ig, utils, pre = modules
    de = kind == "all_simple"  # the authors compute distances for AP only
    pairs = [(g.edge_index, g.num_nodes) for g in graphs]
    igs = _igraph_graphs(ig, graphs)
    union, total = _union(graphs)
    transform = AddPaths(MAX_LENGTH, kind=kind, distance_encoding=de)
    theirs = pre.PathTransform(f"{kind}_paths", MAX_LENGTH + 1)
    return {
        "kernel": lambda: [enumerate_paths(ei, n, MAX_LENGTH, kind=kind, distance_encoding=de)
                           for ei, n in pairs],
        "batched": lambda: enumerate_paths(union, total, MAX_LENGTH, kind=kind,
                                           distance_encoding=de),
        "anchor_kernel": lambda: [utils.fast_generate_paths2(g, MAX_LENGTH + 1, f"{kind}_paths")
                                  for g in igs],
        "transform": lambda: [transform(copy.copy(g)) for g in graphs],
        "chunked": lambda: transform.apply_to_dataset(graphs, chunk_size=CHUNK_SIZE),
        "anchor_transform": lambda: [theirs(copy.copy(g)) for g in graphs],
    }


def _counts_agree(kind: str, graphs: list, modules) -> bool:
    """Total paths of every length: ours (per graph) == the authors' igraph enumeration."""
    ig, utils, _ = modules
    ours = [0] * MAX_LENGTH
    theirs = [0] * MAX_LENGTH
    with _igraph_cutoff(ig):
        for g, h in zip(graphs, _igraph_graphs(ig, graphs)):
            for k, c in enumerate(enumerate_paths(g.edge_index, g.num_nodes, MAX_LENGTH,
                                                  kind=kind).counts()):
                ours[k] += c
            for k, found in enumerate(utils.fast_generate_paths2(h, MAX_LENGTH + 1,
                                                                 f"{kind}_paths")[0]):
                theirs[k] += len(found)
    return ours == theirs


def anchor_memory_step(impl: str, kind: str, graphs: int, chunk_size: int = CHUNK_SIZE):
    """One pass of ``impl`` (a key of :func:`_steps`) over the first ``graphs`` molecules, in a
    fresh process (:func:`benchmarks.common.anchors.peak_memory`)."""
    modules = _anchor_modules()
    molecules = _molhiv_graphs(graphs)
    step = _steps(kind, molecules, modules)[impl]
    if impl == "chunked":
        transform = AddPaths(MAX_LENGTH, kind=kind, distance_encoding=kind == "all_simple")
        step = lambda: transform.apply_to_dataset(molecules, chunk_size=chunk_size)  # noqa: E731
    if impl.startswith("anchor"):
        ig = modules[0]
        inner = step

        def step():
            with _igraph_cutoff(ig):
                return inner()
    return step


def _skipped_rows(reason: str, kind: str, graphs: list) -> list[dict]:
    """Without the anchor: our per-graph time, and which anchor was skipped."""
    pairs = [(g.edge_index, g.num_nodes) for g in graphs]
    de = kind == "all_simple"
    start = time.process_time()
    for ei, n in pairs:
        enumerate_paths(ei, n, MAX_LENGTH, kind=kind, distance_encoding=de)
    ms = 1e3 * (time.process_time() - start)
    return [{"workload": f"per-graph {kind}, {len(graphs):,} molhiv, L<={MAX_LENGTH}",
             "graphlab_ms": round(ms, 1), "anchor": reason, "anchor_ms": None,
             "ratio_median": None, "ratio_min": None, "ratio_max": None, "memory_ratio": None}]


def anchor_rows(quick: bool) -> list[dict]:
    """graphlab against the authors' igraph path enumeration (see the module docstring): per
    graph (kernel and pre-transform), batched, and the chunked pre-transform, for AP
    (``all_simple``, with distances) and SP+ (``all_shortest``) on ogbg-molhiv. Ratios are
    graphlab / anchor over interleaved rounds (median and range); memory ratios and the peak
    memory per chunk size come from fresh processes in the full run. Without the anchor, one
    row per kind says what was skipped."""
    torch.set_num_threads(1)
    graphs = _molhiv_graphs(ANCHOR_GRAPHS[quick])
    try:
        modules = _anchor_modules()
    except AnchorMissing as missing:
        return [row for kind in ANCHOR_KINDS for row in _skipped_rows(str(missing), kind, graphs)]
    rounds = 3 if quick else 7
    n = len(graphs)
    rows = []
    for kind in ANCHOR_KINDS:
        agree = _counts_agree(kind, graphs, modules)
        with _igraph_cutoff(modules[0]):
            timed = interleaved_times(_steps(kind, graphs, modules), rounds, 0.0, slow_s=0.0)
        memory: dict[str, float | None] = {}
        chunk_mb: dict[int, float | None] = {}
        if not quick:
            for impl in ("kernel", "batched", "anchor_kernel", "transform", "chunked",
                         "anchor_transform"):
                memory[impl] = peak_memory("benchmarks.pathnn_speed:anchor_memory_step",
                                           {"impl": impl, "kind": kind, "graphs": n})
            for size in MEMORY_CHUNKS:
                chunk_mb[size] = peak_memory("benchmarks.pathnn_speed:anchor_memory_step",
                                             {"impl": "chunked", "kind": kind, "graphs": n,
                                              "chunk_size": size})
        extra = {"kind": kind, "graphs": n, "rounds": rounds, "counts_equal_anchor": agree}
        what = "AP + distances" if kind == "all_simple" else "SP+"
        kernel_anchor = f"{ANCHOR_NAME}: fast_generate_paths2, igraph graphs prebuilt"
        transform_anchor = f"{ANCHOR_NAME}: PathTransform (networkx -> igraph -> tensors)"
        for label, ours, theirs, anchor in (
                ("per-graph enumerate_paths", "kernel", "anchor_kernel", kernel_anchor),
                ("batched enumerate_paths (one call)", "batched", "anchor_kernel", kernel_anchor),
                ("per-graph AddPaths pre-transform", "transform", "anchor_transform",
                 transform_anchor),
                (f"chunked AddPaths.apply_to_dataset(chunk_size={CHUNK_SIZE})", "chunked",
                 "anchor_transform", transform_anchor)):
            row = anchor_row(f"{label}, {what}, {n:,} molhiv, L<={MAX_LENGTH}", anchor,
                             timed[ours], timed[theirs], memory.get(ours), memory.get(theirs),
                             **extra)
            if ours == "chunked" and chunk_mb:
                row["peak_mb_by_chunk_size"] = {str(k): None if v is None else round(v, 1)
                                                for k, v in chunk_mb.items()}
            rows.append(row)
    return rows


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
    anchors = anchor_rows(quick)
    rows.extend(anchors)
    versus = "; ".join(f"{r['workload'].split(',')[0]} {r['kind']}: {r['ratio_median']}x"
                       for r in anchors if r.get("ratio_median") is not None)
    return TaskResult(rows, paper="target: >= 20x the networkx loop, identical counts; at or "
                                  "below 1.0x the authors' igraph code",
                      ours=f"{rows[0]['speedup_vs_networkx']}x networkx on {len(slices):,} "
                           f"molecules, identical counts; vs the authors' code: "
                           f"{versus or anchors[0]['anchor']}",
                      notes="graphlab: one enumerate_paths call on the disjoint union of the "
                            "molecules, median CPU time; networkx: CPU time of one pass over the "
                            "per-molecule graphs (built outside the timed region). Anchor rows: "
                            "CPU time of whole passes over the molecules, graphlab and the "
                            "authors' code alternating within each round (one thread); ratio = "
                            "graphlab / anchor, median and range over rounds.",
                      config={"max_length": MAX_LENGTH, "graphs": len(slices)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/pathnn_speed"))
    parser.add_argument("--anchor-dir", type=Path, default=None,
                        help="folder with a checkout of github.com/gasmichel/PathNNs_expressive "
                             "as PathNNs_expressive/ (the anchor rows)")
    args = parser.parse_args(argv)
    set_anchor_dir(args.anchor_dir)
    return run_script("pathnn-speed", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out))


if __name__ == "__main__":
    sys.exit(main())
