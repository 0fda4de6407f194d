"""EGNNConv: E(n) equivariance in float64, numerical safety, validation, conformance."""

import pytest
import torch
from torch import nn
from torch_geometric.testing import assert_module

from graphlab.conv import EGNNConv
from graphlab.testing import CHECKS, EDGE_INDEX_MUTATIONS, LayerCase, conformance_params
from graphlab.testing.equivariance import assert_e_n_equivariant, random_orthogonal
from graphlab.testing.graphs import (
    HETERO_METADATA,
    adjacency_forms,
    random_graph,
    toy_hetero_graph,
)
from graphlab.testing.reference_egnn import ReferenceEGCL, copy_egnn_weights
from graphlab.utils.geometry import radius_graph

F, H = 6, 16


def _graph(n: int = 9, dim: int = 3, edge_dim: int | None = None, seed: int = 0,
           dtype=torch.float64):
    g = random_graph(n, in_channels=F, edge_dim=edge_dim, pos_dim=dim, seed=seed, dtype=dtype)
    g.vel = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed + 100), dtype=dtype)
    return g


def _fully_connected(n: int) -> torch.Tensor:
    idx = torch.arange(n)
    src, dst = idx.repeat_interleave(n), idx.repeat(n)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("options", [
    {},
    {"normalize": True, "attention": True, "pos_aggr": "sum"},
    {"tanh": True, "coords_range": 2.0, "edge_dim": 3},
    {"coords_range": 0.5, "residual": False},
])
def test_e_n_equivariance_float64(dim, options):
    torch.manual_seed(0)
    conv = EGNNConv(F, H, **options).double()
    # Enlarge phi_x so the coordinate update is far from the identity (the init is ~1e-3).
    nn.init.normal_(conv.coord_lin2.weight, std=0.5)
    g = _graph(dim=dim, edge_dim=options.get("edge_dim"))

    # Both call forms at once: invariant h, equivariant pos (translated), and the translation-
    # free vectors pos_out - pos and vel_out of the velocity variant.
    def fn_pos(pos, vectors):
        h, p = conv(g.x, pos, g.edge_index, g.get("edge_attr"))
        h2, p2, v2 = conv(g.x, pos, g.edge_index, g.get("edge_attr"), vel=vectors[0])
        return torch.cat([h, h2], dim=-1), p, [p2 - pos, v2]

    assert_e_n_equivariant(fn_pos, g.pos, [g.vel], num_trials=4, seed=dim)


def test_equivariance_one_dimension():
    torch.manual_seed(0)
    conv = EGNNConv(F, H).double()
    nn.init.normal_(conv.coord_lin2.weight, std=0.5)
    g = _graph(dim=1)

    def fn(pos, vectors):
        h, p, v = conv(g.x, pos, g.edge_index, vel=vectors[0])
        return h, p, [v]

    assert_e_n_equivariant(fn, g.pos, [g.vel], num_trials=2)


def test_node_permutation_equivariance_with_velocity():
    torch.manual_seed(0)
    conv = EGNNConv(F, H, edge_dim=2).double()
    g = _graph(edge_dim=2)
    perm = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(3))
    inv = torch.argsort(perm)
    h, p, v = conv(g.x, g.pos, g.edge_index, g.edge_attr, vel=g.vel)
    hp, pp, vp = conv(g.x[perm], g.pos[perm], inv[g.edge_index], g.edge_attr, vel=g.vel[perm])
    torch.testing.assert_close(hp, h[perm])
    torch.testing.assert_close(pp, p[perm])
    torch.testing.assert_close(vp, v[perm])


def test_random_orthogonal_draws_reflections():
    gen = torch.Generator().manual_seed(0)
    q = random_orthogonal(5, gen, reflection=True)
    assert torch.allclose(q @ q.T, torch.eye(5, dtype=q.dtype), atol=1e-12)
    assert float(torch.linalg.det(q)) == pytest.approx(-1.0)
    assert float(torch.linalg.det(random_orthogonal(3, gen, reflection=False))) == \
        pytest.approx(1.0)


