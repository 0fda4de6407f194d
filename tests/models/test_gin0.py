"""GIN0 (Xu et al. 2019's classifier): conformance, the paper's architecture, registry."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphlab.datasets import TaskSpec
from graphlab.models import GIN0, DataModel, build_model
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)


def _forward(m, b):
    return m(b.x, b.edge_index, b.batch, num_graphs=b.num_graphs)


def _forward_adj_t(m, b):
    return m(b.x, b.adj_t, b.batch, num_graphs=b.num_graphs)


_BAD = {**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS, **INDEX_MUTATIONS}  # int32 included
CASES = [
    LayerCase(name="gin0", make_module=lambda: GIN0(8, 16, 3, num_layers=3),
              forward=_forward, levels=("graph",), bad_inputs=_BAD, fullgraph=True,
              forward_adj_t=_forward_adj_t),
    LayerCase(name="gin-eps-mean-layer-norm",
              make_module=lambda: GIN0(8, 8, 2, num_layers=2, train_eps=True, readout="mean",
                                       norm="layer_norm", act="gelu", num_mlp_layers=1),
              forward=_forward, levels=("graph",), bad_inputs=_BAD),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_gin0_conforms(case, check):
    CHECKS[check](case)


def _reference(model: GIN0, x: torch.Tensor, edge_index: torch.Tensor,
               batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """The authors' GraphCNN.forward, restated with dense matrices: A + I (GIN-0) or
    A + (1 + eps) I, BN + ReLU after each MLP, sum pooling by a [B, N] one-hot matrix, and the
    prediction summed over all layers including the input (eval mode: no dropout)."""
    n = x.size(0)
    adj = torch.zeros(n, n, dtype=x.dtype)
    adj[edge_index[1], edge_index[0]] = 1.0
    pool = torch.zeros(num_graphs, n, dtype=x.dtype)
    pool[batch, torch.arange(n)] = 1.0
    h, score = x, model.heads[0](pool @ x)
    for layer, conv in enumerate(model.convs):
        mlp = conv.nn
        z = adj @ h + (1 + conv.eps) * h
        z = mlp.lins[1](torch.relu(mlp.norms[0](mlp.lins[0](z))))
        h = torch.relu(model.norms[layer](z))
        score = score + model.heads[layer + 1](pool @ h)
    return score


@pytest.mark.parametrize("train_eps", [False, True])
def test_matches_the_authors_graphcnn(train_eps):
    torch.manual_seed(0)
    model = GIN0(8, 16, 3, num_layers=4, train_eps=train_eps).double()
    if train_eps:  # a learned eps, away from its initial 0
        for i, conv in enumerate(model.convs):
            conv.eps.data.fill_(0.1 * (i + 1))
    # non-trivial running statistics, then eval (the authors evaluate in eval mode)
    graphs = [random_graph(5 + i, in_channels=8, seed=i) for i in range(6)]
    batch = Batch.from_data_list(graphs)
    model.train()
    model(batch.x.double(), batch.edge_index, batch.batch, num_graphs=6)
    model.eval()
    out = model(batch.x.double(), batch.edge_index, batch.batch, num_graphs=6)
    ref = _reference(model, batch.x.double(), batch.edge_index, batch.batch, 6)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    assert len(model.heads) == 5 and model.heads[0].in_features == 8  # input layer predicts
    assert all(conv.nn.lins[0].out_channels == 16 for conv in model.convs)  # MLP width = hidden
    assert all(conv.eps.requires_grad == train_eps for conv in model.convs)


def test_dropout_acts_on_each_layer_prediction_only():
    torch.manual_seed(0)
    model = GIN0(8, 16, 2, num_layers=2, dropout=0.5).train()
    g = random_graph(7, in_channels=8, seed=0)
    predictions = []
    hooks = [h.register_forward_hook(lambda m, i, o: predictions.append(o.detach()))
             for h in model.heads]
    torch.manual_seed(1)
    out = model(g.x, g.edge_index)
    for hook in hooks:
        hook.remove()
    # each prediction is either zeroed or scaled by 1/(1-p) per entry, then summed
    torch.manual_seed(1)
    masks = [torch.nn.functional.dropout(torch.ones_like(p), 0.5, True) for p in predictions]
    torch.testing.assert_close(out, sum(p * m for p, m in zip(predictions, masks)))


def test_registry_and_data_path():
    spec = TaskSpec("graph", 7, 2, "ce", "acc")
    wrapped = build_model("gin-0", spec, hidden_channels=32)
    assert isinstance(wrapped, DataModel) and isinstance(wrapped.model, GIN0)
    assert wrapped.model.num_layers == 4 and not wrapped.model.train_eps
    assert build_model("gin-0", spec, train_eps=True).model.train_eps
    assert repr(wrapped.model) == ("GIN0(7, 32, 2, num_layers=4, train_eps=False, "
                                   "readout=SumAggregation())")
    graphs = [Data(x=torch.eye(7)[torch.arange(n) % 7], edge_index=torch.tensor(
        [[0, 1, 1, 2], [1, 0, 2, 1]]), edge_attr=torch.ones(4, 3), num_nodes=n) for n in (3, 5)]
    batch = Batch.from_data_list(graphs)
    out = wrapped.eval()(batch)
    assert out.shape == (2, 2)
    # edge features are ignored (the paper has none)
    del batch.edge_attr
    torch.testing.assert_close(wrapped(batch), out)
    with pytest.raises(ValueError, match="graph classifier; this task is node-level"):
        build_model("gin-0", TaskSpec("node", 7, 2, "ce", "acc"))
    with pytest.raises(ValueError, match="OGB's atom categories"):
        build_model("gin-0", TaskSpec("graph", 9, 1, "bce", "rocauc", edge_dim=3,
                                      molecular=True))


@pytest.mark.parametrize("kwargs, match", [
    ({"num_layers": 0}, "num_layers must be a positive integer"),
    ({"num_mlp_layers": 0}, "num_mlp_layers must be a positive integer"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"readout": None}, "readout cannot be None"),
])
def test_bad_construction_is_a_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GIN0(8, 16, 2, **kwargs)


def test_reset_parameters_restores_eps_and_heads():
    model = GIN0(4, 8, 2, num_layers=2, train_eps=True)
    for conv in model.convs:
        conv.eps.data.fill_(3.0)
    before = model.heads[1].weight.clone()
    torch.manual_seed(5)
    model.reset_parameters()
    assert all(float(conv.eps) == 0.0 for conv in model.convs)
    assert not torch.equal(before, model.heads[1].weight)


def test_one_hot_degree_option_replaces_the_features():
    """The authors' --degree_as_tag (IMDB, COLLAB): one-hot degrees as node features."""
    spec = TaskSpec("graph", 1, 2, "ce", "acc")  # a constant feature in the data
    wrapped = build_model("gin-0", spec, hidden_channels=8, one_hot_degree=4)
    assert wrapped.model.in_channels == 5 and wrapped.transform is not None
    star = Data(x=torch.ones(4, 1), edge_index=torch.tensor([[0, 0, 0, 1, 2, 3],
                                                             [1, 2, 3, 0, 0, 0]]))
    g = wrapped.transform(star.clone())
    assert g.x.tolist() == [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 1, 0, 0, 0]]
    assert wrapped.eval()(Batch.from_data_list([g])).shape == (1, 2)
    with pytest.raises(ValueError, match="one_hot_degree=2 is below a graph's degree 3"):
        build_model("gin-0", spec, one_hot_degree=2).transform(star.clone())
    with pytest.raises(ValueError, match="one_hot_degree must be a positive integer"):
        build_model("gin-0", spec, one_hot_degree=0)
