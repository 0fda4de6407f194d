"""ProbabilisticRewirer: index arithmetic over samples and graphs, batch-composition invariance."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from graphlab.rewiring import EdgeCandidates, EdgeScorer, ProbabilisticRewirer
from graphlab.testing import (
    CHECKS,
    EDGE_INDEX_MUTATIONS,
    FEATURE_MUTATIONS,
    INDEX_MUTATIONS,
    LayerCase,
    conformance_params,
)
from graphlab.testing.graphs import random_graph

TRANSFORM = EdgeCandidates(num_candidates=12, heuristic="distance")


def _graphs(sizes, seed=0):
    return [TRANSFORM(random_graph(n, in_channels=8, seed=seed + i)) for i, n in enumerate(sizes)]


def _rewirer(k_add=3, k_delete=2, num_samples=2, estimator="simple", num_eval_samples=1):
    torch.manual_seed(0)
    return ProbabilisticRewirer(EdgeScorer(8, 16, num_layers=1), k_add, k_delete, num_samples,
                                estimator, num_eval_samples=num_eval_samples)


def _run(rewirer, batch, generator=None):
    return rewirer(batch.x, batch.edge_index, batch.batch, None, batch.cand_index,
                   batch.num_graphs, generator)


def test_training_layout_and_exact_budgets():
    graphs = _graphs([6, 9, 7])
    batch = Batch.from_data_list(graphs)
    rew = _rewirer().train()
    out = _run(rew, batch, torch.Generator().manual_seed(0))
    S, G, N = 2, 3, batch.num_nodes
    assert out.num_graphs == S * G and out.num_samples == S
    assert out.node_index.tolist() == list(range(N)) * S
    assert out.batch.tolist() == [s * G + int(b) for s in range(S) for b in batch.batch]
    # edges stay inside their own copy of their own graph
    assert torch.equal(out.batch[out.edge_index[0]], out.batch[out.edge_index[1]])
    added = out.edge_origin < 0
    g_of_edge = out.batch[out.edge_index[0]]
    n_added = torch.bincount(g_of_edge[added], weights=out.edge_weight[added].detach(),
                             minlength=S * G)
    n_kept = torch.bincount(g_of_edge[~added], weights=out.edge_weight[~added].detach(),
                            minlength=S * G)
    edges_per_graph = torch.bincount(batch.batch[batch.edge_index[0]], minlength=G).repeat(S)
    assert n_added.tolist() == [2.0 * 3] * (S * G)          # k_add pairs, both directions
    assert (edges_per_graph - n_kept).tolist() == [2.0 * 2] * (S * G)  # k_delete pairs
    # every candidate and existing edge is present in training, so all logits get gradients
    assert out.edge_index.size(1) == S * (batch.edge_index.size(1) + 2 * batch.cand_index.size(1))


def test_gradients_reach_the_scorer():
    batch = Batch.from_data_list(_graphs([6, 8]))
    for estimator in ("simple", "imle", "gumbel_softmax"):
        rew = _rewirer(estimator=estimator).train()
        out = _run(rew, batch, torch.Generator().manual_seed(1))
        target = torch.randn(out.edge_weight.shape, generator=torch.Generator().manual_seed(2))
        (out.edge_weight * target).sum().backward()
        grads = [p.grad for p in rew.scorer.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, estimator


def test_seeded_training_samples_are_reproducible():
    batch = Batch.from_data_list(_graphs([7, 7]))
    rew = _rewirer().train()
    a = _run(rew, batch, torch.Generator().manual_seed(5)).edge_weight
    b = _run(rew, batch, torch.Generator().manual_seed(5)).edge_weight
    assert torch.equal(a, b)


def test_eval_batch_composition_invariance():
    target, *others = _graphs([7, 5, 9, 6], seed=3)
    rew = _rewirer(num_samples=4).eval()
    with torch.no_grad():
        alone = _run(rew, Batch.from_data_list([target]))
        for graphs in ([others[0], target, others[1]], [others[2], others[1], target]):
            batch = Batch.from_data_list(graphs)
            mixed = _run(rew, batch)
            pos = graphs.index(target)
            offset = int(batch.ptr[pos])
            keep = mixed.batch[mixed.edge_index[0]] == pos
            edges = mixed.edge_index[:, keep] - offset
            got = {(int(u), int(v), float(w)) for (u, v), w in zip(edges.t(), mixed.edge_weight[keep])}
            ref = {(int(u), int(v), float(w)) for (u, v), w in zip(alone.edge_index.t(),
                                                                   alone.edge_weight)}
            assert got == ref


def test_eval_drops_zero_weight_edges_and_uses_one_copy():
    batch = Batch.from_data_list(_graphs([6, 8]))
    out = _run(_rewirer(num_samples=3).eval(), batch)
    assert out.num_samples == 1 and (out.edge_weight == 1).all()
    n_orig = batch.edge_index.size(1)
    assert out.edge_index.size(1) == n_orig - 2 * 2 * 2 + 2 * 3 * 2


def test_eval_with_several_samples_gives_distinct_hard_copies():
    batch = Batch.from_data_list(_graphs([6, 8]))
    rew = _rewirer(num_samples=2, num_eval_samples=5).eval()
    with torch.no_grad():
        out = _run(rew, batch, torch.Generator().manual_seed(0))
        again = _run(rew, batch, torch.Generator().manual_seed(0))
    S, G = 5, 2
    assert out.num_samples == S and out.num_graphs == S * G
    assert (out.edge_weight == 1).all() and torch.equal(out.edge_index, again.edge_index)
    # every copy holds its exact budgets: k_add pairs added, k_delete pairs deleted
    g_of_edge = out.batch[out.edge_index[0]]
    added = torch.bincount(g_of_edge[out.edge_origin < 0], minlength=S * G)
    kept = torch.bincount(g_of_edge[out.edge_origin >= 0], minlength=S * G)
    orig = torch.bincount(batch.batch[batch.edge_index[0]], minlength=G).repeat(S)
    assert added.tolist() == [2 * 3] * (S * G)
    assert (orig - kept).tolist() == [2 * 2] * (S * G)
    # the copies are samples, not S repetitions of the top-k
    copies = {tuple(sorted(map(tuple, (out.edge_index[:, g_of_edge == s * G]
                                       - s * batch.num_nodes).t().tolist())))
              for s in range(S)}
    assert len(copies) > 1


def test_variable_candidate_counts_use_masks():
    # graph 0 has only 1 candidate pair, graph 1 many: k_add is clipped per graph by the mask
    dense = torch.tensor([[0, 1, 1, 2, 0, 2], [1, 0, 2, 1, 2, 0]])  # triangle: no candidates
    path = torch.tensor([[3, 4, 4, 5], [4, 3, 5, 4]])               # path 3-4-5: 1 candidate
    big = random_graph(8, seed=2)
    edge_index = torch.cat([dense, path, big.edge_index + 6], dim=1)
    batch = torch.tensor([0, 0, 0, 1, 1, 1] + [2] * 8)
    x = torch.randn(14, 8)
    rew = _rewirer(k_add=3, k_delete=0).train()
    out = rew(x, edge_index, batch, num_graphs=3, generator=torch.Generator().manual_seed(0))
    added = out.edge_origin < 0
    per_graph = torch.bincount(out.batch[out.edge_index[0]][added],
                               weights=out.edge_weight[added].detach(), minlength=6)
    assert per_graph.view(2, 3).tolist() == [[0.0, 2.0, 6.0]] * 2


def test_bad_inputs():
    rew = _rewirer()
    batch = Batch.from_data_list(_graphs([6]))
    with pytest.raises(ValueError, match="edge_index"):
        rew(batch.x, batch.edge_index.float())
    with pytest.raises(ValueError, match="cand_index"):
        rew(batch.x, batch.edge_index, cand_index=torch.tensor([[0], [99]]))
    with pytest.raises(ValueError, match="non-negative"):
        ProbabilisticRewirer(nn.Identity(), -1, 0)


def test_scorer_with_candidate_messages_sees_the_candidate_structure():
    # two triangles vs one hexagon: 1-WL-equivalent 2-regular graphs, so a scorer on the graph
    # alone gives every pair the same logit; with messages along the candidate pairs (the
    # hexagon's antipodal pairs; the triangles have no reachable non-edge, so pairs across them)
    # the logits of the two graphs differ
    tri = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 0, 4, 5, 3]])
    hexa = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]])
    x = torch.ones(6, 4)
    torch.manual_seed(0)
    plain = EdgeScorer(4, 8, num_layers=2)
    torch.manual_seed(0)
    seeing = EdgeScorer(4, 8, num_layers=2, candidate_messages=True)
    logits = {}
    for name, ei in (("tri", tri), ("hex", hexa)):
        ei = torch.cat([ei, ei.flip(0)], dim=1)
        cand = EdgeCandidates(3, "reachable_distance")(
            Data(edge_index=ei, num_nodes=6)).cand_index
        logits[name] = (plain(x, ei, None, cand, ei[:, :1])[0],
                        seeing(x, ei, None, cand, ei[:, :1])[0])
    torch.testing.assert_close(logits["tri"][0], logits["hex"][0])
    assert not torch.allclose(logits["tri"][1], logits["hex"][1])
    assert "candidate_messages=True" in repr(seeing)


@pytest.mark.parametrize("heuristic", ["reachable_distance", "component_distance"])
def test_on_the_fly_candidates_equal_the_pre_transform(heuristic):
    # two components per graph, so the heuristics' ranking of reachable pairs matters
    graphs = []
    for i, n in enumerate((7, 9)):
        a, b = random_graph(n, in_channels=8, seed=i), random_graph(4, in_channels=8, seed=10 + i)
        graphs.append(EdgeCandidates(5, heuristic)(Data(
            x=torch.cat([a.x, b.x]), num_nodes=n + 4,
            edge_index=torch.cat([a.edge_index, b.edge_index + n], dim=1))))
    batch = Batch.from_data_list(graphs)
    rew = ProbabilisticRewirer(EdgeScorer(8, 16, num_layers=1), 2, 1, num_candidates=5,
                               heuristic=heuristic).eval()
    with torch.no_grad():
        given = _run(rew, batch)
        fly = rew(batch.x, batch.edge_index, batch.batch, None, None, batch.num_graphs)
    assert torch.equal(given.edge_index, fly.edge_index)
    assert torch.equal(given.edge_weight, fly.edge_weight)


def test_unsorted_batch_vector_is_handled():
    """Issue 18: an unsorted batch vector raised an IndexError in the rewirer (and so in PRMPNN);
    interleaving the graphs' nodes relabels the rewired graph and changes nothing else."""
    batch = Batch.from_data_list(_graphs([6, 9, 7]))
    local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
    perm = torch.argsort(local * 3 + batch.batch)     # interleaved, each graph in node order
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    rew = _rewirer(num_eval_samples=1).eval()
    rew.num_candidates, rew.heuristic = 12, "distance"
    with torch.no_grad():
        ref = rew(batch.x, batch.edge_index, batch.batch, num_graphs=3)
        out = rew(batch.x[perm], inv[batch.edge_index], batch.batch[perm], num_graphs=3)
    assert torch.equal(batch.batch[perm][out.node_index], out.batch)

    def edges(r, relabel):
        src, dst = relabel[r.edge_index]
        return sorted(zip(src.tolist(), dst.tolist(), r.edge_weight.tolist()))

    assert edges(out, perm) == edges(ref, torch.arange(batch.num_nodes))


