"""Trees-NeighborsMatch (over-squashing): PR-MPNN vs the same 1-layer MPNN without rewiring vs
random rewiring with the same budget k.

The downstream model is one :class:`~graphlab.conv.WeightedGINEConv` layer read out at the root
(as in the paper's ``tree_*`` configs: 1 downstream layer, root pooling, all node pairs as
candidates, no deletions). Without rewiring the root only sees its two children, so for depth >= 2
it is at chance level (1 / 2^depth). PR-MPNN's upstream scorer (node embeddings -> pair MLP, no
message passing) learns which leaf to connect to the root. "random" adds the same number k of
uniformly random candidate pairs (fresh each forward, also at evaluation).

Budget (2 shared CPU cores): ``num_permutations`` random permutations x 2^depth query keys per
depth, an 80/20 split, a fixed number of epochs; the paper trains up to 50k epochs and reports
training accuracy. We report both train and test accuracy.

    python -m benchmarks.prmpnn_trees [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_geometric.loader import DataLoader

from benchmarks._prmpnn_common import write_results
from graphlab.bench import register
from graphlab.conv import WeightedGINEConv
from graphlab.datasets import TreeNeighborsMatch
from graphlab.rewiring import EdgeCandidates, EdgeScorer, ProbabilisticRewirer

HIDDEN = 64


class RandomScorer(nn.Module):
    """Uniform random logits: Gumbel/top-k of them is a uniformly random k-subset."""

    def forward(self, x, edge_index, edge_attr, add_pairs, delete_pairs):
        return torch.rand(add_pairs.size(1)), torch.rand(delete_pairs.size(1))


class TreeModel(nn.Module):
    def __init__(self, num_leaves: int, mode: str, k_add: int, num_samples: int,
                 upstream_layers: int = 0) -> None:
        super().__init__()
        self.key = nn.Embedding(num_leaves + 1, HIDDEN)
        self.value = nn.Embedding(num_leaves + 1, HIDDEN)
        self.mode = mode
        self.rewirer = None
        if mode != "none":
            scorer = EdgeScorer(HIDDEN, HIDDEN, num_layers=upstream_layers) \
                if mode == "prmpnn" else RandomScorer()
            self.rewirer = ProbabilisticRewirer(scorer, k_add, 0, num_samples)
        mlp = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN))
        self.conv = WeightedGINEConv(mlp, train_eps=True)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(HIDDEN, num_leaves))

    def forward(self, data, generator=None) -> Tensor:
        h = self.key(data.x[:, 0]) + self.value(data.x[:, 1])
        if self.rewirer is None:
            out = self.conv(h, data.edge_index)
            return self.head(out[data.root_mask])
        rew = self.rewirer(h, data.edge_index, data.batch, None, data.cand_index,
                           data.num_graphs, generator)
        out = self.conv(h[rew.node_index], rew.edge_index, None, rew.edge_weight)
        root = data.root_mask.repeat(rew.num_samples)
        return self.head(out[root]).view(rew.num_samples, data.num_graphs, -1).mean(0)


def _accuracy(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for data in loader:
            correct += int((model(data).argmax(-1) == data.y).sum())
            total += data.num_graphs
    return correct / max(total, 1)


def run_depth(depth: int, mode: str, num_permutations: int, epochs: int, k_add: int = 1,
              seed: int = 0, num_samples: int = 2, upstream_layers: int = 0,
              lr: float = 3e-3) -> dict:
    torch.manual_seed(seed)
    ds = TreeNeighborsMatch(depth, num_permutations, seed=seed)
    cands = EdgeCandidates(None, "all")
    graphs = [cands(d) for d in ds]
    perm = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = int(0.8 * len(graphs))
    train = [graphs[i] for i in perm[:cut]]
    test = [graphs[i] for i in perm[cut:]]
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    model = TreeModel(ds.num_leaves, mode, k_add, num_samples, upstream_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    curve = []
    for epoch in range(epochs):
        model.train()
        for data in train_loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(data, gen), data.y)
            loss.backward()
            opt.step()
        if (epoch + 1) % max(epochs // 10, 1) == 0:
            curve.append((epoch + 1, round(_accuracy(model, DataLoader(train, batch_size=256)), 3)))
    rewired = mode != "none"
    return {"depth": depth, "model": mode, "k_add": k_add if rewired else 0,
            "samples": num_samples if rewired else 0,
            "upstream_layers": upstream_layers if mode == "prmpnn" else 0,
            "graphs": len(graphs), "epochs": epochs, "lr": lr, "train_curve": curve,
            "train_acc": _accuracy(model, DataLoader(train, batch_size=256)),
            "test_acc": _accuracy(model, DataLoader(test, batch_size=256)),
            "chance": 1 / ds.num_leaves, "train_s": time.perf_counter() - start}


#: depth -> (permutations, epochs) for the full run
FULL = {2: (60, 60), 3: (40, 40), 4: (16, 30), 5: (6, 30)}
QUICK = {2: (40, 40)}


NOTES = ("1 downstream WeightedGINEConv layer, root readout, hidden 64; rewiring adds k_add "
         "pairs per graph chosen among all node pairs (SIMPLE, `samples` rewirings in training, "
         "deterministic top-k at evaluation); 'random' adds k_add uniformly random pairs; batch 64, "
         "80/20 split; graphs = permutations x 2^depth query keys. Train-accuracy curves "
         "(epoch, acc) are in the JSON file.")


def run_plan(plan: dict[int, tuple[int, int]], out: Path, name: str, cmd: str,
             models: tuple[str, ...] = ("none", "random", "prmpnn"), **knobs) -> list[dict]:
    from tqdm import tqdm

    torch.set_num_threads(1)
    jobs = [(d, m) for d in plan for m in models]
    rows = []
    for depth, mode in tqdm(jobs, desc="trees"):
        perms, epochs = plan[depth]
        rows.append(run_depth(depth, mode, perms, epochs, **knobs))
        rows[-1]["paper"] = "solved where the 1-layer MPNN fails" if mode == "prmpnn" else ""
        print(rows[-1], flush=True)
    write_results(out, name, [{k: v for k, v in r.items() if k != "train_curve"} for r in rows],
                  cmd, NOTES, extra={"train_curves": [r["train_curve"] for r in rows]})
    return rows


@register("prmpnn-trees", "Trees-NeighborsMatch: PR-MPNN vs no rewiring vs random rewiring")
def run(quick: bool, out: Path) -> list[dict]:
    cmd = "python -m benchmarks.prmpnn_trees" + (" --quick" if quick else "")
    return run_plan(QUICK if quick else FULL, out,
                    "prmpnn_trees_quick" if quick else "prmpnn_trees", cmd)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--depth", type=int, default=None, help="run one depth")
    parser.add_argument("--models", nargs="+", default=["none", "random", "prmpnn"],
                        choices=["none", "random", "prmpnn"])
    parser.add_argument("--k-add", type=int, default=1)
    parser.add_argument("--samples", type=int, default=2, help="rewirings per graph in training")
    parser.add_argument("--upstream-layers", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="override the plan's epochs")
    parser.add_argument("--perms", type=int, help="override the plan's permutations")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--tag", default="", help="suffix of the result file name")
    args = parser.parse_args()
    if args.depth is not None:
        perms, epochs = FULL[args.depth]
        plan = {args.depth: (args.perms or perms, args.epochs or epochs)}
        knobs = {"k_add": args.k_add, "num_samples": args.samples,
                 "upstream_layers": args.upstream_layers, "lr": args.lr}
        cmd = (f"python -m benchmarks.prmpnn_trees --depth {args.depth} --models "
               f"{' '.join(args.models)} --k-add {args.k_add} --samples {args.samples} "
               f"--upstream-layers {args.upstream_layers} --epochs {plan[args.depth][1]} "
               f"--perms {plan[args.depth][0]} --lr {args.lr}")
        run_plan(plan, args.out, f"prmpnn_trees_depth{args.depth}{args.tag}", cmd,
                 tuple(args.models), **knobs)
    else:
        for row in run(args.quick, args.out):
            print(row)
