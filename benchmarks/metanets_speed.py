"""Speed of ``to_graph`` per view, graph sizes, and metanet forward throughput.

Part 1 converts an MLP, a small CNN (the Small CNN Zoo architecture of Unterthiner et al.), a
CIFAR-style ResNet-18 (11.2M parameters) and a transformer encoder block into each view and
reports the median time (``torch.utils.benchmark.Timer.blocked_autorange``; one run for the
ResNet-18 parameter view, which takes seconds) with the node and edge counts. The baseline is the
tracing step alone (``torch.fx.symbolic_trace`` + ``ShapeProp``), measured in the same run: the
ratio is what the per-layer expansion costs on top of tracing.

Part 2 measures metanet forward throughput (graphs/second, batches of 32 Small-CNN-Zoo networks,
inference mode, one thread): ``GMN`` on parameter graphs and ``NeuralGraphEncoder`` on neural
graphs, against the StatNN featurisation (per-layer weight statistics) as the baseline.

    python -m benchmarks.metanets_speed [--quick] [--out runs/metanets_speed]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.benchmark import Timer

from benchmarks.common import TaskResult, register, run_script
from graphlab.metanets import GMN, NeuralGraphEncoder, to_graph, weight_statistics
from graphlab.metanets.corpus import TransformerBlock, make_mlp, resnet18


def small_cnn_zoo_net() -> nn.Module:
    """3 conv layers x 16 channels, 3x3, stride 2, GAP, dense 10 (4,970 parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 2), nn.ReLU(), nn.Conv2d(16, 16, 3, 2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 10))


def inputs(quick: bool) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    nets = {
        "MLP 784-256-256-10": (make_mlp((784, 256, 256, 10)), torch.randn(2, 784)),
        "Small CNN Zoo CNN": (small_cnn_zoo_net(), torch.randn(2, 1, 28, 28)),
        "Transformer block d=64 h=4": (TransformerBlock(64, 4, 256), torch.randn(2, 16, 64)),
        "ResNet-18 (CIFAR stem)": (resnet18(), torch.randn(1, 3, 32, 32)),
    }
    return {k: (m.eval(), x) for k, (m, x) in nets.items()}


def _trace(m: nn.Module, x: torch.Tensor) -> None:
    gm = torch.fx.symbolic_trace(m)
    ShapeProp(gm).propagate(x)


def _median(stmt, single: bool, min_run_time: float) -> float:
    timer = Timer(stmt="f()", globals={"f": stmt}, num_threads=1)
    if single:
        return timer.timeit(1).median
    return timer.blocked_autorange(min_run_time=min_run_time).median


def convert_rows(quick: bool) -> list[dict]:
    rows = []
    mrt = 0.2 if quick else 1.0
    for name, (m, x) in inputs(quick).items():
        big = name.startswith("ResNet")
        n_params = sum(p.numel() for p in m.parameters())
        base = _median(lambda m=m, x=x: _trace(m, x), False, mrt)
        for view in ("neural", "parameter", "op"):
            single = big and view == "parameter"
            if quick and single:  # 11.2M edges, ~1.5 GB: full runs only
                continue
            t = _median(lambda m=m, x=x, v=view: to_graph(m, x, v), single, mrt)
            g = to_graph(m, x, view)
            width = g.edge_attr.size(1) if getattr(g, "edge_attr", None) is not None else 0
            rows.append({
                "part": "to_graph", "network": name, "params": n_params, "view": view,
                "nodes": g.num_nodes, "edges": g.num_edges, "edge_dim": width,
                "density": round(g.num_edges / max(g.num_nodes, 1) ** 2, 5),
                "time_ms": round(1e3 * t, 2), "baseline": "fx trace + ShapeProp",
                "baseline_ms": round(1e3 * base, 2), "ratio": round(t / base, 2),
            })
    return rows


def throughput_rows(quick: bool) -> list[dict]:
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    batch_size = 32
    nets = [small_cnn_zoo_net().eval() for _ in range(batch_size)]
    x = torch.randn(1, 1, 28, 28)
    mrt = 0.5 if quick else 2.0
    rows = []
    stat = _median(lambda: [weight_statistics(m) for m in nets], False, mrt)
    stat_gps = batch_size / stat
    rows.append({"part": "throughput", "network": "Small CNN Zoo CNN", "model": "StatNN features",
                 "view": "-", "graphs_per_s": round(stat_gps, 1), "ratio_vs_statnn": 1.0})
    for cls, view in ((GMN, "parameter"), (NeuralGraphEncoder, "neural")):
        graphs = [to_graph(m, x, view) for m in nets]
        batch = Batch.from_data_list(graphs)
        torch.manual_seed(0)
        net = cls.from_graph(graphs[0], 1, hidden_channels=64, num_layers=3).eval()

        def fwd(net=net, batch=batch):
            with torch.inference_mode():
                net(batch)

        t = _median(fwd, False, mrt)
        conv = _median(lambda view=view: [to_graph(m, x, view) for m in nets], False, mrt)
        gps = batch_size / t
        rows.append({"part": "throughput", "network": "Small CNN Zoo CNN", "model": cls.__name__,
                     "view": view, "graphs_per_s": round(gps, 1),
                     "ratio_vs_statnn": round(gps / stat_gps, 3),
                     "to_graph_per_s": round(batch_size / conv, 1),
                     "graph": f"{graphs[0].num_nodes} nodes / {graphs[0].num_edges} edges"})
    return rows


NOTES = ("The ratios compare against a baseline measured in the same run (one thread; the "
         "load line says how busy the machine was). The neural view stores one edge per (in, out) "
         "channel pair with the kernel as a vector, so ResNet-18 needs 1.4M edges instead of the "
         "parameter view's 11.2M (density = edges / nodes^2). For small networks `to_graph` is "
         "dominated by fx tracing (ratio ~1-1.5). StatNN features are the per-layer weight "
         "statistics (7 per tensor) without the regressor.")


@register("metanets-speed", "to_graph per view (MLP, CNN, ResNet-18, transformer) and metanet "
          "throughput vs StatNN", paper="Lim et al. 2024 (GMN); Kofinas et al. 2024 (NG)")
def run(quick: bool, out: Path) -> TaskResult:
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rows = convert_rows(quick) + throughput_rows(quick)
    # the machine may be shared: the load average says how far the timings are inflated
    load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end (1-min load average)"
    resnet = [r for r in rows if r["part"] == "to_graph" and r["network"].startswith("ResNet")
              and r["view"] == "neural"]
    gmn = [r for r in rows if r.get("model") == "GMN"]
    ours = []
    if resnet:
        ours.append(f"ResNet-18 neural view {resnet[0]['time_ms']:.0f} ms, {resnet[0]['nodes']:,} "
                    f"nodes / {resnet[0]['edges']:,} edges ({resnet[0]['ratio']}x the trace)")
    if gmn:
        ours.append(f"GMN {gmn[0]['graphs_per_s']} graphs/s ({gmn[0]['ratio_vs_statnn']}x StatNN)")
    return TaskResult(rows, paper="(no timing in the papers)", ours="; ".join(ours),
                      notes=f"{NOTES} Load: {load}.", config={"threads": 1})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/metanets_speed"))
    args = parser.parse_args(argv)
    return run_script("metanets-speed", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out))


if __name__ == "__main__":
    sys.exit(main())
