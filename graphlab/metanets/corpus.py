"""A corpus of small architectures covering every layer the converters support.

Used by the metanet tests and benchmarks: an MLP, a CNN with BatchNorm and
Flatten, a 1-D CNN, a ResNet basic block (identity and projection shortcuts), grouped
convolutions, a transformer encoder block with multi-head attention, and a tiny language model
with tied embedding / output weights; plus a CIFAR-style ResNet-18 for scale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphlab.metanets.init import seeded_module

__all__ = ["Arch", "CORPUS", "BasicBlock", "ResNet", "TransformerBlock", "TinyLM", "resnet18",
           "make_mlp"]


def make_mlp(sizes: tuple[int, ...] = (5, 8, 8, 3), act: type[nn.Module] = nn.ReLU) -> nn.Module:
    """``Linear -> act -> ... -> Linear`` as an ``nn.Sequential``."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 conv + BN projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (3x3 stem, no max-pool), global average pooling, linear head."""

    def __init__(self, blocks: tuple[int, ...] = (1, 1), widths: tuple[int, ...] = (4, 8),
                 in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        layers = []
        cin = widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def resnet18(num_classes: int = 10) -> ResNet:
    """ResNet-18 widths and depths (11.2M parameters) with a CIFAR 3x3 stem."""
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), 3, num_classes)


class TransformerBlock(nn.Module):
    """Pre-LN transformer encoder block: ``x + MHA(LN(x))``, then ``x + FF(LN(x))``."""

    def __init__(self, d: int = 8, heads: int = 2, ff: int = 16) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, ff)
        self.ff2 = nn.Linear(ff, d)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.ff2(F.gelu(self.ff1(self.ln2(x))))


class TinyLM(nn.Module):
    """Embedding -> transformer block -> LayerNorm -> output head tied to the embedding."""

    def __init__(self, vocab: int = 11, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.block = TransformerBlock(d, heads, 2 * d)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight  # weight tying

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.ln(self.block(self.emb(tokens))))


def _cnn_bn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))


def _cnn1d() -> nn.Module:
    return nn.Sequential(nn.Conv1d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv1d(4, 4, 3, dilation=2),
                         nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 2))


def _grouped() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1, stride=2, groups=2), nn.ReLU(),
        nn.Conv2d(6, 6, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))


@dataclass(frozen=True)
class Arch:
    """One corpus entry: a module factory and an example-input factory ``(batch, seed)``."""

    name: str
    make: Callable[[], nn.Module]
    example_input: Callable[[int, int], Tensor]

    def build(self, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
        """A seeded instance with random (non-default) BatchNorm statistics, in eval mode. Its
        weights come from generators seeded with ``seed``; the global RNG is left untouched."""
        m = seeded_module(self.make, torch.Generator().manual_seed(seed)).to(dtype)
        gen = torch.Generator().manual_seed(seed + 1000)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.running_mean.copy_(torch.randn(mod.num_features, generator=gen))
                    mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                    mod.weight.copy_(torch.randn(mod.num_features, generator=gen))
                    mod.bias.copy_(torch.randn(mod.num_features, generator=gen))
                if isinstance(mod, nn.LayerNorm):
                    mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen))
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen))
                if isinstance(mod, nn.MultiheadAttention) and mod.in_proj_bias is not None:
                    mod.in_proj_bias.copy_(0.5 * torch.randn(mod.in_proj_bias.shape, generator=gen))
        return m.eval()

    def input(self, batch: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64) -> Tensor:
        x = self.example_input(batch, seed)
        return x.to(dtype) if x.is_floating_point() else x


def _tokens(b: int, seed: int) -> Tensor:
    return torch.randint(0, 11, (b, 6), generator=torch.Generator().manual_seed(seed))


def _randn(*shape: int) -> Callable[[int, int], Tensor]:
    return lambda b, seed: torch.randn(b, *shape, generator=torch.Generator().manual_seed(seed))


#: name -> :class:`Arch`
CORPUS: dict[str, Arch] = {a.name: a for a in [
    Arch("mlp", make_mlp, _randn(5)),
    Arch("cnn_bn", _cnn_bn, _randn(2, 8, 8)),
    Arch("cnn1d", _cnn1d, _randn(3, 12)),
    Arch("resnet_block", ResNet, _randn(3, 8, 8)),
    Arch("grouped_conv", _grouped, _randn(3, 8, 8)),
    Arch("transformer", TransformerBlock, _randn(5, 8)),
    Arch("tied_lm", TinyLM, _tokens),
]}
