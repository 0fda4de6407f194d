"""Speed and peak memory of ``EGNNConv`` against a reference written from the paper's equations.

The reference (:class:`graphlab.testing.ReferenceEGCL`) is the straightforward implementation:
gather both end points' features by ``edge_index``, concatenate ``[h_i, h_j, ||x_i - x_j||^2, a_ij]``, run the
edge MLP on the concatenation, and scatter with ``index_add_``, the way the official code does (but
with PyG's edge direction). Both layers share the same weights and give the same outputs
(``tests/conv/test_egnn_conv.py`` checks this to 1e-12 in float64).

Workloads (forward + backward, float32, one thread):

* ``nbody``: 100 fully connected five-body graphs (500 nodes, 2,000 edges), the paper's N-body
  layer (64 channels, edge_dim 2, velocity variant);
* ``radius``: one radius graph on 20,000 uniform points in a 10^3 box (r = 0.58, at most 32
  neighbours, ~16 per node; 32 channels). ``--quick`` uses 5,000 points.

Time: median of ``torch.utils.benchmark.Timer(..., timer=time.process_time).blocked_autorange()``:
the process's CPU time rather than wall time, because the 2-core machine is shared with other
jobs and wall time mostly measures how long this process waited for a core (one thread, so CPU
time equals compute time). Ours and the reference are timed alternately in the same process, three
rounds, and the median of the round medians is reported.

Peak memory: each (layer, workload) runs in a fresh subprocess with
``MALLOC_MMAP_THRESHOLD_=65536`` (large tensors are unmapped when freed, so the resident set
follows the live tensor bytes). A first full-size pass loads kernels; then the kernel's peak-RSS
counter is reset (``/proc/self/clear_refs``) and the figure is the peak resident set (``VmHWM``)
of a second forward + backward pass minus the resident set just before it: every tensor of that
pass, autograd's saved tensors included. A ``torch.profiler`` table of our layer shows where the time
goes.

**Anchors** (:func:`anchor_rows`, the EGNN rows of ``speed-anchors``): ``EGNNConv`` against the
authors' ``E_GCL`` (``models/egnn_clean/egnn_clean.py`` of github.com/vgsatorras/egnn, loaded from
``--anchor-dir``, never copied here) and against ``egnn_pytorch.EGNN_Sparse`` (the published
``egnn-pytorch`` package), at equal widths (features = hidden = message width), forward +
backward, one thread, 7 interleaved rounds (3 with ``--quick``): the N-body batch (without
velocities, which ``E_GCL`` does not have) and radius graphs of growing size, whose times give
each layer's scaling exponent in the edge count. ``E_GCL`` computes the same function as
``EGNNConv`` (it aggregates at ``edge_index[0]``, so it gets the flipped index): with our weights
copied, the largest output difference is reported. ``EGNN_Sparse`` is a different layer (MLP
widths ``2(2F+1)`` and ``4m``, summed coordinate updates), so only its time is compared.

    python -m benchmarks.egnn_speed [--quick] [--out runs/egnn_speed]
    python -m benchmarks.egnn_speed --anchors [--quick] [--device cuda] --anchor-dir ANCHORS
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from benchmarks.common import TaskResult, format_table, register, run_script
from benchmarks.common.anchors import (
    AnchorMissing,
    anchor_row,
    interleaved_times,
    load_anchor_module,
    optional_package,
    peak_memory,
    scaling_exponent,
    set_anchor_dir,
)
from benchmarks.common.measure import cpu_time, measure_in_subprocess
from graphlab.testing.reference_egnn import ReferenceEGCL, copy_egnn_weights

WORKLOADS = {
    # name -> (graphs, nodes per graph, channels, edge_dim, velocity, radius)
    "nbody": dict(graphs=100, nodes=5, channels=64, edge_dim=2, vel=True, radius=None),
    "radius": dict(graphs=1, nodes=20_000, channels=32, edge_dim=0, vel=False, radius=0.58),
}
PAPER = {"nbody": "paper: forward 6.2 ms per batch of 100 (GPU, 4 layers)"}


def radius_points(num_nodes: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform points at the ``radius`` workload's density (~16 neighbours within r = 0.58, at
    most 32) and their radius graph."""
    from graphlab.utils.geometry import radius_graph

    cfg = WORKLOADS["radius"]
    side = 10.0 * (num_nodes / cfg["nodes"]) ** (1 / 3)  # keep the density fixed
    pos = torch.rand(num_nodes, 3, generator=gen) * side
    return pos, radius_graph(pos, cfg["radius"], max_num_neighbors=32)


