"""Zoo tasks: property prediction, padded StatNN features, pruning and layer collapse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from graphlab.metanets import random_symmetry, to_graph
from graphlab.zoo import ResMLP, build_zoo, digits_data, load_zoo
from graphlab.zoo.tasks import (
    edge_importance,
    layer_collapse,
    predict,
    prunable_edges,
    prune_mask,
    snip_data,
    statnn_features,
)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    # random-nets members are untrained, so a 60-member zoo costs about a second
    return load_zoo(build_zoo("random-nets", 60, tmp_path_factory.mktemp("zoo") / "rn", seed=1))


def test_statnn_features_padded_and_permutation_invariant(zoo, tmp_path: Path):
    X = statnn_features(zoo, zoo.indices)
    assert X.shape == (len(zoo), 6 * 7 + 3) and np.isfinite(X).all()
    # a hidden-neuron permutation of a member leaves its features unchanged
    i = zoo.indices[0]
    m = zoo.module(i)
    mp = random_symmetry(m, seed=3, example_input=zoo.example_input(i))
    from graphlab.zoo.store import save_state_dict_safe, sha256_file

    path = zoo.path / "members" / zoo.record(i)["weights"]
    original = zoo.record(i)["hash"]
    save_state_dict_safe(mp, path)
    zoo.record(i)["hash"] = sha256_file(path)  # a legitimate member with these weights
    try:
        np.testing.assert_allclose(statnn_features(zoo, [i]), X[:1], rtol=1e-5, atol=1e-6)
    finally:
        save_state_dict_safe(m, path)
        zoo.record(i)["hash"] = original


@pytest.mark.parametrize("model", ["statnn", "hparams", "neural", "gmn", "opgnn"])
def test_predict_runs_and_reports(zoo, model):
    r = predict(zoo, "complexity", model, "id", seeds=(0, 1), epochs=2, hidden=8)
    assert r["n_train"] + r["n_test"] == len(zoo)
    assert len(r["per_seed"]) == 2 and len(r["pred"]) == r["n_test"]
    assert np.isfinite(r["tau_mean"]) and np.isfinite(r["r2_mean"])
    assert -1.0 <= r["tau_mean"] <= 1.0


def test_predict_bad_inputs(zoo):
    with pytest.raises(ValueError, match="model must be"):
        predict(zoo, "complexity", "nope")
    with pytest.raises(ValueError, match="unknown split"):
        predict(zoo, "complexity", "statnn", "nope")
    with pytest.raises(ValueError, match="unknown target"):
        predict(zoo, "nope", "statnn")
    with pytest.raises(ValueError, match="no training phases"):
        predict(zoo, "phase", "statnn")
    with pytest.raises(ValueError, match="edge-level"):
        predict(zoo, "prune_snip", "statnn")


@pytest.fixture(scope="module")
def digits_zoo(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    return load_zoo(build_zoo("digits-mlp", 8, tmp_path_factory.mktemp("zoo") / "dm", seed=0))


def test_phase_reports_accuracy_and_macro_f1(digits_zoo):
    r = predict(digits_zoo, "phase", "statnn", "id", seeds=(0,))
    y = digits_zoo.target("phase", r["test_indices"])
    p = np.asarray(r["pred"])
    assert r["acc_mean"] == pytest.approx(float(np.mean(p == y)))
    assert 0.0 <= r["f1_macro_mean"] <= 1.0 and 0.0 <= r["majority_f1_macro"] <= 1.0


def test_predict_edges_snip(digits_zoo):
    """The learned edge predictor runs from predict(); the |w| baseline it is compared with
    equals Spearman(|w|, SNIP) computed directly from the members."""
    from scipy.stats import spearmanr

    r = predict(digits_zoo, "prune_snip", "gmn", "id", seeds=(0, 1), epochs=2, hidden=8)
    assert r["target"] == "prune_snip" and len(r["per_seed"]) == 2
    for k in ("tau", "spearman"):
        assert -1.0 <= r[f"{k}_mean"] <= 1.0 and -1.0 <= r[f"baseline_{k}"] <= 1.0
    assert 0.0 <= r["topk_mean"] <= 1.0 and 0.0 <= r["baseline_topk"] <= 1.0
    _, test = digits_zoo.split("id")
    rhos = []
    for i in test:
        m, ex = digits_zoo.module(i), digits_zoo.example_input(i)
        g = to_graph(m, ex, view="parameter")
        snip = edge_importance(m, ex, "snip", snip_data(digits_zoo, i), view="parameter")
        keep = prunable_edges(g)
        if snip[keep].max() > snip[keep].min():
            rhos.append(spearmanr(g.edge_attr[keep, 0].abs(), snip[keep]).statistic)
    assert r["baseline_spearman"] == pytest.approx(float(np.mean(rhos)), abs=1e-9)


def test_predict_edges_magnitude_learns(digits_zoo):
    """|w| is a function of the input, so training must lift the rank correlation far above an
    untrained head's."""
    kw = dict(seeds=(0,), hidden=16)
    untrained = predict(digits_zoo, "prune_magnitude", "gmn", "id", epochs=0, **kw)
    trained = predict(digits_zoo, "prune_magnitude", "gmn", "id", epochs=25, **kw)
    assert trained["baseline_spearman"] == pytest.approx(1.0)
    assert trained["spearman_mean"] > 0.6
    assert trained["spearman_mean"] > untrained["spearman_mean"] + 0.3


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                         nn.Linear(8, 10))


