r"""Graph tasks over model zoos: property prediction from weights or op graphs, and pruning as
edge labelling.

:func:`predict` fits one of

* ``statnn``: per-layer weight statistics (first layer, last layer and the mean over the middle
  layers, so zoos of mixed width/depth share one feature layout) + gradient boosting;
* ``hparams``: gradient boosting on the member's architecture/hyperparameter configuration (an
  oracle-style reference: it sees how the net was made, not its weights);
* ``neural``: :class:`~graphlab.metanets.NeuralGraphEncoder` on neural-view graphs;
* ``gmn``: :class:`~graphlab.metanets.GMN` on parameter-view graphs;
* ``opgnn``: :class:`~graphlab.metanets.op_graph_encoder.OpGraphEncoder` on op graphs
  (architecture only, no weights);

on the train part of a zoo split and reports Kendall :math:`\tau` and :math:`R^2` on the test
part over several seeds (and :math:`\tau` on the members above chance accuracy; accuracy and
macro-F1 for ``phase``).

Pruning as edge labelling (targets ``prune_magnitude`` / ``prune_snip``, model ``gmn``):
:func:`predict_edges` trains an :class:`~graphlab.metanets.edge_gmn.EdgeGMN` to predict every
parameter's importance from the weights alone and scores it per network (Spearman, Kendall,
top-k overlap) against the trivial :math:`|w|` ranking.

Fair training (issue 20): every model, StatNN included, gets a hyperparameter search of the same
size selected on a validation part (:func:`sample_configs`), graph metanets train through
:func:`graphlab.engine.fit` with early stopping and symmetric twins as augmentation, and test
scores are reported over seeds. :func:`classify_weights` runs the INR-classification protocol on
one architecture's flat weights (:class:`~graphlab.metanets.weightspace.WeightSpace`): flat MLP,
StatNN, the graph metanets (optionally with probe features) and NFN's layers side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from graphlab.engine import fit
from graphlab.metanets import EDGE_TYPES, EdgeGMN, StatNN, pad_edge_attr, to_graph, weight_statistics
from graphlab.metanets.init import seeded_module
from graphlab.zoo.architectures import input_shape
from graphlab.zoo.store import Zoo
from graphlab.zoo.training import digits_data

__all__ = ["MODELS", "predict", "statnn_features", "hparam_features", "zoo_graphs",
           "fit_graph_regressor", "edge_importance", "layer_collapse", "prune_mask",
           "predict_edges", "prunable_edges", "snip_data", "CLASSIFICATION_TARGETS",
           "PRUNE_TARGETS", "CHANCE_ACC", "symmetric_twins", "sample_configs", "fit_classifier",
           "predict_classes", "classify_weights", "tensor_scales", "WEIGHT_MODELS",
           "TORCH_SPACE", "GRAPH_SPACE", "GBM_SPACE"]

MODELS = ("statnn", "hparams", "neural", "gmn", "opgnn")
CLASSIFICATION_TARGETS = ("phase",)
#: edge-level targets: the importance method of :func:`edge_importance` they label edges with
PRUNE_TARGETS = {"prune_magnitude": "magnitude", "prune_snip": "snip"}
CHANCE_ACC = 0.2  # digits: 10 classes, chance 0.1; "above chance" leaves a margin
_VIEW = {"neural": "neural", "gmn": "parameter", "opgnn": "op"}


# --------------------------------------------------------------------------- features
def _layer_tensors(sd: dict[str, Tensor]) -> list[tuple[Tensor, Tensor | None]]:
    """(weight, bias) per layer with a weight of >= 2 dims, in state_dict order."""
    out = []
    for k, v in sd.items():
        if k.endswith("weight") and v.dim() >= 2:
            out.append((v, sd.get(k[: -len("weight")] + "bias")))
    return out


def _pair_stats(pair: tuple[Tensor, Tensor | None]) -> list[Tensor]:
    w, b = pair
    zero = torch.zeros(7, dtype=torch.float64)
    return [weight_statistics({"w": w}), weight_statistics({"b": b}) if b is not None else zero]


def statnn_features(zoo: Zoo, indices: Sequence[int]) -> np.ndarray:
    """``[n, 6 * 7 + 3]`` StatNN features, padded for zoos of mixed layouts: the statistics of
    the first and last layers' weights and biases, the mean statistics of the middle layers, and
    (depth, log #params, number of norm tensors)."""
    rows = []
    for i in indices:
        sd = zoo.state_dict(i)
        layers = _layer_tensors(sd)
        z = torch.zeros(7, dtype=torch.float64)
        st = _pair_stats

        mids = [st(p) for p in layers[1:-1]]
        mid = [torch.stack([m[0] for m in mids]).mean(0), torch.stack([m[1] for m in mids]).mean(0)
               ] if mids else [z, z]
        n_params = sum(v.numel() for v in sd.values() if v.is_floating_point())
        n_norm = sum(1 for k, v in sd.items() if v.dim() == 1 and "norm" in k)
        extra = torch.tensor([len(layers), np.log(max(n_params, 1)), n_norm], dtype=torch.float64)
        rows.append(torch.cat(st(layers[0]) + mid + st(layers[-1]) + [extra]).numpy())
    return np.nan_to_num(np.stack(rows), nan=0.0, posinf=1e6, neginf=-1e6)


_ARCHS = ("mlp", "resmlp", "conv1d", "cnn2d")
_ACTS = ("relu", "tanh", "sigmoid", "gelu", "silu")
_INITS = ("default", "xavier", "he", "orthogonal", "normal")
_OPTIMIZERS = ("sgd", "adam")


def hparam_features(zoo: Zoo, indices: Sequence[int]) -> np.ndarray:
    """Numeric encoding of each member's configuration: arch / activation / init / optimizer
    one-hot, width, depth, log lr, batch, weight decay, epochs, training steps, train fraction,
    dropout, norm, residual, pooling, init scale (a knob a preset does not sample is 0)."""
    rows = []
    for i in indices:
        c = zoo.record(i)["config"]
        row = [float(c.get("arch") == a) for a in _ARCHS] + [float(c.get("act") == a)
                                                             for a in _ACTS]
        row += [float(c.get("init") == a) for a in _INITS]
        row += [float(c.get("optimizer") == a) for a in _OPTIMIZERS]
        row += [c["width"], c["depth"], np.log10(c.get("lr", 1.0)), c.get("batch_size", 0),
                c.get("weight_decay", 0.0), c.get("epochs", 0), c.get("steps", 0),
                c.get("train_fraction", 0.0), c.get("dropout", 0.0),
                float(c.get("norm", False)), float(c.get("residual", False)),
                float(c.get("pool", False)), c.get("init_scale", 0.0)]
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)


