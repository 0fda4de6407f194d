"""SheafConv against a dense sheaf Laplacian built from the definition, plus conformance."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import to_hetero
from torch_geometric.utils import get_laplacian, to_dense_adj

from graphlab.conv import SheafConv, SheafLearner
from graphlab.nn.orthogonal import orthogonal_from_params, sym_inv_sqrt
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    LayerCase,
    conformance_params,
    random_graph,
)
from graphlab.testing.graphs import adjacency_forms

D, C = 2, 3
DT = torch.float64


def connected_graph(n: int = 7, seed: int = 0) -> torch.Tensor:
    """A cycle plus random chords, both directions of every edge."""
    g = random_graph(n, num_edges=n, in_channels=1, seed=seed)
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    ei = torch.cat([g.edge_index, ring, ring.flip(0)], 1)
    return torch.unique(ei, dim=1)


def identity_stalks(n: int, d: int) -> torch.Tensor:
    """x = I_{nd} arranged as [n, d, n*d], so that applying an operator returns its matrix."""
    return torch.eye(n * d, dtype=DT).view(n, d, n * d)


def dense_coboundary(edge_index: torch.Tensor, maps: torch.Tensor, n: int) -> torch.Tensor:
    """delta: C^0 -> C^1, (delta x)_e = F_{v<e} x_v - F_{u<e} x_u, one row block per edge u<v."""
    if maps.dim() == 3:
        maps = torch.diag_embed(maps)
    d = maps.size(-1)
    keep = (edge_index[0] < edge_index[1]).nonzero().flatten().tolist()
    delta = torch.zeros(len(keep) * d, n * d, dtype=maps.dtype)
    for row, k in enumerate(keep):  # reference code: clarity over speed
        u, v = edge_index[:, k].tolist()
        delta[row * d:(row + 1) * d, v * d:(v + 1) * d] = maps[k, 0]
        delta[row * d:(row + 1) * d, u * d:(u + 1) * d] = -maps[k, 1]
    return delta


def dense_normaliser(lap: torch.Tensor, n: int, d: int, augmented: bool) -> torch.Tensor:
    blocks = torch.zeros_like(lap)
    for v in range(n):
        s = slice(v * d, (v + 1) * d)
        blocks[s, s] = lap[s, s] + (torch.eye(d, dtype=lap.dtype) if augmented else 0)
    evals, evecs = torch.linalg.eigh(blocks)
    return evecs @ torch.diag(evals.clamp_min(1e-12).rsqrt()) @ evecs.T


def check_reverse_consistency(edge_index: torch.Tensor, maps: torch.Tensor) -> None:
    """Both directions of an undirected edge carry the same pair of maps (swapped)."""
    key = {tuple(e): k for k, e in enumerate(edge_index.t().tolist())}
    for k, (u, v) in enumerate(edge_index.t().tolist()):
        r = key[(v, u)]
        torch.testing.assert_close(maps[k, 0], maps[r, 1])


def learned_maps(kind: str, n: int, edge_index: torch.Tensor, orth: str = "householder",
                 seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    learner = SheafLearner(D * C, D, kind, orthogonal=orth).double()
    x = torch.randn(n, D * C, dtype=DT)
    return learner(x, edge_index)


MAP_KINDS = [("diag", "householder"), ("orthogonal", "householder"),
             ("orthogonal", "cayley"), ("general", "householder")]


@pytest.mark.parametrize("kind,orth", MAP_KINDS)
@pytest.mark.parametrize("normalised,augmented", [(True, True), (True, False), (False, False)])
def test_laplacian_matches_dense_definition(kind, orth, normalised, augmented):
    n = 7
    ei = connected_graph(n)
    maps = learned_maps(kind, n, ei, orth)
    check_reverse_consistency(ei, maps)
    conv = SheafConv(C, D, maps="given", normalised=normalised, augmented=augmented).double()
    ours = conv.laplacian(identity_stalks(n, D), ei, maps).reshape(n * D, n * D)

    delta = dense_coboundary(ei, maps, n)
    ref = delta.T @ delta
    if normalised:
        norm = dense_normaliser(ref, n, D, augmented)
        ref = norm @ ref @ norm
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(ours, ours.T, atol=1e-12, rtol=0)
    if kind == "orthogonal":  # the scalar-normaliser shortcut gives the same operator
        fast = conv.laplacian(identity_stalks(n, D), ei, maps, scaled_orthogonal=True)
        torch.testing.assert_close(fast.reshape(n * D, n * D), ref, atol=1e-10, rtol=1e-9)
    assert torch.linalg.eigvalsh(ours).min() > -1e-10
    if normalised and augmented:  # the augmented normalised spectrum lies in [0, 2)
        assert torch.linalg.eigvalsh(ours).max() < 2


def flat_sheaf(n: int, ei: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """F_{v<e} = Q_e R_v with invertible R_v and Q_e: its global sections are x_v = R_v^{-1} z."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randn(n, D, D, generator=gen, dtype=DT) + 2 * torch.eye(D, dtype=DT)
    key = torch.minimum(ei[0], ei[1]) * n + torch.maximum(ei[0], ei[1])
    edge_mix = torch.randn(int(key.max()) + 1, D, D, generator=gen, dtype=DT)[key]
    maps = torch.stack([edge_mix @ frames[ei[1]], edge_mix @ frames[ei[0]]], 1)
    sections = torch.linalg.inv(frames)  # [n, D, D]: column z of x_v = R_v^{-1} e_z
    return maps, sections.permute(0, 1, 2).reshape(n * D, D)


