"""Zoo member training: determinism and the function-complexity label."""

from __future__ import annotations

import torch

from graphlab.zoo import function_complexity, member_config, train_member


def test_function_complexity_orders_frequencies():
    class Sine(torch.nn.Module):
        def __init__(self, f: float) -> None:
            super().__init__()
            self.f = f
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sin(self.f * x[:, :1]) + self.p

    assert function_complexity(Sine(0.0)) == 0.0
    assert function_complexity(Sine(2.0)) < function_complexity(Sine(20.0))


def test_train_member_random_nets_untrained():
    cfg = member_config("random-nets", 0, 5)
    m1, r1 = train_member(cfg)
    m2, r2 = train_member(cfg)
    assert r1 == r2 and r1["complexity"] > 0
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)


def test_diverging_member_keeps_its_last_finite_weights():
    """A batch with a non-finite loss is not stepped (no momentum or weight-decay update): the
    member stays finite and deterministic, and its curve records every epoch."""
    cfg = dict(member_config("digits-mlp", 0, 1), lr=1e6, act="relu", epochs=3,
               train_fraction=0.5, weight_decay=1e-3)
    m1, r1 = train_member(cfg)
    m2, r2 = train_member(cfg)
    assert len(r1["curve"]) == 3
    assert any(c["train_loss"] != c["train_loss"] or c["train_loss"] > 10 for c in r1["curve"])
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.isfinite(a).all() and torch.equal(a, b)