# ------------------------------------------------------------------ conformance suite (issue 17)
def _bad_cand_range(b: Batch) -> Batch:
    b.cand_index = b.cand_index.clone()
    b.cand_index[0, 0] = -1
    return b


def _rewire_and_aggregate(m: ProbabilisticRewirer, b: Batch) -> tuple[torch.Tensor, ...]:
    """Rewire (eval: the deterministic top-k), then sum neighbour features over the rewired
    graph (node level, differentiable in x) and flag which original edges survive (edge level)."""
    out = m(b.x, b.edge_index, b.batch, None, b.cand_index, b.num_graphs)
    src, dst = out.edge_index
    agg = torch.zeros_like(b.x).index_add(0, dst, out.edge_weight.unsqueeze(-1) * b.x[src])
    kept = torch.zeros(b.edge_index.size(1), dtype=b.x.dtype)
    origin = out.edge_origin[out.edge_origin >= 0]
    kept = kept.index_add(0, origin, torch.ones_like(origin, dtype=b.x.dtype))
    return agg, kept


CASES = [
    # every non-edge is a candidate (an equivariant set); 2 added and 1 deleted pair per graph
    LayerCase(name="probabilistic-rewirer",
              make_module=lambda: ProbabilisticRewirer(EdgeScorer(8, 16, num_layers=1), k_add=2,
                                                       k_delete=1),
              transform=EdgeCandidates(), forward=_rewire_and_aggregate, levels=("node", "edge"),
              bad_inputs={**EDGE_INDEX_MUTATIONS, **INDEX_MUTATIONS, **FEATURE_MUTATIONS,
                          "cand_index_out_of_range": _bad_cand_range},
              skip={"isolated_nodes": "added nodes add candidate pairs, which compete for the "
                    "k_add slots of their graph"},
              # graph breaks at the data-dependent steps only: torch.unique of the existing pairs,
              # the padded width of the add and the delete rows, and (eval) dropping zero-weight
              # edges; 10 graphs for 2, 3, 4, 5 or 6 graphs per batch: no recompiles per size
              max_compiles=10),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_conformance_case_adds_and_deletes_exactly_k_per_graph():
    case = CASES[0]
    torch.manual_seed(0)
    rew = case.make_module().eval()
    graphs = [case.transform(random_graph(n, in_channels=8, seed=n)) for n in (7, 9, 8)]
    b = Batch.from_data_list(graphs)
    with torch.no_grad():
        out = rew(b.x, b.edge_index, b.batch, None, b.cand_index, b.num_graphs)
    added = out.edge_origin < 0
    per_graph = torch.bincount(out.batch[out.edge_index[0]][added], minlength=3)
    assert per_graph.tolist() == [2 * 2] * 3                       # both directions
    kept = torch.bincount(out.batch[out.edge_index[0]][~added], minlength=3)
    edges = torch.bincount(b.batch[b.edge_index[0]], minlength=3)
    assert (edges - kept).tolist() == [2 * 1] * 3


def test_prmpnn_accepts_an_unsorted_batch_vector():
    """Issue 18: PRMPNN raised an IndexError from edge_candidates on an unsorted batch; the
    rewirer's fix carries over (same predictions as the sorted batch)."""
    from graphlab.models import PRMPNN

    batch = Batch.from_data_list([random_graph(n, in_channels=8, seed=n) for n in (5, 7, 6)])
    local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
    perm = torch.argsort(local * 3 + batch.batch)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    torch.manual_seed(0)
    model = PRMPNN(8, 16, 2, num_layers=2, k_add=2, k_delete=1, num_candidates=4).eval()
    with torch.no_grad():
        ref = model(batch.x, batch.edge_index, batch=batch.batch)
        out = model(batch.x[perm], inv[batch.edge_index], batch=batch.batch[perm])
    torch.testing.assert_close(out, ref)


class _FixedScorer(nn.Module):
    """Prior ``p`` prefers candidate ``p`` (one graph; logits ``[C, P]``)."""

    def __init__(self, priors: int, shape_bug: bool = False) -> None:
        super().__init__()
        self.priors, self.shape_bug = priors, shape_bug
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x, edge_index, edge_attr, add_pairs, delete_pairs):
        P = self.priors
        add = torch.full((add_pairs.size(1), P), -5.0) + self.w
        add[torch.arange(P), torch.arange(P)] = 5.0
        dele = torch.zeros(delete_pairs.size(1), P) + self.w
        return (add[:, 0], dele) if self.shape_bug else (add, dele)