def make_inputs(name: str, quick: bool, seed: int = 0) -> dict:
    cfg = WORKLOADS[name]
    gen = torch.Generator().manual_seed(seed)
    c = cfg["channels"]
    if cfg["radius"] is None:
        n, g = cfg["nodes"], cfg["graphs"]
        idx = torch.arange(n)
        src, dst = idx.repeat_interleave(n), idx.repeat(n)
        keep = src != dst
        offset = (torch.arange(g) * n).repeat_interleave(int(keep.sum()))
        edge_index = torch.stack([src[keep].repeat(g), dst[keep].repeat(g)]) + offset
        num_nodes = n * g
        pos = torch.randn(num_nodes, 3, generator=gen)
    else:
        num_nodes = 5_000 if quick else cfg["nodes"]
        pos, edge_index = radius_points(num_nodes, gen)
    inputs = {"x": torch.randn(num_nodes, c, generator=gen), "pos": pos,
              "edge_index": edge_index, "edge_attr": None, "vel": None}
    if cfg["edge_dim"]:
        inputs["edge_attr"] = torch.randn(edge_index.size(1), cfg["edge_dim"], generator=gen)
    if cfg["vel"]:
        inputs["vel"] = torch.randn(num_nodes, 3, generator=gen)
    return inputs


def make_layers(name: str) -> tuple[nn.Module, nn.Module]:
    from graphlab.conv import EGNNConv

    cfg = WORKLOADS[name]
    c = cfg["channels"]
    torch.manual_seed(0)
    ours = EGNNConv(c, c, c, edge_dim=cfg["edge_dim"])
    ref = ReferenceEGCL(c, c, c, edge_dim=cfg["edge_dim"])
    copy_egnn_weights(ours, ref)
    return ours, ref


def _step_fn(layer: nn.Module, inputs: dict):
    x = inputs["x"].clone().requires_grad_(True)
    pos = inputs["pos"].clone().requires_grad_(True)

    def step() -> None:
        out = layer(x, pos, inputs["edge_index"], inputs["edge_attr"], vel=inputs["vel"])
        sum(o.sum() for o in out).backward()

    return step


def memory_step(which: str, inputs_path: str, name: str):
    """The measured step of the peak-memory worker: one forward + backward of our layer
    (``which="ours"``) or the reference on the saved inputs; every call starts without
    gradients, so that the measured call allocates them as the first one did."""
    inputs = torch.load(inputs_path, weights_only=True)
    ours, ref = make_layers(name)
    layer = ours if which == "ours" else ref
    x = inputs["x"].clone().requires_grad_(True)
    pos = inputs["pos"].clone().requires_grad_(True)

    def step() -> None:
        out = layer(x, pos, inputs["edge_index"], inputs["edge_attr"], vel=inputs["vel"])
        sum(o.sum() for o in out).backward()
        x.grad = pos.grad = None
        layer.zero_grad(set_to_none=True)

    return step


def _memory(which: str, inputs_path: str, name: str) -> float | None:
    res = measure_in_subprocess("benchmarks.egnn_speed:memory_step",
                                {"which": which, "inputs_path": inputs_path, "name": name},
                                warmup=True, timeout=600)
    if "error" in res:
        print(f"egnn-speed memory worker ({which}, {name}): {res['error']}", file=sys.stderr)
        return None
    return res["peak_mb"]


