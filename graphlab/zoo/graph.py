r"""Graph of networks: a PyG graph whose nodes are a zoo's members and whose edges link similar
models, for transductive node-level prediction of held-out model properties."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from graphlab.engine import fit
from graphlab.metanets.init import seeded_module
from graphlab.zoo.store import Zoo

__all__ = ["zoo_graph", "node_predict", "node_task"]


def _embed(zoo: Zoo, idx: list[int], embed: str, seed: int) -> np.ndarray:
    from graphlab.zoo.tasks import statnn_features

    if embed == "statnn":
        x = statnn_features(zoo, idx)
    elif embed == "gmn":  # an untrained (random-feature) GMN: permutation-invariant by design
        from torch_geometric.data import Batch

        from graphlab.metanets import GMN
        from graphlab.zoo.tasks import zoo_graphs

        graphs = zoo_graphs(zoo, idx, "parameter")
        enc = seeded_module(lambda: GMN.from_graph(graphs[0], 32, hidden_channels=32,
                                                   num_layers=2),
                            torch.Generator().manual_seed(seed)).eval()
        with torch.no_grad():
            x = torch.cat([enc(Batch.from_data_list(graphs[s:s + 64]))
                           for s in range(0, len(graphs), 64)]).double().numpy()
    else:
        raise ValueError(f"embed must be 'statnn' or 'gmn', got {embed!r}")
    mu, sd = x.mean(0), x.std(0) + 1e-8
    return (x - mu) / sd


def zoo_graph(zoo: Zoo, embed: str = "statnn", edges: str = "knn", k: int = 8,
              targets: Sequence[str] = ("test_acc",), seed: int = 0,
              data: tuple[torch.Tensor, torch.Tensor] | None = None) -> Data:
    r"""Build the graph of a zoo.

    Args:
        zoo: the zoo.
        embed: node features: ``"statnn"`` (standardised padded weight statistics) or ``"gmn"``
            (a fixed random GMN's embedding of the parameter graph).
        edges: ``"knn"`` (``k`` nearest neighbours in embedding space, symmetrised; ``edge_attr``
            is the distance) or ``"matching"`` (among the ``k`` nearest neighbours with the same
            architecture, link pairs and store the linear-interpolation loss barrier after
            :func:`~graphlab.metanets.matching.weight_matching` on ``data`` as ``edge_attr``).
        k: neighbours per node.
        targets: member metrics stored as ``y`` (``[N, len(targets)]``).
        seed: seed of the GMN embedding.
        data: ``(x, y)`` for the barriers (defaults to the digits test set).

    Returns:
        :class:`~torch_geometric.data.Data` with ``x``, ``edge_index``, ``edge_attr``,
        ``edge_weight`` (:math:`\exp(-\text{barrier})` for matching edges, so models in one
        basin are linked strongly; 1 for kNN edges), ``y`` and ``member`` (the zoo index of each
        node).
    """
    if edges not in ("knn", "matching"):
        raise ValueError(f"edges must be 'knn' or 'matching', got {edges!r}")
    idx = zoo.indices
    if len(idx) < 2:
        raise ValueError("a zoo graph needs at least 2 members")
    x = _embed(zoo, idx, embed, seed)
    d = torch.cdist(torch.as_tensor(x), torch.as_tensor(x))
    d.fill_diagonal_(float("inf"))
    kk = min(k, len(idx) - 1)
    if edges == "matching":
        from graphlab.metanets import interpolation_barrier, weight_matching
        from graphlab.zoo.training import digits_data

        if data is None:
            _, _, xt, yt = digits_data()
            data = (xt, yt)
        arch = [(zoo.record(i)["config"]["arch"], zoo.record(i)["config"]["width"],
                 zoo.record(i)["config"]["depth"]) for i in idx]
        same = torch.tensor([[a == b for b in arch] for a in arch])
        d = d.masked_fill(~same, float("inf"))
    nbr = d.topk(kk, largest=False).indices
    src = torch.arange(len(idx)).repeat_interleave(kk)
    dst = nbr.reshape(-1)
    ok = torch.isfinite(d[src, dst])
    src, dst = src[ok], dst[ok]
    ei = to_undirected(torch.stack([src, dst]), num_nodes=len(idx))
    if edges == "knn":
        attr = d[ei[0], ei[1]].float().view(-1, 1)
    else:
        half = ei[:, ei[0] < ei[1]]
        vals = []
        for a, b in half.t().tolist():  # one matching per model pair: a property of the pair
            ma, mb = zoo.module(idx[a]), zoo.module(idx[b])
            mb = weight_matching(ma, mb, zoo.example_input(idx[a]))
            vals.append(interpolation_barrier(ma, mb, data, num_points=5)["barrier"])
        v = torch.tensor(vals, dtype=torch.float32)
        ei = torch.cat([half, half.flip(0)], 1)
        attr = torch.cat([v, v]).view(-1, 1)
    y = torch.as_tensor(np.stack([zoo.target(t, idx) for t in targets], 1), dtype=torch.float32)
    # kNN edges stay unweighted: far-away neighbours of outlier (diverged) members would get
    # ~0 weight, leaving a GCN with only the self loop on exactly the nodes it extrapolates worst
    weight = torch.ones(attr.size(0)) if edges == "knn" else torch.exp(-attr.view(-1))
    return Data(x=torch.as_tensor(x, dtype=torch.float32), edge_index=ei, edge_attr=attr,
                edge_weight=weight, y=y, member=torch.tensor(idx), num_nodes=len(idx))


def node_predict(graph: Data, train_mask: torch.Tensor, target: int = 0, model: str = "gcn",
                 epochs: int = 200, seed: int = 0) -> np.ndarray:
    """Transductive node regression on a zoo graph: ``"gcn"`` (2-layer GCN on the model graph),
    ``"label_prop"`` (neighbour averaging of the known labels) or ``"mlp"`` (per-node, no
    edges); the graph methods weight edges by ``graph.edge_weight`` when present. Returns
    predictions for every node."""
    y = graph.y[:, target]
    mu, sd = float(y[train_mask].mean()), float(y[train_mask].std() + 1e-8)
    yz = (y - mu) / sd
    ew = getattr(graph, "edge_weight", None)
    if model == "label_prop":
        from torch_geometric.utils import scatter

        h = torch.where(train_mask, yz, torch.zeros_like(yz))
        src, dst = graph.edge_index
        w = ew if ew is not None else torch.ones(src.numel())
        deg = scatter(w, dst, 0, dim_size=graph.num_nodes, reduce="sum").clamp_min(1e-12)
        for _ in range(10):  # weighted neighbour mean
            agg = scatter(w * h[src], dst, 0, dim_size=graph.num_nodes, reduce="sum") / deg
            h = torch.where(train_mask, yz, agg)
        return (h * sd + mu).numpy()
    from torch import nn
    from torch_geometric.nn import GCNConv

    f = graph.x.size(1)
    if model not in ("gcn", "mlp"):
        raise ValueError(f"model must be 'gcn', 'label_prop' or 'mlp', got {model!r}")
    layer = GCNConv if model == "gcn" else nn.Linear
    convs = seeded_module(lambda: nn.ModuleList([layer(f, 32), layer(32, 1)]),
                          torch.Generator().manual_seed(seed))

    def fwd() -> torch.Tensor:
        if model == "gcn":
            h = convs[0](graph.x, graph.edge_index, ew).relu()
            return convs[1](h, graph.edge_index, ew).view(-1)
        return convs[1](convs[0](graph.x).relu()).view(-1)

    opt = torch.optim.Adam(convs.parameters(), lr=1e-2, weight_decay=5e-4)
    if epochs > 0:  # full batch: one step per epoch
        fit(convs, opt, train_step=lambda _m, _b: F.mse_loss(fwd()[train_mask], yz[train_mask]),
            train_batches=[None], epochs=epochs, select=None, progress=False, desc=model)
    with torch.no_grad():
        return (fwd() * sd + mu).numpy()


def node_task(zoo: Zoo, target: str = "test_acc", split: str = "id", embed: str = "statnn",
              edges: str = "knn", seeds: Sequence[int] = (0, 1, 2)) -> list[dict[str, Any]]:
    """Node-level prediction of a held-out property on the zoo graph: GCN and label propagation
    over the graph vs the per-node MLP. Returns one row per model with Kendall tau / R^2."""
    from scipy.stats import kendalltau
    from sklearn.metrics import r2_score

    g = zoo_graph(zoo, embed=embed, edges=edges, targets=(target,))
    train, test = zoo.split(split)
    pos = {m: k for k, m in enumerate(g.member.tolist())}
    tr = torch.zeros(g.num_nodes, dtype=torch.bool)
    tr[[pos[i] for i in train]] = True
    te = torch.tensor([pos[i] for i in test])
    y = g.y[te, 0].numpy()
    rows = []
    for model in ("gcn", "label_prop", "mlp"):
        taus, r2s = [], []
        for s in seeds if model != "label_prop" else seeds[:1]:
            p = node_predict(g, tr, 0, model, seed=s)[te.numpy()]
            taus.append(kendalltau(y, p).statistic)
            r2s.append(r2_score(y, p))
        rows.append({"model": model, "embed": embed, "edges": edges, "target": target,
                     "split": split, "tau": float(np.mean(taus)), "tau_std": float(np.std(taus)),
                     "r2": float(np.mean(r2s)), "r2_std": float(np.std(r2s))})
    return rows
