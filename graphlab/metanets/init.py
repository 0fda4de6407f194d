r"""Parameter initialisation from an explicit :class:`torch.Generator`.

``torch.nn`` layers draw their initial weights from the global RNG, so the usual way to get a
reproducible network is ``torch.manual_seed(seed)`` before building it, which silently changes
the random state of everything that runs afterwards. :func:`init_parameters` re-draws every
parameter of an already built module from a generator instead, with the same distributions as
the layers' own ``reset_parameters()``; the global RNG is neither read nor advanced.
:func:`seeded_module` builds a module and initialises it that way, leaving the global RNG state
exactly as it found it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

__all__ = ["init_parameters", "seeded_module"]

M = TypeVar("M", bound=nn.Module)

# layers whose reset_parameters() is deterministic (ones / zeros / running statistics)
_DETERMINISTIC = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm,
                  nn.RMSNorm)


def _fan_in(w: Tensor) -> int:
    return w.size(1) * math.prod(w.shape[2:]) if w.dim() >= 2 else w.numel()


def _kaiming_layer(weight: Tensor, bias: Tensor | None, gen: torch.Generator) -> None:
    r"""``nn.Linear`` / ``nn.ConvNd`` default: Kaiming-uniform weight (``a = sqrt(5)``), bias
    uniform in :math:`\pm 1/\sqrt{\text{fan\_in}}`."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=gen)
    if bias is not None:
        fan_in = _fan_in(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound, generator=gen)


def _pyg_linear(m: nn.Module, gen: torch.Generator) -> None:
    """``torch_geometric.nn.Linear``, following its ``weight_initializer`` /
    ``bias_initializer``."""
    w = m.weight
    if isinstance(w, nn.parameter.UninitializedParameter):
        raise ValueError("init_parameters needs materialised parameters: run one forward pass "
                         "through the lazy torch_geometric.nn.Linear first")
    wi, bi = getattr(m, "weight_initializer", None), getattr(m, "bias_initializer", None)
    if wi == "glorot":
        bound = math.sqrt(6.0 / (w.size(-2) + w.size(-1)))
        nn.init.uniform_(w, -bound, bound, generator=gen)
    elif wi == "uniform":
        bound = 1.0 / math.sqrt(w.size(-1))
        nn.init.uniform_(w, -bound, bound, generator=gen)
    elif wi in (None, "kaiming_uniform"):
        nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=gen)
    else:
        raise ValueError(f"init_parameters: unsupported weight_initializer {wi!r}")
    if m.bias is not None:
        if bi == "zeros":
            nn.init.zeros_(m.bias)
        else:
            bound = 1.0 / math.sqrt(w.size(-1)) if w.size(-1) > 0 else 0.0
            nn.init.uniform_(m.bias, -bound, bound, generator=gen)


def init_parameters(module: nn.Module, generator: torch.Generator | int) -> nn.Module:
    r"""Re-initialise every parameter of ``module`` in place from ``generator``, with the
    distributions of the layers' own defaults, and return ``module``.

    Supported: ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``nn.Embedding``, ``nn.MultiheadAttention``,
    normalisation layers, and PyG's ``Linear``, ``GCNConv`` and ``GINConv``. A module that owns a
    parameter of any other kind raises ``ValueError`` (rather than falling back to the global
    RNG). Modules are visited in registration order, so the result is a pure function of the
    architecture and the generator's state.

    Args:
        module: the module to initialise.
        generator: a CPU ``torch.Generator`` (advanced in place) or an integer seed.
    """
    gen = torch.Generator().manual_seed(generator) if isinstance(generator, int) else generator
    # MultiheadAttention zeroes its out-projection bias in its own reset, after Linear's init
    mha_out = {id(m.out_proj) for m in module.modules() if isinstance(m, nn.MultiheadAttention)}
    with torch.no_grad():
        for m in module.modules():
            own = [n for n, _ in m.named_parameters(recurse=False)]
            if not own:
                continue
            if isinstance(m, nn.Linear | nn.modules.conv._ConvNd):
                _kaiming_layer(m.weight, None if id(m) in mha_out else m.bias, gen)
                if id(m) in mha_out and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, generator=gen)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()
            elif isinstance(m, nn.MultiheadAttention):
                for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    p = getattr(m, name, None)
                    if p is not None:
                        nn.init.xavier_uniform_(p, generator=gen)
                if m.in_proj_bias is not None:
                    nn.init.zeros_(m.in_proj_bias)
                for p in (m.bias_k, m.bias_v):
                    if p is not None:
                        nn.init.xavier_normal_(p, generator=gen)
            elif isinstance(m, _DETERMINISTIC):
                m.reset_parameters()
            else:
                _init_pyg(m, own, gen)
    return module


def _init_pyg(m: nn.Module, own: list[str], gen: torch.Generator) -> None:
    from torch_geometric.nn import GCNConv, GINConv
    from torch_geometric.nn import Linear as PygLinear

    if isinstance(m, PygLinear):
        _pyg_linear(m, gen)
    elif isinstance(m, GCNConv) and own == ["bias"]:
        nn.init.zeros_(m.bias)
    elif isinstance(m, GINConv) and own == ["eps"]:
        m.eps.fill_(m.initial_eps)
    elif type(m).__module__.startswith("torch_geometric.nn.norm."):
        m.reset_parameters()  # PyG's norms start at weight 1 / bias 0 (the metanets' resolved norms)
    else:
        t = type(m)
        raise ValueError(f"init_parameters does not know how to initialise {t.__module__}."
                         f"{t.__qualname__} (parameters {own}); initialise it explicitly")


def seeded_module(factory: Callable[[], M], generator: torch.Generator | int) -> M:
    """Build ``factory()`` and initialise its parameters from ``generator``
    (:func:`init_parameters`).

    The layers' constructors draw throw-away initial weights from the global RNG; they run under
    :func:`torch.random.fork_rng`, so the global (CPU) RNG state is restored afterwards and the
    returned weights depend only on ``generator``.
    """
    with torch.random.fork_rng(devices=[]):
        module = factory()
    return init_parameters(module, generator)