def zoo_graphs(zoo: Zoo, indices: Sequence[int], view: str) -> list[Data]:
    """Graphs of the members (cached on the zoo object), ``graph.net`` dropped so they batch;
    neural-view ``edge_attr`` is zero-padded to the zoo's widest kernel."""
    cache = zoo.cache
    for i in indices:
        if (view, i) not in cache:
            g = to_graph(zoo.module(i), zoo.example_input(i), view=view)
            g.net = None
            del g.net
            cache[(view, i)] = g
    graphs = [cache[(view, i)] for i in indices]
    if view != "op" and graphs:
        width = max(int(g.edge_attr.size(1)) for g in graphs)
        graphs = [pad_edge_attr(g, width) if g.edge_attr.size(1) < width else g for g in graphs]
    return graphs


def _make_encoder(model: str, example: Data, out: int, hidden: int, layers: int,
                  dropout: float = 0.0) -> nn.Module:
    from graphlab.metanets import GMN, NeuralGraphEncoder, OpGraphEncoder

    if model == "neural":
        return NeuralGraphEncoder.from_graph(example, out, hidden, layers, dropout=dropout)
    if model == "gmn":
        return GMN.from_graph(example, out, hidden, layers, dropout=dropout)
    if model == "opgnn":
        return OpGraphEncoder(example.x.size(1), hidden, out, layers, dropout=dropout)
    raise ValueError(f"unknown graph model {model!r}")


def symmetric_twins(zoo: Zoo, indices: Sequence[int], view: str, num: int,
                    seed: int = 0) -> list[list[Data]]:
    """Per member, ``num`` graphs of random symmetric twins (:func:`~graphlab.metanets.random_symmetry`:
    hidden-neuron permutations, and sign flips where the activation is odd), for augmentation;
    cached on the zoo like :func:`zoo_graphs`."""
    from graphlab.metanets import random_symmetry

    out = []
    for i in indices:
        twins = []
        for k in range(num):
            key = ("twin", view, i, seed, k)
            if key not in zoo.cache:
                twin = random_symmetry(zoo.module(i), seed * 1000 + k, zoo.example_input(i),
                                       signs=True)
                g = to_graph(twin, zoo.example_input(i), view=view)
                del g.net
                zoo.cache[key] = g
            twins.append(zoo.cache[key])
        out.append(twins)
    return out


