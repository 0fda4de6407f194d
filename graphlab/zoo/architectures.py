r"""The architectures of the model zoos: MLPs, residual MLPs, 1-D and 2-D convnets on the 8x8
digits, built from a member's configuration dict (:func:`make_model`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ResMLP", "Conv1dNet", "CNN2d", "make_model", "input_shape",
           "example_input"]

#: activation name -> module class, as used in member configurations
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh,
                                           "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
                                           "silu": nn.SiLU}


class ResMLP(nn.Module):
    """``in -> width``, then ``depth`` residual blocks ``h + act(norm(W h))``, then ``-> out``."""

    def __init__(self, in_dim: int, width: int, depth: int, out_dim: int, act: str = "relu",
                 norm: bool = False, residual: bool = True) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.norms = nn.ModuleList([nn.LayerNorm(width) if norm else nn.Identity()
                                    for _ in range(depth)])
        self.act = ACTIVATIONS[act]()
        self.out = nn.Linear(width, out_dim)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        for lin, norm in zip(self.layers, self.norms):
            z = self.act(norm(lin(h)))
            h = h + z if self.residual else z
        return self.out(h)


class Conv1dNet(nn.Module):
    """Digits as 8 channels x 8 positions: ``depth`` 1-D convs (kernel 3), mean-pool, linear."""

    def __init__(self, width: int, depth: int, act: str = "relu") -> None:
        super().__init__()
        chans = [8] + [width] * depth
        self.convs = nn.ModuleList([nn.Conv1d(a, b, 3, padding=1) for a, b in
                                    zip(chans[:-1], chans[1:])])
        self.act = ACTIVATIONS[act]()
        self.out = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = x  # [B, 8, 8]
        for conv in self.convs:
            h = self.act(conv(h))
        return self.out(h.mean(dim=-1))


class CNN2d(nn.Module):
    """Digits as 1x8x8 images: ``depth`` 3x3 convs (optional BatchNorm), global mean, linear."""

    def __init__(self, width: int, depth: int, act: str = "relu", norm: bool = False) -> None:
        super().__init__()
        chans = [1] + [width] * depth
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1) for a, b in
                                    zip(chans[:-1], chans[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm2d(width) if norm else nn.Identity()
                                    for _ in range(depth)])
        self.act = ACTIVATIONS[act]()
        self.out = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = x  # [B, 1, 8, 8]
        for conv, norm in zip(self.convs, self.norms):
            h = self.act(norm(conv(h)))
        return self.out(h.mean(dim=(-2, -1)))


def _mlp(sizes: Sequence[int], act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    return nn.Sequential(*layers)


def make_model(config: dict[str, Any]) -> nn.Module:
    """The (untrained) network described by a member's ``config``."""
    arch, a = config["arch"], config.get("act", "relu")
    w, d = int(config["width"]), int(config["depth"])
    if arch == "mlp":
        return _mlp([config.get("in_dim", 64)] + [w] * d + [config.get("out_dim", 10)], a)
    if arch == "resmlp":
        return ResMLP(config.get("in_dim", 64), w, d, config.get("out_dim", 10), a,
                      bool(config.get("norm", False)), bool(config.get("residual", True)))
    if arch == "conv1d":
        return Conv1dNet(w, d, a)
    if arch == "cnn2d":
        return CNN2d(w, d, a, bool(config.get("norm", False)))
    raise ValueError(f"unknown arch {arch!r}")


def input_shape(config: dict[str, Any]) -> tuple[int, ...]:
    """Per-sample input shape of a member (digits are reshaped per architecture)."""
    return {"conv1d": (8, 8), "cnn2d": (1, 8, 8)}.get(config["arch"],
                                                      (int(config.get("in_dim", 64)),))


def example_input(config: dict[str, Any], batch: int = 2) -> Tensor:
    """An all-zero input batch of the member's shape (for tracing)."""
    return torch.zeros(batch, *input_shape(config))
