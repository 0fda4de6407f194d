"""Exactly-k sampling and its gradient estimators."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from graphlab.rewiring import KSubsetSampler, k_subset_marginals
from graphlab.testing import CHECKS, LayerCase, conformance_params, random_graph

ESTIMATORS = ["simple", "imle", "gumbel_softmax"]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_samples_hold_exactly_k_ones(estimator):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 12, generator=gen, requires_grad=True)
    mask = torch.rand(5, 12, generator=gen) > 0.2
    mask[4, 3:] = False  # only 3 valid entries: k is clipped by the caller
    sampler = KSubsetSampler(4, estimator=estimator, num_samples=3)
    k = torch.clamp(mask.sum(-1), max=4)
    z = sampler(logits, mask, k=k, generator=gen)
    assert z.shape == (3, 5, 12)
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    expected = k.float()
    torch.testing.assert_close(z.detach().sum(-1), expected.expand(3, 5))
    assert (z.detach()[:, ~mask] == 0).all()


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_gradients_are_finite_and_nonzero(estimator):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 10, generator=gen, requires_grad=True)
    mask = torch.ones(4, 10, dtype=torch.bool)
    mask[2, 6:] = False
    z = KSubsetSampler(3, estimator=estimator, num_samples=2)(logits, mask, generator=gen)
    target = torch.randn(10, generator=gen)
    (z * target).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    assert (logits.grad[~mask] == 0).all()


def test_simple_gradient_is_the_marginal_jacobian():
    """Regression test for the authors' known failure (zero/incorrect SIMPLE gradients)."""
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    cot = torch.randn(3, 8, dtype=torch.float64, generator=gen)
    z = KSubsetSampler(3, "simple", num_samples=4)(logits, generator=gen)
    (g_sampler,) = torch.autograd.grad((z * cot).sum(), logits)
    mu = k_subset_marginals(logits, 3)
    (g_exact,) = torch.autograd.grad((mu * 4 * cot).sum(), logits)  # 4 samples
    torch.testing.assert_close(g_sampler, g_exact)
    assert g_sampler.abs().sum() > 1e-3


def test_seeded_sampling_is_reproducible():
    logits = torch.randn(6, 20)
    sampler = KSubsetSampler(5, num_samples=3)
    a = sampler(logits, generator=torch.Generator().manual_seed(7))
    b = sampler(logits, generator=torch.Generator().manual_seed(7))
    c = sampler(logits, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_gumbel_top_k_frequencies_follow_the_scores():
    # items with larger logits are sampled more often; empirical inclusion ~ ordered like mu
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -2.0]])
    z = KSubsetSampler(2, num_samples=4000)(logits, generator=torch.Generator().manual_seed(0))
    freq = z.mean(dim=0)[0]
    assert (freq[:-1] > freq[1:]).all()
    torch.testing.assert_close(freq.sum(), torch.tensor(2.0))


def test_eval_mode_is_deterministic_top_k():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0], [5.0, 4.0, 3.0, 2.0]])
    mask = torch.tensor([[True, True, True, True], [False, True, True, True]])
    sampler = KSubsetSampler(2, num_samples=5).eval()
    z = sampler(logits, mask)
    assert z.shape == (1, 2, 4)
    assert z[0].tolist() == [[0, 1, 0, 1], [0, 1, 1, 0]]


def test_eval_mode_with_several_samples_draws_hard_gumbel_top_k():
    gen = torch.Generator().manual_seed(3)
    logits = torch.zeros(2, 10)   # all ties: the MAP state would always pick the first k
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 7:] = False
    sampler = KSubsetSampler(3, num_samples=2, num_eval_samples=400).eval()
    z = sampler(logits, mask, generator=gen)
    assert z.shape == (400, 2, 10) and not z.requires_grad
    assert (z.sum(-1) == 3).all() and (z[:, ~mask] == 0).all()
    # uniform logits: every valid entry is included with probability k / n_valid
    torch.testing.assert_close(z.mean(0)[0], torch.full((10,), 0.3), atol=0.08, rtol=0)
    torch.testing.assert_close(z.mean(0)[1, :7], torch.full((7,), 3 / 7), atol=0.08, rtol=0)
    again = sampler(logits, mask, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, again)