def projector(basis: torch.Tensor) -> torch.Tensor:
    q, _ = torch.linalg.qr(basis)
    return q @ q.T


def null_space(mat: torch.Tensor, tol: float = 1e-8) -> torch.Tensor:
    _, s, vh = torch.linalg.svd(mat)
    rank = int((s > tol * s.max()).sum())
    return vh[rank:].T


@pytest.mark.parametrize("flat", [True, False])
def test_kernel_is_global_sections(flat):
    n = 8
    ei = connected_graph(n, seed=3)
    if flat:
        maps, sections = flat_sheaf(n, ei)
    else:
        maps, sections = learned_maps("general", n, ei), None
    conv = SheafConv(C, D, maps="given", normalised=False).double()
    lap = conv.laplacian(identity_stalks(n, D), ei, maps).reshape(n * D, n * D)
    kernel = null_space(lap)
    h0 = null_space(dense_coboundary(ei, maps, n))  # global sections by definition
    assert kernel.size(1) == h0.size(1)
    if flat:
        assert kernel.size(1) == D
        torch.testing.assert_close(projector(kernel), projector(sections), atol=1e-8, rtol=0)
    else:
        assert kernel.size(1) == 0  # a generic sheaf has no global sections
    if h0.size(1):
        torch.testing.assert_close(projector(kernel), projector(h0), atol=1e-8, rtol=0)
        # normalised: ker(D^-1/2 L D^-1/2) = D^{1/2} H^0
        conv_n = SheafConv(C, D, maps="given").double()
        norm_lap = conv_n.laplacian(identity_stalks(n, D), ei, maps).reshape(n * D, n * D)
        sqrt_d = torch.linalg.inv(dense_normaliser(lap, n, D, augmented=True))
        torch.testing.assert_close(projector(null_space(norm_lap)), projector(sqrt_d @ h0),
                                   atol=1e-8, rtol=0)


@pytest.mark.parametrize("augmented", [False, True])
def test_identity_sheaf_is_normalised_graph_laplacian(augmented):
    n = 9
    ei = connected_graph(n, seed=1)
    eye = torch.eye(D, dtype=DT).expand(ei.size(1), 2, D, D)
    conv = SheafConv(C, D, maps="given", augmented=augmented, left_weights=False,
                     right_weights=False, add_eps=False, act=None).double()
    x = torch.randn(n, D * C, dtype=DT)
    if augmented:
        adj = to_dense_adj(ei, max_num_nodes=n)[0].to(DT)
        deg_inv = (adj.sum(1) + 1).rsqrt()
        graph_lap = deg_inv[:, None] * (torch.diag(adj.sum(1)) - adj) * deg_inv[None]
    else:
        li, lw = get_laplacian(ei, normalization="sym", num_nodes=n, dtype=DT)
        graph_lap = to_dense_adj(li, edge_attr=lw, max_num_nodes=n)[0]
    ref = x.view(n, D, C) - torch.einsum("vu,udc->vdc", graph_lap, x.view(n, D, C))
    torch.testing.assert_close(conv(x, ei, eye.contiguous()), ref.reshape(n, -1))
    # the diagonal identity sheaf gives the same diffusion
    torch.testing.assert_close(conv(x, ei, torch.ones(ei.size(1), 2, D, dtype=DT)),
                               ref.reshape(n, -1))