@pytest.mark.parametrize("normalize", [False, True])
def test_coincident_points_finite_values_and_gradients(normalize):
    torch.manual_seed(0)
    conv = EGNNConv(F, H, normalize=normalize, attention=True)
    x = torch.randn(4, F, requires_grad=True)
    base = torch.randn(4, 3)
    base[1] = base[0]
    base[2] = base[0]  # three points on top of each other
    pos = base.clone().requires_grad_(True)
    vel = torch.randn(4, 3, requires_grad=True)
    h, p, v = conv(x, pos, _fully_connected(4), vel=vel)
    assert torch.isfinite(h).all() and torch.isfinite(p).all() and torch.isfinite(v).all()
    (h.square().sum() + p.square().sum() + v.square().sum()).backward()
    for t in (x, pos, vel):
        assert torch.isfinite(t.grad).all()
    for param in conv.parameters():
        assert param.grad is None or torch.isfinite(param.grad).all()


def test_inputs_are_not_modified_in_place():
    torch.manual_seed(0)
    conv = EGNNConv(F, F)
    g = _graph(dtype=torch.float32)
    x, pos, vel = g.x.clone(), g.pos.clone(), g.vel.clone()
    versions = (x._version, pos._version, vel._version)
    conv(x, pos, g.edge_index, vel=vel)
    assert (x._version, pos._version, vel._version) == versions
    assert torch.equal(pos, g.pos) and torch.equal(vel, g.vel)


def test_invariant_mode_returns_pos_unchanged_and_has_no_coordinate_mlp():
    conv = EGNNConv(F, H, update_pos=False)
    g = _graph(dtype=torch.float32)
    h, p = conv(g.x, g.pos, g.edge_index)
    assert p is g.pos and h.shape == (g.num_nodes, H)
    assert conv.coord_lin1 is None
    with pytest.raises(ValueError, match="update_pos"):
        conv(g.x, g.pos, g.edge_index, vel=g.vel)


_REF_OPTIONS = [{}, {"edge_dim": 2, "attention": True, "normalize": True},
                {"pos_aggr": "sum", "tanh": True}, {"update_pos": False, "edge_dim": 2}]


@pytest.mark.parametrize("options,with_vel", [(o, v) for o in _REF_OPTIONS for v in (False, True)
                                              if o.get("update_pos", True) or not v])
def test_matches_reference_from_the_equations(options, with_vel):
    torch.manual_seed(0)
    conv = EGNNConv(F, F, hidden_channels=H, **options).double()
    ref = ReferenceEGCL(F, F, H, **options).double()
    copy_egnn_weights(conv, ref)
    g = _graph(edge_dim=options.get("edge_dim"))
    args = (g.x, g.pos, g.edge_index, g.get("edge_attr"))
    vel = g.vel if with_vel else None
    ours = conv(*args, vel=vel)
    theirs = ref(*args, vel=vel)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_mean_aggregation_divides_by_in_degree():
    torch.manual_seed(0)
    conv = EGNNConv(F, F).double()
    nn.init.normal_(conv.coord_lin2.weight, std=0.5)
    conv_sum = EGNNConv(F, F, pos_aggr="sum").double()
    conv_sum.load_state_dict(conv.state_dict())
    g = _graph()
    _, p_mean = conv(g.x, g.pos, g.edge_index)
    _, p_sum = conv_sum(g.x, g.pos, g.edge_index)
    deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes).clamp(min=1).double()
    torch.testing.assert_close(p_mean - g.pos, (p_sum - g.pos) / deg.unsqueeze(-1))


def test_coords_range_bounds_the_update():
    torch.manual_seed(0)
    conv = EGNNConv(F, F, tanh=True, coords_range=0.1, pos_aggr="sum", normalize=True).double()
    nn.init.normal_(conv.coord_lin2.weight, std=100.0)
    g = _graph()
    _, p = conv(g.x, g.pos, g.edge_index)
    deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes).double()
    # each normalised edge contributes a vector of length <= coords_range
    assert ((p - g.pos).norm(dim=-1) <= 0.1 * deg + 1e-9).all()


