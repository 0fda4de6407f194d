"""Training-epoch time and peak memory of SheafDiffusion on Film: message passing vs an
assembled sparse nd x nd Laplacian (the reference code's approach), plus ConnectionSheaf cost.

Baseline ("sparse-assembly"): the same model, same parameters, but every layer builds the
normalised sheaf Laplacian as a ``torch.sparse_coo_tensor`` of size nd x nd (per-edge blocks and
diagonal blocks, then ``coalesce``) in each forward and applies it with ``torch.sparse.mm``, as
the Neural Sheaf Diffusion code does with ``torch_sparse``. Both are checked to give the same
output before timing.

Timing: ``torch.utils.benchmark.Timer.blocked_autorange`` median of one training epoch
(forward, backward, Adam step) on one thread. Memory: each method runs in a fresh subprocess and
reports the growth of peak resident memory (``resource.getrusage(...).ru_maxrss``) over two
training epochs, after the data and model are loaded.

    python -m benchmarks.sheaf_speed [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from graphlab.bench import register
from graphlab.conv.sheaf_conv import SheafConv
from graphlab.nn.orthogonal import sym_inv_sqrt

VARIANTS = ("sheaf-diag", "sheaf-orth", "sheaf-general")
MODEL = dict(stalk_dim=3, num_layers=2, hidden_channels=20, dropout=0.5)


class SparseAssemblySheafConv(SheafConv):
    """Baseline: the same layer, but Delta_F is assembled as a sparse nd x nd matrix."""

    def laplacian(self, x: torch.Tensor, edge_index: torch.Tensor, maps: torch.Tensor,
                  scaled_orthogonal: bool = False) -> torch.Tensor:
        from torch_geometric.utils import scatter

        n, d = x.size(0), self.stalk_dim
        src, dst = edge_index
        tgt, srcm = maps[:, 0], maps[:, 1]
        ar = torch.arange(d)
        nodes = torch.arange(n)
        if maps.dim() == 3:
            diag = scatter(tgt * tgt, dst, 0, dim_size=n, reduce="sum")
            inv = (diag + 1.0).rsqrt()
            off = -(inv[dst] * tgt * srcm * inv[src])
            on = inv * diag * inv
            rows = torch.cat([(dst[:, None] * d + ar).reshape(-1), (nodes[:, None] * d + ar)
                              .reshape(-1)])
            cols = torch.cat([(src[:, None] * d + ar).reshape(-1), (nodes[:, None] * d + ar)
                              .reshape(-1)])
        else:
            diag = scatter(tgt.mT @ tgt, dst, 0, dim_size=n, reduce="sum")
            eye = torch.eye(d, dtype=x.dtype)
            if scaled_orthogonal:  # scalar normaliser, as the reference's connection builder
                scale = diag.diagonal(dim1=-2, dim2=-1).mean(-1) + 1.0
                inv = scale.rsqrt()[:, None, None] * eye
            else:
                inv = sym_inv_sqrt(diag + eye)
            off = -(inv[dst] @ (tgt.mT @ srcm) @ inv[src])
            on = inv @ diag @ inv
            ii, jj = ar.repeat_interleave(d), ar.repeat(d)
            rows = torch.cat([(dst[:, None] * d + ii).reshape(-1),
                              (nodes[:, None] * d + ii).reshape(-1)])
            cols = torch.cat([(src[:, None] * d + jj).reshape(-1),
                              (nodes[:, None] * d + jj).reshape(-1)])
        values = torch.cat([off.reshape(-1), on.reshape(-1)])
        lap = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n * d, n * d))
        lap = lap.coalesce()
        return torch.sparse.mm(lap, x.reshape(n * d, -1)).view(n, d, -1)


def _film(quick: bool):
    from graphlab.datasets import get_dataset
    from graphlab.models.sheaf_diffusion import SheafDiffusion  # noqa: F401 (registry import)

    data = get_dataset("film").dataset[0]
    if quick:  # the first 1,000 nodes: same structure of work, a minute on 2 cores
        from torch_geometric.utils import subgraph

        keep = torch.arange(1000)
        data.edge_index, _ = subgraph(keep, data.edge_index, num_nodes=data.num_nodes)
        data.x, data.y = data.x[keep], data.y[keep]
        data.train_mask = data.train_mask[keep]
        data.num_nodes = 1000
    return data


def _build(variant: str, num_features: int, num_classes: int, method: str):
    from graphlab.datasets.spec import TaskSpec
    from graphlab.models import build_model

    torch.manual_seed(0)
    spec = TaskSpec("node", num_features, num_classes, "ce", "acc")
    model = build_model(variant, spec, **MODEL)
    if method == "sparse-assembly":
        for conv in model.convs:  # identical parameters, only the Laplacian product differs
            conv.__class__ = SparseAssemblySheafConv
    return model


def _epoch_fn(model, data, opt):
    train = data.train_mask[:, 0]

    def epoch() -> None:
        model.train()
        opt.zero_grad()
        out = model(data)
        torch.nn.functional.cross_entropy(out[train], data.y[train]).backward()
        opt.step()

    return epoch


def worker(path: str, variant: str, method: str, min_time: float) -> dict:
    """One method in a fresh process: peak-memory growth over two epochs, then timing."""
    from torch.utils.benchmark import Timer

    torch.set_num_threads(1)
    saved = torch.load(path, weights_only=True)
    from torch_geometric.data import Data

    data = Data(**saved)
    model = _build(variant, data.x.size(1), int(data.y.max()) + 1, method)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    epoch = _epoch_fn(model, data, opt)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    epoch()
    epoch()
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    timer = Timer("epoch()", globals={"epoch": epoch}, num_threads=1)
    median = timer.blocked_autorange(min_run_time=min_time).median
    return {"ms_per_epoch": 1000 * median, "peak_rss_growth_mb": peak_mb}


def _run_worker(path: str, variant: str, method: str, min_time: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.sheaf_speed", "--worker", path, variant, method,
           str(min_time)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(res.stdout.strip().splitlines()[-1])


def _check_same_output(data, variant: str) -> float:
    ours = _build(variant, data.x.size(1), int(data.y.max()) + 1, "message-passing").eval()
    ref = _build(variant, data.x.size(1), int(data.y.max()) + 1, "sparse-assembly").eval()
    with torch.no_grad():
        return float((ours(data) - ref(data)).abs().max())


@register("sheaf-speed", "SheafDiffusion epoch time/memory on Film vs sparse nd x nd assembly")
def run(quick: bool, out: Path) -> list[dict]:
    from benchmarks.sheaf_webkb import _data_available
    from graphlab.transforms import ConnectionSheaf

    if not _data_available():
        print("sheaf-speed: Film data not found (set GRAPHLAB_DATA_DIR); skipping")
        return []
    torch.set_num_threads(1)
    from torch_geometric.transforms import RemoveSelfLoops, ToUndirected

    data = ToUndirected()(RemoveSelfLoops()(_film(quick)))
    variants = ("sheaf-diag",) if quick else VARIANTS
    min_time = 0.5 if quick else 8.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "film.pt")
        torch.save({"x": data.x, "edge_index": data.edge_index, "y": data.y,
                    "train_mask": data.train_mask}, path)
        for variant in variants:
            err = _check_same_output(data, variant)
            res = {m: _run_worker(path, variant, m, min_time)
                   for m in ("message-passing", "sparse-assembly")}
            ours, base = res["message-passing"], res["sparse-assembly"]
            rows.append({
                "model": variant, "nodes": data.num_nodes, "edges": data.edge_index.size(1),
                "ours ms/epoch": round(ours["ms_per_epoch"], 1),
                "sparse-assembly ms/epoch": round(base["ms_per_epoch"], 1),
                "speed-up": round(base["ms_per_epoch"] / ours["ms_per_epoch"], 2),
                "ours peak MB": round(ours["peak_rss_growth_mb"], 1),
                "sparse-assembly peak MB": round(base["peak_rss_growth_mb"], 1),
                "max |out diff|": f"{err:.1e}",
            })
    start = time.perf_counter()
    ConnectionSheaf(MODEL["stalk_dim"])(data.clone())
    prep = time.perf_counter() - start
    rows.append({"model": "ConnectionSheaf preprocessing (d=3, once)", "nodes": data.num_nodes,
                 "edges": data.edge_index.size(1), "ours ms/epoch": f"{1000 * prep:.0f} ms total"})
    if not quick:
        _write(rows, out)
    return rows


def _write(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "sheaf_speed.json").write_text(json.dumps({"rows": rows, "model": MODEL}, indent=1))
    head = list(rows[0])
    lines = ["# SheafDiffusion on Film: message passing vs sparse nd x nd assembly", "",
             "Command: `python -m benchmarks.sheaf_speed`",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "Machine: 2-core CPU (shared with other jobs), torch 2.13 CPU, 1 thread", "",
             f"Model: {json.dumps(MODEL)}; one epoch = forward + backward + Adam step on the "
             "full graph (train mask of split 0).",
             "Time: median of `torch.utils.benchmark.Timer.blocked_autorange`. Memory: growth of "
             "peak RSS (`ru_maxrss`) over two epochs in a fresh subprocess per method.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in head) + " |" for r in rows]
    (out / "sheaf_speed.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        path, variant, method, min_time = sys.argv[2:6]
        print(json.dumps(worker(path, variant, method, float(min_time))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    for row in run(args.quick, args.out):
        print(row)


if __name__ == "__main__":
    main()
