"""Evaluation metrics with one signature: ``metric(y_true, y_pred) -> float``.

``y_pred`` holds raw model outputs (logits for classification). OGB datasets use the real
``ogb.graphproppred.Evaluator``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["accuracy", "roc_auc", "rmse", "mae", "OGBMetric", "METRICS"]


def _same_size(y_true: Tensor, y_pred: Tensor, metric: str) -> Tensor:
    """``y_pred`` in the shape of ``y_true``; a ``ValueError`` if the sizes differ (broadcasting
    ``[N]`` against ``[N, 1]`` would silently compare every target with every prediction)."""
    if y_true.numel() != y_pred.numel():
        raise ValueError(f"{metric}: y_pred must hold one value per target, got y_true of shape "
                         f"{list(y_true.shape)} and y_pred of shape {list(y_pred.shape)}")
    return y_pred.reshape(y_true.shape)


def accuracy(y_true: Tensor, y_pred: Tensor) -> float:
    """Top-1 accuracy of class logits ``[N, C]`` against labels ``[N]``."""
    if y_pred.dim() != 2 or y_pred.size(0) != y_true.numel():
        raise ValueError(f"accuracy: y_pred must be class logits [N, C] for N = {y_true.numel()} "
                         f"labels, got shape {list(y_pred.shape)}")
    if y_true.numel() == 0:
        return float("nan")
    return float((y_pred.argmax(-1) == y_true.view(-1)).float().mean())


def roc_auc(y_true: Tensor, y_pred: Tensor) -> float:
    """Mean ROC-AUC over tasks that have both classes; NaN labels are ignored (OGB's rule)."""
    from sklearn.metrics import roc_auc_score

    y_pred = _same_size(y_true, y_pred, "roc_auc")
    yt = y_true.detach().cpu().double().reshape(y_true.size(0), -1).numpy()
    yp = y_pred.detach().cpu().double().reshape(y_true.size(0), -1).numpy()
    scores = []
    for t in range(yt.shape[1]):
        valid = ~np.isnan(yt[:, t])
        if valid.any() and len(np.unique(yt[valid, t])) == 2:
            scores.append(roc_auc_score(yt[valid, t], yp[valid, t]))
    return float(np.mean(scores)) if scores else float("nan")


def rmse(y_true: Tensor, y_pred: Tensor) -> float:
    """Root mean squared error over the non-NaN targets."""
    y_pred = _same_size(y_true, y_pred, "rmse")
    valid = ~torch.isnan(y_true)
    return float(torch.sqrt(((y_pred[valid] - y_true[valid]) ** 2).mean()))


def mae(y_true: Tensor, y_pred: Tensor) -> float:
    """Mean absolute error over the non-NaN targets."""
    y_pred = _same_size(y_true, y_pred, "mae")
    valid = ~torch.isnan(y_true)
    return float((y_pred[valid] - y_true[valid]).abs().mean())


class OGBMetric:
    """The dataset's official metric through ``ogb.graphproppred.Evaluator``."""

    def __init__(self, name: str) -> None:
        from ogb.graphproppred import Evaluator

        self.name = name
        self.evaluator = Evaluator(name)
        self.metric = self.evaluator.eval_metric

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> float:
        result = self.evaluator.eval({
            "y_true": y_true.detach().cpu().view(y_true.size(0), -1).numpy(),
            "y_pred": y_pred.detach().cpu().view(y_pred.size(0), -1).numpy(),
        })
        return float(result[self.metric])

    def __repr__(self) -> str:
        return f"OGBMetric({self.name!r}, metric={self.metric!r})"


METRICS = {"acc": accuracy, "rocauc": roc_auc, "rmse": rmse, "mae": mae}
