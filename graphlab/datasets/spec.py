"""What a model needs to know about a task: input/output widths, level, loss and metric."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TaskSpec"]


@dataclass(frozen=True)
class TaskSpec:
    """Shape and objective of a prediction task, handed to model factories.

    Args:
        level: ``"graph"`` (one prediction per graph) or ``"node"``.
        in_channels: node feature width (for molecular data: the number of raw OGB atom features).
        out_channels: number of targets (binary tasks / regression targets) or classes.
        loss: ``"bce"`` (multi-label binary, NaN labels ignored), ``"ce"`` or ``"mse"``.
        metric: ``"rocauc"``, ``"acc"``, ``"rmse"`` or ``"mae"``.
        edge_dim: edge feature width, or ``None`` when the data has no edge features.
        molecular: OGB molecule features (integer atom/bond categories -> Atom/BondEncoder).
    """

    level: str
    in_channels: int
    out_channels: int
    loss: str
    metric: str
    edge_dim: int | None = None
    molecular: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.metric in ("rocauc", "acc", "ap")