def fit_graph_regressor(model: str, train_graphs: list[Data], y_train: np.ndarray,
                        test_graphs: list[Data], seed: int = 0, epochs: int = 40,
                        hidden: int = 32, layers: int = 2, batch_size: int = 32,
                        lr: float = 3e-3, num_classes: int = 0, *,
                        valid_graphs: list[Data] | None = None,
                        y_valid: np.ndarray | None = None, patience: int | None = None,
                        dropout: float = 0.0, weight_decay: float = 1e-4,
                        twins: list[list[Data]] | None = None,
                        history: list[dict[str, Any]] | None = None) -> np.ndarray:
    r"""Train a graph encoder on ``(train_graphs, y_train)`` through :func:`graphlab.engine.fit`
    and predict ``test_graphs`` (regression on standardised targets, or classification if
    ``num_classes > 0``).

    With ``valid_graphs`` / ``y_valid`` the epoch with the best validation Kendall :math:`\tau`
    (accuracy for classification; ties broken by validation loss) is selected and restored, and
    ``patience`` stops training early; without them the last epoch is used. ``twins[k]`` lists
    symmetric twins of training graph ``k``: each epoch every training example is drawn from the
    graph and its twins (augmentation). The per-epoch learning curve is appended to ``history``.
    """
    from scipy.stats import kendalltau

    enc = seeded_module(lambda: _make_encoder(model, train_graphs[0], max(num_classes, 1),
                                              hidden, layers, dropout),
                        torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(enc.parameters(), lr=lr, weight_decay=weight_decay)
    if num_classes:
        yt = torch.as_tensor(y_train, dtype=torch.long)
        mu, sd = 0.0, 1.0
    else:
        mu, sd = float(np.mean(y_train)), float(np.std(y_train) + 1e-8)
        yt = torch.as_tensor((y_train - mu) / sd, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    n = len(train_graphs)
    pools = [[g, *(twins[k] if twins else [])] for k, g in enumerate(train_graphs)]

    def batches(epoch: int) -> Iterator[tuple[Batch, Tensor]]:
        order = torch.randperm(n, generator=gen)
        pick = torch.randint(0, 1 << 30, (n,), generator=gen)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            graphs = [pools[int(k)][int(pick[k]) % len(pools[int(k)])] for k in idx]
            yield Batch.from_data_list(graphs), yt[idx]

    def loss_of(out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y) if num_classes else F.mse_loss(out[:, 0], y)

    def step(net: nn.Module, batch: tuple[Batch, Tensor]) -> Tensor:
        return loss_of(net(batch[0]), batch[1])

    def raw(net: nn.Module, graphs: list[Data]) -> Tensor:
        outs = [net(Batch.from_data_list(graphs[s:s + 64])) for s in range(0, len(graphs), 64)]
        return torch.cat(outs) if outs else torch.zeros(0, max(num_classes, 1))

    select: Any = None
    evaluate = None
    if valid_graphs is not None and y_valid is not None and len(valid_graphs) > 1:
        yv = torch.as_tensor(y_valid if num_classes else (y_valid - mu) / sd,
                             dtype=torch.long if num_classes else torch.float32)

        def evaluate(net: nn.Module) -> dict[str, float]:
            out = raw(net, valid_graphs)
            if num_classes:
                score = float((out.argmax(-1) == yv).float().mean())
            else:
                score = float(np.nan_to_num(kendalltau(out[:, 0].numpy(), yv.numpy())
                                            .statistic, nan=-1.0))
            return {"valid_score": score, "valid_loss": float(loss_of(out, yv))}

        select = [("valid_score", "max"), ("valid_loss", "min")]
    res = fit(enc, opt, train_step=step, train_batches=batches, epochs=max(epochs, 1),
              evaluate=evaluate, select=select, patience=patience if select else None,
              restore_best=select is not None, generator=gen, progress=False,
              scheduler=None if select else torch.optim.lr_scheduler.CosineAnnealingLR(
                  opt, T_max=max(epochs, 1)),
              desc=f"{model} regressor") if epochs > 0 else None
    if history is not None and res is not None:
        history.extend({k: r.get(k) for k in ("epoch", "loss", "valid_score", "valid_loss")}
                       for r in res.history)
    enc.eval()
    with torch.no_grad():
        out = raw(enc, test_graphs)
    return (out.argmax(-1).double() if num_classes else out[:, 0].double() * sd + mu).numpy()


# --------------------------------------------------------------------------- prediction task
def _metrics(y: np.ndarray, p: np.ndarray, classification: bool) -> dict[str, float]:
    from scipy.stats import kendalltau
    from sklearn.metrics import r2_score

    if classification:
        from sklearn.metrics import f1_score

        return {"acc": float(np.mean(y == p)),
                "f1_macro": float(f1_score(y, p, average="macro", zero_division=0))}
    tau = kendalltau(y, p).statistic if len(y) > 1 else float("nan")
    return {"tau": float(tau), "r2": float(r2_score(y, p)) if len(y) > 1 else float("nan"),
            "mae": float(np.mean(np.abs(y - p)))}


def _valid_part(zoo: Zoo, split: str, train: list[int], fraction: float
                ) -> tuple[list[int], list[int]]:
    """``(fit, valid)``: the split's own ``val`` part where it has one, else a fixed random
    ``fraction`` of its train part (the test part is never looked at before the end)."""
    parts = zoo.split_parts(split)
    if parts.get("val"):
        valid = set(parts["val"])
        return [i for i in train if i not in valid], [i for i in parts["val"]]
    rng = np.random.default_rng(12345)
    order = rng.permutation(len(train))
    k = max(2, int(round(fraction * len(train))))
    valid = sorted(train[j] for j in order[:k])
    held = set(valid)
    return [i for i in train if i not in held], valid


def predict(zoo: Zoo, target: str, model: str, split: str = "id",
            seeds: Sequence[int] = (0, 1, 2), epochs: int = 40, hidden: int = 32,
            layers: int = 2, max_train: int | None = None, *, n_configs: int = 1,
            patience: int | None = 20, augment: int = 0, valid_fraction: float = 0.2,
            search_seed: int = 0) -> dict[str, Any]:
    """Fit ``model`` on the split's train members and evaluate on its test members.

    The train part is divided into a fitting part and a validation part (the split's own ``val``
    part where it has one, else ``valid_fraction`` of train). With ``n_configs > 1`` every model
    gets a hyperparameter search of that size (:func:`sample_configs` over
    :data:`GRAPH_SPACE` for the graph encoders, :data:`GBM_SPACE` for ``statnn`` / ``hparams``),
    each configuration fitted with ``seeds[0]`` and scored on validation (Kendall
    :math:`\\tau`, or accuracy for ``phase``); the best is refitted with every seed and scored
    once on test. With ``n_configs=1`` the single configuration is ``hidden`` / ``layers``
    (graph encoders, lr 3e-3) or the default GBM. Graph encoders train through
    :func:`fit_graph_regressor` (epoch selection on validation, ``patience`` early stopping) and,
    with ``augment > 0``, draw every training example from the member and ``augment`` symmetric
    twins (:func:`symmetric_twins`).

    Args:
        zoo: a :class:`~graphlab.zoo.Zoo`.
        target: a member metric (``test_acc``, ``gen_gap``, ``complexity``, ``sharpness``, ...)
            or ``phase`` (classification).
        model: one of :data:`MODELS`.
        split: a standard split (``id``, ``hparam``, ``width``, ``depth``, ``family``).
        seeds: one fit per seed (the split is fixed; seeds vary the model).
        epochs, hidden, layers: graph-encoder budget (``epochs`` is the cap under early stopping).
        max_train: subsample the train set (low-data runs).

    Returns:
        a dict with ``tau_mean/std``, ``r2_mean/std`` (or ``acc_mean/std`` and
        ``f1_macro_mean/std`` for ``phase``, with the majority class's ``majority_acc`` /
        ``majority_f1_macro``), ``tau_above_chance_mean/std`` when the zoo has ``test_acc``,
        ``config`` (the selected one), ``search`` (every configuration's validation score),
        ``curve`` (the first seed's learning curve), per-seed metrics and the last seed's
        ``pred`` / ``true`` arrays. For the :data:`PRUNE_TARGETS` see :func:`predict_edges`.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if target in PRUNE_TARGETS:
        if model != "gmn":
            raise ValueError(f"target {target!r} is edge-level: use model 'gmn' (EdgeGMN), "
                             f"got {model!r}")
        return predict_edges(zoo, target, split, seeds=seeds, epochs=epochs, hidden=hidden,
                             layers=layers, max_train=max_train)
    if n_configs < 1:
        raise ValueError(f"n_configs must be >= 1, got {n_configs}")
    classification = target in CLASSIFICATION_TARGETS
    train, test = zoo.split(split)
    y_all = zoo.target(target, zoo.indices)
    ymap = dict(zip(zoo.indices, y_all))
    train = [i for i in train if np.isfinite(ymap[i])]
    test = [i for i in test if np.isfinite(ymap[i])]
    if max_train is not None:
        train = train[:max_train]
    if len(train) < 4 or len(test) < 2:
        raise ValueError(f"split {split!r} has too few finished members ({len(train)} train, "
                         f"{len(test)} test)")
    fit_idx, valid = _valid_part(zoo, split, train, valid_fraction)
    y_fit = np.array([ymap[i] for i in fit_idx])
    y_va = np.array([ymap[i] for i in valid])
    y_te = np.array([ymap[i] for i in test])
    has_acc = "test_acc" in zoo.records[0]["metrics"]
    above = np.array([zoo.record(i)["metrics"]["test_acc"] > CHANCE_ACC for i in test]) \
        if has_acc else None
    num_classes = int(max(y_all[np.isfinite(y_all)]) + 1) if classification else 0

    def score(y: np.ndarray, p: np.ndarray) -> float:
        m = _metrics(y, p, classification)
        return float(np.nan_to_num(m["acc" if classification else "tau"], nan=-1.0))

    curve: list[dict[str, Any]] = []
    if model in ("statnn", "hparams"):
        feat = statnn_features if model == "statnn" else hparam_features
        X_fit, X_va, X_te = feat(zoo, fit_idx), feat(zoo, valid), feat(zoo, test)
        # sklearn's default leaf size (20) cannot split train sets under 40 members
        leaf = max(2, min(20, len(fit_idx) // 10))
        configs = sample_configs(GBM_SPACE, n_configs, search_seed) if n_configs > 1 else \
            [{"max_iter": 200}]
        task = "classification" if classification else "regression"

        def run_one(cfg: dict[str, Any], seed: int, X: np.ndarray) -> np.ndarray:
            sn = StatNN(task=task, seed=seed, min_samples_leaf=leaf, **cfg)
            return sn.fit(X_fit, y_fit).predict(X).astype(np.float64)

        search = [{"config": c, "valid": score(y_va, run_one(c, seeds[0], X_va))}
                  for c in configs]
    else:
        view = _VIEW[model]
        g_fit, g_va, g_te = (zoo_graphs(zoo, part, view) for part in (fit_idx, valid, test))
        twins = symmetric_twins(zoo, fit_idx, view, augment) if augment and view != "op" \
            else None
        if view != "op":
            width = max(g.edge_attr.size(1) for g in g_fit + g_va + g_te +
                        [t for ts in (twins or []) for t in ts])
            g_fit, g_va, g_te = ([pad_edge_attr(g, width) for g in gs]
                                 for gs in (g_fit, g_va, g_te))
            if twins:
                twins = [[pad_edge_attr(t, width) for t in ts] for ts in twins]
        configs = sample_configs(GRAPH_SPACE, n_configs, search_seed) if n_configs > 1 else \
            [{"hidden": hidden, "layers": layers, "lr": 3e-3, "dropout": 0.0,
              "weight_decay": 1e-4}]

        def run_one(cfg: dict[str, Any], seed: int, graphs: list[Data],
                    history: list | None = None) -> np.ndarray:
            return fit_graph_regressor(
                model, g_fit, y_fit, graphs, seed=seed, epochs=epochs, hidden=cfg["hidden"],
                layers=cfg["layers"], lr=cfg["lr"], num_classes=num_classes, valid_graphs=g_va,
                y_valid=y_va, patience=patience, dropout=cfg["dropout"],
                weight_decay=cfg["weight_decay"], twins=twins, history=history)

        search = [{"config": c, "valid": score(y_va, run_one(c, seeds[0], g_va))}
                  for c in configs]
    best = max(search, key=lambda r: r["valid"])
    runs = []
    pred = np.zeros(0)
    for seed in seeds:
        if model in ("statnn", "hparams"):
            pred = run_one(best["config"], seed, X_te)
        else:
            pred = run_one(best["config"], seed, g_te, curve if not curve else None)
        m = _metrics(y_te, pred, classification)
        if above is not None and not classification and above.sum() > 2:
            m["tau_above_chance"] = _metrics(y_te[above], pred[above], False)["tau"]
        runs.append(m)
    out: dict[str, Any] = {"target": target, "model": model, "split": split,
                           "n_train": len(train), "n_fit": len(fit_idx), "n_val": len(valid),
                           "n_test": len(test), "seeds": list(seeds), "n_configs": len(search),
                           "augment": augment if model not in ("statnn", "hparams") else 0,
                           "config": best["config"], "valid_score": best["valid"],
                           "search": search, "curve": curve}
    for k in runs[0]:
        vals = np.array([r[k] for r in runs], dtype=np.float64)
        out[f"{k}_mean"], out[f"{k}_std"] = float(np.mean(vals)), float(np.std(vals))
    if above is not None:
        out["n_above_chance"] = int(above.sum())
    if classification:
        majority = np.bincount(y_fit.astype(int)).argmax()
        base = _metrics(y_te, np.full_like(y_te, majority), True)
        out["majority_acc"], out["majority_f1_macro"] = base["acc"], base["f1_macro"]
    out["per_seed"] = runs
    out["pred"], out["true"], out["test_indices"] = pred.tolist(), y_te.tolist(), test
    return out


# --------------------------------------------------------------------------- pruning
def edge_importance(module: nn.Module, example_input: Tensor, method: str = "magnitude",
                    data: tuple[Tensor, Tensor] | None = None, view: str = "neural") -> Tensor:
    r"""Importance of every edge of ``module``'s graph (aligned with
    ``to_graph(module, example_input, view=view).edge_attr`` rows; a neural-view conv edge's
    kernel entries are summed; in the parameter view every edge is one parameter).

    * ``magnitude``: :math:`|w|`;
    * ``snip``: :math:`|w \cdot \partial\mathcal{L}/\partial w|` (Lee et al., ICLR 2019) on
      ``data = (x, y)`` with cross-entropy.

    The graph of a copy whose weights are replaced by the scores carries them on the same edges,
    so no index bookkeeping is needed. Structural edges and buffers (identity / residual edges,
    BatchNorm running statistics) are not parameters: mask them with :func:`prunable_edges`.
    """
    if method not in ("magnitude", "snip"):
        raise ValueError(f"method must be 'magnitude' or 'snip', got {method!r}")
    scored = copy.deepcopy(module).eval()
    if method == "snip":
        if data is None:
            raise ValueError("snip needs data=(x, y)")
        scored.zero_grad()
        F.cross_entropy(scored(data[0]), data[1]).backward()
    with torch.no_grad():
        for p in scored.parameters():
            g = p.grad if method == "snip" else torch.ones_like(p)
            p.copy_((p * (g if g is not None else torch.zeros_like(p))).abs())
    graph = to_graph(scored, example_input, view=view)
    return graph.edge_attr.abs().sum(-1)


def prune_mask(scores: Tensor, graph: Data, sparsity: float, scope: str = "global") -> Tensor:
    """Keep-mask over ``graph``'s edges removing the ``sparsity`` fraction of weighted edges with
    the lowest score, globally or per edge block (``scope="layer"``). Structural (identity /
    residual) edges are always kept."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    weighted = (graph.edge_type != 3) & (graph.edge_type != 4)
    keep = torch.ones_like(weighted)
    groups = [weighted] if scope == "global" else [
        weighted & (graph.edge_layer == b) for b in torch.unique(graph.edge_layer)]
    for mask in groups:
        idx = mask.nonzero().view(-1)
        k = int(round(sparsity * idx.numel()))
        if k:
            drop = idx[torch.argsort(scores[idx], stable=True)[:k]]
            keep[drop] = False
    return keep


def layer_collapse(graph: Data, keep: Tensor | None = None) -> bool:
    """Whether the kept edges leave no path from any input node to any output node (layer
    collapse, Tanaka et al. 2020), by propagating reachability along the DAG with tensor ops."""
    ei = graph.edge_index if keep is None else graph.edge_index[:, keep]
    n = graph.num_nodes
    is_in = graph.node_type == 0
    out_nodes = (graph.io_id >= 0) & ~is_in
    reach = is_in.clone()
    for _ in range(n):  # at most path-length many sweeps
        hits = torch.zeros(n).index_add_(0, ei[1], reach[ei[0]].float()) if ei.numel() \
            else torch.zeros(n)
        new = reach | (hits > 0)
        if torch.equal(new, reach):
            break
        reach = new
    return not bool((reach & out_nodes).any())


# --------------------------------------------------------------------------- pruning as edge labelling
_NOT_PRUNABLE = tuple(EDGE_TYPES.index(t) for t in ("identity", "residual", "norm_mean",
                                                     "norm_var"))


def prunable_edges(graph: Data) -> Tensor:
    """Mask of the edges that are parameters: not identity / residual structure and not
    BatchNorm running statistics (buffers)."""
    return ~torch.isin(graph.edge_type, torch.tensor(_NOT_PRUNABLE))


def snip_data(zoo: Zoo, index: int, n: int = 256) -> tuple[Tensor, Tensor]:
    """The fixed digits mini-batch ``(x, y)`` SNIP scores of member ``index`` are computed on
    (the first ``n`` training images, shaped for the member's architecture)."""
    x_tr, y_tr, _, _ = digits_data()
    return x_tr[:n].view(-1, *input_shape(zoo.record(index)["config"])), y_tr[:n]


def _edge_labels(zoo: Zoo, indices: Sequence[int], method: str) -> list[Tensor]:
    """Parameter-view importance per member (cached on the zoo object, like the graphs)."""
    cache = zoo.cache
    for i in indices:
        if (method, i) not in cache:
            data = snip_data(zoo, i) if method == "snip" else None
            cache[(method, i)] = edge_importance(zoo.module(i), zoo.example_input(i), method,
                                                 data, view="parameter")
    return [cache[(method, i)] for i in indices]


def _normalised_ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return (rankdata(v) - 1.0) / max(len(v) - 1, 1)


def _edge_inputs(graphs: list[Data], log_magnitude: bool) -> list[Data]:
    r"""Copies of the graphs, with :math:`\log(|w| + 10^{-8})` appended to ``edge_attr`` if
    ``log_magnitude`` (importances span orders of magnitude; the sinusoidal value features
    resolve small differences but not scale)."""
    out = []
    for g in graphs:
        h = g.clone()
        if log_magnitude:
            h.edge_attr = torch.cat([g.edge_attr, (g.edge_attr.abs() + 1e-8).log()], dim=-1)
        out.append(h)
    return out


def _labelled(graphs: list[Data], labels: list[Tensor]) -> list[Data]:
    """The graphs (modified in place) with ``edge_y`` (normalised rank of the importance among
    the graph's prunable edges, ties averaged: the metrics are rank metrics too) and
    ``edge_mask``."""
    for g, lab in zip(graphs, labels):
        mask = prunable_edges(g)
        y = torch.zeros(lab.numel())
        y[mask] = torch.as_tensor(_normalised_ranks(lab[mask].double().numpy()),
                                  dtype=torch.float32)
        g.edge_y, g.edge_mask = y, mask
    return graphs


def _rank_scores(pred: np.ndarray, true: np.ndarray, top: float) -> dict[str, float]:
    """Per-network Spearman / Kendall and the overlap of the predicted and true top-``top``
    fractions (``nan`` when the true importance is constant, e.g. a diverged net)."""
    from scipy.stats import kendalltau, spearmanr

    if len(true) < 2 or np.ptp(true) == 0:
        return {"spearman": float("nan"), "tau": float("nan"), "topk": float("nan")}
    k = max(1, int(np.ceil(top * len(true))))
    hits = np.intersect1d(np.argsort(-pred, kind="stable")[:k],
                          np.argsort(-true, kind="stable")[:k]).size
    return {"spearman": float(spearmanr(pred, true).statistic),
            "tau": float(kendalltau(pred, true).statistic), "topk": hits / k}


def _mean_scores(preds: list[np.ndarray], trues: list[np.ndarray], top: float
                 ) -> dict[str, float]:
    rows = [_rank_scores(p, t, top) for p, t in zip(preds, trues)]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in ("spearman", "tau", "topk")}