def test_works_on_radius_graph_in_a_batch():
    torch.manual_seed(0)
    conv = EGNNConv(F, H)
    pos = torch.randn(40, 3)
    batch = torch.arange(4).repeat_interleave(10)
    ei = radius_graph(pos, 1.5, batch)
    h, p = conv(torch.randn(40, F), pos, ei)
    assert h.shape == (40, H) and p.shape == (40, 3)


def test_bad_inputs_raise_value_error():
    conv = EGNNConv(F, H, edge_dim=2)
    g = _graph(edge_dim=2, dtype=torch.float32)
    with pytest.raises(ValueError, match="pos must have one row per node"):
        conv(g.x, g.pos[:-1], g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match="edge_attr must have 2 channels"):
        conv(g.x, g.pos, g.edge_index, torch.randn(g.edge_index.size(1), 3))
    with pytest.raises(ValueError, match="edge_attr is required"):
        conv(g.x, g.pos, g.edge_index)
    with pytest.raises(ValueError, match="vel must have the shape of pos"):
        conv(g.x, g.pos, g.edge_index, g.edge_attr, vel=g.vel[:, :2])
    with pytest.raises(ValueError, match="x must have 6 channels"):
        conv(g.x[:, :3], g.pos, g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match="same dtype"):
        conv(g.x, g.pos.double(), g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match="edge_dim=0"):
        EGNNConv(F, H)(g.x, g.pos, g.edge_index, g.edge_attr)
    with pytest.raises(ValueError, match="pos_aggr"):
        EGNNConv(F, H, pos_aggr="max")


def test_repr_and_reset_parameters():
    conv = EGNNConv(F, H, edge_dim=2)
    assert repr(conv) == "EGNNConv(6, 16, hidden_channels=16, edge_dim=2, update_pos=True)"
    before = conv.coord_lin2.weight.clone()
    conv.reset_parameters()
    assert conv.coord_lin2.weight.abs().max() < 0.01  # the authors' gain-0.001 init
    assert not torch.equal(before, conv.coord_lin2.weight)


# --------------------------------------------------------------------------- conformance
def _make_graph(seed: int):
    g = random_graph(7 + seed % 5, in_channels=8, edge_dim=2, pos_dim=3, seed=seed)
    g.vel = torch.randn(g.num_nodes, 3, generator=torch.Generator().manual_seed(seed))
    return g


def _make_conv(**kw):
    def make():
        conv = EGNNConv(8, 8, hidden_channels=16, edge_dim=2, **kw)
        if conv.coord_lin2 is not None:  # exercise the coordinate path
            nn.init.normal_(conv.coord_lin2.weight, std=0.3)
        return conv
    return make


CASES = [
    LayerCase(
        name="egnn",
        make_module=_make_conv(attention=True),
        forward=lambda m, b: m(b.x, b.pos, b.edge_index, b.edge_attr),
        levels=("node", "node"),
        make_graph=_make_graph,
        grad_inputs=("x", "pos", "edge_attr"),
        fullgraph=True,
        forward_adj_t=lambda m, b: m(b.x, b.pos, b.adj_t),  # edge features as adj_t values
        adj_t_attr="edge_attr",
        forward_bipartite=lambda m, b: m((b.x, b.x), (b.pos, b.pos), b.edge_index, b.edge_attr,
                                         size=(b.num_nodes, b.num_nodes)),
    ),
    LayerCase(
        name="egnn-vel",
        make_module=_make_conv(pos_aggr="sum"),
        forward=lambda m, b: m(b.x, b.pos, b.edge_index, b.edge_attr, vel=b.vel),
        levels=("node", "node", "node"),
        make_graph=_make_graph,
        grad_inputs=("x", "pos", "vel"),
        fullgraph=True,
        # a value-less adj_t, edge features passed beside it in its edge order
        forward_adj_t=lambda m, b: m(b.x, b.pos, b.adj_t, b.edge_attr, vel=b.vel),
        forward_bipartite=lambda m, b: m((b.x, b.x), (b.pos, b.pos), b.edge_index, b.edge_attr,
                                         vel=b.vel),
    ),
    LayerCase(
        # normalize divides by a *detached* norm (the authors' choice, for stability), so the
        # analytic gradient w.r.t. pos deliberately differs from finite differences: gradcheck
        # covers the other inputs.
        name="egnn-normalized",
        make_module=_make_conv(normalize=True, tanh=True, coords_range=2.0),
        forward=lambda m, b: m(b.x, b.pos, b.edge_index, b.edge_attr, vel=b.vel),
        levels=("node", "node", "node"),
        make_graph=_make_graph,
        grad_inputs=("x", "vel", "edge_attr"),
        fullgraph=True,
    ),
    LayerCase(
        name="egnn-invariant",
        make_module=_make_conv(update_pos=False),
        forward=lambda m, b: m(b.x, b.pos, b.edge_index, b.edge_attr)[0],
        levels=("node",),
        make_graph=_make_graph,
        fullgraph=True,
        bad_inputs={
            **EDGE_INDEX_MUTATIONS,
            "edge_attr_wrong_width": lambda b: _set(b, "edge_attr", b.edge_attr[:, :1]),
            "pos_wrong_length": lambda b: _set(b, "pos", b.pos[:-1]),
        },
    ),
]


