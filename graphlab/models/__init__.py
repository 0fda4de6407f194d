"""Complete models: the generic GNN scaffold and each paper's full architecture.

Every model takes ``(in_channels, hidden_channels, out_channels, num_layers, *, dropout, act,
norm, edge_dim, readout, ...)`` (``act`` / ``norm`` / ``readout`` resolved by PyG's resolvers;
``edge_dim`` and ``readout`` where the model has edge features or a readout), a tensor
``forward(x, edge_index, ...)`` like PyG's models, and ``forward_data(data)`` for a (batched)
``Data``. :func:`build_model` builds registered models for ``graphlab train``, wrapped in a
:class:`DataModel` (``model(data)``).
"""

from graphlab.models.egnn import EGNN, EGNNEncoder
from graphlab.models.gin0 import GIN0
from graphlab.models.gnn import GNN
from graphlab.models.ogb_variants import SheafGraphModel, VirtualNodeGNN
from graphlab.models.pathnn import PathNN, centre_layers
from graphlab.models.prmpnn import PRMPNN
from graphlab.models.registry import DataModel, available_models, build_model, register_model
from graphlab.models.sheaf_diffusion import SheafDiffusion

__all__ = [
    "DataModel",
    "EGNN",
    "EGNNEncoder",
    "GIN0",
    "GNN",
    "PathNN",
    "PRMPNN",
    "SheafDiffusion",
    "SheafGraphModel",
    "VirtualNodeGNN",
    "available_models",
    "build_model",
    "centre_layers",
    "register_model",
]