def predict_edges(zoo: Zoo, target: str = "prune_snip", split: str = "id",
                  seeds: Sequence[int] = (0, 1, 2), epochs: int = 40, hidden: int = 32,
                  layers: int = 2, max_train: int | None = None, top: float = 0.1,
                  batch_size: int = 16, lr: float = 3e-3, log_magnitude: bool = True
                  ) -> dict[str, Any]:
    r"""Pruning as edge labelling: train an :class:`~graphlab.metanets.edge_gmn.EdgeGMN` on the
    parameter graphs of the split's train members to predict every parameter's importance
    (``prune_magnitude``: :math:`|w|`; ``prune_snip``: :math:`|w\,\partial\mathcal{L}/\partial w|`
    on :func:`snip_data`) from the weights alone, and score the test members.

    The model regresses each edge's normalised importance rank within its network (MSE); its
    edge inputs are the parameter value and, if ``log_magnitude``, :math:`\log|w|`. Per
    test network we compute Spearman :math:`\rho`, Kendall :math:`\tau` and the overlap of the
    predicted and true top-``top`` fractions over its prunable edges (:func:`prunable_edges`),
    then average over networks; the same scores of the trivial :math:`|w|` ranking are reported
    as ``baseline_*`` (for ``prune_magnitude`` it is exact, so that row is a sanity check).

    Returns:
        a dict with ``tau_mean/std``, ``spearman_mean/std``, ``topk_mean/std`` (over seeds),
        ``baseline_tau`` / ``baseline_spearman`` / ``baseline_topk``, ``n_train``, ``n_test``,
        ``n_edges_mean`` and ``per_seed``.
    """
    if target not in PRUNE_TARGETS:
        raise ValueError(f"target must be one of {sorted(PRUNE_TARGETS)}, got {target!r}")
    if not 0.0 < top <= 1.0:
        raise ValueError(f"top must lie in (0, 1], got {top}")
    method = PRUNE_TARGETS[target]
    train, test = zoo.split(split)
    if max_train is not None:
        train = train[:max_train]
    if len(train) < 2 or len(test) < 1:
        raise ValueError(f"split {split!r} has too few members ({len(train)} train, "
                         f"{len(test)} test)")
    g_tr = _labelled(_edge_inputs(zoo_graphs(zoo, train, "parameter"), log_magnitude),
                     _edge_labels(zoo, train, method))
    g_te = _edge_inputs(zoo_graphs(zoo, test, "parameter"), log_magnitude)
    masks = [prunable_edges(g) for g in g_te]
    trues = [lab[m].double().numpy() for lab, m in zip(_edge_labels(zoo, test, method), masks)]
    base = _mean_scores([g.edge_attr[m, 0].abs().double().numpy() for g, m in zip(g_te, masks)],
                        trues, top)
    runs = []
    for seed in seeds:
        net = seeded_module(lambda: EdgeGMN.from_graph(g_tr[0], 1, hidden_channels=hidden,
                                                       num_layers=layers),
                            torch.Generator().manual_seed(seed))
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(seed)

        def batches(epoch: int, gen: torch.Generator = gen) -> Iterator[Batch]:
            order = torch.randperm(len(g_tr), generator=gen)
            for s in range(0, len(g_tr), batch_size):
                yield Batch.from_data_list([g_tr[int(k)] for k in order[s:s + batch_size]])

        def step(model: nn.Module, b: Batch) -> Tensor:
            return F.mse_loss(model(b)[b.edge_mask, 0], b.edge_y[b.edge_mask])

        if epochs > 0:
            fit(net, opt, train_step=step, train_batches=batches, epochs=epochs, select=None,
                scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
                generator=gen, progress=False, desc="EdgeGMN")
        net.eval()
        preds = []
        with torch.no_grad():
            for s in range(0, len(g_te), 32):
                chunk = g_te[s:s + 32]
                out = net(Batch.from_data_list(chunk))[:, 0]
                preds += list(out.split([g.edge_index.size(1) for g in chunk]))
        runs.append(_mean_scores([p[m].double().numpy() for p, m in zip(preds, masks)], trues,
                                 top))
    out: dict[str, Any] = {"target": target, "model": "gmn", "split": split,
                           "n_train": len(train), "n_test": len(test), "seeds": list(seeds),
                           "top": top, "log_magnitude": log_magnitude,
                           "n_edges_mean": float(np.mean([len(t) for t in trues]))}
    for k in ("tau", "spearman", "topk"):
        vals = np.array([r[k] for r in runs])
        out[f"{k}_mean"], out[f"{k}_std"] = float(np.mean(vals)), float(np.std(vals))
        out[f"baseline_{k}"] = base[k]
    out["per_seed"] = runs
    return out


