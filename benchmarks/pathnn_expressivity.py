r"""PathNN expressivity: EXP and SR25 isomorphism tests (untrained) and CSL classification (trained).

Protocol of the paper's ``synthetic/main.py`` and ``synthetic/networks/model.py``: untrained
models in float64, eval mode, hidden 16, L2 normalisation of the node states before each layer,
no batch norm, :math:`\phi` = ReLU, sum readout and no prediction head (``predict=False``: the
graph embedding is compared). A pair of non-isomorphic graphs counts as *separated* when the L2
distance of its embeddings exceeds ``1e-5`` for *every* initialisation (the paper averages a
failure rate over 5 initialisations, which is never stricter). We also report the smallest pair
distance and the largest distance between a graph and a randomly relabelled copy of itself (the
numerical noise floor, which must stay far below the tolerance).

    python -m benchmarks.pathnn_expressivity [--quick] [--task exp|sr25|csl|all] [--seeds S]
        [--sr25-path-lengths 1 2 3 4 4] [--sr25-copies C] [--pattern-lengths 4 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from tqdm import tqdm

from benchmarks.common import TaskResult, load_dataset, print_row, register, run_script
from graphlab.engine import fit
from graphlab.models import GNN, PathNN, centre_layers
from graphlab.testing import permute_graph
from graphlab.utils.paths import enumerate_paths, multiset_ids, path_colour_refinement
from graphlab.utils.refinement import path_colour_refinement_per_graph

TOL = 1e-5
SEEDS = 2
PAIRS: int | None = None  # EXP pairs to test (--pairs); None: 25 (quick) or all 600
PAPER = {  # separated pairs reported in the PathNN paper (abstract / Table: 100% on both)
    ("EXP", "PathNN-SP+"): "600/600", ("EXP", "PathNN-AP"): "600/600",
    ("SR25", "PathNN-AP (DE)"): "105/105", ("EXP", "GIN"): "0/600", ("SR25", "GIN"): "0/105",
    ("CSL", "PathNN-SP+"): "~100% (SP/AP)", ("CSL", "PathNN-AP"): "~100% (SP/AP)",
    ("CSL", "GIN"): "10%",
}


def _load(name: str):
    return load_dataset(name)  # TaskSkipped when the data is not available


def _embed(model: nn.Module, graphs: list[Data], batch_size: int) -> torch.Tensor:
    transform = getattr(model, "transform", None)
    data = [transform(g) if transform is not None else g for g in graphs]
    forward = model.embed_data if isinstance(model, PathNN) else model.forward_data
    outs = []
    with torch.no_grad():
        for batch in DataLoader(data, batch_size=batch_size):
            batch.x = batch.x.double()
            outs.append(forward(batch))
    return torch.cat(outs)


def _make(model_name: str, in_channels: int, hidden: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if model_name == "GIN":
        model = GNN(in_channels, hidden, hidden, num_layers=4, conv="gin", readout="sum",
                    dropout=0.0)
    else:
        kind, length, de = _VARIANTS[model_name]
        # the paper's synthetic model: no batch norm, phi = ReLU, L2 norm before each layer
        graph_bn, centred = model_name in _GRAPH_BN, model_name in _CENTRED
        # L2 norm would blow BN's ~1e-11 output on identical nodes up to unit noise vectors;
        # centred variants replace it by the centring (see centre_layers)
        schedule = _SCHEDULES.get(model_name)
        model = PathNN(in_channels, hidden, hidden, len(schedule) if schedule else length,
                       kind=kind, distance_encoding=de, readout="sum",
                       l2_norm="no L2" not in model_name and not centred,
                       mlp_layers=0, norm="batch_norm" if graph_bn or centred else None,
                       path_lengths=schedule)
    model = model.double().eval()
    if model_name in _GRAPH_BN:
        # batch statistics (not running ones): with batch size 1 each layer standardises every
        # feature over the nodes of one graph before the ReLU
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.train()
    return model


# paper settings: EXP SP/SP+ cutoff 11 (10 edges), AP cutoff 6 (5 edges) with distances;
# SR25 AP cutoff 5 (4 edges) with distances
_VARIANTS: dict[str, tuple[str, int, bool]] = {}
# per-layer path lengths (PathNN(path_lengths=...)) of variants that differ from the paper's
# one layer per length 1..max_length
_SCHEDULES: dict[str, list[int]] = {}


def scheduled_variant(path_lengths: list[int], centred: bool = False) -> str:
    """Register (and name) the SR25 synthetic PathNN-AP+DE with layers over ``path_lengths``
    edges; e.g. [1, 2, 3, 4, 4] adds a layer over 4-edge paths, which the exact refinement shows
    is enough to separate all 105 SR25 pairs. ``centred``: the layers are centred by
    :func:`centre_layers` instead of L2-normalised."""
    name = f"PathNN-AP (DE{', centred' if centred else ''}), layers over {list(path_lengths)} edges"
    _VARIANTS[name] = ("all_simple", max(path_lengths), True)
    _SCHEDULES[name] = list(path_lengths)
    if centred:
        _CENTRED.add(name)
    return name


# variants whose layers batch-normalise with batch statistics (run with batch size 1)
_GRAPH_BN = {"PathNN-AP (DE, graph BN)", "PathNN-AP (DE, graph BN, no L2)"}
# variants centred by centre_layers on the graphs under test before embedding
_CENTRED: set[str] = set()


def iso_test(dataset: str, model_name: str, graphs: list[Data], pairs: list[tuple[int, int]],
             seeds: int, batch_size: int, copies: int | None = None) -> dict:
    """Separated pairs over ``seeds`` initialisations; ``copies``: graphs checked against a
    relabelled copy of themselves (default all)."""
    separated_all = torch.ones(len(pairs), dtype=torch.bool)
    worst_iso = 0.0
    min_pair = min_sep = float("inf")
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    perms = [torch.randperm(g.num_nodes, generator=gen) for g in graphs]
    num_copies = len(graphs) if copies is None else min(copies, len(graphs))
    permuted = [permute_graph(g, p) for g, p in zip(graphs[:num_copies], perms)]
    left = torch.tensor([a for a, _ in pairs])
    right = torch.tensor([b for _, b in pairs])
    smallest: list[list] = []
    layer_stats: list[list[dict]] = []
    for seed in range(seeds):
        model = _make(model_name, graphs[0].x.size(1), 16, seed)
        if model_name in _CENTRED:
            centre_layers(model, graphs)
        stats = _LayerStats(model) if batch_size == 1 and isinstance(model, PathNN) else None
        emb = _embed(model, graphs, batch_size)
        if stats is not None:
            layer_stats.append(stats.summary())
        emb_p = _embed(model, permuted, batch_size)
        dist = (emb[left] - emb[right]).norm(dim=1)
        # a pair counts as separated only if every initialisation separates it
        separated_all &= dist > TOL
        min_pair = min(min_pair, float(dist.min()))
        if bool((dist > TOL).any()):
            min_sep = min(min_sep, float(dist[dist > TOL].min()))
        iso = float((emb[:num_copies] - emb_p).norm(dim=1).max())
        worst_iso = max(worst_iso, iso)
        smallest.append(_smallest_pairs(pairs, dist))
        # progress (long SR25 runs): what one init gave, recoverable from the log
        print(f"{model_name} seed {seed}: {int((dist > TOL).sum())}/{len(pairs)} separated, "
              f"noise floor {iso:.1e}, {time.perf_counter() - t0:.0f} s, closest pairs "
              + ", ".join(f"{a}-{b} {d:.2e}" for a, b, d in smallest[-1][:3]), flush=True)
    return {"dataset": dataset, "model": model_name,
            "separated": f"{int(separated_all.sum())}/{len(pairs)}",
            "paper": PAPER.get((dataset, model_name), "-"),
            "min_dist_pair": f"{min_pair:.1e}", "min_dist_above_tol": f"{min_sep:.1e}",
            "max_dist_isomorphic_copy": f"{worst_iso:.1e}", "copies_checked": num_copies,
            "seeds": seeds, **_missed(pairs, separated_all),
            **({"path_lengths": _SCHEDULES[model_name]} if model_name in _SCHEDULES else {}),
            "smallest_pair_distances_per_seed": smallest,
            **({"layer_stats_per_seed": layer_stats} if layer_stats else {}),
            "seconds": round(time.perf_counter() - t0, 1)}


class _LayerStats:
    """Pre-activations (the input of each layer's phi) of a PathNN embedding one graph per
    call: how far apart the nodes of a graph are, and whether any ReLU sees nodes on both
    sides of its kink. If none does, the layer acts linearly on the node-to-node differences
    and a sum readout keeps only their graph-level totals (measured on SR25)."""

    def __init__(self, model: PathNN) -> None:
        self.pre: list[list[Tensor]] = [[] for _ in model.convs]
        self.handles = [conv.norm.register_forward_hook(
            lambda _m, _i, out, layer=layer: self.pre[layer].append(out.detach()))
            for layer, conv in enumerate(model.convs)]
        self.path_lengths = model.path_lengths

    def summary(self) -> list[dict]:
        for handle in self.handles:
            handle.remove()
        rows = []
        for length, zs in zip(self.path_lengths, self.pre):
            spread = max(float((z.max(0).values - z.min(0).values).max()) for z in zs)
            mixed = max(float(((z > 0).any(0) & (z <= 0).any(0)).float().mean()) for z in zs)
            rows.append({"path_edges": length,
                         "mean_abs_preactivation": float(f"{max(float(z.abs().mean()) for z in zs):.3g}"),
                         "max_node_spread_in_graph": float(f"{spread:.3g}"),
                         "share_relu_units_mixed_in_graph": round(mixed, 4)})
        return rows


def _smallest_pairs(pairs: list[tuple[int, int]], dist: Tensor, k: int = 12) -> list:
    """The ``k`` closest pairs of one initialisation with their distances: the margin over the
    tolerance and the noise floor."""
    order = dist.argsort()[:k].tolist()
    return [[*pairs[i], float(f"{float(dist[i]):.2e}")] for i in order]


def _missed(pairs: list[tuple[int, int]], separated: torch.Tensor) -> dict:
    """The pairs not separated, when there are few enough to list."""
    missed = [p for p, sep in zip(pairs, separated.tolist()) if not sep]
    return {"pairs_not_separated": missed} if 0 < len(missed) <= 50 else {}


def _exp_rows(quick: bool) -> list[dict]:
    bundle = _load("EXP")
    graphs = list(bundle.dataset)
    num_pairs = PAIRS or (25 if quick else len(graphs) // 2)
    graphs = graphs[: 2 * num_pairs]
    pairs = [(2 * i, 2 * i + 1) for i in range(num_pairs)]
    rows = []
    for name in ("GIN", "PathNN-SP", "PathNN-SP+", "PathNN-AP"):
        rows.append(iso_test("EXP", name, graphs, pairs, 1 if quick else SEEDS, 64,
                             copies=None if quick else 100))
        print_row(rows[-1])
    return rows


def _sr25_rows(quick: bool) -> list[dict]:
    bundle = _load("SR25")
    graphs = list(bundle.dataset)
    name = "SR25"
    if quick:  # one pair: the length-4 path LSTM costs ~30 s per SR25 graph on a CPU core
        graphs = graphs[:2]
    elif SR25_GRAPHS:  # a subset (e.g. the pairs a model misses); pairs index the subset
        graphs = [graphs[i] for i in SR25_GRAPHS]
        name = f"SR25 graphs {SR25_GRAPHS} (pair (i, j) = i-th, j-th of these)"
    pairs = [(i, j) for i in range(len(graphs)) for j in range(i + 1, len(graphs))]
    rows = []
    for length in [4] if quick else SR25_PATTERN_LENGTHS:
        rows.append(pattern_totals_row(name, graphs, pairs, max_length=length))
        print_row(rows[-1])
    for length in [4] if quick else SR25_REFINEMENT_LENGTHS:
        rows += refinement_rows(name, graphs, pairs, length)
    # quick: the models of the paper's table (a 5-layer model would add ~3 min on one core)
    models = SR25_MODELS[:2] if quick else SR25_MODELS
    for model in [] if SKIP_MODELS else models:
        # float64 LSTMs over 390k paths per graph are slow on CPU: the relabelled-copy check
        # runs on SR25_COPIES graphs (default one)
        rows.append(iso_test(name, model, graphs, pairs, 1 if quick else SEEDS, 1,
                             copies=1 if quick else SR25_COPIES))
        print_row(rows[-1])
    return rows


SR25_REFINEMENT_LENGTHS = [4]  # --refinement-lengths
SR25_PATTERN_LENGTHS = [4]  # --pattern-lengths
SKIP_MODELS = False  # --skip-models
SR25_GRAPHS: list[int] | None = None  # --sr25-graphs
SR25_COPIES = 1  # --sr25-copies: graphs checked against a relabelled copy (noise floor)
# --sr25-models; the last: the paper's model plus one layer over 4-edge paths
# centred: the same two schedules with centre_layers instead of the L2 norm
SR25_MODELS = ["GIN", "PathNN-AP (DE)", scheduled_variant([1, 2, 3, 4, 4]),
               scheduled_variant([1, 2, 3, 4], centred=True),
               scheduled_variant([1, 2, 3, 4, 4], centred=True)]
# graph-wise batch norm: a diagnostic only. On nodes the exact refinement proves equal it divides
# rounding noise by sqrt(eps) each layer and "separates" provably inseparable pairs
SR25_DIAGNOSTIC_MODELS = sorted(_GRAPH_BN)


def refinement_rows(dataset: str, graphs: list[Data], pairs: list[tuple[int, int]],
                    max_length: int) -> list[dict]:
    """Pairs separated by the idealised, injective PathNN-AP+DE refinement
    (:func:`~graphlab.utils.paths.path_colour_refinement`), an upper bound for every PathNN-AP
    with distance encoding over paths of up to ``max_length`` edges: with the model's layer
    schedule (layer l = paths of l edges) and iterated with all lengths to a fixpoint. Graphs
    are compared by the multiset of their final node colours (what any sum / mean readout
    sees)."""
    # the per-graph "layers" run cross-checks the batched one; from 5 edges (~47M paths on
    # SR25) it is the only one that fits in memory
    rows = [_layered_row(dataset, graphs, pairs, max_length)]
    print_row(rows[-1])
    if max_length >= 5:
        return rows
    batch = Batch.from_data_list(graphs)
    t0 = time.perf_counter()
    paths = enumerate_paths(batch.edge_index, batch.num_nodes, max_length, "all_simple",
                            distance_encoding=True)
    enum_s = time.perf_counter() - t0
    # the model's layers; the same plus one more layer over max_length-edge paths; fixpoint
    extra: list[int] = [*range(1, max_length + 1), max_length]
    for schedule in ("layers", extra, "fixpoint"):
        t0 = time.perf_counter()
        history = path_colour_refinement(batch.edge_index, batch.num_nodes, max_length,
                                         schedule=schedule, paths=paths)
        name = schedule if isinstance(schedule, str) else f"layers over {schedule} edges"
        rows.append(_refinement_row(dataset, f"<= {max_length} edges, {name}", history,
                                    batch.batch, pairs, time.perf_counter() - t0 + enum_s))
        rows[-1]["paths"] = sum(paths.counts())
        print_row(rows[-1])
    return rows


def _refinement_row(dataset: str, name: str, history: list[Tensor], batch: Tensor,
                    pairs: list[tuple[int, int]], seconds: float) -> dict:
    """One result row: pairs whose multisets of final refined colours differ."""
    graph_id = multiset_ids(batch, history[-1], int(batch.max()) + 1)
    same = [bool(graph_id[a] == graph_id[b]) for a, b in pairs]
    return {"dataset": dataset, "model": f"injective PathNN-AP+DE refinement, {name}",
            "separated": f"{len(pairs) - sum(same)}/{len(pairs)}", "paper": "-",
            "iterations": len(history),
            "colour_classes_per_iteration": [int(c.max()) + 1 for c in history],
            "pairs_not_separated": [p for p, e in zip(pairs, same) if e],
            "seconds": round(seconds, 1)}


def _layered_row(dataset: str, graphs: list[Data], pairs: list[tuple[int, int]],
                 max_length: int) -> dict:
    t0 = time.perf_counter()
    history = path_colour_refinement_per_graph(graphs, max_length)
    batch = torch.repeat_interleave(torch.arange(len(graphs)),
                                    torch.tensor([g.num_nodes for g in graphs]))
    return _refinement_row(dataset, f"<= {max_length} edges, layers (per graph)", history, batch,
                           pairs, time.perf_counter() - t0)


def pattern_totals_row(dataset: str, graphs: list[Data], pairs: list[tuple[int, int]],
                       max_length: int) -> dict:
    """Pairs whose graph-level counts of AP paths by (length, distance pattern) differ.

    The distance pattern of a path is the sequence of shortest-path distances of its nodes to
    its last node (what the distance encoding feeds the LSTM). On SR25 the first PathNN layers
    give every node the same state, so an untrained model whose per-node pre-activations are
    large sums (ReLU in a fixed regime) embeds a graph by a linear function of these counts;
    pairs with equal counts are then not separated at any tolerance above the noise floor.
    One graph at a time (5 edges: 3.8M paths per SR25 graph).
    """
    t0 = time.perf_counter()
    base = max_length + 1  # distances lie in 0..max_length: exact codes
    counts = []
    for g in graphs:
        paths = enumerate_paths(g.edge_index, g.num_nodes, max_length, "all_simple",
                                distance_encoding=True)
        assert paths.dists is not None
        keys = [length * base ** (max_length + 1) + (dists * base ** torch.arange(length + 1)).sum(1)
                for length, dists in enumerate(paths.dists, start=1)]
        counts.append(torch.unique(torch.cat(keys), return_counts=True))
    equal = [torch.equal(counts[a][0], counts[b][0]) and torch.equal(counts[a][1], counts[b][1])
             for a, b in pairs]
    return {"dataset": dataset, "model": f"path-pattern counts (AP, <= {max_length} edges)",
            "separated": f"{len(pairs) - sum(equal)}/{len(pairs)}", "paper": "-",
            "pairs_with_equal_counts": [p for p, e in zip(pairs, equal) if e],
            "seconds": round(time.perf_counter() - t0, 1)}


_VARIANTS.update({
    "PathNN-SP": ("shortest", 10, False),
    "PathNN-SP+": ("all_shortest", 10, False),
    "PathNN-AP": ("all_simple", 5, True),
    "PathNN-AP (DE)": ("all_simple", 4, True),
    "PathNN-AP (DE, graph BN)": ("all_simple", 4, True),
    "PathNN-AP (DE, graph BN, no L2)": ("all_simple", 4, True),
    "PathNN-AP (DE, L=3)": ("all_simple", 3, True),
    "PathNN-AP (no DE, L=3)": ("all_simple", 3, False),
})


def _train_csl(model_name: str, bundle, epochs: int, folds: int | list[int], hidden: int = 64,
               batch_size: int | None = None, seed: int = 0, lr: float = 1e-3,
               select: str = "acc", lr_schedule: str = "none", length: int | None = None,
               l2_norm: bool | None = None, norm: bool = False,
               readout_norm: bool = False) -> dict:
    """The paper's CSL protocol (``synthetic/configs/CSL_config.json``: hidden 64, 200 epochs,
    Adam 1e-3, sum readout, no batch norm, phi = ReLU); test accuracy at the best-validation
    epoch. ``hidden``, ``epochs``, ``batch_size`` (default: the paper's), ``length`` (path
    edges, default the paper's) are budget knobs; ``l2_norm`` (default the paper's per
    variant) L2-normalises node states before each layer; ``norm`` adds batch normalisation
    after each layer's residual sum (the paper's benchmark models; its synthetic ones have
    none); ``readout_norm`` batch-normalises the graph embedding before the head. Protocol
    knobs (defaults = the paper's):
    ``select="acc"`` keeps the first epoch of best validation accuracy, ``"acc_loss"`` breaks
    validation-accuracy ties by the lower validation loss; ``lr_schedule="cosine"`` anneals the
    learning rate to 0 over ``epochs``. Per-epoch curves (train loss / accuracy over the
    epoch's batches, valid and test loss / accuracy) are returned for every fold."""
    if select not in ("acc", "acc_loss"):
        raise ValueError(f"select must be 'acc' or 'acc_loss', got {select!r}")
    if lr_schedule not in ("none", "cosine"):
        raise ValueError(f"lr_schedule must be 'none' or 'cosine', got {lr_schedule!r}")
    graphs = list(bundle.dataset)
    fold_ids = list(range(folds)) if isinstance(folds, int) else list(folds)
    accs, best_epochs, curves = [], [], []
    default_batch = 32
    t0 = time.perf_counter()
    for fold in tqdm(fold_ids, desc=f"CSL {model_name}"):
        split = bundle.splits[fold]
        torch.manual_seed(seed + fold)
        if model_name == "GIN":
            model: nn.Module = GNN(1, hidden, 10, num_layers=4, conv="gin", readout="sum",
                                   dropout=0.0)
            data = graphs
        else:
            kind, paper_length, de, paper_l2, default_batch = _CSL_VARIANTS[model_name]
            model = PathNN(1, hidden, 10, num_layers=length or paper_length, kind=kind,
                           distance_encoding=de, readout="sum",
                           l2_norm=paper_l2 if l2_norm is None else l2_norm, mlp_layers=0,
                           norm="batch_norm" if norm else None, readout_norm=readout_norm)
            data = [model.transform(g) for g in graphs]
        subset = {k: [data[i] for i in split[k].tolist()] for k in ("train", "valid", "test")}
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) \
            if lr_schedule == "cosine" else None
        order = torch.Generator().manual_seed(seed + fold)
        loader = DataLoader(subset["train"], batch_size=batch_size or default_batch, shuffle=True,
                            generator=order)
        best, curve, epoch_s = _fit_csl_fold(model, subset, loader, order, opt, sched, epochs,
                                             select, f"fold {fold + 1}")
        accs.append(best[2])
        best_epochs.append(best[3])
        curves.append({"fold": fold + 1, "best_epoch": best[3], "best_valid_acc": best[0],
                       "seconds_per_epoch": round(sum(epoch_s) / len(epoch_s), 2), **curve})
    acc = torch.tensor(accs)
    std = float(acc.std()) if len(accs) > 1 else 0.0
    return {"dataset": "CSL", "model": model_name,
            "test_acc": f"{100 * float(acc.mean()):.1f} ± {100 * std:.1f}",
            "paper": PAPER.get(("CSL", model_name), "-"), "epochs": epochs,
            "folds": [f + 1 for f in fold_ids], "hidden": hidden,
            "batch_size": batch_size or default_batch, "lr": lr, "lr_schedule": lr_schedule,
            "select": select,
            "path_edges": None if model_name == "GIN" else length or _CSL_VARIANTS[model_name][1],
            "l2_norm": None if model_name == "GIN" else (
                _CSL_VARIANTS[model_name][3] if l2_norm is None else l2_norm),
            "batch_norm": None if model_name == "GIN" else norm,
            "readout_norm": None if model_name == "GIN" else readout_norm,
            "per_fold_test_acc": [round(100 * a, 1) for a in accs],
            "best_valid_epochs": best_epochs, "seconds": round(time.perf_counter() - t0, 1),
            "curves": curves}


def _fit_csl_fold(model: nn.Module, subset: dict[str, list[Data]], loader: DataLoader,
                  order: torch.Generator, opt: torch.optim.Optimizer, sched, epochs: int,
                  select: str, label: str) -> tuple[tuple, dict[str, list[float]], list[float]]:
    """One CSL fold through :func:`graphlab.engine.fit`: returns (valid acc, valid loss, test
    acc, 1-based epoch) of the selected epoch, the per-epoch curves and the seconds per epoch."""
    from torch.nn import functional as F

    curve: dict[str, list[float]] = {k: [] for k in (
        "train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc")}
    train_sums: list[Tensor] = []  # [loss * graphs, correct] per batch of the epoch

    def step(m: nn.Module, batch: Batch) -> Tensor:
        out = m.forward_data(batch)
        loss = F.cross_entropy(out, batch.y.view(-1))
        train_sums.append(torch.stack([loss.detach() * batch.num_graphs,
                                       (out.argmax(-1) == batch.y.view(-1)).sum()]))
        return loss

    def scores(m: nn.Module) -> dict[str, float]:
        (v_loss, valid), (t_loss, test) = (_csl_eval(m, subset[k]) for k in ("valid", "test"))
        train_loss, correct = torch.stack(train_sums).sum(0).tolist()
        train_sums.clear()
        n = len(subset["train"])
        return {"train_loss": train_loss / n, "train_acc": correct / n, "valid_loss": v_loss,
                "valid_acc": valid, "test_loss": t_loss, "test_acc": test}

    def log(epoch: int, record: dict) -> None:
        for key in curve:
            curve[key].append(round(record[key], 4))
        print(f"{label} epoch {epoch + 1}: " + " ".join(
            f"{k} {v[-1]:.3f}" for k, v in curve.items()), flush=True)

    # "acc_loss" breaks validation-accuracy ties by the lower validation loss
    criteria = [("valid_acc", "max")] + ([("valid_loss", "min")] if select == "acc_loss" else [])
    result = fit(model, opt, train_step=step, train_batches=loader, epochs=epochs,
                 evaluate=scores, select=criteria, scheduler=sched, generator=order,
                 on_epoch_end=log, progress=False, desc=f"CSL {label}")
    best = (result.best["valid_acc"], result.best["valid_loss"], result.best["test_acc"],
            result.best_epoch + 1)
    return best, curve, [result.seconds_per_epoch]


@torch.no_grad()
def _csl_eval(model: nn.Module, graphs: list[Data]) -> tuple[float, float]:
    """Mean cross-entropy and accuracy."""
    model.eval()
    loss = correct = 0.0
    for b in DataLoader(graphs, batch_size=64):
        out = model.forward_data(b)
        loss += float(nn.functional.cross_entropy(out, b.y.view(-1), reduction="sum"))
        correct += int((out.argmax(-1) == b.y.view(-1)).sum())
    return loss / len(graphs), correct / len(graphs)


# the paper's CSL settings: SP / SP+ cutoff 12 (11 edges), batch 32, no L2 norm; AP cutoff 6
# (5 edges) with distance encoding and L2 norm, batch 8. SP is not used: on CSL (vertex-
# transitive, constant features) every tie-break key is equal, so no single shortest path per
# pair can be chosen independently of node order. Value: (kind, edges, DE, l2_norm, batch).
_CSL_VARIANTS = {"PathNN-SP+": ("all_shortest", 11, False, False, 32),
                 "PathNN-AP": ("all_simple", 5, True, True, 8)}
CSL_MODEL = "PathNN-SP+"
CSL_EPOCHS = 200
CSL_HIDDEN = 64
CSL_BATCH: int | None = None
# protocol / budget knobs of the trained CSL run (CLI); see _train_csl
CSL_OPTS: dict = {"folds": 5}
CSL_SKIP_GIN = False
_VARIANTS.update({"PathNN-SP+ (L=6)": ("all_shortest", 6, False),
                  "PathNN-AP (DE, L=4)": ("all_simple", 4, True)})


def _csl_separation_rows() -> list[dict]:
    """Untrained class separation: one representative graph per CSL class, 45 class pairs."""
    bundle = _load("CSL")
    ds = bundle.dataset
    labels = ds._data.y.view(-1)
    reps = [ds[int((labels == c).nonzero()[0])] for c in range(int(labels.max()) + 1)]
    pairs = [(i, j) for i in range(len(reps)) for j in range(i + 1, len(reps))]
    rows = []
    for name in ("GIN", "PathNN-AP (DE, L=3)", "PathNN-AP (DE, L=4)", "PathNN-SP+ (L=6)"):
        row = iso_test("CSL (untrained, class pairs)", name, reps, pairs, 1, 10, copies=10)
        rows.append(row)
        print_row(row)
    return rows


def _csl_rows(quick: bool) -> list[dict]:
    rows = _csl_separation_rows()
    if quick:  # training PathNN on CSL takes many CPU-minutes: full mode only
        return rows
    bundle = _load("CSL")
    for name in ([] if CSL_SKIP_GIN else ["GIN"]) + [CSL_MODEL]:
        rows.append(_train_csl(name, bundle, epochs=CSL_EPOCHS, hidden=CSL_HIDDEN,
                               batch_size=CSL_BATCH, **CSL_OPTS))
        print_row(rows[-1])
    return rows


def _headline(rows: list[dict], models: list[str]) -> str:
    got = {r["model"]: r["separated"] for r in rows if "separated" in r}
    return ", ".join(f"{m} {got[m]}" for m in models if m in got)


@register("pathnn-exp", "PathNN vs GIN: separated 1-WL-equivalent EXP pairs (untrained)",
          paper="Michel et al. 2023 (PathNN), EXP (Abboud et al. 2021)")
def run_exp(quick: bool, out: Path) -> TaskResult:
    torch.set_num_threads(1)
    rows = _exp_rows(quick)
    return TaskResult(rows, paper="PathNN-SP+ / AP 600/600, GIN 0/600",
                      ours=_headline(rows, ["PathNN-SP", "PathNN-SP+", "PathNN-AP", "GIN"]),
                      notes=f"Untrained, float64; a pair counts as separated when its embedding "
                            f"distance exceeds {TOL:g} for every initialisation.",
                      config={"seeds": 1 if quick else SEEDS, "pairs": PAIRS, "tol": TOL})


@register("pathnn-sr25", "PathNN vs GIN: separated SR25 pairs (3-WL-equivalent, untrained)",
          paper="Michel et al. 2023 (PathNN), SR25")
def run_sr25(quick: bool, out: Path) -> TaskResult:
    torch.set_num_threads(1)
    rows = _sr25_rows(quick)
    return TaskResult(rows, paper="PathNN-AP (DE) 105/105, GIN 0/105",
                      ours=_headline(rows, SR25_MODELS),
                      notes=f"Untrained, float64, tolerance {TOL:g}. Refinement rows: the exact, "
                            "injective path-colour refinement (an upper bound for every PathNN-AP "
                            "with distance encoding over the same path lengths).",
                      config={"seeds": 1 if quick else SEEDS, "models": SR25_MODELS,
                              "refinement_lengths": SR25_REFINEMENT_LENGTHS,
                              "pattern_lengths": SR25_PATTERN_LENGTHS, "graphs": SR25_GRAPHS,
                              "copies": SR25_COPIES})


@register("pathnn-csl", "PathNN vs GIN on CSL: class separation (untrained); 5-fold accuracy (full)",
          paper="Michel et al. 2023 (PathNN), CSL (Murphy et al. 2019)")
def run_csl(quick: bool, out: Path) -> TaskResult:
    torch.set_num_threads(1)
    rows = _csl_rows(quick)
    trained = [r for r in rows if "test_acc" in r]
    ours = _headline(rows, ["GIN", "PathNN-AP (DE, L=4)", "PathNN-SP+ (L=6)"])
    if trained:
        ours += "; " + ", ".join(f"{r['model']} {r.get('test_acc', '')}" for r in trained)
    return TaskResult(rows, paper="CSL accuracy PathNN ~100%, GIN 10%", ours=ours,
                      config={"model": CSL_MODEL, "epochs": CSL_EPOCHS, "hidden": CSL_HIDDEN,
                              "batch_size": CSL_BATCH, **CSL_OPTS})


def main(argv: list[str] | None = None) -> int:
    global PAIRS, SEEDS, SR25_REFINEMENT_LENGTHS, SKIP_MODELS, SR25_PATTERN_LENGTHS
    global SR25_MODELS, SR25_GRAPHS, SR25_COPIES, CSL_MODEL, CSL_EPOCHS, CSL_HIDDEN, CSL_BATCH
    global CSL_SKIP_GIN
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/pathnn_expressivity"))
    parser.add_argument("--task", choices=["exp", "sr25", "csl", "all"], default="all")
    parser.add_argument("--pairs", type=int, help="EXP pairs (default: all 600)")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="initialisations (full mode)")
    parser.add_argument("--refinement-lengths", type=int, nargs="*", default=SR25_REFINEMENT_LENGTHS,
                        help="SR25: path edges of the injective refinement rows (none: skip)")
    parser.add_argument("--pattern-lengths", type=int, nargs="*", default=SR25_PATTERN_LENGTHS,
                        help="SR25: path edges of the graph-level path-pattern count rows")
    parser.add_argument("--sr25-graphs", type=int, nargs="+", help="SR25: a subset of graph ids")
    parser.add_argument("--sr25-models", nargs="+", default=SR25_MODELS,
                        choices=[*SR25_MODELS, *SR25_DIAGNOSTIC_MODELS])
    parser.add_argument("--sr25-path-lengths", type=int, nargs="+",
                        help="SR25: also run PathNN-AP (DE) with layers over these path lengths "
                             "(edges), e.g. 1 2 3 4 4")
    parser.add_argument("--sr25-centred", action="store_true",
                        help="SR25: the --sr25-path-lengths model is centred (centre_layers)")
    parser.add_argument("--sr25-copies", type=int, default=SR25_COPIES,
                        help="SR25: graphs compared with a relabelled copy of themselves (noise "
                             "floor; each costs one more embedding)")
    parser.add_argument("--skip-models", action="store_true",
                        help="SR25: refinement and count rows only (no untrained models)")
    parser.add_argument("--csl-model", choices=sorted(_CSL_VARIANTS), default=CSL_MODEL)
    parser.add_argument("--csl-epochs", type=int, default=CSL_EPOCHS)
    parser.add_argument("--csl-hidden", type=int, default=CSL_HIDDEN)
    parser.add_argument("--csl-batch-size", type=int, help="default: the paper's per variant")
    parser.add_argument("--csl-length", type=int, help="path edges (default: the paper's)")
    parser.add_argument("--csl-l2-norm", choices=["paper", "on", "off"], default="paper",
                        help="L2-normalise node states before each layer (paper: AP only)")
    parser.add_argument("--csl-batch-norm", action="store_true",
                        help="batch norm after each layer's residual sum (paper: none)")
    parser.add_argument("--csl-readout-norm", action="store_true",
                        help="batch norm of the graph embedding before the head (paper: none)")
    parser.add_argument("--csl-lr", type=float, default=1e-3)
    parser.add_argument("--csl-lr-schedule", choices=["none", "cosine"], default="none")
    parser.add_argument("--csl-select", choices=["acc", "acc_loss"], default="acc",
                        help="acc: first best valid accuracy (paper); acc_loss: ties by valid loss")
    parser.add_argument("--csl-folds", type=int, nargs="+", help="1-based folds (default all 5)")
    parser.add_argument("--csl-skip-gin", action="store_true", help="train PathNN only")
    args = parser.parse_args(argv)
    PAIRS, SEEDS = args.pairs, args.seeds
    SR25_REFINEMENT_LENGTHS, SKIP_MODELS = args.refinement_lengths, args.skip_models
    SR25_PATTERN_LENGTHS = args.pattern_lengths
    SR25_MODELS, SR25_GRAPHS, SR25_COPIES = args.sr25_models, args.sr25_graphs, args.sr25_copies
    if args.sr25_path_lengths:
        scheduled = scheduled_variant(args.sr25_path_lengths, centred=args.sr25_centred)
        SR25_MODELS = [m for m in SR25_MODELS if m != scheduled] + [scheduled]
    CSL_MODEL, CSL_EPOCHS, CSL_HIDDEN = args.csl_model, args.csl_epochs, args.csl_hidden
    CSL_BATCH = args.csl_batch_size
    CSL_OPTS.update(length=args.csl_length,
                    l2_norm={"paper": None, "on": True, "off": False}[args.csl_l2_norm],
                    lr=args.csl_lr, lr_schedule=args.csl_lr_schedule, norm=args.csl_batch_norm,
                    readout_norm=args.csl_readout_norm,
                    select=args.csl_select,
                    folds=[f - 1 for f in args.csl_folds] if args.csl_folds else 5)
    CSL_SKIP_GIN = args.csl_skip_gin
    # one task per subject, each with its own results file in --out
    tasks = {"exp": ("pathnn-exp", run_exp), "sr25": ("pathnn-sr25", run_sr25),
             "csl": ("pathnn-csl", run_csl)}
    codes = [run_script(name, argv, args.out / key, args.quick,
                        lambda fn=fn: fn(args.quick, args.out))
             for key, (name, fn) in tasks.items() if args.task in (key, "all")]
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
