"""Trees-NeighborsMatch (over-squashing): PR-MPNN vs the same 1-layer MPNN without rewiring vs
random rewiring with the same budget k.

The downstream model is one :class:`~graphlab.conv.WeightedGINEConv` layer read out at the root
(as in the paper's ``tree_*`` configs: 1 downstream layer, root pooling, no deletions). Without
rewiring the root only sees its two children, so for depth >= 2 it is at chance level
(1 / 2^depth). The task is solved by one added edge, root <-> the leaf whose key equals the root's
query: PR-MPNN's upstream :class:`TreePairScorer` sees the raw key/value features of both ends
and learns which pair to add. Candidates are, by default, the non-edges at the root (the authors
use all node pairs, ``--candidates all``; with k=1 that fails here).
"random" adds the same number k of uniformly random candidates (fresh each forward, also at
evaluation).

Budget (2 shared CPU cores): ``perms`` random permutations x 2^depth query keys per depth, an 80/20
split, a fixed number of epochs (``FULL``); the paper trains up to 50k epochs and reports training
accuracy. We report train and test accuracy, and how often the matching edge is added.

    python -m benchmarks.prmpnn_trees [--quick] [--out runs/prmpnn_trees]
    python -m benchmarks.prmpnn_trees --depth 4 [--models prmpnn] [--samples 8]

Depth 4 needs ``--scorer pair_eq --lr 0.001 --logit-bound 3`` and 100 epochs (the recorded plan,
``FULL``): with the plain pair scorer at lr 3e-3 PR-MPNN reached 0.52-0.70 train accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.functional import one_hot
from torch_geometric.loader import DataLoader

from benchmarks.common import TaskResult, register, run_script
from benchmarks.common.figures import line_chart
from graphlab.conv import WeightedGINEConv
from graphlab.datasets import TreeNeighborsMatch
from graphlab.engine import fit
from graphlab.rewiring import EdgeCandidates, EdgeScorer, ProbabilisticRewirer, k_subset_marginals
from graphlab.runfolder import atomic_write_json

HIDDEN = 64


class RandomScorer(nn.Module):
    """Uniform random logits: Gumbel/top-k of them is a uniformly random k-subset."""

    def forward(self, x, edge_index, edge_attr, add_pairs, delete_pairs):
        return torch.rand(add_pairs.size(1)), torch.rand(delete_pairs.size(1))


class TreePairScorer(nn.Module):
    r"""Upstream pair scorer on the raw features: :math:`f_v = [\mathrm{onehot}(key_v) \Vert
    \mathrm{onehot}(value_v)]`, :math:`h = W f`, :math:`\theta_{uv} = \mathrm{MLP}([h_u \Vert h_v
    \Vert h_u \odot h_v])`, with ``absdiff=True`` also :math:`|h_u - h_v|` (the usual pair
    features :math:`[u, v, |u - v|, u \odot v]`). The product term is a learned bilinear form of
    the two keys, so "the root's query equals the leaf's key" is expressible, but it is learned
    key by key; :math:`|h_u - h_v|` vanishes on the key part for *every* equal pair, a signal
    shared by all keys (in a depth-4 run it made the scorer *avoid* the matching leaf).
    Candidates are ordered (:math:`u < v`, the root is
    node 0), so the concatenation need not be symmetric.

    With ``field_eq=True`` the head also gets the per-field equality of the raw attributes,
    :math:`[\mathrm{key}_u = \mathrm{key}_v, \mathrm{value}_u = \mathrm{value}_v]` (the dot products
    of the two one-hot blocks): one signal shared by all keys, instead of a bilinear form that must
    be learned key by key.

    Shapes: one-hot features :math:`(|\mathcal{V}|, 2(L+1))`, candidate pairs :math:`(2, C)`
    -> add logits :math:`(C)`; no deletions (empty delete logits).
    """

    def __init__(self, num_leaves: int, hidden: int = HIDDEN, absdiff: bool = False,
                 field_eq: bool = False) -> None:
        super().__init__()
        self.absdiff = absdiff
        self.field_eq = field_eq
        self.lin = nn.Linear(2 * (num_leaves + 1), hidden)
        width = (4 if absdiff else 3) * hidden + (2 if field_eq else 0)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def pair_features(self, x: Tensor, add_pairs: Tensor) -> Tensor:
        """The head's input per candidate pair, :math:`(C, 3H [+ H] [+ 2])`."""
        h = self.lin(x)
        hu, hv = h[add_pairs[0]], h[add_pairs[1]]
        feats = [hu, hv, hu * hv] + ([(hu - hv).abs()] if self.absdiff else [])
        if self.field_eq:
            prod = x[add_pairs[0]] * x[add_pairs[1]]                  # one-hot blocks [key | value]
            feats.append(prod.view(prod.size(0), 2, -1).sum(-1))
        return torch.cat(feats, dim=-1)

    def forward(self, x, edge_index, edge_attr, add_pairs, delete_pairs):
        return self.head(self.pair_features(x, add_pairs)).squeeze(-1), x.new_zeros(delete_pairs.size(1))


