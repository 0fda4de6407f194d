import pytest
import torch
from torch_geometric.data import Batch, Data

from graphlab.datasets import TaskSpec
from graphlab.models import available_models, build_model
from graphlab.models.ogb_variants import SheafGraphModel, VirtualNodeGNN
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)

SPEC = TaskSpec("graph", 8, 3, "ce", "acc")
EDGE_SPEC = TaskSpec("graph", 8, 2, "ce", "acc", edge_dim=3)


def _edge_graph(seed: int) -> Data:
    return random_graph(6 + seed % 4, in_channels=8, edge_dim=3, seed=seed)


def _registered(name: str, spec: TaskSpec = SPEC, num_layers: int = 1, **kw):
    # one layer keeps torch.compile's tracing cheap; the stacking is GNN's (tested there)
    return lambda: build_model(name, spec, hidden_channels=8, num_layers=num_layers, **kw)


_BAD = {**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS}
# LCM / Recurrent have one graph break (their degree-dependent layout, tests/aggr); inside the
# model it splits every enclosing frame (DataModel -> GNN -> GINConv -> propagate -> aggregator):
# 5 graphs for the first batch size, 5 again when dynamo turns the sizes dynamic, none after
AGGR_BREAK_COMPILES = 10
CASES = [
    # two layers: the virtual node is updated between layers
    LayerCase(name="gin-vn", make_module=_registered("gin-vn", num_layers=2),
              forward=lambda m, b: m(b), levels=("graph",), bad_inputs=_BAD),
    LayerCase(name="gin-lcm", make_module=_registered("gin-lcm"), forward=lambda m, b: m(b),
              levels=("graph",), atol=1e-4, max_compiles=AGGR_BREAK_COMPILES),
    LayerCase(name="gin-recurrent", make_module=_registered("gin-recurrent"),
              forward=lambda m, b: m(b), levels=("graph",), max_compiles=AGGR_BREAK_COMPILES,
              # an RNN reads each neighbourhood in source-id order: relabelling nodes reorders
              # the sequence, so only the (order-free) other properties hold
              skip={"permutation": "a recurrent aggregator is order-dependent by design"}),
    LayerCase(name="gin-gnp", make_module=_registered("gin-gnp", EDGE_SPEC),
              forward=lambda m, b: m(b), levels=("graph",), make_graph=_edge_graph),
    LayerCase(name="gin-gnp-readout", make_module=_registered("gin-gnp-readout"),
              forward=lambda m, b: m(b), levels=("graph",)),
    LayerCase(name="sheaf-graph", make_module=_registered("sheaf-graph", num_layers=2),
              forward=lambda m, b: m(b), levels=("graph",), bad_inputs=_BAD),
]


def _int32_edge_index(b: Batch) -> Batch:
    b.edge_index = b.edge_index.int()
    return b


_ALL_BAD = {**_BAD, **INDEX_MUTATIONS, "edge_index_int32": _int32_edge_index}
# the classes themselves, called with tensors as a PyG loop would
DIRECT_CASES = [
    LayerCase(name="virtual-node-gin-edges",
              make_module=lambda: VirtualNodeGNN(8, 8, 2, num_layers=2, edge_dim=3,
                                                 norm="layer_norm", readout="sum"),
              forward=lambda m, b: m(b.x, b.edge_index, b.edge_attr, b.batch,
                                     num_graphs=b.num_graphs),
              levels=("graph",), make_graph=_edge_graph, grad_inputs=("x", "edge_attr"),
              bad_inputs=_ALL_BAD),
    LayerCase(name="virtual-node-gcn",
              make_module=lambda: VirtualNodeGNN(8, 8, 2, num_layers=2, conv="gcn", norm=None),
              forward=lambda m, b: m(b.x, b.edge_index, batch=b.batch, num_graphs=b.num_graphs),
              levels=("graph",), bad_inputs=_ALL_BAD,
              skip={"recompiles": "PyG's own GCNConv: add_remaining_self_loops uses nonzero and "
                                  "re-specialises per batch size"}),
    LayerCase(name="sheaf-graph-model",
              make_module=lambda: SheafGraphModel(8, 3, 2, num_layers=2, readout="max"),
              forward=lambda m, b: m(b.x, b.edge_index, b.batch, num_graphs=b.num_graphs),
              transform=SheafGraphModel(8, 3, 2).transform, levels=("graph",),
              bad_inputs=_ALL_BAD),
]


@pytest.mark.parametrize("case,check",
                         conformance_params(CASES) + conformance_params(DIRECT_CASES))
def test_ogb_variants_conform(case, check):
    CHECKS[check](case)


def _molecule(seed: int) -> Data:
    gen = torch.Generator().manual_seed(seed)
    n = 4 + seed
    src = list(range(n - 1))
    dst = list(range(1, n))
    edge_index = torch.tensor([src + dst, dst + src])
    return Data(x=torch.randint(0, 2, (n, 9), generator=gen), edge_index=edge_index,
                edge_attr=torch.randint(0, 2, (edge_index.size(1), 3), generator=gen),
                num_nodes=n)


