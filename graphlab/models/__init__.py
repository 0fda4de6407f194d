"""Complete models: the generic GNN scaffold and each paper's full architecture."""

from graphlab.models.egnn import EGNN
from graphlab.models.gnn import GNN
from graphlab.models.pathnn import PathNN
from graphlab.models.prmpnn import PRMPNN
from graphlab.models.registry import available_models, build_model, register_model
from graphlab.models.sheaf_diffusion import SheafDiffusion

__all__ = [
    "EGNN",
    "GNN",
    "PathNN",
    "PRMPNN",
    "SheafDiffusion",
    "available_models",
    "build_model",
    "register_model",
]
