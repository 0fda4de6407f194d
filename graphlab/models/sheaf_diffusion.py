"""Neural sheaf diffusion for node classification (learned or connection-Laplacian sheaves)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.transforms import Compose, RemoveSelfLoops, ToUndirected
from torch_geometric.typing import OptTensor

from graphlab.conv.sheaf_conv import SheafConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models._common import Act, CheckGraph, Norm, NormLayers, check_model_inputs, resolve_act
from graphlab.models.registry import register_model
from graphlab.transforms.connection_sheaf import ConnectionSheaf

__all__ = ["SheafDiffusion"]


class SheafDiffusion(nn.Module):
    r"""The discrete Neural Sheaf Diffusion model of `"Neural Sheaf Diffusion: A Topological
    Perspective on Heterophily and Oversmoothing in GNNs" <https://arxiv.org/abs/2202.04579>`_
    and, with ``maps="connection"``, the connection-Laplacian model of `"Sheaf Neural Networks
    with Connection Laplacians" <https://arxiv.org/abs/2206.08702>`_.

    .. math::
        \mathbf{X}^{(0)} = \mathrm{drop}(\sigma(\mathbf{W}_{in}\,
        \mathrm{drop}_{in}(\mathbf{x}))),\quad
        \mathbf{X}^{(l+1)} = \mathrm{norm}(\mathrm{SheafConv}_l(\mathbf{X}^{(l)})),\quad
        \hat{\mathbf{y}} = \mathbf{W}_{out} \mathbf{X}^{(L)}

    Every layer learns its own restriction maps from its input (``"diag"``, ``"orthogonal"``,
    ``"general"``). With ``"connection"`` the maps are fixed and passed as ``sheaf_maps``
    (``data.sheaf_maps`` from :class:`~graphlab.transforms.ConnectionSheaf`). The :attr:`transform`
    attribute is the pre-transform the data needs, which ``graphlab train`` applies once before
    training: an ``edge_index`` check, ``RemoveSelfLoops`` and ``ToUndirected`` (the sheaf
    Laplacian is defined on undirected graphs), followed for ``"connection"`` by
    :class:`~graphlab.transforms.ConnectionSheaf`, which computes the maps from the raw features.
    The model predicts per node (no readout; :class:`~graphlab.models.SheafGraphModel` is the
    graph-level variant) and the maps are learned from node features only (no ``edge_dim``).

    Args:
        in_channels (int): input feature width.
        hidden_channels (int): channels per stalk (the hidden width is
            ``stalk_dim * hidden_channels``).
        out_channels (int): number of classes.
        num_layers (int): number of diffusion steps (each with its own weights and maps).
            (default: ``2``)
        dropout (float): dropout on hidden features (inside each layer only on the diffusion
            branch). (default: ``0.0``)
        act (str or Callable): activation of the input embedding (PyG's
            ``activation_resolver``). (default: ``"elu"``, as in the paper)
        norm (str or Callable, optional): normalization after every diffusion step (PyG's
            ``normalization_resolver``). (default: :obj:`None`, as in the paper)
        stalk_dim (int): stalk dimension :math:`d`. (default: ``3``)
        maps (str): ``"diag"``, ``"orthogonal"``, ``"general"`` or ``"connection"``.
        input_dropout (float): dropout on the raw input features.
        orthogonal (str): ``"householder"`` or ``"cayley"``.
        edge_weights (bool): learned scales for orthogonal maps.
        num_points (int, optional): local-PCA neighbourhood size for ``"connection"``.
        act_kwargs, norm_kwargs (dict, optional): passed to the resolvers.
        **conv_kwargs: forwarded to :class:`~graphlab.conv.SheafConv`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)` (both directions of each edge, no self-loops), and for
          ``"connection"`` ``sheaf_maps`` :math:`(|\mathcal{E}|, 2, d, d)`
        - **output:** logits :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, *, dropout: float = 0.0, act: Act = "elu",
                 norm: Norm = None, stalk_dim: int = 3, maps: str = "diag",
                 input_dropout: float = 0.0, orthogonal: str = "householder",
                 edge_weights: bool = True, num_points: int | None = None,
                 act_kwargs: dict[str, Any] | None = None,
                 norm_kwargs: dict[str, Any] | None = None, **conv_kwargs: Any) -> None:
        super().__init__()
        if maps not in ("diag", "orthogonal", "general", "connection"):
            raise ValueError("maps must be 'diag', 'orthogonal', 'general' or 'connection', "
                             f"got {maps!r}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.stalk_dim = stalk_dim
        self.num_layers = num_layers
        self.maps = maps
        self.dropout = dropout
        self.input_dropout = input_dropout
        width = stalk_dim * hidden_channels
        self.lin_in = nn.Linear(in_channels, width)
        self.act = resolve_act(act, act_kwargs)
        conv_maps = "given" if maps == "connection" else maps
        if maps == "connection":  # [I, O_vu] with O_vu orthogonal: D_v = deg(v) I
            conv_kwargs.setdefault("given_orthogonal", True)
        self.convs = nn.ModuleList([
            SheafConv(hidden_channels, stalk_dim, maps=conv_maps, orthogonal=orthogonal,
                      edge_weights=edge_weights, dropout=dropout, **conv_kwargs)
            for _ in range(num_layers)])
        self.norms = NormLayers(norm, width, num_layers, norm_kwargs)
        self.lin_out = nn.Linear(width, out_channels)
        #: pre-transform the training harness applies to every graph: the sheaf Laplacian needs
        #: both directions of every edge and no self-loops (WebKB/Film ship directed graphs)
        steps: list = [CheckGraph(), RemoveSelfLoops(), ToUndirected()]
        if maps == "connection":
            steps.append(ConnectionSheaf(stalk_dim, num_points))
        self.transform = Compose(steps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, sheaf_maps: OptTensor = None) -> Tensor:
        check_model_inputs(x, edge_index, None, self.in_channels)
        d = self.stalk_dim
        if self.maps == "connection":
            if sheaf_maps is None:
                raise ValueError("SheafDiffusion(maps='connection') needs sheaf_maps; apply "
                                 "model.transform (ConnectionSheaf) to the data first")
            expected = (edge_index.size(1), 2, d, d)
            if not isinstance(sheaf_maps, Tensor) or tuple(sheaf_maps.shape) != expected:
                got = list(sheaf_maps.shape) if isinstance(sheaf_maps, Tensor) else \
                    type(sheaf_maps).__name__
                raise ValueError(f"sheaf_maps must have shape {list(expected)}, got {got}")
            sheaf_maps = sheaf_maps.to(x.dtype)
        elif sheaf_maps is not None:
            raise ValueError(f"SheafDiffusion(maps={self.maps!r}) learns its maps; sheaf_maps "
                             f"are only for maps='connection'")
        x = F.dropout(x, self.input_dropout, self.training)
        x = self.act(self.lin_in(x))
        x = F.dropout(x, self.dropout, self.training)
        for layer, conv in enumerate(self.convs):
            # dropout inside: the residual is not dropped
            x = self.norms.apply(layer, conv(x, edge_index, sheaf_maps), None, 1)
        return self.lin_out(x)

    def forward_data(self, data: Data) -> Tensor:
        """``forward`` on a ``Data`` prepared by :attr:`transform` (``x``, ``edge_index``,
        ``sheaf_maps`` for ``"connection"``)."""
        maps = getattr(data, "sheaf_maps", None) if self.maps == "connection" else None
        return self(data.x, data.edge_index, maps)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, maps={self.maps!r}, "
                f"stalk_dim={self.stalk_dim})")


def _factory(maps: str):
    def build(spec: TaskSpec, **kw) -> nn.Module:
        if spec.level != "node":
            raise ValueError(f"SheafDiffusion is a node classifier; got a {spec.level}-level task")
        if kw.pop("readout", None) is not None:
            raise ValueError("SheafDiffusion predicts per node and takes no readout")
        hidden = kw.pop("hidden_channels", 20)
        return SheafDiffusion(spec.in_channels, hidden, spec.out_channels, maps=maps, **kw)

    return build


register_model("sheaf-diag")(_factory("diag"))
register_model("sheaf-orth")(_factory("orthogonal"))
register_model("sheaf-general")(_factory("general"))
register_model("sheaf-conn")(_factory("connection"))