@pytest.mark.parametrize("name", ["gin-vn", "gcn-vn", "gin-lcm", "gin-recurrent", "gin-gnp",
                                  "gin-gnp-readout", "sheaf-graph"])
def test_molecular_variants(name):
    spec = TaskSpec("graph", 9, 1, "bce", "rocauc", edge_dim=3, molecular=True)
    torch.manual_seed(0)
    model = build_model(name, spec, hidden_channels=6, num_layers=2).eval()
    batch = Batch.from_data_list([_molecule(0), _molecule(1), _molecule(2)])
    out = model(batch)
    assert out.shape == (3, 1) and torch.isfinite(out).all()
    alone = model(Batch.from_data_list([_molecule(2)]))
    assert torch.allclose(out[2:], alone, atol=1e-5)
    model.train()
    model(batch).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters()
               if "atom" in n or "node_encoder" in n)
    with pytest.raises(ValueError, match="integer OGB atom features"):
        bad = batch.clone()
        bad.x = bad.x.float()
        model(bad)


@pytest.mark.parametrize("name,spec", [("gin-vn", EDGE_SPEC), ("gcn-vn", SPEC)])
def test_virtual_node_variants_batch_invariant(name, spec):
    torch.manual_seed(0)
    model = build_model(name, spec, hidden_channels=8, num_layers=3).eval()
    graphs = [_edge_graph(s) for s in range(3)]
    out = model(Batch.from_data_list(graphs))
    assert out.shape == (3, spec.out_channels) and torch.isfinite(out).all()
    for i, g in enumerate(graphs):
        assert torch.allclose(out[i], model(Batch.from_data_list([g]))[0], atol=1e-5)


def test_ogb_reference_virtual_node_defaults():
    spec = TaskSpec("graph", 9, 1, "bce", "rocauc", edge_dim=3, molecular=True)
    model = build_model("gin-vn", spec).model
    assert isinstance(model, VirtualNodeGNN)
    assert (model.num_layers, model.hidden_channels, model.dropout) == (5, 300, 0.5)
    assert len(model.vn_mlps) == 4 and len(model.bond_encoders) == 5
    assert torch.count_nonzero(model.virtual_node.weight) == 0  # OGB starts it at zero
    # the virtual node really carries graph-wide information: a far-away node change moves
    # a node's representation after two layers only through the virtual node
    torch.manual_seed(0)
    small = VirtualNodeGNN(4, 8, 1, num_layers=2, dropout=0.0).eval()
    with torch.no_grad():
        small.virtual_node.weight.normal_()
    x = torch.randn(6, 4)
    edge_index = torch.tensor([[0, 1, 4, 5], [1, 0, 5, 4]])  # two components in one graph
    g1 = Data(x=x, edge_index=edge_index)
    x2 = x.clone()
    x2[5] += 3.0
    g2 = Data(x=x2, edge_index=edge_index)
    assert not torch.allclose(small.forward_data(g1), small.forward_data(g2))


def test_registered_and_graph_level_only():
    names = {"gin-vn", "gcn-vn", "gin-lcm", "gin-recurrent", "gin-gnp", "gin-gnp-readout",
             "sheaf-graph"}
    assert names <= set(available_models())
    node = TaskSpec("node", 4, 2, "ce", "acc")
    for name in names:
        with pytest.raises(ValueError, match="graph-level"):
            build_model(name, node)
    with pytest.raises(ValueError, match="conv must be"):
        VirtualNodeGNN(4, 8, 1, conv="gat")
    assert isinstance(build_model("sheaf-graph", SPEC).model, SheafGraphModel)
    # the sheaf Laplacian needs symmetric edges: the model ships the transform that makes them
    model = build_model("sheaf-graph", SPEC, hidden_channels=2)
    directed = Data(x=torch.randn(3, 8), edge_index=torch.tensor([[0, 1, 1], [1, 2, 1]]))
    sym = model.transform(directed)
    assert sym.edge_index.size(1) == 4 and bool((sym.edge_index[0] != sym.edge_index[1]).all())


def test_graph_level_models_refuse_a_missing_readout_and_check_edges():
    with pytest.raises(ValueError, match="readout"):
        VirtualNodeGNN(4, 8, 1, readout=None)
    with pytest.raises(ValueError, match="readout"):
        SheafGraphModel(4, 2, 1, readout=None)
    g = _edge_graph(0)
    with pytest.raises(ValueError, match="needs edge_attr"):
        VirtualNodeGNN(8, 8, 1, num_layers=1, edge_dim=3)(g.x, g.edge_index)
    bad = g.clone()
    bad.edge_index = torch.cat([g.edge_index, g.edge_index[:1]])
    with pytest.raises(ValueError, match=r"\[2, E\]"):
        SheafGraphModel(8, 2, 1).transform(bad)