class _Recorder(nn.Module):
    """Calls a scorer, optionally bounds its add logits to :math:`(-b, b)` by :math:`b \tanh(\theta
    / b)` (the authors' ``logits_activation``: a saturated scorer keeps sampling other pairs), and
    keeps them (to weight added edges by marginals)."""

    def __init__(self, scorer: nn.Module, bound: float | None = None) -> None:
        super().__init__()
        self.scorer = scorer
        self.bound = bound
        self.last_add: Tensor | None = None

    def forward(self, *args):
        add, delete = self.scorer(*args)
        if self.bound is not None:
            add = self.bound * torch.tanh(add / self.bound)
        self.last_add = add
        return add, delete


#: upstream scorers: TreePairScorer (plain, with |h_u - h_v|, with field equality) or EdgeScorer
SCORERS = ("pair", "pair_diff", "pair_eq", "edge")
#: training-time weights of added edges, as the authors' ``weight_edges`` / ``marginals_mask``
EDGE_WEIGHTS = ("sample", "marginals_mask", "marginals")


class TreeModel(nn.Module):
    r"""Embeddings, optional rewiring (``mode``: none / random / prmpnn) and one downstream
    :class:`~graphlab.conv.WeightedGINEConv` read out at the root. ``scorer="pair"`` is
    :class:`TreePairScorer`; ``"edge"`` is the library's :class:`~graphlab.rewiring.EdgeScorer` on
    the (summed) key+value embeddings with ``upstream_layers`` GINE layers.

    ``edge_weights`` sets the training-time weight of added edges (evaluation always uses the
    hard top-k): ``"sample"`` the hard sample :math:`z` (straight-through SIMPLE gradient, the
    library default), ``"marginals_mask"`` :math:`z \cdot \mu` (the authors' Trees config:
    ``weight_edges: marginals``, ``marginals_mask: True``), ``"marginals"`` :math:`\mu` on every
    candidate (``marginals_mask: False``; a soft, attention-like relaxation in training).
    ``tau`` scales the Gumbel noise of the training samples (exploration; evaluation is top-k)."""

    def __init__(self, num_leaves: int, mode: str, k_add: int, num_samples: int,
                 upstream_layers: int = 0, scorer: str = "pair",
                 edge_weights: str = "sample", logit_bound: float | None = None,
                 tau: float = 1.0) -> None:
        super().__init__()
        if edge_weights not in EDGE_WEIGHTS:
            raise ValueError(f"edge_weights must be one of {EDGE_WEIGHTS}, got {edge_weights!r}")
        if mode not in ("none", "random", "prmpnn"):
            raise ValueError(f"mode must be 'none', 'random' or 'prmpnn', got {mode!r}")
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        self.k_add = k_add
        self.edge_weights = edge_weights if mode == "prmpnn" else "sample"
        self.num_leaves = num_leaves
        self.key = nn.Embedding(num_leaves + 1, HIDDEN)
        self.value = nn.Embedding(num_leaves + 1, HIDDEN)
        self.mode = mode
        self.raw_features = mode == "prmpnn" and scorer != "edge"
        self.rewirer = None
        if mode != "none":
            if mode == "random":
                up: nn.Module = RandomScorer()
            elif scorer != "edge":
                up = TreePairScorer(num_leaves, absdiff=scorer == "pair_diff", field_eq=scorer == "pair_eq")
            else:
                up = EdgeScorer(HIDDEN, HIDDEN, num_layers=upstream_layers)
            bound = logit_bound if mode == "prmpnn" else None
            self.rewirer = ProbabilisticRewirer(_Recorder(up, bound), k_add, 0, num_samples,
                                                tau=tau if mode == "prmpnn" else 1.0)
        mlp = nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN))
        self.conv = WeightedGINEConv(mlp, train_eps=True)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(HIDDEN, num_leaves))

    def features(self, data) -> tuple[Tensor, Tensor]:
        """Downstream embeddings and the upstream scorer's input (one-hot raw features for
        ``scorer="pair"``, else the embeddings)."""
        h = self.key(data.x[:, 0]) + self.value(data.x[:, 1])
        if not self.raw_features:
            return h, h
        return h, torch.cat([one_hot(data.x[:, 0], self.num_leaves + 1),
                             one_hot(data.x[:, 1], self.num_leaves + 1)], dim=-1).float()

    def forward(self, data, generator=None) -> Tensor:
        h, feats = self.features(data)
        if self.rewirer is None:
            return self.head(self._root_conv(h, data.edge_index, None, data.root_mask))
        rew = self.rewirer(feats, data.edge_index, data.batch, None, data.cand_index,
                           data.num_graphs, generator)
        weight = rew.edge_weight
        if self.training and self.edge_weights != "sample":
            weight = self._marginal_weights(rew, data.num_graphs)
        root = data.root_mask.repeat(rew.num_samples)
        out = self._root_conv(h, rew.edge_index, weight, root, rew.node_index)
        return self.head(out).view(rew.num_samples, data.num_graphs, -1).mean(0)

    def _root_conv(self, h: Tensor, edge_index: Tensor, weight: Tensor | None, root: Tensor,
                   node_index: Tensor | None = None) -> Tensor:
        """The downstream layer's outputs at the (copies of the) roots, exactly.

        One layer read out at the root depends only on the edges into the roots, and every copy
        of a node has the features of its original (``h[node_index]``), so the layer runs on the
        ``N`` original nodes plus one target per root copy instead of all ``S * N`` copies.
        """
        num_nodes = h.size(0)
        if node_index is None:
            node_index = torch.arange(num_nodes, device=h.device)
        keep = root[edge_index[1]]
        src, dst = edge_index[:, keep]
        root_ids = root.nonzero().flatten()                     # (sample, graph) order
        slot = torch.full_like(node_index, -1)
        slot[root_ids] = torch.arange(root_ids.numel(), device=h.device)
        x = torch.cat([h, h[node_index[root_ids]]])
        ei = torch.stack([node_index[src], num_nodes + slot[dst]])
        out = self.conv(x, ei, None, None if weight is None else weight[keep])
        return out[num_nodes:]

    def _marginal_weights(self, rew, num_graphs: int) -> Tensor:
        # every tree of one depth has the same candidate count, so the logits form a [G, C] block;
        # in training the rewirer keeps all candidates, per sample [C, C flipped] after the edges
        logits = self.rewirer.scorer.last_add.view(num_graphs, -1)
        mu = k_subset_marginals(logits, self.k_add).reshape(-1).repeat(2 * rew.num_samples)
        added = rew.edge_origin < 0
        if self.edge_weights == "marginals":
            return torch.where(added, rew.edge_weight.masked_scatter(added, mu), rew.edge_weight)
        return rew.edge_weight * torch.ones_like(rew.edge_weight).masked_scatter(added, mu)