def _profile(layer: nn.Module, inputs: dict, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    step = _step_fn(layer, inputs)
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


@register("egnn-speed", "EGNNConv forward+backward time and peak memory vs a from-the-paper "
                        "reference (5-body batch, 20k-node radius graph)",
          paper="Satorras et al. 2021 (EGNN)")
def run(quick: bool, out: Path, profiles: dict | None = None) -> TaskResult:
    from tqdm import tqdm

    torch.set_num_threads(1)
    profiles = {} if profiles is None else profiles  # the full run keeps them in its record
    min_run_time = 0.3 if quick else 1.0
    rounds = 1 if quick else 3
    rows = []
    for name in tqdm(WORKLOADS, desc="egnn-speed"):
        inputs = make_inputs(name, quick)
        # Memory first, from untouched inputs: a pass in this process changes what a worker
        # inherits through the saved file (observed: both figures then grow to the same value).
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "inputs.pt")
            torch.save(inputs, path)
            mem = {which: _memory(which, path, name) for which in ("ours", "ref")}
        ours, ref = make_layers(name)
        times: dict[str, list[float]] = {"ours": [], "ref": []}
        for _ in range(rounds):
            for which, layer in (("ours", ours), ("ref", ref)):
                step = _step_fn(layer, inputs)
                step()  # warm-up
                times[which].append(cpu_time(step, min_run_time))
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        if not quick:
            profiles[name] = _profile(ours, inputs)
        row = {
            "workload": name, "nodes": inputs["x"].size(0),
            "edges": inputs["edge_index"].size(1),
            "ours CPU ms": round(1e3 * med["ours"], 2),
            "reference CPU ms": round(1e3 * med["ref"], 2),
            "speedup (ref/ours)": round(med["ref"] / med["ours"], 2),
        }
        if mem["ours"] is not None and mem["ref"] is not None:
            row |= {"ours peak MB": round(mem["ours"], 1), "reference peak MB": round(mem["ref"], 1),
                    "memory ratio (ours/ref)": round(mem["ours"] / max(mem["ref"], 1e-9), 2)}
        if name in PAPER:
            row["paper"] = PAPER[name]
        rows.append(row)
    ours = "; ".join(f"{r['workload']}: {r['speedup (ref/ours)']}x faster"
                     + (f", {r['memory ratio (ours/ref)']}x memory" if "memory ratio (ours/ref)"
                        in r else "") for r in rows)
    return TaskResult(rows, paper=PAPER["nbody"], ours=f"vs the reference: {ours}",
                      notes=f"{rounds} round(s) of alternating timing, median of the round "
                            "medians (process CPU time, one thread); peak memory in a fresh "
                            "process per (layer, workload).",
                      config={"min_run_time": min_run_time, "rounds": rounds},
                      extra={"profiles": profiles})


# --------------------------------------------------------------------------- anchors
#: radius-graph sizes (nodes) of the scaling fit; ~16 directed edges per node
ANCHOR_SIZES = {False: [1_250, 2_500, 5_000, 10_000], True: [500, 1_000, 2_000]}
ANCHOR_IMPLS = ("graphlab", "E_GCL", "EGNN_Sparse")
ANCHOR_NAMES = {"E_GCL": "authors' E_GCL (vgsatorras/egnn)",
                "EGNN_Sparse": "egnn_pytorch EGNN_Sparse 0.2.8"}


def anchor_inputs(workload: str, num_nodes: int = 0, seed: int = 0) -> dict:
    """Inputs of an anchor workload: ``"nbody"`` (the 5-body batch without velocities, which
    ``E_GCL`` does not take) or ``"radius"`` with ``num_nodes`` points."""
    if workload == "nbody":
        inputs = make_inputs("nbody", quick=False, seed=seed)
        inputs["vel"] = None
        return inputs
    gen = torch.Generator().manual_seed(seed)
    pos, edge_index = radius_points(num_nodes, gen)
    c = WORKLOADS["radius"]["channels"]
    return {"x": torch.randn(num_nodes, c, generator=gen), "pos": pos, "edge_index": edge_index,
            "edge_attr": None, "vel": None}