def test_edge_importance_aligned_with_graph():
    m, ex = _net(), torch.zeros(2, 64)
    g = to_graph(m, ex)
    mag = edge_importance(m, ex, "magnitude")
    torch.testing.assert_close(mag, g.edge_attr.abs().sum(-1))
    x, y, _, _ = digits_data()
    snip = edge_importance(m, ex, "snip", (x[:64], y[:64]))
    assert snip.shape == mag.shape and (snip >= 0).all() and snip.sum() > 0
    # SNIP of the last layer = |w * dL/dw| computed directly
    m.zero_grad()
    nn.functional.cross_entropy(m(x[:64]), y[:64]).backward()
    direct = (m[4].weight * m[4].weight.grad).abs()
    last = g.edge_layer == g.edge_layer.max()
    torch.testing.assert_close(snip[last].sort().values, direct.reshape(-1).sort().values)
    with pytest.raises(ValueError, match="snip needs data"):
        edge_importance(m, ex, "snip")


def test_layer_collapse():
    m, ex = _net(), torch.zeros(2, 64)
    g = to_graph(m, ex)
    keep = torch.ones(g.edge_index.size(1), dtype=torch.bool)
    assert not layer_collapse(g, keep)
    assert layer_collapse(g, torch.zeros_like(keep))
    # removing one whole middle layer disconnects inputs from outputs
    cut = keep & (g.edge_layer != 1)
    assert layer_collapse(g, cut)
    # a single surviving path keeps the network connected
    path = torch.zeros_like(keep)
    src, dst = g.edge_index
    node = int(src[g.edge_layer == 0][0])
    for layer in range(3):
        e = int(((g.edge_layer == layer) & (src == node)).nonzero()[0])
        path[e] = True
        node = int(dst[e])
    assert not layer_collapse(g, path)
    # per-layer pruning never removes a whole layer below 100% sparsity; global pruning can
    scores = g.edge_attr.abs().sum(-1).clone()
    scores[g.edge_layer == 1] *= 1e-3
    assert not layer_collapse(g, prune_mask(scores, g, 0.9, "layer"))
    assert layer_collapse(g, prune_mask(scores, g, 0.5, "global"))
    with pytest.raises(ValueError, match="sparsity"):
        prune_mask(scores, g, 1.5)


def test_layer_collapse_residual_skip():
    """A residual block's skip edge keeps inputs connected to outputs when the block's linear
    layer is pruned away entirely; pruning the input layer still collapses the network."""
    m, ex = ResMLP(6, 4, 2, 3), torch.zeros(2, 6)
    g = to_graph(m, ex)
    keep = torch.ones(g.edge_index.size(1), dtype=torch.bool)
    src_input = g.node_type[g.edge_index[0]] == 0
    inner = (g.edge_type == 0) & ~src_input & (g.edge_layer < g.edge_layer.max())
    assert inner.any()
    assert not layer_collapse(g, keep & ~inner)  # both blocks' linears gone, skips remain
    assert layer_collapse(g, keep & ~src_input)
    # prune_mask never removes structural (residual) edges, even at 100% sparsity
    full = prune_mask(g.edge_attr.abs().sum(-1), g, 1.0)
    assert full[g.edge_type == 4].all() and not full[g.edge_type == 0].any()
    assert layer_collapse(g, full)  # the input layer is pruned too