def root_candidates(data):
    """Keep only the candidate pairs that touch the root (node 0; candidates have u < v)."""
    data.cand_index = data.cand_index[:, data.cand_index[0] == 0]
    return data


def _accuracy(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for data in loader:
            correct += int((model(data).argmax(-1) == data.y).sum())
            total += data.num_graphs
    return correct / max(total, 1)


def _hits(model: TreeModel, loader) -> tuple[Tensor, Tensor]:
    """Per graph: whether the evaluation rewiring adds the edge root <-> the leaf whose key is the
    root's query (the edge that solves the task for a 1-layer MPNN), and that query key."""
    model.eval()
    hits, queries = [], []
    with torch.no_grad():
        for data in loader:
            rew = model.rewirer(model.features(data)[1], data.edge_index, data.batch, None, data.cand_index,
                                data.num_graphs)
            query = data.x[data.root_mask, 0][data.batch]           # root's key, per node
            match = (data.x[:, 0] == query) & (data.x[:, 1] > 0)   # the matching leaf
            u, v = rew.edge_index[:, rew.edge_origin < 0]          # added edges, S = 1
            good = (data.root_mask[u] & match[v]) | (data.root_mask[v] & match[u])
            hit = torch.zeros(data.num_graphs, dtype=torch.bool)
            hit[data.batch[u[good]]] = True
            hits.append(hit)
            queries.append(data.x[data.root_mask, 0])
    return torch.cat(hits), torch.cat(queries)


def _hit_rate(model: TreeModel, loader) -> float | None:
    """Fraction of graphs whose evaluation rewiring adds root <-> the matching leaf."""
    if model.rewirer is None:
        return None
    hit, _ = _hits(model, loader)
    return hit.float().mean().item() if hit.numel() else 0.0


def _hit_rate_by_key(model: TreeModel, loader, num_leaves: int) -> list[float] | None:
    """The hit rate per query key 1..L (tests whether the scorer learned the rule only for some keys)."""
    if model.rewirer is None:
        return None
    hit, query = _hits(model, loader)
    count = torch.bincount(query, minlength=num_leaves + 1)[1:].clamp(min=1)
    rate = torch.bincount(query, hit.float(), minlength=num_leaves + 1)[1:] / count
    return [round(r, 3) for r in rate.tolist()]


def run_depth(depth: int, mode: str, num_permutations: int, epochs: int, k_add: int = 1,
              seed: int = 0, num_samples: int = 2, upstream_layers: int = 0,
              lr: float = 3e-3, scorer: str = "pair", candidates: str = "root",
              batch_size: int = 64, log_every: int | None = None,
              edge_weights: str = "sample", logit_bound: float | None = None,
              tau: float = 1.0) -> dict:
    if candidates not in ("all", "root"):
        raise ValueError(f"candidates must be 'all' or 'root', got {candidates!r}")
    torch.manual_seed(seed)
    ds = TreeNeighborsMatch(depth, num_permutations, seed=seed)
    cands = EdgeCandidates(None, "all")
    graphs = [cands(d) for d in ds]
    if candidates == "root":
        graphs = [root_candidates(g) for g in graphs]
    perm = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = int(0.8 * len(graphs))
    train = [graphs[i] for i in perm[:cut]]
    test = [graphs[i] for i in perm[cut:]]
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True)
    model = TreeModel(ds.num_leaves, mode, k_add, num_samples, upstream_layers, scorer,
                      edge_weights, logit_bound, tau)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    curve = []
    every = log_every or max(epochs // 10, 1)

    def log_curve(m: nn.Module) -> dict:
        """Train/test accuracy every ``every`` epochs (the paper reports training accuracy)."""
        epoch = len(curve_epochs) + 1
        curve_epochs.append(epoch)
        if epoch % every:
            return {}
        curve.append((epoch, round(_accuracy(m, DataLoader(train, batch_size=256)), 3),
                      round(_accuracy(m, DataLoader(test, batch_size=256)), 3)))
        by_key = _hit_rate_by_key(m, DataLoader(test, batch_size=256), ds.num_leaves)
        print(f"depth {depth} {mode} epoch {epoch}: train/test {curve[-1][1:]} "
              f"hit {_hit_rate(m, DataLoader(test, batch_size=256))} by key "
              f"{by_key and [round(r, 2) for r in by_key]} "
              f"({time.perf_counter() - start:.0f}s)", flush=True)
        return {"train_acc": curve[-1][1], "test_acc": curve[-1][2]}

    curve_epochs: list[int] = []
    # select=None: the result is the last epoch (the paper's training accuracy at the end)
    fit(model, opt, epochs=epochs, train_batches=train_loader,
        train_step=lambda m, data: nn.functional.cross_entropy(m(data, gen), data.y),
        evaluate=log_curve, select=None, generator=gen, progress=False)
    rewired = mode != "none"
    return {"depth": depth, "model": mode, "seed": seed, "k_add": k_add if rewired else 0,
            "samples": num_samples if rewired else 0,
            "scorer": scorer if mode == "prmpnn" else "",
            "upstream_layers": upstream_layers if mode == "prmpnn" and scorer == "edge" else 0,
            "candidates": candidates if rewired else "",
            "edge_weights": model.edge_weights if rewired else "",
            "logit_bound": logit_bound if mode == "prmpnn" else None,
            "tau": tau if mode == "prmpnn" else None, "graphs": len(graphs),
            "epochs": epochs, "batch": batch_size, "lr": lr, "train_curve": curve,
            "train_acc": _accuracy(model, DataLoader(train, batch_size=256)),
            "test_acc": _accuracy(model, DataLoader(test, batch_size=256)),
            "test_hit": _hit_rate(model, DataLoader(test, batch_size=256)),
            "test_hit_by_key": _hit_rate_by_key(model, DataLoader(test, batch_size=256), ds.num_leaves),
            "chance": 1 / ds.num_leaves, "train_s": time.perf_counter() - start}


#: depth -> budget of the full run: permutations (graphs = perms x 2^depth), epochs, training
#: samples per graph (more samples at larger depth: the matching leaf is 1 of 2^(depth+1) - 4
#: root candidates, so a single sample rarely holds it early in training)
#: samples per graph (more samples at larger depth: the matching leaf is 1 of 2^(depth+1) - 4
#: root candidates, so a single sample rarely holds it early in training); further keys are
#: run_depth knobs for that depth (depth 4: the key/value-equality scorer, lr 1e-3, bounded logits)
FULL = {2: {"perms": 100, "epochs": 40, "samples": 2},
        3: {"perms": 200, "epochs": 40, "samples": 2},
        4: {"perms": 200, "epochs": 100, "samples": 8, "scorer": "pair_eq", "lr": 1e-3,
            "logit_bound": 3.0},
        5: {"perms": 100, "epochs": 40, "samples": 16}}
QUICK = {2: {"perms": 40, "epochs": 30, "samples": 2}}


NOTES = ("1 downstream WeightedGINEConv layer, root readout, hidden 64; PR-MPNN adds k_add pairs per "
         "graph chosen among the candidates (`root`: all non-edges at the root; `all`: all "
         "non-edges), scored by TreePairScorer (MLP([h_u, h_v, h_u*h_v]) of the one-hot key/value "
         "features; `pair_eq`: plus [key_u = key_v, value_u = value_v]) or the library EdgeScorer; "
         "SIMPLE with `samples` rewirings per graph in "
         "training (added-edge weights: `edge_weights`), deterministic top-k at evaluation; "
         "'random' adds k_add uniformly random candidates (fresh each forward, also at "
         "evaluation) with the same samples; Adam, 80/20 split of permutations x 2^depth query "
         "keys (test graphs share permutations with training graphs but not (permutation, query) "
         "pairs). test_hit = fraction of test graphs whose evaluation rewiring adds root <-> the "
         "matching leaf. Curves (epoch, train acc, test acc) are in the JSON file.")


def run_plan(plan: dict[int, dict], out: Path, models: tuple[str, ...] = ("none", "random", "prmpnn"),
             **knobs) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    for depth, budget in plan.items():
        depth_knobs = {**knobs, **{k: v for k, v in budget.items()
                                   if k not in ("perms", "epochs", "samples")}}
        for mode in models:
            rows.append(run_depth(depth, mode, budget["perms"], budget["epochs"],
                                  num_samples=budget["samples"], **depth_knobs))
            rows[-1]["paper"] = "solved (train acc 1.0)" if mode == "prmpnn" else ""
            # after every run, so a long plan that is stopped keeps what finished
            atomic_write_json(out / "progress.json", rows)
    return rows


@register("prmpnn-trees", "Trees-NeighborsMatch: PR-MPNN vs no rewiring vs random rewiring",
          paper="Qian et al. ICLR 2024 (PR-MPNN), Trees-NeighborsMatch (Alon & Yahav 2021)")
def run(quick: bool, out: Path, plan: dict[int, dict] | None = None,
        models: tuple[str, ...] = ("none", "random", "prmpnn"), **knobs) -> TaskResult:
    plan = plan or (QUICK if quick else FULL)
    rows = run_plan(plan, out, models, **knobs)
    figure = line_chart(out / "prmpnn-trees.png",
                        {f"depth {r['depth']} {r['model']}": [(e, tr) for e, tr, _ in
                                                              r["train_curve"]] for r in rows},
                        xlabel="epoch", ylabel="train accuracy",
                        title="Trees-NeighborsMatch: training accuracy")
    solved = [r for r in rows if r["model"] == "prmpnn"]
    return TaskResult([{k: v for k, v in r.items() if k != "train_curve"} for r in rows],
                      paper="PR-MPNN solves it (train acc 1.0); a 1-layer MPNN fails",
                      ours="PR-MPNN train / test acc " + ", ".join(
                          f"depth {r['depth']}: {r['train_acc']:.2f} / {r['test_acc']:.2f}"
                          for r in solved),
                      notes=NOTES, figures=[figure] if figure else [],
                      config={"plan": plan, "models": list(models), **knobs},
                      extra={"train_curves": [r["train_curve"] for r in rows]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/prmpnn_trees"))
    parser.add_argument("--depth", type=int, default=None, help="run one depth")
    parser.add_argument("--models", nargs="+", default=["none", "random", "prmpnn"],
                        choices=["none", "random", "prmpnn"])
    parser.add_argument("--k-add", type=int, default=1)
    parser.add_argument("--samples", type=int, help="override the plan's training samples")
    parser.add_argument("--candidates", default="root", choices=["root", "all"])
    parser.add_argument("--scorer", default=None, choices=list(SCORERS),
                        help="default: the plan's (pair)")
    parser.add_argument("--edge-weights", default="sample", choices=list(EDGE_WEIGHTS))
    parser.add_argument("--logit-bound", type=float, help="bound |add logits| by b*tanh(x/b)")
    parser.add_argument("--tau", type=float, default=1.0, help="Gumbel noise scale in training")
    parser.add_argument("--upstream-layers", type=int, default=0, help="GINE layers (--scorer edge)")
    parser.add_argument("--epochs", type=int, help="override the plan's epochs")
    parser.add_argument("--perms", type=int, help="override the plan's permutations")
    parser.add_argument("--lr", type=float, default=None, help="default: the plan's (3e-3)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="data, split and model seed")
    args = parser.parse_args(argv)
    plan, knobs = None, {}
    if args.depth is not None:
        budget = dict(FULL[args.depth])
        for key in ("perms", "epochs", "samples", "scorer", "lr", "logit_bound"):
            if getattr(args, key) is not None:
                budget[key] = getattr(args, key)
        plan = {args.depth: budget}
        knobs = {"k_add": args.k_add, "candidates": args.candidates,
                 "edge_weights": args.edge_weights, "upstream_layers": args.upstream_layers,
                 "batch_size": args.batch, "seed": args.seed, "tau": args.tau}
    return run_script("prmpnn-trees", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, plan, tuple(args.models), **knobs))


if __name__ == "__main__":
    sys.exit(main())