def test_priors_are_sampled_independently_and_laid_out_prior_major():
    batch = Batch.from_data_list(_graphs([8]))
    P, S = 3, 2
    rew = ProbabilisticRewirer(_FixedScorer(P), 1, 0, num_samples=S, num_eval_samples=S,
                               num_priors=P)
    with torch.no_grad():
        out = _run(rew.eval(), batch, torch.Generator().manual_seed(0))
    N = batch.num_nodes
    assert out.num_samples == P * S and out.num_graphs == P * S
    added = out.edge_origin < 0
    copy_of = out.edge_index[0, added] // N
    pairs = out.edge_index[:, added] % N
    for copy in range(P * S):  # copy p * S + s adds prior p's preferred candidate
        want = batch.cand_index[:, copy // S]
        got = pairs[:, copy_of == copy]
        assert {tuple(c) for c in got.t().tolist()} == {tuple(want.tolist()),
                                                        tuple(want.flip(0).tolist())}


def test_prior_count_must_match_the_scorer():
    batch = Batch.from_data_list(_graphs([8]))
    rew = ProbabilisticRewirer(_FixedScorer(3, shape_bug=True), 1, 0, num_priors=3)
    with pytest.raises(ValueError, match="num_priors=3"):
        _run(rew, batch)
    with pytest.raises(ValueError, match="num_priors"):
        ProbabilisticRewirer(_FixedScorer(1), 1, 0, num_priors=0)


def test_marginal_add_weights_are_the_exact_marginals_of_the_sampled_pairs():
    from graphlab.rewiring import k_subset_marginals

    batch = Batch.from_data_list(_graphs([8]))
    torch.manual_seed(0)
    scorer = EdgeScorer(8, 16, num_layers=1).double()
    rew = ProbabilisticRewirer(scorer, 3, 0, num_samples=2, add_weight="marginal")
    x = batch.x.double()
    add_logits, _ = scorer(x, batch.edge_index, None, batch.cand_index,
                           torch.empty(2, 0, dtype=torch.long))
    mu = k_subset_marginals(add_logits.detach().unsqueeze(0), 3)[0]
    with torch.no_grad():
        out = rew.eval()(x, batch.edge_index, batch.batch, None, batch.cand_index)
    added = out.edge_origin < 0
    weight = {tuple(e): float(w) for e, w in zip(out.edge_index[:, added].t().tolist(),
                                                 out.edge_weight[added])}
    assert len(weight) == 2 * 3  # top-3, both directions
    for c, (u, v) in enumerate(batch.cand_index.t().tolist()):
        if (u, v) in weight:
            assert weight[u, v] == weight[v, u] == pytest.approx(float(mu[c]))
    # training: the weights carry gradients of both the sample and the marginal
    out = rew.train()(x, batch.edge_index, batch.batch, None, batch.cand_index,
                      generator=torch.Generator().manual_seed(0))
    w = out.edge_weight[out.edge_origin < 0]
    assert ((w == 0) | ((w > 0) & (w < 1))).all()
    w.sum().backward()
    assert scorer.add_head.lins[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="add_weight"):
        ProbabilisticRewirer(scorer, 3, 0, add_weight="logits")
