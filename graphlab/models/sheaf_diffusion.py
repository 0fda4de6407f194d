"""Neural sheaf diffusion for node classification (learned or connection-Laplacian sheaves)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.transforms import Compose, RemoveSelfLoops, ToUndirected

from graphlab.conv.sheaf_conv import SheafConv
from graphlab.datasets.spec import TaskSpec
from graphlab.models.registry import register_model
from graphlab.transforms.connection_sheaf import ConnectionSheaf
from graphlab.utils.validation import check_edge_index, check_node_features

__all__ = ["SheafDiffusion"]


class SheafDiffusion(nn.Module):
    r"""The discrete Neural Sheaf Diffusion model of `"Neural Sheaf Diffusion: A Topological
    Perspective on Heterophily and Oversmoothing in GNNs" <https://arxiv.org/abs/2202.04579>`_
    and, with ``maps="connection"``, the connection-Laplacian model of `"Sheaf Neural Networks
    with Connection Laplacians" <https://arxiv.org/abs/2206.08702>`_.

    .. math::
        \mathbf{X}^{(0)} = \mathrm{drop}(\mathrm{ELU}(\mathbf{W}_{in}\,
        \mathrm{drop}_{in}(\mathbf{x}))),\quad
        \mathbf{X}^{(l+1)} = \mathrm{SheafConv}_l(\mathbf{X}^{(l)}),\quad
        \hat{\mathbf{y}} = \mathbf{W}_{out} \mathbf{X}^{(L)}

    Every layer learns its own restriction maps from its input (``"diag"``, ``"orthogonal"``,
    ``"general"``). With ``"connection"`` the maps are fixed and read from ``data.sheaf_maps``.
    The :attr:`transform` attribute is the pre-transform the data needs, which ``graphlab train``
    applies once before training: ``RemoveSelfLoops`` and ``ToUndirected`` (the sheaf Laplacian is
    defined on undirected graphs), followed for ``"connection"`` by
    :class:`~graphlab.transforms.ConnectionSheaf`, which computes the maps from the raw features.

    Args:
        in_channels (int): input feature width.
        out_channels (int): number of classes.
        hidden_channels (int): channels per stalk (the hidden width is
            ``stalk_dim * hidden_channels``).
        stalk_dim (int): stalk dimension :math:`d`.
        num_layers (int): number of diffusion steps (each with its own weights and maps).
        maps (str): ``"diag"``, ``"orthogonal"``, ``"general"`` or ``"connection"``.
        dropout (float): dropout on hidden features (inside each layer only on the diffusion
            branch).
        input_dropout (float): dropout on the raw input features.
        orthogonal (str): ``"householder"`` or ``"cayley"``.
        edge_weights (bool): learned scales for orthogonal maps.
        num_points (int, optional): local-PCA neighbourhood size for ``"connection"``.
        **conv_kwargs: forwarded to :class:`~graphlab.conv.SheafConv`.

    Shapes:
        - **input:** ``Data`` with ``x`` :math:`(|\mathcal{V}|, F_{in})`, ``edge_index``
          :math:`(2, |\mathcal{E}|)` (both directions of each edge) and, for ``"connection"``,
          ``sheaf_maps`` :math:`(|\mathcal{E}|, 2, d, d)`
        - **output:** logits :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 20,
                 stalk_dim: int = 3, num_layers: int = 2, maps: str = "diag",
                 dropout: float = 0.0, input_dropout: float = 0.0,
                 orthogonal: str = "householder", edge_weights: bool = True,
                 num_points: int | None = None, **conv_kwargs) -> None:
        super().__init__()
        if maps not in ("diag", "orthogonal", "general", "connection"):
            raise ValueError("maps must be 'diag', 'orthogonal', 'general' or 'connection', "
                             f"got {maps!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.stalk_dim = stalk_dim
        self.num_layers = num_layers
        self.maps = maps
        self.dropout = dropout
        self.input_dropout = input_dropout
        width = stalk_dim * hidden_channels
        self.lin_in = nn.Linear(in_channels, width)
        conv_maps = "given" if maps == "connection" else maps
        self.convs = nn.ModuleList([
            SheafConv(hidden_channels, stalk_dim, maps=conv_maps, orthogonal=orthogonal,
                      edge_weights=edge_weights, dropout=dropout, **conv_kwargs)
            for _ in range(num_layers)])
        self.lin_out = nn.Linear(width, out_channels)
        #: pre-transform the training harness applies to every graph: the sheaf Laplacian needs
        #: both directions of every edge and no self-loops (WebKB/Film ship directed graphs)
        steps: list = [RemoveSelfLoops(), ToUndirected()]
        if maps == "connection":
            steps.append(ConnectionSheaf(stalk_dim, num_points))
        self.transform = Compose(steps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.lin_out.reset_parameters()

    def forward(self, data: Data) -> Tensor:
        x, edge_index = data.x, data.edge_index
        check_node_features(x, "x", channels=self.in_channels)
        check_edge_index(edge_index, x.size(0))
        maps = None
        if self.maps == "connection":
            maps = getattr(data, "sheaf_maps", None)
            if maps is None:
                raise ValueError("SheafDiffusion(maps='connection') needs data.sheaf_maps; "
                                 "apply model.transform (ConnectionSheaf) to the data first")
            maps = maps.to(x.dtype)
        x = F.dropout(x, self.input_dropout, self.training)
        x = F.elu(self.lin_in(x))
        x = F.dropout(x, self.dropout, self.training)
        for conv in self.convs:
            x = conv(x, edge_index, maps)  # dropout inside: the residual is not dropped
        return self.lin_out(x)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"maps={self.maps!r}, stalk_dim={self.stalk_dim}, num_layers={self.num_layers})")


def _factory(maps: str):
    def build(spec: TaskSpec, **kw) -> nn.Module:
        if spec.level != "node":
            raise ValueError(f"SheafDiffusion is a node classifier; got a {spec.level}-level task")
        if kw.pop("readout", None) is not None:
            raise ValueError("SheafDiffusion predicts per node and takes no readout")
        return SheafDiffusion(spec.in_channels, spec.out_channels, maps=maps, **kw)

    return build


register_model("sheaf-diag")(_factory("diag"))
register_model("sheaf-orth")(_factory("orthogonal"))
register_model("sheaf-general")(_factory("general"))
register_model("sheaf-conn")(_factory("connection"))