@pytest.mark.parametrize("kind", ["diag", "orthogonal", "general"])
def test_forward_matches_dense_update(kind):
    n = 7
    ei = connected_graph(n, seed=2)
    torch.manual_seed(0)
    conv = SheafConv(C, D, maps=kind).double()
    with torch.no_grad():
        conv.eps.normal_()
        conv.left.weight.normal_()
    x = torch.randn(n, D * C, dtype=DT)
    maps = conv.learner(x, ei)
    delta = dense_coboundary(ei, maps, n)
    lap = delta.T @ delta
    norm = dense_normaliser(lap, n, D, augmented=True)
    big = norm @ lap @ norm
    w1 = torch.kron(torch.eye(n, dtype=DT), conv.left.weight)
    hx = big @ w1 @ x.view(n * D, C) @ conv.right.weight.T
    eps = torch.tanh(conv.eps).repeat(n, 1)
    ref = (1 + eps) * x.view(n * D, C) - torch.nn.functional.elu(hx)
    torch.testing.assert_close(conv(x, ei), ref.reshape(n, D * C), atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("orth", ["householder", "cayley"])
def test_learned_orthogonal_maps_are_orthogonal(orth):
    n = 30
    g = random_graph(n, in_channels=12, seed=5)
    for d in (2, 3, 4):
        torch.manual_seed(d)
        learner = SheafLearner(12, d, "orthogonal", orthogonal=orth, edge_weights=False)
        x = 3 * g.x  # large inputs saturate tanh: the parametrisation must still be exact
        maps = learner(x, g.edge_index)
        gram = maps @ maps.transpose(-1, -2)
        assert (gram - torch.eye(d)).abs().max() < 1e-6
        weighted = SheafLearner(12, d, "orthogonal", orthogonal=orth)(x, g.edge_index)
        scale = weighted.norm(dim=-2, keepdim=True)  # every column has the same norm
        unit = weighted / scale
        assert (unit @ unit.transpose(-1, -2) - torch.eye(d)).abs().max() < 1e-6


@pytest.mark.parametrize("kind", ["orthogonal", "general", "given"])
def test_gradients_finite_at_repeated_singular_values(kind):
    """Identity-like maps make every normaliser block a multiple of I (all eigenvalues equal)."""
    n = 6
    ei = connected_graph(n, seed=4)
    conv = SheafConv(C, D, maps="general" if kind == "given" else kind)
    x = torch.zeros(n, D * C, requires_grad=True)  # zero input: maps at their symmetric point
    if kind == "given":
        maps = torch.eye(D).repeat(ei.size(1), 2, 1, 1).requires_grad_(True)
        out = conv(x, ei, maps)
    else:
        with torch.no_grad():
            conv.learner.lin.weight.zero_()  # every map equal: tanh(0) params
        out = conv(x + 0.0, ei)
        maps = None
    (out.square().sum() + out.sum()).backward()
    params = [p.grad for p in conv.parameters() if p.grad is not None] + [x.grad]
    if maps is not None:
        params.append(maps.grad)
    assert all(bool(torch.isfinite(g).all()) for g in params)
    # the naive eigh backward is what fails here
    a = (2 * torch.eye(D, dtype=DT)).repeat(3, 1, 1).requires_grad_(True)
    evals, evecs = torch.linalg.eigh(a)
    (evecs * evals.rsqrt().unsqueeze(-2) @ evecs.mT).sum().backward()
    assert not bool(torch.isfinite(a.grad).all())


def test_batched_graphs_equal_separate_graphs():
    conv = SheafConv(C, D, maps="general")
    g1, g2 = random_graph(5, in_channels=D * C, seed=1), random_graph(6, in_channels=D * C, seed=2)
    x = torch.cat([g1.x, g2.x])
    ei = torch.cat([g1.edge_index, g2.edge_index + 5], 1)
    torch.testing.assert_close(conv(x, ei), torch.cat([conv(g1.x, g1.edge_index),
                                                       conv(g2.x, g2.edge_index)]))


def test_bad_inputs():
    conv = SheafConv(C, D, maps="given")
    g = random_graph(5, in_channels=D * C, seed=0)
    e = g.edge_index.size(1)
    with pytest.raises(ValueError, match="needs the maps"):
        conv(g.x, g.edge_index)
    with pytest.raises(ValueError, match="shape"):
        conv(g.x, g.edge_index, torch.ones(e, 2, D + 1))
    with pytest.raises(ValueError, match="dtype"):
        conv(g.x, g.edge_index, torch.ones(e, 2, D, dtype=DT))
    with pytest.raises(ValueError, match="NaN"):
        conv(g.x, g.edge_index, torch.full((e, 2, D), float("nan")))
    with pytest.raises(ValueError, match="channels"):
        conv(g.x[:, :5], g.edge_index, torch.ones(e, 2, D))
    with pytest.raises(ValueError, match="maps must be one of"):
        SheafConv(C, D, maps="dense")
    assert "stalk_dim=2" in repr(conv)


# ------------------------------------------------------------------ conformance
def _graph(seed: int):
    return random_graph(7 + seed % 5, in_channels=D * C, seed=seed)


def _graph_with_maps(seed: int):
    g = _graph(seed)
    gen = torch.Generator().manual_seed(seed)
    g.sheaf_maps = orthogonal_from_params(torch.randn(g.edge_index.size(1), 2, 1, generator=gen), D)
    return g


_BAD = {**EDGE_INDEX_MUTATIONS, **FEATURE_MUTATIONS}
CASES = [
    LayerCase(name=f"sheafconv-{kind}-{orth}", make_graph=_graph, bad_inputs=dict(_BAD),
              make_module=lambda kind=kind, orth=orth: SheafConv(C, D, maps=kind, orthogonal=orth),
              fullgraph=True, forward_adj_t=lambda m, b: m(b.x, b.adj_t))
    for kind, orth in MAP_KINDS
] + [
    LayerCase(name="sheafconv-given", make_graph=_graph_with_maps, bad_inputs=dict(_BAD),
              make_module=lambda: SheafConv(C, D, maps="given"),
              forward=lambda m, b: m(b.x, b.edge_index, b.sheaf_maps),
              edge_attrs=("sheaf_maps",), fullgraph=True,
              # ToSparseTensor reorders the per-edge maps with the edges
              forward_adj_t=lambda m, b: m(b.x, b.adj_t, b.sheaf_maps)),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


# ------------------------------------------------------------------ PyG input contract
def test_adj_forms_and_explicit_edge_index():
    torch.manual_seed(0)
    g = _graph(3)
    conv = SheafConv(C, D, maps="general")
    out = conv(g.x, g.edge_index)
    n = g.num_nodes
    for name, adj in adjacency_forms(g.edge_index, (n, n)).items():
        torch.testing.assert_close(conv(g.x, adj), out, msg=name, atol=1e-5, rtol=1e-5)


def test_bipartite_is_refused_with_the_reason():
    g = _graph(0)
    with pytest.raises(ValueError, match="not bipartite"):
        SheafConv(C, D)((g.x, g.x), g.edge_index)


def test_to_hetero_with_same_type_relations():
    """``to_hetero`` passes one tensor for same-type relations: one SheafConv per relation,
    summed per node type; a cross-type relation (a pair input) is refused with the reason."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = SheafConv(C, D, maps="orthogonal")
            self.conv2 = SheafConv(C, D)

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index), edge_index)

    gen = torch.Generator().manual_seed(0)
    x = {"paper": torch.randn(6, C * D, generator=gen), "author": torch.randn(4, C * D, generator=gen)}
    cites = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 2], [1, 0, 3, 2, 5, 4, 2, 1]])
    knows = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    rels = [("paper", "cites", "paper"), ("author", "knows", "author")]
    ei = dict(zip(rels, (cites, knows)))
    torch.manual_seed(1)
    model = to_hetero(Net(), (["paper", "author"], rels), aggr="sum")
    out = model(x, ei)
    ref = model.conv2["paper__cites__paper"](model.conv1["paper__cites__paper"](x["paper"], cites),
                                             cites)
    torch.testing.assert_close(out["paper"], ref)
    assert out["author"].shape == (4, C * D)
    cross = (["paper", "author"], rels + [("author", "writes", "paper")])
    bad = to_hetero(Net(), cross, aggr="sum")
    with pytest.raises(ValueError, match="not bipartite"):
        bad(x, {**ei, ("author", "writes", "paper"): torch.tensor([[0, 1], [2, 3]])})


def test_given_maps_under_autocast_accept_a_bf16_input():
    g = _graph_with_maps(2)
    conv = SheafConv(C, D, maps="given")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(g.x.bfloat16(), g.edge_index, g.sheaf_maps)
    assert torch.isfinite(out).all()


# ------------------------------------------------------------------ the formulas before the fast path
def reference_householder(params: torch.Tensor, dim: int) -> torch.Tensor:
    """Householder product with batched matmuls (the formulation before the elementwise one)."""
    rows, cols = torch.tril_indices(dim, dim, offset=-1)
    low = params.new_zeros(params.shape[:-1] + (dim, dim))
    low[..., rows, cols] = params
    eye = torch.eye(dim, dtype=params.dtype)
    vecs = low + eye
    q = eye.expand(params.shape[:-1] + (dim, dim))
    for i in range(dim):
        v = vecs[..., :, i]
        qv = (q @ v.unsqueeze(-1)).squeeze(-1)
        q = q - (2.0 / (v * v).sum(-1, keepdim=True)).unsqueeze(-1) * qv.unsqueeze(-1) \
            * v.unsqueeze(-2)
    return q


def reference_maps(learner: SheafLearner, x: torch.Tensor, edge_index: torch.Tensor):
    """Both maps of every directed edge from the concatenated [E, 2, 2F] endpoint pairs."""
    src, dst = edge_index
    xs, xd = x[src], x[dst]
    pairs = torch.stack([torch.cat([xd, xs], -1), torch.cat([xs, xd], -1)], 1)
    h = learner._activate(learner.lin(pairs))
    d = learner.stalk_dim
    if learner.maps == "diag":
        return h
    if learner.maps == "general":
        return h.reshape(h.size(0), 2, d, d)
    maps = (reference_householder(h, d) if learner.orthogonal == "householder"
            else orthogonal_from_params(h, d, "cayley"))
    if learner.weight_lin is not None:
        maps = maps * torch.sigmoid(learner.weight_lin(pairs)).unsqueeze(-1)
    return maps


def reference_laplacian(conv: SheafConv, x, edge_index, maps, scaled_orthogonal: bool):
    """Delta_F with [E, d, c] messages, d x d blocks by matmul and D_v from F^T F."""
    n, d = x.size(0), conv.stalk_dim
    src, dst = edge_index
    tgt, srcm = maps[:, 0], maps[:, 1]
    if maps.dim() == 3:
        diag = x.new_zeros(n, d).index_add(0, dst, tgt * tgt)
        block = tgt * srcm
        norm = diag + 1.0 if conv.augmented else diag
        inv = (norm.clamp_min(1e-12).rsqrt() * (norm > 0)).unsqueeze(-1)
        y = x * inv if conv.normalised else x
        agg = torch.zeros_like(y).index_add(0, dst, block.unsqueeze(-1) * y[src])
        out = diag.unsqueeze(-1) * y - agg
        return out * inv if conv.normalised else out
    diag = x.new_zeros(n, d, d).index_add(0, dst, tgt.mT @ tgt)
    block = tgt.mT @ srcm
    if conv.normalised and scaled_orthogonal:
        scale = diag.diagonal(dim1=-2, dim2=-1).mean(-1) + (1.0 if conv.augmented else 0.0)
        inv = (scale.clamp_min(1e-12).rsqrt() * (scale > 0))[:, None, None]
        y = inv * x
        agg = torch.zeros_like(y).index_add(0, dst, block @ y[src])
        return inv * (diag @ y - agg)
    if conv.normalised:
        norm = diag + torch.eye(d, dtype=x.dtype) if conv.augmented else diag
        inv = sym_inv_sqrt(0.5 * (norm + norm.mT))
        y = inv @ x
    else:
        y = x
    agg = torch.zeros_like(y).index_add(0, dst, block @ y[src])
    out = diag @ y - agg
    return inv @ out if conv.normalised else out


def reference_forward(conv: SheafConv, x, edge_index, maps=None):
    n, d, c = x.size(0), conv.stalk_dim, conv.channels
    learned = maps is None
    if learned:
        maps = reference_maps(conv.learner, x, edge_index)
    h = x.reshape(n, d, c)
    if conv.left is not None:
        h = conv.left.weight @ h
    if conv.right is not None:
        h = conv.right(h)
    scaled = conv.maps == "orthogonal" if learned else conv.given_orthogonal
    h = torch.nn.functional.elu(reference_laplacian(conv, h, edge_index, maps, scaled))
    x0 = (1.0 + torch.tanh(conv.eps)) * x.reshape(n, d, c)
    return (x0 - h).reshape(n, d * c)


def _random_orthogonal_maps(num_edges: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(num_edges, 2, d, d, generator=gen, dtype=DT))[0]
    scale = torch.rand(num_edges, 2, 1, 1, generator=gen, dtype=DT) + 0.5
    return q * scale


@pytest.mark.parametrize("kind,orth,normalised", [
    ("diag", "householder", True), ("diag", "householder", False),
    ("orthogonal", "householder", True), ("orthogonal", "cayley", True),
    ("general", "householder", True), ("general", "householder", False),
    ("given", "general", True), ("given", "orthogonal", True)])
def test_values_and_gradients_equal_the_reference_formulas(kind, orth, normalised):
    """The per-node learner split, the fused edge sum, the elementwise small products and the
    scalar orthogonal normaliser change only the rounding: float64 values and gradients (input
    and every parameter) equal the straightforward formulas."""
    ei = connected_graph(9, seed=3)
    torch.manual_seed(0)
    kw = {"given_orthogonal": orth == "orthogonal"} if kind == "given" else {"orthogonal": orth}
    conv = SheafConv(C, D, maps=kind, normalised=normalised, **kw).double()
    with torch.no_grad():  # away from the identity / zero initialisation
        for p in conv.parameters():
            p.add_(0.3 * torch.randn_like(p))
    maps = None
    if kind == "given":
        maps = (_random_orthogonal_maps(ei.size(1), D, 1) if orth == "orthogonal"
                else torch.randn(ei.size(1), 2, D, D, dtype=DT))
        # a reversed edge carries the same pair of maps, swapped
        key = {tuple(e): k for k, e in enumerate(ei.t().tolist())}
        rev = torch.tensor([key[(v, u)] for u, v in ei.t().tolist()])
        maps = torch.where((ei[0] < ei[1])[:, None, None, None], maps, maps[rev].flip(1))
    x = torch.randn(9, D * C, dtype=DT)
    outs, grads = [], []
    for fn in (conv, lambda *a: reference_forward(conv, *a)):
        xi = x.clone().requires_grad_()
        out = fn(xi, ei, maps)
        weight = torch.randn_like(out, generator=torch.Generator().manual_seed(5))
        params = [xi] + list(conv.parameters())
        grads.append(torch.autograd.grad((out * weight).sum(), params, allow_unused=True))
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    for g_new, g_ref in zip(*grads, strict=True):
        if g_ref is None:
            assert g_new is None or g_new.abs().max() == 0
        else:
            torch.testing.assert_close(g_new, g_ref, rtol=1e-9, atol=1e-11)