# --------------------------------------------------------------------------- fair training
#: the hyperparameter space searched for every model, the same number of configurations each
#: (:func:`sample_configs`); the graph metanets, the flat MLP and the NFN baselines share one
#: space so no model gets a larger search than another
TORCH_SPACE: dict[str, list[Any]] = {
    "lr": [3e-4, 1e-3, 3e-3],
    "hidden": [32, 64, 128],
    "layers": [2, 3, 4],
    "dropout": [0.0, 0.1, 0.2],
    "weight_decay": [0.0, 1e-4, 1e-2],
}
#: the graph metanets' space: the same size and knobs, smaller widths (an edge MLP runs once per
#: weight, so a width costs |E| times what it costs the flat MLP)
GRAPH_SPACE: dict[str, list[Any]] = {**TORCH_SPACE, "hidden": [16, 32, 64]}
#: StatNN's space: gradient boosting's depth, number of trees and learning rate
GBM_SPACE: dict[str, list[Any]] = {
    "max_depth": [3, 5, None],
    "max_iter": [50, 150, 400],
    "learning_rate": [0.03, 0.1, 0.3],
    "l2_regularization": [0.0, 1.0],
}


def sample_configs(space: dict[str, list[Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct configurations drawn uniformly from the grid ``space`` (a fixed seed, so
    every run and every model of a run searches reproducibly); the first is the grid's middle."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    keys = list(space)
    sizes = [len(space[k]) for k in keys]
    total = int(np.prod(sizes))
    rng = np.random.default_rng(seed)
    middle = tuple(s // 2 for s in sizes)
    picks = [middle] + [tuple(np.unravel_index(int(i), sizes))
                        for i in rng.permutation(total) if tuple(np.unravel_index(int(i), sizes))
                        != middle][: max(0, min(n, total) - 1)]
    return [{k: space[k][j] for k, j in zip(keys, p)} for p in picks]


def _seeded(factory: Any, seed: int) -> nn.Module:
    """``factory()`` initialised from ``seed`` (graphlab's own init where it knows the layers,
    else the layer's own init under a forked, seeded global RNG)."""
    try:
        return seeded_module(factory, torch.Generator().manual_seed(seed))
    except ValueError:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory()


def fit_classifier(make: Any, inputs: Any, y: Tensor, train: Tensor, valid: Tensor,
                   config: dict[str, Any], seed: int, epochs: int = 100,
                   patience: int | None = 20, batch_size: int = 64,
                   augment: Any = None) -> tuple[nn.Module, Any]:
    """Train ``make(config)`` as a classifier through :func:`graphlab.engine.fit`, selecting the
    epoch with the best validation accuracy (ties broken by validation loss), stopping after
    ``patience`` epochs without improvement and restoring the selected weights.

    Args:
        make: ``config -> nn.Module``.
        inputs: ``rows (LongTensor), training (bool) -> model input`` (``augment`` applies a
            random symmetry to training batches inside it, if given).
        y: ``[N]`` class labels; ``train`` / ``valid``: row indices.
        config: ``lr``, ``weight_decay`` and whatever ``make`` reads.

    Returns:
        the model (eval mode, selected weights) and the engine's ``FitResult`` (learning curves:
        ``history`` with ``loss``, ``valid_acc``, ``valid_loss`` per epoch).
    """
    model = _seeded(lambda: make(config), seed)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"],
                            weight_decay=config.get("weight_decay", 0.0))
    gen = torch.Generator().manual_seed(seed)

    def batches(epoch: int) -> Iterator[Tensor]:
        order = train[torch.randperm(train.numel(), generator=gen)]
        return iter(order.split(batch_size))

    def step(net: nn.Module, rows: Tensor) -> Tensor:
        return F.cross_entropy(net(inputs(rows, True)), y[rows])

    def scores(net: nn.Module) -> dict[str, float]:
        logits = torch.cat([net(inputs(r, False)) for r in valid.split(256)])
        return {"valid_acc": float((logits.argmax(-1) == y[valid]).float().mean()),
                "valid_loss": float(F.cross_entropy(logits, y[valid]))}

    res = fit(model, opt, train_step=step, train_batches=batches, epochs=epochs,
              evaluate=scores, select=[("valid_acc", "max"), ("valid_loss", "min")],
              patience=patience, restore_best=True, generator=gen, progress=False,
              clip_grad_norm=10.0, desc="metanet")
    return model.eval(), res


@torch.no_grad()
def predict_classes(model: nn.Module, inputs: Any, rows: Tensor) -> Tensor:
    """Arg-max predictions of ``model`` on ``rows`` (eval mode, no augmentation)."""
    model.eval()
    return torch.cat([model(inputs(r, False)).argmax(-1) for r in rows.split(256)])


# --------------------------------------------------------------------------- INR classification
#: the models of :func:`classify_weights`: (name, input view) in table order
WEIGHT_MODELS: dict[str, str] = {
    "mlp": "flat", "statnn": "statistics", "neural": "neural graph", "gmn": "parameter graph",
    "neural_probe": "neural graph + probe features",
    "gmn_probe": "parameter graph + probe features",
    "nfn_hnp": "weight tensors", "nfn_np": "weight tensors"}
_GRAPH_VIEW = {"neural": "neural", "gmn": "parameter", "neural_probe": "neural",
               "gmn_probe": "parameter"}


def tensor_scales(space: Any, flat: Tensor) -> Tensor:
    """``[P]`` one scale per parameter tensor (its standard deviation over ``flat``'s rows and
    entries): dividing by it keeps every symmetry (permutations and sign flips act inside a
    tensor) and brings SIREN's :math:`\\omega_0`-folded first layer (entries up to 15) to the
    range the encoders' value features resolve."""
    scale = torch.empty(space.num_params)
    for a, b in zip(space.offsets, space.offsets[1:]):
        scale[a:b] = flat[:, a:b].std().clamp_min(1e-8)
    return scale


def _torch_model(name: str, space: Any, num_classes: int, cfg: dict[str, Any],
                 probe: Tensor | None = None) -> nn.Module:
    from graphlab.metanets import GMN, NeuralGraphEncoder
    from graphlab.metanets.baselines import FlatMLP, NFNClassifier

    h, layers, drop = cfg["hidden"], cfg["layers"], cfg["dropout"]
    if name == "mlp":
        return FlatMLP(space.num_params, h, num_classes, max(layers, 2), dropout=drop)
    if name in _GRAPH_VIEW:
        template = space.graphs(torch.zeros(1, space.num_params), _GRAPH_VIEW[name],
                                probe=probe if name.endswith("_probe") else None)
        cls = NeuralGraphEncoder if name.startswith("neural") else GMN
        return cls.from_graph(template, num_classes, h, layers, dropout=drop)
    if name in ("nfn_hnp", "nfn_np"):
        return NFNClassifier(space, h, num_classes, layers, mode=name[4:], dropout=drop)
    raise ValueError(f"unknown model {name!r}; expected one of {list(WEIGHT_MODELS)}")


def _gbm(cfg: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed, **cfg)


def classify_weights(space: Any, flat: Tensor, y: Tensor, split: dict[str, Sequence[int]],
                     models: Sequence[str] = tuple(WEIGHT_MODELS), n_configs: int = 6,
                     seeds: Sequence[int] = (0, 1, 2), epochs: int = 100, patience: int = 20,
                     batch_size: int = 64, augment: bool = True, num_symmetries: int = 64,
                     probe_points: int = 16, search_seed: int = 0, log: Any = None
                     ) -> list[dict[str, Any]]:
    r"""Classify networks of one architecture from their weights (INR classification: which
    digit does this SIREN draw?) with every model of :data:`WEIGHT_MODELS` under one protocol.

    Every model gets the same search: ``n_configs`` configurations (:func:`sample_configs` over
    :data:`TORCH_SPACE`, :data:`GRAPH_SPACE` for the graph metanets or :data:`GBM_SPACE` for
    StatNN), each trained with seed
    ``seeds[0]`` on ``split["train"]`` and scored on ``split["val"]``; the best validation
    accuracy picks the configuration, whose ``seeds[0]`` run is kept and which is retrained
    with every other seed, each scored once
    on ``split["test"]``. Torch models train through :func:`fit_classifier` (epoch selection on
    validation, early stopping) on weights divided by :func:`tensor_scales` and, if ``augment``,
    with a random symmetry per training example (``num_symmetries`` neuron permutations and
    sign flips of :meth:`~graphlab.metanets.weightspace.WeightSpace.symmetries`, as the DWSNets,
    NFN and Neural Graphs recipes do). The ``*_probe`` graph models add Neural Graphs' probe
    features: every neuron's activations at ``probe_points`` fixed random inputs in
    :math:`[-1, 1]^{d}` (the network is *run*, so these models see its function, not only its
    weights), standardised per symmetry orbit on the training networks
    (:meth:`~graphlab.metanets.weightspace.WeightSpace.probe_stats`). The NFN rows are
    skipped, with the reason, when the ``nfn`` package is absent.

    Returns:
        one row per model: ``model``, ``input``, ``test_acc_mean`` / ``_std`` over seeds,
        ``valid_acc`` of the selected configuration, ``config``, the whole ``search`` (config,
        valid accuracy, epochs), ``per_seed`` test accuracies, ``epochs`` trained per seed,
        ``seconds`` (search + seeds) and ``curve`` (the selected configuration's first-seed
        learning curve: epoch, loss, valid accuracy); or ``skipped`` with the reason.
    """
    import time

    from graphlab.metanets.baselines import nfn_available

    unknown = [m for m in models if m not in WEIGHT_MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; expected some of {list(WEIGHT_MODELS)}")
    tr, va, te = (torch.as_tensor(list(split[k]), dtype=torch.long) for k in ("train", "val",
                                                                             "test"))
    if min(tr.numel(), va.numel(), te.numel()) < 1:
        raise ValueError("split needs non-empty 'train', 'val' and 'test' parts")
    y = torch.as_tensor(y, dtype=torch.long)
    num_classes = int(y.max()) + 1
    say = log or (lambda msg: None)
    scale = tensor_scales(space, flat[tr])
    pool = space.symmetries(num_symmetries, seed=search_seed) if augment else None
    in_dim = space.layers(flat[:1])[0][0].size(-1)
    probe = torch.rand(probe_points, in_dim, generator=torch.Generator().manual_seed(
        search_seed)) * 2 - 1
    # probe features standardised per symmetry orbit on the training networks: raw, the
    # output neuron's (the label's) features were too faint to learn from (probe_stats)
    pstats = space.probe_stats(flat[tr], probe) if any(m.endswith("_probe")
                                                       for m in models) else None
    rows: list[dict[str, Any]] = []
    for name in models:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"model": name, "input": WEIGHT_MODELS[name]}
        if name.startswith("nfn") and nfn_available() is not None:
            rows.append({**row, "skipped": nfn_available()})
            say(f"[{name}] skipped: {rows[-1]['skipped']}")
            continue
        if name == "statnn":
            X = space.statistics(flat).numpy()
            yn = y.numpy()
            search = []
            for cfg in sample_configs(GBM_SPACE, n_configs, search_seed):
                est = _gbm(cfg, seeds[0]).fit(X[tr], yn[tr])
                search.append({"config": cfg, "valid_acc": float(est.score(X[va], yn[va]))})
            best = max(search, key=lambda r: r["valid_acc"])
            per_seed = [float(_gbm(best["config"], s).fit(X[tr], yn[tr]).score(X[te], yn[te]))
                        for s in seeds]
            curve: list[dict[str, Any]] = []
            epochs_run: list[int] = []
        else:
            aug_gen = torch.Generator().manual_seed(search_seed)

            def inputs(rows_: Tensor, training: bool, view: str | None = _GRAPH_VIEW.get(name),
                       gen: torch.Generator = aug_gen, name: str = name) -> Any:
                w = flat[rows_]
                if training and pool is not None:
                    w = space.augment(w, gen, pool)
                if view is None:
                    return w / scale
                if not name.endswith("_probe"):
                    return space.graphs(w, view, scale=scale)
                return space.graphs(w, view, probe=probe, scale=scale, probe_stats=pstats)

            def make(c: dict[str, Any], name: str = name) -> nn.Module:
                return _torch_model(name, space, num_classes, c, probe)

            search, first = [], []
            space_ = GRAPH_SPACE if name in _GRAPH_VIEW else TORCH_SPACE
            for cfg in sample_configs(space_, n_configs, search_seed):
                aug_gen.manual_seed(1000 + seeds[0])
                model, res = fit_classifier(make, inputs, y, tr, va, cfg, seeds[0], epochs,
                                            patience, batch_size)
                search.append({"config": cfg, "valid_acc": res.best["valid_acc"],
                               "epochs": res.epochs, "best_epoch": res.best_epoch,
                               "seconds": round(res.seconds, 1)})
                # the search's runs are the first seed's: the selected one is reused, not rerun
                first.append((float((predict_classes(model, inputs, te) == y[te]).float()
                                    .mean()), res))
                settings = " ".join(f"{k}={v}" for k, v in cfg.items())
                say(f"[{name}] {settings}: valid {res.best['valid_acc']:.3f} "
                    f"({res.epochs} epochs, {res.seconds:.0f} s)")
            pick = max(range(len(search)), key=lambda k: search[k]["valid_acc"])
            best = search[pick]
            acc0, res0 = first[pick]
            per_seed, epochs_run = [acc0], [res0.epochs]
            curve = [{k: r.get(k) for k in ("epoch", "loss", "valid_acc", "valid_loss")}
                     for r in res0.history]
            for s in seeds[1:]:
                aug_gen.manual_seed(1000 + s)
                model, res = fit_classifier(make, inputs, y, tr, va, best["config"], s, epochs,
                                            patience, batch_size)
                per_seed.append(float((predict_classes(model, inputs, te) == y[te]).float()
                                      .mean()))
                epochs_run.append(res.epochs)
        row.update({"test_acc_mean": float(np.mean(per_seed)),
                    "test_acc_std": float(np.std(per_seed)), "valid_acc": best["valid_acc"],
                    "config": best["config"], "n_configs": len(search), "search": search,
                    "per_seed": per_seed, "seeds": list(seeds), "epochs": epochs_run,
                    "augment": augment and name != "statnn", "curve": curve,
                    "n_train": int(tr.numel()), "n_val": int(va.numel()),
                    "n_test": int(te.numel()), "seconds": round(time.perf_counter() - t0, 1)})
        say(f"[{name}] test acc {row['test_acc_mean']:.3f} +- {row['test_acc_std']:.3f} "
            f"({row['seconds']:.0f} s)")
        rows.append(row)
    return rows
