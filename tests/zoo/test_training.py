"""Zoo member training: determinism and the function-complexity label."""

from __future__ import annotations

import pytest
import torch

from graphlab.zoo import function_complexity, member_config, train_member
from graphlab.zoo.training import INITS, ROUNDS


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
    cfg = dict(member_config("digits-mlp", 0, 1), lr=1e6, act="relu", steps=30,
               train_fraction=0.5, weight_decay=1e-3)
    m1, r1 = train_member(cfg)
    m2, r2 = train_member(cfg)
    assert len(r1["curve"]) == ROUNDS
    assert any(c["train_loss"] != c["train_loss"] or c["train_loss"] > 10 for c in r1["curve"])
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.isfinite(a).all() and torch.equal(a, b)


def test_step_budget_and_knobs():
    """``steps`` trains that many mini-batches in ROUNDS evaluated rounds whatever the train
    fraction; ``optimizer`` / ``init`` / ``dropout`` / ``pool`` are honoured, deterministically."""
    base = dict(member_config("digits-cnn", 0, 0), steps=20, dropout=0.3, train_fraction=0.05,
                batch_size=128, lr=0.01)
    runs = {}
    for init in ("xavier", "he", "orthogonal"):
        m, r = train_member(dict(base, init=init))
        assert len(r["curve"]) == ROUNDS and r["num_train"] == max(32, int(0.05 * 1257))
        runs[init] = m
    assert not torch.equal(runs["xavier"].out.weight, runs["he"].out.weight)
    m, _ = train_member(dict(base, init="orthogonal"))
    assert torch.equal(m.out.weight, runs["orthogonal"].out.weight)
    assert runs["he"].pool and runs["he"].out.in_features == \
        base["width"] * (8 // 2 ** base["depth"] or 1) ** 2
    assert set(INITS) >= {"default", "xavier", "he", "orthogonal", "normal"}
    with pytest.raises(ValueError, match="unknown init"):
        train_member(dict(base, init="nope"))
    with pytest.raises(ValueError, match="unknown optimizer"):
        train_member(dict(base, optimizer="nope"))


def test_healthy_cnn_member_learns():
    """A mid-range digits-cnn configuration (the preset's median knobs) trains well above
    chance: the preset's ranges are meant to converge."""
    cfg = dict(member_config("digits-cnn", 0, 0), width=8, depth=2, act="relu", norm=False,
               dropout=0.0, init="default", lr=3e-3, batch_size=64, weight_decay=0.0,
               steps=100, train_fraction=0.5)
    _, r = train_member(cfg)
    assert r["test_acc"] > 0.6