def test_per_call_tensor_k():
    logits = torch.randn(3, 9)
    z = KSubsetSampler(1).eval()(logits, k=torch.tensor([0, 4, 9]))
    assert z.sum(-1).tolist() == [[0.0, 4.0, 9.0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="estimator"):
        KSubsetSampler(2, estimator="reinforce")
    with pytest.raises(ValueError, match="num_samples"):
        KSubsetSampler(2, num_samples=0)
    with pytest.raises(ValueError, match="num_eval_samples"):
        KSubsetSampler(2, num_eval_samples=0)
    with pytest.raises(ValueError, match="mask"):
        KSubsetSampler(2)(torch.randn(2, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="floating"):
        KSubsetSampler(2)(torch.ones(2, 3, dtype=torch.long))


def test_gumbel_noise_is_finite_and_standard():
    from graphlab.rewiring.sampler import _gumbel  # noqa: PLC2701 - unit test of the noise

    g = _gumbel(torch.Size((200_000,)), torch.zeros(1), torch.Generator().manual_seed(0))
    assert torch.isfinite(g).all()
    # Gumbel(0, 1): mean = Euler-Mascheroni constant, variance = pi^2 / 6
    assert abs(g.mean().item() - 0.5772) < 0.01
    assert abs(g.var().item() - torch.pi ** 2 / 6) < 0.03


# ----------------------------------------------------------------- infinite logits (issue 18)
INF = float("inf")


def _masked_and_forced_logits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 10, generator=gen)
    absent = torch.rand(4, 10, generator=gen) < 0.3
    forced = torch.zeros(4, 10, dtype=torch.bool)
    forced[0, 2] = forced[2, 7] = forced[2, 8] = True
    absent &= ~forced
    return logits.masked_fill(absent, -INF).masked_fill(forced, INF), absent, forced


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_infinite_logits_are_never_or_always_sampled(estimator):
    """-inf entries are never sampled, +inf always (counted against k); gradients are finite
    and zero on infinite entries (every estimator returned NaN before)."""
    logits, absent, forced = _masked_and_forced_logits(3)
    logits.requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    sampler = KSubsetSampler(3, estimator=estimator, num_samples=50)
    z = sampler(logits, generator=gen)
    assert torch.isfinite(z).all()
    assert (z.detach()[:, absent] == 0).all() and (z.detach()[:, forced] == 1).all()
    assert (z.detach().sum(-1) == 3).all()
    (z * torch.randn(10, generator=gen)).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[absent | forced] == 0).all() and logits.grad.abs().sum() > 0
    sampler.eval()
    for num_eval in (1, 7):
        sampler.num_eval_samples = num_eval
        z = sampler(logits.detach(), generator=gen)
        assert (z[:, absent] == 0).all() and (z[:, forced] == 1).all()
        assert (z.sum(-1) == 3).all()


def test_infinite_logits_sample_like_the_reduced_problem():
    """With the same noise, -inf equals a masked entry and +inf equals a masked entry plus one
    unit of k spent: the samples on the other entries are identical."""
    logits = torch.tensor([[1.0, -INF, 0.0, 0.5, INF, -1.0]])
    reduced = logits.masked_fill(torch.isinf(logits), 0.0)
    mask = torch.isfinite(logits)
    for estimator in ESTIMATORS:
        sampler = KSubsetSampler(3, estimator, num_samples=200)
        z = sampler(logits, generator=torch.Generator().manual_seed(1))
        ref = sampler(reduced, mask, k=2, generator=torch.Generator().manual_seed(1))
        assert torch.equal(z.detach()[..., mask[0]], ref.detach()[..., mask[0]])
        assert (z.detach()[..., 4] == 1).all()


