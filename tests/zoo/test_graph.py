"""Graph of networks: zoo_graph construction and node-level prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphlab.zoo import build_zoo, load_zoo
from graphlab.zoo.graph import node_predict, node_task, zoo_graph


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    return load_zoo(build_zoo("random-nets", 50, tmp_path_factory.mktemp("zoo") / "rn", seed=2))


@pytest.mark.parametrize("embed", ["statnn", "gmn"])
def test_zoo_graph_knn(zoo, embed):
    g = zoo_graph(zoo, embed=embed, edges="knn", k=4, targets=("complexity", "depth"))
    n = len(zoo)
    assert g.num_nodes == n and g.x.size(0) == n and g.y.shape == (n, 2)
    assert g.member.tolist() == zoo.indices
    ei = g.edge_index
    assert (ei[0] != ei[1]).all()  # no self loops
    fwd = set(map(tuple, ei.t().tolist()))
    assert all((b, a) in fwd for a, b in fwd)  # undirected
    deg = torch.bincount(ei[0], minlength=n)
    assert (deg >= 4).all()
    assert g.edge_attr.shape == (ei.size(1), 1) and (g.edge_attr >= 0).all()
    assert g.edge_weight.shape == (ei.size(1),)
    assert (g.edge_weight == 1).all()  # kNN edges are unweighted
    np.testing.assert_allclose(g.y[:, 0].numpy(), zoo.target("complexity"), rtol=1e-6)


def test_zoo_graph_matching_edges(tmp_path: Path):
    z = load_zoo(build_zoo("digits-mlp", 6, tmp_path / "m", seed=0))
    g = zoo_graph(z, edges="matching", k=2)
    cfg = [z.record(i)["config"] for i in z.indices]
    for a, b in g.edge_index.t().tolist():  # only same-architecture pairs can be matched
        assert (cfg[a]["width"], cfg[a]["depth"]) == (cfg[b]["width"], cfg[b]["depth"])
    assert torch.isfinite(g.edge_attr).all()
    torch.testing.assert_close(g.edge_weight, torch.exp(-g.edge_attr.view(-1)))
    with pytest.raises(ValueError, match="edges must be"):
        zoo_graph(z, edges="nope")


def test_node_predict_and_task(zoo):
    g = zoo_graph(zoo, k=5, targets=("complexity",))
    mask = torch.zeros(g.num_nodes, dtype=torch.bool)
    mask[::2] = True
    for model in ("gcn", "label_prop", "mlp"):
        p = node_predict(g, mask, model=model, epochs=20)
        assert p.shape == (g.num_nodes,) and np.isfinite(p).all()
    # label propagation keeps the known labels
    lp = node_predict(g, mask, model="label_prop")
    np.testing.assert_allclose(lp[mask.numpy()], g.y[mask, 0].numpy(), rtol=1e-5)
    rows = node_task(zoo, "complexity", "id", seeds=(0,))
    assert {r["model"] for r in rows} == {"gcn", "label_prop", "mlp"}
    assert all(-1 <= r["tau"] <= 1 for r in rows)