def anchor_layer(impl: str, channels: int, edge_dim: int, device: str = "cpu") -> nn.Module:
    """``impl`` at equal widths (features = hidden = messages = ``channels``); ``E_GCL`` gets
    ``EGNNConv``'s weights (same seed), so both compute the same function."""
    from graphlab.conv import EGNNConv

    torch.manual_seed(0)
    if impl == "EGNN_Sparse":
        egnn_pytorch = optional_package("egnn_pytorch")
        layer = egnn_pytorch.EGNN_Sparse(feats_dim=channels, edge_attr_dim=edge_dim,
                                         m_dim=channels)
        return layer.to(device)
    ours = EGNNConv(channels, channels, channels, edge_dim=edge_dim)
    if impl == "graphlab":
        return ours.to(device)
    egnn = load_anchor_module("egnn", "models.egnn_clean.egnn_clean")
    theirs = egnn.E_GCL(channels, channels, channels, edges_in_d=edge_dim)
    pairs = [(theirs.edge_mlp[0], ours.edge_lin1), (theirs.edge_mlp[2], ours.edge_lin2),
             (theirs.node_mlp[0], ours.node_lin1), (theirs.node_mlp[2], ours.node_lin2),
             (theirs.coord_mlp[0], ours.coord_lin1), (theirs.coord_mlp[2], ours.coord_lin2)]
    with torch.no_grad():
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            if dst.bias is not None:
                dst.bias.copy_(src.bias)
    return theirs.to(device)


def anchor_forward(impl: str, layer: nn.Module, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, pos)`` of one layer call, each implementation with its own calling convention."""
    x, pos, edge_index, edge_attr = (inputs[k] for k in ("x", "pos", "edge_index", "edge_attr"))
    if impl == "graphlab":
        return layer(x, pos, edge_index, edge_attr)
    if impl == "E_GCL":  # aggregates at edge_index[0]: the flipped index (flipped once, outside)
        h, coord, _ = layer(x, inputs["edge_index_t"], pos, edge_attr)
        return h, coord
    out = layer(torch.cat([pos, x], dim=-1), edge_index, edge_attr)
    return out[:, pos.size(1):], out[:, :pos.size(1)]


def _anchor_step(impl: str, layer: nn.Module, inputs: dict):
    x = inputs["x"].clone().requires_grad_(True)
    pos = inputs["pos"].clone().requires_grad_(True)
    args = inputs | {"x": x, "pos": pos}

    def step() -> None:
        h, p = anchor_forward(impl, layer, args)
        (h.sum() + p.sum()).backward()
        x.grad = pos.grad = None
        layer.zero_grad(set_to_none=True)

    return step


def _to(inputs: dict, device: str) -> dict:
    out = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    out["edge_index_t"] = out["edge_index"].flip(0).contiguous()
    return out


def anchor_memory_step(impl: str, workload: str, num_nodes: int, device: str = "cpu"):
    """The peak-memory worker's step: one forward + backward of ``impl`` on a workload."""
    inputs = _to(anchor_inputs(workload, num_nodes), device)
    edge_dim = 0 if inputs["edge_attr"] is None else inputs["edge_attr"].size(1)
    layer = anchor_layer(impl, inputs["x"].size(1), edge_dim, device)
    return _anchor_step(impl, layer, inputs)


def anchor_agreement(workload: str = "nbody", num_nodes: int = 0) -> float:
    """Largest absolute difference of ``(h, pos)`` between ``EGNNConv`` and the authors'
    ``E_GCL`` with the same weights, in float64."""
    inputs = _to(anchor_inputs(workload, num_nodes), "cpu")
    inputs = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
              for k, v in inputs.items()}
    edge_dim = 0 if inputs["edge_attr"] is None else inputs["edge_attr"].size(1)
    c = inputs["x"].size(1)
    outs = [anchor_forward(impl, anchor_layer(impl, c, edge_dim).double(), inputs)
            for impl in ("graphlab", "E_GCL")]
    return max((a - b).abs().max().item() for a, b in zip(*outs, strict=True))


