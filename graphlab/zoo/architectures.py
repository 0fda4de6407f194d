r"""The architectures of the model zoos: MLPs, residual MLPs, 1-D and 2-D convnets on the 8x8
digits and SIREN implicit neural representations, built from a member's configuration dict
(:func:`make_model`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ResMLP", "Conv1dNet", "CNN2d", "Sine", "SIREN", "make_model",
           "input_shape", "example_input"]

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
    r"""Digits as 1x8x8 images: ``depth`` 3x3 convs (optional BatchNorm), global mean, linear.

    With ``pool``, each conv block is ``conv -> norm -> act -> maxpool(2) -> dropout`` (the
    Small CNN Zoo's pattern, Unterthiner et al. 2020) and the classifier reads the flattened
    ``width x s x s`` map (:math:`s = \lceil 8 / 2^{depth} \rceil`) instead of a global mean:
    without it (the original zoos) the convs see a 3x3 / 5x5 window and the global mean washes
    out where a stroke is.
    """

    def __init__(self, width: int, depth: int, act: str = "relu", norm: bool = False,
                 pool: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.pool = pool
        self.drop = nn.Dropout(dropout)
        chans = [1] + [width] * depth
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1) for a, b in
                                    zip(chans[:-1], chans[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm2d(width) if norm else nn.Identity()
                                    for _ in range(depth)])
        self.act = ACTIVATIONS[act]()
        side = math.ceil(8 / 2 ** depth) if pool else 1
        self.out = nn.Linear(width * side * side, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = x  # [B, 1, 8, 8]
        if self.pool:  # 8x8 -> 4x4 -> 2x2 -> 1x1, then every position to the classifier
            for conv, norm in zip(self.convs, self.norms):
                h = self.drop(F.max_pool2d(self.act(norm(conv(h))), 2, ceil_mode=True))
            return self.out(h.flatten(1))
        for conv, norm in zip(self.convs, self.norms):
            h = self.act(norm(conv(h)))
        return self.out(h.mean(dim=(-2, -1)))


class Sine(nn.Module):
    r"""The sine activation :math:`\sin(x)` of SIREN.

    SIREN computes :math:`\sin(\omega_0 (W h + b))`; zoo members store :math:`\omega_0 W` and
    :math:`\omega_0 b` (see :class:`SIREN`), so the activation itself has no parameter.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


class SIREN(nn.Sequential):
    r"""A SIREN implicit neural representation (`"Implicit Neural Representations with Periodic
    Activation Functions" <https://arxiv.org/abs/2006.09661>`_, Sitzmann et al. 2020):
    ``in_dim -> width`` (x ``depth`` hidden layers) ``-> out_dim`` with sine activations,

    .. math::
        h_1 = \sin(\omega_0 (W_1 x + b_1)), \quad h_{l+1} = \sin(\omega_0 (W_{l+1} h_l +
        b_{l+1})), \quad f(x) = W_L h_{L-1} + b_L.

    The module is a plain :class:`~torch.nn.Sequential` of ``Linear`` and :class:`Sine` with
    :math:`\omega_0` folded into the weights (``Linear`` holds :math:`\omega_0 W`,
    :math:`\omega_0 b`), so a member's function is its weights alone and graph metanetworks see
    an ordinary MLP. :meth:`reset_parameters` draws SIREN's initialisation in that folded form:
    first layer :math:`\omega_0 \cdot U(-1/n, 1/n)`, hidden layers
    :math:`U(-\sqrt{6/n}, \sqrt{6/n})`, the last layer :math:`U(-\sqrt{6/n}, \sqrt{6/n}) /
    \omega_0`, with :math:`n` the fan-in, and biases PyTorch's default
    :math:`U(-1/\sqrt{n}, 1/\sqrt{n})` (times :math:`\omega_0` in the sine layers).

    Args:
        in_dim: coordinate dimension (2 for images).
        width: hidden width.
        depth: number of hidden (sine) layers.
        out_dim: output channels (1 for grey-scale intensity).
        w0: the frequency :math:`\omega_0` (30 in the paper).

    Shapes:
        - **input:** coordinates :math:`(*, \text{in\_dim})`
        - **output:** values :math:`(*, \text{out\_dim})`
    """

    def __init__(self, in_dim: int = 2, width: int = 32, depth: int = 2, out_dim: int = 1,
                 w0: float = 30.0) -> None:
        sizes = [in_dim] + [width] * depth + [out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < depth:
                layers.append(Sine())
        super().__init__(*layers)
        self.in_dim, self.width, self.depth, self.out_dim, self.w0 = in_dim, width, depth, \
            out_dim, w0
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """SIREN's initialisation in folded form (drawn from ``generator`` when given)."""
        lins = [m for m in self if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(lins):
                n = lin.in_features
                bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / self.w0
                scale = 1.0 if i == len(lins) - 1 else self.w0  # the last layer is linear
                lin.weight.uniform_(-bound, bound, generator=generator).mul_(scale)
                lin.bias.uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n), generator=generator)
                lin.bias.mul_(scale)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_dim}, {self.width}, depth={self.depth}, "
                f"out_dim={self.out_dim}, w0={self.w0})")


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
        return CNN2d(w, d, a, bool(config.get("norm", False)), bool(config.get("pool", False)),
                     float(config.get("dropout", 0.0)))
    if arch == "siren":
        return SIREN(int(config.get("in_dim", 2)), w, d, int(config.get("out_dim", 1)),
                     float(config.get("w0", 30.0)))
    raise ValueError(f"unknown arch {arch!r}")


def input_shape(config: dict[str, Any]) -> tuple[int, ...]:
    """Per-sample input shape of a member (digits are reshaped per architecture)."""
    return {"conv1d": (8, 8), "cnn2d": (1, 8, 8)}.get(config["arch"],
                                                      (int(config.get("in_dim", 64)),))


def example_input(config: dict[str, Any], batch: int = 2) -> Tensor:
    """An all-zero input batch of the member's shape (for tracing)."""
    return torch.zeros(batch, *input_shape(config))
