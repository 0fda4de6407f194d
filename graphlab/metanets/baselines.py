r"""Weight-space baselines beside the graph metanets: an MLP on flattened weights and the
permutation-equivariant neural functionals of NFN (Zhou et al., NeurIPS 2023) from the authors'
own ``nfn`` package (optional: ``pip install graphlab[metanets-baselines]``).

Both take the ``[B, P]`` flat parameter batches of :class:`~graphlab.metanets.weightspace.WeightSpace`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from graphlab.metanets._encoding import check_contract
from graphlab.metanets.weightspace import WeightSpace
from graphlab.models._common import Act, resolve_act

__all__ = ["FlatMLP", "NFNClassifier", "nfn_available"]


class FlatMLP(nn.Module):
    r"""An MLP on the flattened parameter vector, the symmetry-blind baseline of the INR
    classification papers (DWSNets, NFN, Neural Graphs report it near 17-18% on MNIST INRs):

    .. math::
        \mathbf{y} = \mathrm{MLP}\big(\operatorname{vec}(\theta)\big)

    Args:
        in_channels (int): Number of parameters :math:`P`.
        hidden_channels (int): Hidden size.
        out_channels (int): Output size.
        num_layers (int): Linear layers (:math:`\geq 2`). (default: :obj:`3`)
        dropout (float): Dropout after every hidden layer. (default: :obj:`0.0`)
        act (str or Callable, optional): activation (PyG's ``activation_resolver``).
            (default: :obj:`"relu"`)

    Shapes:
        - **input:** :math:`(B, P)`
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 3, *, dropout: float = 0.0, act: Act = "relu") -> None:
        super().__init__()
        check_contract(in_channels, hidden_channels, out_channels, num_layers, dropout)
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2, got {num_layers}")
        self.in_channels, self.hidden_channels, self.out_channels = (in_channels,
                                                                     hidden_channels,
                                                                     out_channels)
        self.num_layers = num_layers
        sizes = [in_channels] + [hidden_channels] * (num_layers - 1)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), resolve_act(act), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], out_channels))

    def reset_parameters(self) -> None:
        for m in self.net:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, flat: Tensor) -> Tensor:
        if flat.dim() != 2 or flat.size(1) != self.in_channels:
            raise ValueError(f"expected flat parameters [B, {self.in_channels}], got "
                             f"{list(flat.shape)}")
        return self.net(flat)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers})")


def nfn_available() -> str | None:
    """``None`` when the ``nfn`` package imports, else the one-line reason it does not."""
    try:
        import nfn.layers  # noqa: F401
    except ImportError as exc:
        return (f"the NFN baseline needs the authors' package: pip install "
                f"'graphlab[metanets-baselines]' ({exc})")
    return None


class NFNClassifier(nn.Module):
    r"""The invariant neural functional of `"Permutation Equivariant Neural Functionals"
    <https://arxiv.org/abs/2302.14040>`_ (Zhou et al., NeurIPS 2023) for MLP weight spaces,
    built from the ``nfn`` package's own layers, as in its ``classify_siren`` experiment:
    ``num_layers`` equivariant layers (``HNPLinear``: hidden-neuron permutations, the MLP's
    true symmetry; or ``NPLinear`` with learned input/output embeddings) with ReLU, the
    matching invariant pooling, then an MLP head:

    .. math::
        \mathbf{y} = \rho\Big(\operatorname{Pool}\big(\sigma \circ L_K \circ \cdots \circ
        \sigma \circ L_1 (W, b)\big)\Big)

    Args:
        space (WeightSpace): the architecture (an MLP of ``Linear`` layers with biases).
        hidden_channels (int): Channels of the equivariant layers and of the head.
        out_channels (int): Output size.
        num_layers (int): Equivariant layers. (default: :obj:`2`)
        mode (str): ``"hnp"`` or ``"np"``. (default: :obj:`"hnp"`)
        dropout (float): Dropout in the head. (default: :obj:`0.0`)

    Shapes:
        - **input:** flat parameters :math:`(B, P)` in ``space``'s layout
        - **output:** :math:`(B, F_{out})`
    """

    def __init__(self, space: WeightSpace, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, *, mode: str = "hnp", dropout: float = 0.0) -> None:
        super().__init__()
        reason = nfn_available()
        if reason is not None:
            raise ImportError(reason)
        from nfn.common import ArraySpec, NetworkSpec
        from nfn.layers import HNPLinear, HNPPool, NPLinear, NPPool, TupleOp

        check_contract(1, hidden_channels, out_channels, num_layers, dropout)
        if mode not in ("hnp", "np"):
            raise ValueError(f"mode must be 'hnp' or 'np', got {mode!r}")
        self.space, self.mode = space, mode
        self.hidden_channels, self.out_channels, self.num_layers = (hidden_channels,
                                                                    out_channels, num_layers)
        probe = space.layers(torch.zeros(1, space.num_params))
        n = len(probe)
        # nfn's NetworkSpec: -1 marks a permutable axis (hidden neurons; HNP keeps the input
        # and output sizes, NP treats every axis as permutable)
        w_spec, b_spec = [], []
        for i, (w, _) in enumerate(probe):
            out_dim, in_dim = w.shape[1:]
            w_spec.append(ArraySpec((out_dim if i == n - 1 else -1, in_dim if i == 0 else -1)))
            b_spec.append(ArraySpec((out_dim if i == n - 1 else -1,)))
        self.spec = NetworkSpec(w_spec, b_spec)
        layer = HNPLinear if mode == "hnp" else NPLinear
        kw: dict[str, Any] = {} if mode == "hnp" else {"io_embed": True}
        blocks: list[nn.Module] = []
        c = 1
        for _ in range(num_layers):
            blocks += [layer(self.spec, c, hidden_channels, **kw), TupleOp(nn.ReLU())]
            c = hidden_channels
        self.equivariant = nn.Sequential(*blocks)
        pool = HNPPool if mode == "hnp" else NPPool
        self.pool = pool(self.spec)
        self.head = nn.Sequential(
            nn.Linear(hidden_channels * pool.get_num_outs(self.spec), hidden_channels),
            nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_channels, out_channels))

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, flat: Tensor) -> Tensor:
        from nfn.common import WeightSpaceFeatures

        layers = self.space.layers(flat)
        feats = WeightSpaceFeatures([w.unsqueeze(1) for w, _ in layers],
                                    [b.unsqueeze(1) for _, b in layers])
        return self.head(self.pool(self.equivariant(feats)).flatten(1))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.space.num_params}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, mode={self.mode!r})")