def anchor_rows(quick: bool, device: str = "cpu") -> list[dict]:
    """EGNNConv against the authors' ``E_GCL`` and ``egnn_pytorch.EGNN_Sparse``: one row per
    (workload, anchor) with the ratio's median and range over interleaved rounds, the memory
    ratio (full run), and the scaling exponent of time in edges (radius graphs). A missing
    anchor gives no row; :func:`benchmarks.common.anchors.skipped_anchors` says why."""
    from tqdm import tqdm

    torch.set_num_threads(1)
    rounds, min_run_time = (3, 0.02) if quick else (7, 0.2)
    impls = ["graphlab"]
    for impl in ANCHOR_IMPLS[1:]:
        try:
            anchor_layer(impl, 4, 0)
            impls.append(impl)
        except AnchorMissing:
            pass
    if len(impls) == 1:
        return []
    sizes = ANCHOR_SIZES[quick]
    cases = [("nbody", 0)] + [("radius", n) for n in sizes]
    timed: dict[tuple[str, int], dict[str, list[float]]] = {}
    edges: dict[tuple[str, int], int] = {}
    for workload, n in tqdm(cases, desc="egnn anchors", leave=False):
        inputs = _to(anchor_inputs(workload, n), device)
        edges[workload, n] = inputs["edge_index"].size(1)
        edge_dim = 0 if inputs["edge_attr"] is None else inputs["edge_attr"].size(1)
        steps = {impl: _anchor_step(impl, anchor_layer(impl, inputs["x"].size(1), edge_dim,
                                                       device), inputs) for impl in impls}
        timed[workload, n] = interleaved_times(steps, rounds, min_run_time, device)
    radius = [("radius", n) for n in sizes]
    exponent = {impl: scaling_exponent([edges[c] for c in radius],
                                       [sorted(timed[c][impl])[rounds // 2] for c in radius])
                for impl in impls}
    rows = []
    for case in (("nbody", 0), radius[-1]):
        memory = {}
        if not quick:  # a fresh process per layer; quick runs report no memory ratio
            memory = {impl: peak_memory("benchmarks.egnn_speed:anchor_memory_step",
                                        {"impl": impl, "workload": case[0],
                                         "num_nodes": case[1], "device": device}, device)
                      for impl in impls}
        label = ("EGNN layer fwd+bwd, 100 x 5-body (2,000 edges, 64 ch)" if case[0] == "nbody"
                 else f"EGNN layer fwd+bwd, radius graph {case[1]:,} nodes "
                      f"({edges[case]:,} edges, 32 ch)")
        for impl in impls[1:]:
            extra = {"device": device, "rounds": rounds, "edges": edges[case]}
            if case[0] == "radius":
                extra |= {"exponent": round(exponent["graphlab"], 3),
                          "anchor_exponent": round(exponent[impl], 3),
                          "exponent_over": f"{edges[radius[0]]:,}-{edges[radius[-1]]:,} edges"}
            if impl == "E_GCL":  # on this row's inputs, in float64
                extra["max_abs_diff"] = anchor_agreement(*case)
            else:
                extra["max_abs_diff"] = "n/a (a different layer: MLP widths 2(2F+1), 4m)"
            rows.append(anchor_row(label, ANCHOR_NAMES[impl], timed[case]["graphlab"],
                                   timed[case][impl], memory.get("graphlab"), memory.get(impl),
                                   **extra))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/egnn_speed"))
    parser.add_argument("--anchors", action="store_true",
                        help="print the rows against the authors' E_GCL and egnn-pytorch instead")
    parser.add_argument("--anchor-dir", type=Path, default=None,
                        help="folder with a checkout of github.com/vgsatorras/egnn as egnn/")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (with --anchors)")
    args = parser.parse_args(argv)
    set_anchor_dir(args.anchor_dir)
    if args.anchors:
        print(format_table(anchor_rows(args.quick, args.device)))
        return 0
    profiles: dict[str, str] = {}
    code = run_script("egnn-speed", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, profiles=profiles))
    for name, prof in profiles.items():
        print(f"\nprofile of EGNNConv, {name} (3 x forward+backward, self CPU time):\n{prof}")
    return code


if __name__ == "__main__":
    sys.exit(main())
