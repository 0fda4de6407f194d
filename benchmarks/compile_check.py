"""torch.compile per layer: graph breaks, graphs compiled over batch sizes, compiled/eager time.

For every conv of :mod:`graphlab.conv`, the aggregators inside a PyG conv (GIN + GNP eager and
fused, GIN + LCM, SAGE + Recurrent) and PyG's own ``GINConv`` as the baseline:

* **graph breaks**: ``torch._dynamo.explain`` on one batch (load-independent);
* **graphs compiled**: ``torch.compile(dynamic=True)`` called on batches of 3 sizes, counted by
  a backend that counts the FX graphs it receives (each graph-break piece and each
  recompilation adds one; PyG's GINConv compiles 1);
* **time** (optional, ``--no-timing`` skips it): forward + backward, eager and
  ``torch.compile(module)`` (inductor, static shapes, after a warm-up call), median of
  ``torch.utils.benchmark.Timer.blocked_autorange`` (CPU: process CPU time on one thread; CUDA:
  wall time, the timer synchronises), and the ratio compiled / eager measured in the same run.
  ``--quick`` uses tiny batches and times only the baseline and EGNNConv.

Runs on CUDA when it is present (``--device`` to choose).

    python -m benchmarks.compile_check [--quick] [--no-timing] [--device cpu|cuda] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common import TaskResult, register, run_script

CHANNELS = 32
#: graphs per batch for the compile count (three sizes) and for timing
COUNT_BATCHES = (4, 8, 12)
TIME_GRAPHS = {"quick": 4, "full": 256}
NODES_PER_GRAPH = 24
PATH_LENGTH = 2
MIN_RUN_TIME = {"quick": 0.02, "full": 1.0}
#: layers timed by --quick (each compiles with inductor: tens of seconds on a CPU); the full run
#: times every layer
QUICK_TIMED = ("PyG GINConv (baseline)", "EGNNConv")


# --------------------------------------------------------------------------- data
def _batch(num_graphs: int, seed: int, device: torch.device):
    from torch_geometric.data import Batch

    from graphlab.testing import random_graph
    from graphlab.transforms import AddPaths

    graphs = []
    for k in range(num_graphs):
        g = random_graph(NODES_PER_GRAPH - 4 + (seed + k) % 9, in_channels=CHANNELS,
                         edge_dim=CHANNELS, pos_dim=3, seed=seed * 1000 + k)
        g.edge_weight = torch.rand(g.edge_index.size(1),
                                   generator=torch.Generator().manual_seed(seed + k))
        graphs.append(AddPaths(PATH_LENGTH)(g))
    return Batch.from_data_list(graphs).to(device)


# --------------------------------------------------------------------------- layers
def _gin_mlp() -> nn.Module:
    from torch_geometric.nn.models import MLP

    return MLP([CHANNELS, CHANNELS, CHANNELS], norm=None)


def _layers() -> dict[str, tuple[Callable[[], nn.Module], Callable[[Any], tuple]]]:
    """name -> (factory, batch -> positional args)."""
    from torch_geometric.nn import GINConv, SAGEConv

    from graphlab.aggr import GNPAggregation, LCMAggregation, RecurrentAggregation
    from graphlab.conv import EGNNConv, PathConv, SheafConv, SheafLearner, WeightedGINEConv

    c = CHANNELS
    node = lambda b: (b.x, b.edge_index)  # noqa: E731
    d, sc = 4, CHANNELS // 4
    return {
        "PyG GINConv (baseline)": (lambda: GINConv(_gin_mlp()), node),
        "EGNNConv": (lambda: EGNNConv(c, c, edge_dim=c),
                     lambda b: (b.x, b.pos, b.edge_index, b.edge_attr)),
        "SheafConv (diag)": (lambda: SheafConv(sc, d), node),
        "SheafConv (orthogonal)": (lambda: SheafConv(sc, d, maps="orthogonal"), node),
        "SheafConv (general)": (lambda: SheafConv(sc, d, maps="general"), node),
        "SheafLearner (orthogonal)": (lambda: SheafLearner(c, d, "orthogonal"), node),
        "WeightedGINEConv": (lambda: WeightedGINEConv(_gin_mlp(), edge_dim=c),
                             lambda b: (b.x, b.edge_index, b.edge_attr, b.edge_weight)),
        "PathConv": (lambda: PathConv(c, edge_dim=c, max_distance=PATH_LENGTH),
                     lambda b: (b.x, b[f"path_index_{PATH_LENGTH}"], b.edge_attr,
                                b[f"path_edge_{PATH_LENGTH}"], b[f"path_dist_{PATH_LENGTH}"])),
        "GIN + GNP (eager)": (lambda: GINConv(_gin_mlp(), aggr=GNPAggregation(c, p=2.0, q=0.5)),
                              node),
        "GIN + GNP (fused)": (lambda: GINConv(_gin_mlp(), aggr=GNPAggregation(
            c, p=2.0, q=0.5, fused=True)), node),
        "GIN + LCM": (lambda: GINConv(_gin_mlp(), aggr=LCMAggregation(c, c)), node),
        "SAGE + Recurrent (LSTM)": (lambda: SAGEConv(c, c, aggr=RecurrentAggregation(c, c)), node),
    }


# --------------------------------------------------------------------------- measurements
def _loss(out: Tensor | tuple) -> Tensor:
    outs = (out,) if isinstance(out, Tensor) else out
    return sum(o.float().sum() for o in outs if o.is_floating_point())


def _time(fn: Callable[[], Any], device: torch.device, min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    fn()  # warm-up (and, for a compiled module, the compilation)
    timer = Timer("fn()", globals={"fn": fn},
                  **({"timer": time.process_time} if device.type == "cpu" else {}))
    return timer.blocked_autorange(min_run_time=min_run_time).median


def measure(name: str, factory: Callable[[], nn.Module], args_of: Callable[[Any], tuple],
            batches: list, timing_batch, device: torch.device, min_run_time: float | None
            ) -> dict[str, Any]:
    from graphlab.testing.compile import count_compiles, explain_graph_breaks

    torch.manual_seed(0)
    module = factory().to(device)
    with torch.no_grad():
        breaks, reasons = explain_graph_breaks(module.eval(), *args_of(batches[0]))
    graphs = count_compiles(module, [args_of(b) for b in batches], dynamic=True)
    row: dict[str, Any] = {"layer": name, "graph breaks": breaks,
                           f"graphs over {len(batches)} batch sizes": graphs}
    if min_run_time is not None:
        module.train()
        args = args_of(timing_batch)

        def step(m: nn.Module) -> Callable[[], None]:
            def run() -> None:
                m.zero_grad(set_to_none=True)
                _loss(m(*args)).backward()
            return run

        torch._dynamo.reset()
        eager = _time(step(module), device, min_run_time)
        compiled = _time(step(torch.compile(module)), device, min_run_time)
        torch._dynamo.reset()
        row.update({"eager ms": round(eager * 1e3, 3), "compiled ms": round(compiled * 1e3, 3),
                    "compiled / eager": round(compiled / eager, 3)})
    row["break reasons"] = "; ".join(r.splitlines()[0][:120] for r in reasons[:3])
    return row


@register("compile-check", "torch.compile per layer: graph breaks, graphs compiled over 3 batch "
                           "sizes, compiled/eager time, against PyG's GINConv")
def run(quick: bool, out: Path, timing: bool = True, device: str | None = None) -> TaskResult:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = "quick" if quick else "full"
    batches = [_batch(k, seed=k, device=dev) for k in COUNT_BATCHES]
    timing_batch = _batch(TIME_GRAPHS[size], seed=99, device=dev) if timing else None
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (factory, args_of) in _layers().items():
            timed = timing and (not quick or name in QUICK_TIMED)
            row = measure(name, factory, args_of, batches, timing_batch, dev,
                          MIN_RUN_TIME[size] if timed else None)
            rows.append(row)
            print(f"  {name}: {row['graph breaks']} breaks, "
                  f"{row[f'graphs over {len(batches)} batch sizes']} graphs", flush=True)
    base = rows[0]
    clean = [r["layer"] for r in rows[1:] if r["graph breaks"] == 0]
    notes = (f"device {dev}; batches of {COUNT_BATCHES} graphs of ~{NODES_PER_GRAPH} nodes, "
             f"{CHANNELS} channels; counts from torch._dynamo.explain and a graph-counting "
             f"backend (dynamic=True). ")
    if timing:
        notes += (f"Time: forward+backward of a {TIME_GRAPHS[size]}-graph batch, median of "
                  f"blocked_autorange ({'process CPU time' if dev.type == 'cpu' else 'wall'}), "
                  f"compiled = torch.compile(module) (inductor) after one warm-up call"
                  f"{'; --quick times only ' + ', '.join(QUICK_TIMED) if quick else ''}.")
    else:
        notes += "Time not measured (--no-timing)."
    return TaskResult(
        rows,
        paper="PyG GINConv: 0 graph breaks",
        ours=f"{len(clean)}/{len(rows) - 1} layers with 0 breaks (baseline "
             f"{base['graph breaks']} breaks, {base[f'graphs over {len(batches)} batch sizes']} "
             f"graphs)",
        notes=notes,
        config={"quick": quick, "device": str(dev), "timing": timing, "channels": CHANNELS,
                "count_batches": list(COUNT_BATCHES), "time_graphs": TIME_GRAPHS[size]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the script)")
    parser.add_argument("--no-timing", action="store_true",
                        help="only the load-independent counts (breaks, graphs compiled)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--out", type=Path, default=Path("runs/compile_check"))
    args = parser.parse_args(argv)
    return run_script("compile-check", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, timing=not args.no_timing,
                                  device=args.device))


if __name__ == "__main__":
    sys.exit(main())