def test_cli_predict_prune_target(digits_zoo, capsys):
    from graphlab.cli import main

    assert main(["zoo", "predict", "--zoo", str(digits_zoo.path), "--target", "prune_snip",
                 "--model", "gmn", "--split", "id", "--seeds", "1", "--epochs", "1",
                 "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    assert "prune_snip" in out and "|w| baseline" in out and "spearman" in out


def test_sample_configs_same_size_distinct_and_reproducible():
    from graphlab.zoo.tasks import GBM_SPACE, GRAPH_SPACE, TORCH_SPACE, sample_configs

    for space in (TORCH_SPACE, GRAPH_SPACE, GBM_SPACE):
        cfgs = sample_configs(space, 6, seed=0)
        assert len(cfgs) == 6 and len({tuple(c.items()) for c in cfgs}) == 6
        assert cfgs == sample_configs(space, 6, seed=0)
        assert all(c[k] in space[k] for c in cfgs for k in space)
    assert len(sample_configs({"a": [1, 2]}, 5)) == 2  # never more than the grid
    with pytest.raises(ValueError):
        sample_configs(TORCH_SPACE, 0)


def test_predict_fair_search_validation_and_augmentation(zoo):
    """n_configs > 1: the same-size search for a graph metanet and for StatNN, selected on a
    validation part carved from train (test untouched), twins from random_symmetry, curves."""
    r = predict(zoo, "complexity", "gmn", "id", seeds=(0,), epochs=3, n_configs=2, augment=1,
                patience=2)
    assert r["n_fit"] + r["n_val"] == r["n_train"] and r["n_configs"] == 2
    assert len(r["search"]) == 2 and r["config"] in [s["config"] for s in r["search"]]
    assert r["valid_score"] == max(s["valid"] for s in r["search"])
    assert 1 <= len(r["curve"]) <= 3 and {"loss", "valid_score"} <= set(r["curve"][0])
    s = predict(zoo, "complexity", "statnn", "id", seeds=(0, 1), n_configs=2)
    assert s["n_configs"] == 2 and s["augment"] == 0 and np.isfinite(s["tau_mean"])


def test_symmetric_twins_compute_the_same_function(zoo):
    from graphlab.metanets import graph_forward
    from graphlab.zoo.tasks import symmetric_twins, zoo_graphs

    i = zoo.indices[0]
    x = zoo.example_input(i)
    (twins,) = symmetric_twins(zoo, [i], "neural", 2)
    (orig,) = zoo_graphs(zoo, [i], "neural")
    assert len(twins) == 2
    ref = zoo.module(i)(x)
    for t in twins:
        t.net = to_graph(zoo.module(i), x).net  # the structure is shared with the original
        assert (graph_forward(t, x) - ref).abs().max() < 1e-4
    assert not torch.equal(twins[0].edge_attr, orig.edge_attr)


def test_classify_weights_tiny_inr_fixture():
    """INR classification end to end on a tiny fixture: SIRENs fitted here to two classes of
    images (vertical vs horizontal gradients), every model under one protocol."""
    from graphlab.metanets.weightspace import WeightSpace
    from graphlab.zoo.tasks import classify_weights

    class Sine(nn.Module):
        def forward(self, x):
            return torch.sin(x)

    torch.manual_seed(0)
    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 4), torch.linspace(-1, 1, 4),
                                      indexing="ij"), -1).reshape(-1, 2)
    nets, labels = [], []
    for k in range(24):
        net = nn.Sequential(nn.Linear(2, 8), Sine(), nn.Linear(8, 1))
        target = grid[:, k % 2:k % 2 + 1] * (0.5 + 0.5 * torch.rand(1))
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        for _ in range(30):
            opt.zero_grad()
            ((net(grid) - target) ** 2).mean().backward()
            opt.step()
        nets.append(net)
        labels.append(k % 2)
    ws = WeightSpace(nets[0], grid)
    flat = ws.flatten(nets)
    split = {"train": list(range(16)), "val": list(range(16, 20)), "test": list(range(20, 24))}
    rows = classify_weights(ws, flat, torch.tensor(labels), split,
                            models=["mlp", "statnn", "neural_probe", "gmn"], n_configs=2,
                            seeds=(0, 1), epochs=2, patience=1, num_symmetries=4,
                            probe_points=4)
    assert [r["model"] for r in rows] == ["mlp", "statnn", "neural_probe", "gmn"]
    for r in rows:
        assert r["n_configs"] == 2 and len(r["per_seed"]) == 2
        assert 0.0 <= r["test_acc_mean"] <= 1.0 and r["n_test"] == 4
        assert (r["curve"] == []) == (r["model"] == "statnn")
    with pytest.raises(ValueError, match="unknown models"):
        classify_weights(ws, flat, torch.tensor(labels), split, models=["nope"])


def test_hparam_features_see_every_knob_of_the_cnn_presets():
    """Members that differ in one training knob of the digits-cnn presets (init, optimizer,
    dropout, steps, pooling) get different configuration features."""
    from graphlab.zoo.presets import member_config
    from graphlab.zoo.tasks import hparam_features

    base = member_config("digits-cnn", 0, 0)

    class Records:  # hparam_features reads only zoo.record(i)["config"]
        def __init__(self, configs):
            self.configs = configs

        def record(self, i):
            return {"config": self.configs[i]}

    others = {"init": "orthogonal" if base["init"] != "orthogonal" else "he",
              "optimizer": "sgd", "dropout": base["dropout"] + 0.2,
              "steps": base["steps"] * 2, "pool": not base["pool"]}
    configs = [base] + [base | {k: v} for k, v in others.items()]
    X = hparam_features(Records(configs), range(len(configs)))
    assert X.shape[0] == len(configs) and np.isfinite(X).all()
    for k in range(1, len(configs)):
        assert not np.array_equal(X[0], X[k]), list(others)[k - 1]