def _set(b, key, value):
    b[key] = value
    return b


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


# ------------------------------------------------------------------ PyG input contract
EI = torch.tensor([[0, 1, 2, 3, 1, 0], [0, 0, 1, 1, 2, 3]])
BI_EI = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])  # 4 sources -> 2 targets


def _cat(out):
    return torch.cat(out, dim=-1)


def test_pyg_contract_adj_forms_and_size():
    torch.manual_seed(0)
    conv = EGNNConv(F, H, edge_dim=2)
    x, pos, e = torch.randn(4, F), torch.randn(4, 3), torch.randn(EI.size(1), 2)
    out = _cat(conv(x, pos, EI, e))
    torch.testing.assert_close(_cat(conv(x, pos, EI, e, size=(4, 4))), out)
    for name, adj in adjacency_forms(EI, (4, 4), e).items():
        args = (adj, e) if name == "EdgeIndex" else (adj,)
        torch.testing.assert_close(_cat(conv(x, pos, *args)), out, msg=name)


def test_pyg_contract_bipartite():
    torch.manual_seed(1)
    conv = EGNNConv((5, F), H, edge_dim=2)  # 5 source features, F target features
    x_s, x_t = torch.randn(4, 5), torch.randn(2, F)
    p_s, p_t = torch.randn(4, 3), torch.randn(2, 3)
    e = torch.randn(BI_EI.size(1), 2)
    h, p = conv((x_s, x_t), (p_s, p_t), BI_EI, e)
    assert h.shape == (2, H) and p.shape == (2, 3)
    # by hand: target i aggregates its sources j
    w = conv.edge_lin1.weight
    for i in range(2):
        js = BI_EI[0, BI_EI[1] == i]
        es = e[BI_EI[1] == i]
        diff = p_t[i] - p_s[js]
        rad = (diff * diff).sum(-1, keepdim=True)
        inp = torch.cat([x_t[i].expand(len(js), F), x_s[js], rad, es], -1)
        m = conv.act(conv.edge_lin2(conv.act(inp @ w.t() + conv.edge_lin1.bias)))
        ref_h = conv.node_lin2(conv.act(conv.node_lin1(torch.cat([x_t[i], m.sum(0)]))))
        ref_h = ref_h + conv.skip(x_t[i])
        phi = conv.coord_lin2(conv.act(conv.coord_lin1(m)))
        ref_p = p_t[i] + (diff * phi).mean(0)
        torch.testing.assert_close(h[i], ref_h, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(p[i], ref_p, atol=1e-5, rtol=1e-5)
    for name, adj in adjacency_forms(BI_EI, (4, 2), e).items():
        args = (adj, e) if name == "EdgeIndex" else (adj,)
        torch.testing.assert_close(_cat(conv((x_s, x_t), (p_s, p_t), *args)), _cat((h, p)),
                                   msg=name)


def test_bipartite_needs_both_positions():
    conv = EGNNConv(F, H)
    x_s, x_t = torch.randn(4, F), torch.randn(2, F)
    with pytest.raises(ValueError, match="both be tensors or both be"):
        conv((x_s, x_t), torch.randn(2, 3), BI_EI)
    with pytest.raises(ValueError, match="one row per target node of x"):
        conv((x_s, x_t), (torch.randn(4, 3), torch.randn(3, 3)), BI_EI)


class _Flat(nn.Module):
    """``assert_module`` wants one tensor out: features and positions side by side."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, edge_index, pos, size=None):
        return torch.cat(self.conv(x, pos, edge_index, size=size), dim=-1)


def test_pyg_assert_module():
    torch.manual_seed(2)
    x, pos = torch.randn(4, F), torch.randn(4, 3)
    assert_module(_Flat(EGNNConv(F, H)), x, EI, pos=pos, expected_size=(4, H + 3), atol=1e-6)


def test_to_hetero_is_refused_by_pyg_for_tuple_outputs_so_do_it_per_relation():
    """PyG's ``to_hetero`` sums a message-passing module's output over relations, which needs a
    tensor (and summing positions over relations would count ``pos`` once per relation). The
    heterogeneous EGNN layer is therefore written per relation with bipartite calls."""
    torch.manual_seed(3)
    x, ei, pos = toy_hetero_graph(F, pos_dim=3)
    convs = {rel: EGNNConv(F, F, update_pos=False) for rel in HETERO_METADATA[1]}
    h = {t: 0 for t in HETERO_METADATA[0]}
    for (s, r, t), conv in convs.items():
        out, _ = conv((x[s], x[t]), (pos[s], pos[t]), ei[(s, r, t)])
        h[t] = h[t] + out
    assert h["paper"].shape == (6, F) and h["author"].shape == (4, F)
    # a same-type relation as a bipartite call equals the homogeneous call
    cites = ("paper", "cites", "paper")
    torch.testing.assert_close(
        convs[cites]((x["paper"], x["paper"]), (pos["paper"], pos["paper"]), ei[cites])[0],
        convs[cites](x["paper"], pos["paper"], ei[cites])[0])


# ------------------------------------------------------------------ mixed precision
def test_stacked_layers_under_bf16_autocast():
    """Regression (issue 17): the second layer got bf16 ``x`` and float32 ``pos`` and raised
    ``pos and x must have the same dtype``."""
    torch.manual_seed(4)
    g = _graph(edge_dim=2, dtype=torch.float32)
    convs = [EGNNConv(F, F, edge_dim=2) for _ in range(3)]
    h, p = g.x.bfloat16(), g.pos  # bf16 features, as an embedding under autocast gives them
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for conv in convs:
            h, p = conv(h, p, g.edge_index, g.edge_attr)
    assert p.dtype == torch.float32  # coordinates stay float32
    (h.float().sum() + p.sum()).backward()
    assert all(torch.isfinite(q.grad).all() for c in convs for q in c.parameters()
               if q.grad is not None)
    # equivariance survives: rotate the input, the float32 positions rotate with it
    q = random_orthogonal(3, torch.Generator().manual_seed(0)).float()
    h2, p2 = g.x.bfloat16(), g.pos @ q.t()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for conv in convs:
            h2, p2 = conv(h2, p2, g.edge_index, g.edge_attr)
    torch.testing.assert_close(p2, p @ q.t(), atol=5e-2, rtol=5e-2)


def test_dtype_mismatch_outside_autocast_names_both():
    conv = EGNNConv(F, H)
    g = _graph(dtype=torch.float32)
    with pytest.raises(ValueError, match="float64 and torch.float32"):
        conv(g.x, g.pos.double(), g.edge_index)
    with pytest.raises(ValueError, match="x has dtype torch.bfloat16 but the layer computes in "
                                         "torch.float32"):
        conv(g.x.bfloat16(), g.pos.bfloat16(), g.edge_index)
