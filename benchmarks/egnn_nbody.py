"""N-body reproduction: EGNN vs a non-equivariant GNN vs a linear model (EGNN paper, Table 2).

Setting of the paper's ``main_nbody.py`` (``nbody_small``): five charged particles, predict the
positions 1,000 steps ahead from positions and velocities; 3,000 training samples, validation
and test sets of 2,000; Adam, lr 5e-4, weight decay 1e-12, batch 100, MSE loss; the test MSE at
the epoch of best validation MSE is reported. The data is :class:`graphlab.datasets.NBody`
(simulated here from seed 43, not the authors' files).

* EGNN: :class:`graphlab.models.EGNN` with the velocity variant, 4 layers, 64 channels,
  ``h = ||v||``, edge attributes ``[q_i q_j, ||x_i - x_j||^2]``, fully connected graphs.
* GNN: the paper's baseline, an MPNN on ``[x, v]`` (edge MLP on ``[h_i, h_j, q_i q_j]``, residual
  node MLP, 4 layers, 64 channels, decoder to positions).
* Linear: ``x + t v`` with a learned ``t`` (the paper's linear dynamics baseline).

The paper trains for 10,000 epochs; that does not fit this machine, so the epoch budget is an
argument (``--epochs``, default 40 at lr 1e-3) and is printed with the results. ``--quick`` uses
12 epochs and 1,000 validation and test samples.

    python -m benchmarks.egnn_nbody [--quick] [--epochs N] [--out runs/egnn_nbody]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from benchmarks.common import TaskResult, register, run_script
from benchmarks.common.figures import line_chart

PAPER = {"EGNN": 0.0071, "GNN": 0.0107, "Linear": 0.0819}
HIDDEN, LAYERS, LR, WEIGHT_DECAY, BATCH = 64, 4, 5e-4, 1e-12, 100
# The paper's 10,000 epochs at lr 5e-4 do not fit a shared 2-core CPU; with budgets of tens of
# epochs a doubled learning rate converges faster (same for all three models).
QUICK = dict(epochs=12, lr=1e-3, val=1000, test=1000)
FULL = dict(epochs=40, lr=1e-3, val=2000, test=2000)


def _fully_connected(num_graphs: int, n: int) -> Tensor:
    idx = torch.arange(n)
    src, dst = idx.repeat_interleave(n), idx.repeat(n)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    offset = (torch.arange(num_graphs) * n).repeat_interleave(src.numel())
    return torch.stack([src.repeat(num_graphs), dst.repeat(num_graphs)]) + offset


class EGNNDynamics(nn.Module):
    """The paper's ``EGNN_vel`` on top of :class:`graphlab.models.EGNNEncoder`."""

    def __init__(self) -> None:
        super().__init__()
        from graphlab.models import EGNNEncoder

        self.model = EGNNEncoder(1, HIDDEN, HIDDEN, LAYERS, edge_dim=2)

    def forward(self, pos: Tensor, vel: Tensor, charge: Tensor, edge_index: Tensor) -> Tensor:
        src, dst = edge_index
        diff = pos[dst] - pos[src]
        edge_attr = torch.cat([charge[dst] * charge[src], (diff * diff).sum(-1, keepdim=True)], 1)
        h = vel.norm(dim=-1, keepdim=True)
        _, pos_out = self.model(h, edge_index, pos, edge_attr, vel=vel)
        return pos_out


