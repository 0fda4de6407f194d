"""Weight matching over the derived permutation spec, and interpolation barriers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graphlab.metanets import permutation_spec, random_symmetry
from graphlab.metanets.matching import interpolation_barrier, weight_matching
from graphlab.zoo import CNN2d, ResMLP, digits_data, train_member


def _mlp(seed: int, width: int = 12) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 3)).double()


@pytest.mark.parametrize("make,shape", [
    (lambda s: _mlp(s), (6,)),
    (lambda s: CNN2d(4, 2, "relu", norm=False).double(), (1, 8, 8)),
    (lambda s: ResMLP(5, 6, 2, 3, "tanh", norm=True).double(), (5,)),
])
def test_matched_model_computes_same_function(make, shape):
    torch.manual_seed(0)
    a = make(0)
    torch.manual_seed(1)
    b = make(1)
    x = torch.randn(7, *shape, dtype=torch.float64)
    ex = torch.zeros(2, *shape, dtype=torch.float64)
    bm, perm = weight_matching(a, b, ex, return_perm=True)
    assert permutation_spec(b, ex).contains(perm)
    torch.testing.assert_close(bm(x), b(x))
    # matching can only increase the weight alignment <theta_a, P theta_b>
    dot = lambda m: sum((p * q).sum() for p, q in zip(a.parameters(), m.parameters()))  # noqa: E731
    assert dot(bm) >= dot(b) - 1e-9


def test_matching_recovers_a_hidden_permutation():
    a = _mlp(0, width=16)
    b = random_symmetry(a, seed=5)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    bm = weight_matching(a, b)
    for p, q in zip(a.parameters(), bm.parameters()):
        torch.testing.assert_close(p, q)


def test_barrier_lower_after_matching():
    torch.set_num_threads(1)
    cfg = {"arch": "mlp", "width": 32, "depth": 2, "act": "relu", "lr": 0.05, "batch_size": 64,
           "weight_decay": 0.0, "epochs": 4, "train_fraction": 0.5}
    a, _ = train_member({**cfg, "seed": 1})
    b, _ = train_member({**cfg, "seed": 2})
    _, _, xt, yt = digits_data()
    before = interpolation_barrier(a, b, (xt, yt))
    after = interpolation_barrier(a, weight_matching(a, b), (xt, yt))
    assert before["barrier"] > 0
    assert after["barrier"] <= before["barrier"]
    assert len(before["losses"]) == len(before["alphas"]) == 11


def test_barrier_of_identical_models_is_zero():
    a = _mlp(0)
    x, y = torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 3, (20,))
    assert interpolation_barrier(a, a, (x, y))["barrier"] == pytest.approx(0.0, abs=1e-12)


def test_mismatched_architectures_raise():
    with pytest.raises(ValueError, match="same architecture"):
        weight_matching(_mlp(0, 8), _mlp(0, 12))