def test_k_larger_than_the_unmasked_entries_is_an_error():
    logits = torch.tensor([[0.0, -INF, -INF], [0.0, 1.0, 2.0]])
    for mode in ("train", "eval"):
        sampler = KSubsetSampler(2)
        getattr(sampler, mode)()
        with pytest.raises(ValueError, match=r"k = 2 exceeds .* row 0"):
            sampler(logits)
    with pytest.raises(ValueError, match=r"\+inf"):
        KSubsetSampler(1)(torch.tensor([[INF, INF, 0.0]]))


# ------------------------------------------------------------------ conformance suite (issue 17)
class NodeSubsets(nn.Module):
    """Scores the nodes of a padded batch ``[G, W, 8]``, masks those with ``x[..., 1] > 1`` by a
    ``-inf`` logit, and picks ``k`` nodes per graph with a :class:`KSubsetSampler` (``eval()``:
    the MAP subset). Returns the exact marginals and the subset ``[G, W]`` (the differentiable
    output first: gradcheck's fast mode mismatches outputs when one without gradient comes
    first). The conformance checks then test the equivariance and batch-composition invariance
    of both, the float64 gradient of the marginals, empty graphs, masking, autocast and a
    fullgraph compile of the sampler."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 1)
        self.sampler = KSubsetSampler(k)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                k: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.lin(x).squeeze(-1).masked_fill(~mask | (x[..., 1] > 1.0), -INF)
        if k is None:  # at most k per graph: clip to the nodes that are not masked
            k = torch.clamp((logits > -INF).sum(-1), max=self.sampler.k)
        z = self.sampler(logits, mask, k=k, max_k=self.sampler.k)[0]
        mu = k_subset_marginals(logits, k, mask, max_k=self.sampler.k)
        return mu, z


def _pick_nodes(m: NodeSubsets, b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    # a fixed row width: the k-subset DP loops over the width, so torch.compile specialises on
    # it (PR-MPNN's rows are capped by num_candidates the same way)
    x, mask = to_dense_batch(b.x, b.batch, batch_size=b.num_graphs, max_num_nodes=WIDTH)
    mu, z = m(x, mask, getattr(b, "subset_k", None))
    return mu[mask], z[mask]


WIDTH = 16  # > the largest conformance graph (11 nodes, 14 with isolated ones)


def _nan_logit(b: Batch) -> Batch:
    b.x = b.x.clone()
    b.x[0] = float("nan")
    return b


def _k_too_large(b: Batch) -> Batch:
    b.subset_k = torch.full((b.num_graphs,), 100)
    return b


def _k_negative(b: Batch) -> Batch:
    b.subset_k = torch.full((b.num_graphs,), -1)
    return b


CASES = [
    LayerCase(name="ksubset-sampler", make_module=NodeSubsets, forward=_pick_nodes,
              levels=("node", "node"),
              bad_inputs={"logit_nan": _nan_logit, "k_exceeds_unmasked": _k_too_large,
                          "k_negative": _k_negative},
              skip={"isolated_nodes": "added nodes join their graph's group and compete for "
                    "its k slots"},
              fullgraph=True),
]


@pytest.mark.parametrize("case,check", conformance_params(CASES))
def test_conformance(case, check):
    CHECKS[check](case)


def test_conformance_case_picks_exactly_k_unmasked_nodes_per_graph():
    torch.manual_seed(0)
    m = NodeSubsets(3).eval()
    b = Batch.from_data_list([random_graph(n, seed=n) for n in (2, 7, 11)])
    mu, z = _pick_nodes(m, b)
    unmasked = b.x[:, 1] <= 1.0
    expected = torch.clamp(torch.bincount(b.batch[unmasked], minlength=3), max=3)
    assert torch.equal(torch.bincount(b.batch, weights=z, minlength=3), expected.float())
    torch.testing.assert_close(torch.bincount(b.batch, weights=mu, minlength=3),
                               expected.float())
    assert (z[~unmasked] == 0).all() and (mu[~unmasked] == 0).all()