class GNNDynamics(nn.Module):
    """The paper's non-equivariant baseline (``n_body_system/model.py: GNN``)."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.SiLU()
        self.embedding = nn.Linear(6, HIDDEN)
        self.edge_mlps = nn.ModuleList([
            nn.Sequential(nn.Linear(2 * HIDDEN + 1, HIDDEN), act, nn.Linear(HIDDEN, HIDDEN), act)
            for _ in range(LAYERS)])
        self.node_mlps = nn.ModuleList([
            nn.Sequential(nn.Linear(2 * HIDDEN, HIDDEN), act, nn.Linear(HIDDEN, HIDDEN))
            for _ in range(LAYERS)])
        self.decoder = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), act, nn.Linear(HIDDEN, 3))

    def forward(self, pos: Tensor, vel: Tensor, charge: Tensor, edge_index: Tensor) -> Tensor:
        src, dst = edge_index
        edge_attr = charge[dst] * charge[src]
        h = self.embedding(torch.cat([pos, vel], dim=-1))
        for edge_mlp, node_mlp in zip(self.edge_mlps, self.node_mlps):
            m = edge_mlp(torch.cat([h[dst], h[src], edge_attr], dim=-1))
            agg = torch.zeros_like(h).index_add(0, dst, m)
            h = h + node_mlp(torch.cat([h, agg], dim=-1))
        return self.decoder(h)


class LinearDynamics(nn.Module):
    """``x + t v`` with a learned time step (``Linear_dynamics`` in the authors' code)."""

    def __init__(self) -> None:
        super().__init__()
        self.time = nn.Parameter(torch.tensor(0.7))

    def forward(self, pos: Tensor, vel: Tensor, charge: Tensor, edge_index: Tensor) -> Tensor:
        return pos + self.time * vel


NOTES = """Budget: every model gets the same data (NBody seed 43: 3,000 training samples and the
validation and test sizes of the config), the same optimiser (Adam, weight decay 1e-12, batch 100)
and the same epoch budget; the paper trains 10,000 epochs at lr 5e-4, which does not fit a CPU
budget, so this run uses the epochs in the table at lr 1e-3. Test MSE is taken at the epoch of
best validation MSE. Training times are wall-clock. The paper's absolute numbers need the full
10,000-epoch budget; the ordering EGNN < GNN < Linear is what a short budget can show.
"""

MODELS = {"EGNN": EGNNDynamics, "GNN": GNNDynamics, "Linear": LinearDynamics}


def _load(quick: bool, cfg: dict) -> dict[str, dict[str, Tensor]]:
    from graphlab.datasets import NBody

    root = Path(os.environ.get("GRAPHLAB_CACHE", Path.home() / ".cache" / "graphlab")) / "nbody"
    sizes = {"train": 3000, "val": cfg["val"], "test": cfg["test"]}
    return {split: NBody(str(root), split=split, num_samples=n).as_tensors()
            for split, n in sizes.items()}


def _batches(data: dict[str, Tensor], order: Tensor):
    n = data["pos"].size(1)
    for start in range(0, order.numel(), BATCH):
        idx = order[start:start + BATCH]
        flat = {k: v[idx].reshape(-1, v.size(-1)) for k, v in data.items()}
        yield flat, _fully_connected(idx.numel(), n)


@torch.no_grad()
def evaluate(model: nn.Module, data: dict[str, Tensor]) -> float:
    model.eval()
    total, count = 0.0, 0
    for b, ei in _batches(data, torch.arange(data["pos"].size(0))):
        pred = model(b["pos"], b["vel"], b["charge"], ei)
        total += float(((pred - b["y"]) ** 2).sum())
        count += b["y"].numel()
    return total / count


def train(name: str, data: dict, epochs: int, lr: float, seed: int = 0) -> dict:
    """Train one model with :func:`graphlab.engine.fit`: validation MSE after every epoch, the
    best epoch's weights restored, then the test MSE of that epoch."""
    from graphlab.engine import fit

    torch.manual_seed(seed)
    model = MODELS[name]()
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    gen = torch.Generator().manual_seed(seed)
    num_train = data["train"]["pos"].size(0)

    def step(model: nn.Module, batch) -> Tensor:
        b, ei = batch
        return ((model(b["pos"], b["vel"], b["charge"], ei) - b["y"]) ** 2).mean()

    res = fit(model, opt, train_step=step, epochs=epochs,
              train_batches=lambda epoch: _batches(data["train"],
                                                   torch.randperm(num_train, generator=gen)),
              evaluate=lambda m: {"valid": evaluate(m, data["val"])}, select=("valid", "min"),
              restore_best=True, generator=gen, desc=f"nbody {name}")
    return {"val": res.best["valid"], "test": evaluate(model, data["test"]),
            "epoch": res.best_epoch + 1, "train_s": res.seconds,
            "curve": [(h["epoch"] + 1, round(h["valid"], 6)) for h in res.history]}


@register("egnn-nbody", "EGNN vs GNN vs Linear on the charged N-body system (3,000 samples)",
          paper="Satorras et al. 2021, Table 2")
def run(quick: bool, out: Path, epochs: int | None = None) -> TaskResult:
    torch.set_num_threads(1)
    cfg = dict(QUICK if quick else FULL)
    if epochs is not None:
        cfg["epochs"] = epochs
    data = _load(quick, cfg)
    rows, curves = [], {}
    for name in MODELS:
        res = train(name, data, cfg["epochs"], cfg["lr"])
        curves[name] = res["curve"]
        rows.append({"model": name, "test MSE": round(res["test"], 5),
                     "paper MSE": PAPER[name], "best epoch": res["epoch"],
                     "epochs": cfg["epochs"], "lr": cfg["lr"],
                     "train s": round(res["train_s"], 1)})
    mse = {r["model"]: r["test MSE"] for r in rows}
    order_ok = mse["EGNN"] < mse["GNN"] < mse["Linear"]
    for r in rows:
        r["EGNN < GNN < Linear"] = order_ok
    figure = line_chart(out / "egnn-nbody.png", curves, xlabel="epoch", ylabel="validation MSE",
                        log=True, title=f"N-body: validation MSE ({cfg['epochs']} epochs)")
    return TaskResult(rows, paper="MSE EGNN / GNN / Linear " + " / ".join(
                          str(PAPER[m]) for m in MODELS) + " (10,000 epochs)",
                      ours="MSE EGNN / GNN / Linear " + " / ".join(f"{mse[m]:.4f}" for m in MODELS)
                      + f" ({cfg['epochs']} epochs)", notes=NOTES,
                      figures=[figure] if figure else [], config=cfg,
                      extra={"validation_curves": curves})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/egnn_nbody"))
    args = parser.parse_args(argv)
    return run_script("egnn-nbody", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, epochs=args.epochs))


if __name__ == "__main__":
    sys.exit(main())
