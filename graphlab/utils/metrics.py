"""Evaluation metrics with one signature: ``metric(y_true, y_pred) -> float``.

``y_pred`` holds raw model outputs (logits for classification). OGB datasets use the real
``ogb.graphproppred.Evaluator``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["accuracy", "roc_auc", "rmse", "mae", "OGBMetric", "METRICS"]


def accuracy(y_true: Tensor, y_pred: Tensor) -> float:
    """Top-1 accuracy of class logits ``[N, C]`` against labels ``[N]``."""
    if y_true.numel() == 0:
        return float("nan")
    return float((y_pred.argmax(-1) == y_true.view(-1)).float().mean())


def roc_auc(y_true: Tensor, y_pred: Tensor) -> float:
    """Mean ROC-AUC over tasks that have both classes; NaN labels are ignored (OGB's rule)."""
    from sklearn.metrics import roc_auc_score

    yt = y_true.detach().cpu().double().view(y_true.size(0), -1).numpy()
    yp = y_pred.detach().cpu().double().view(y_pred.size(0), -1).numpy()
    scores = []
    for t in range(yt.shape[1]):
        valid = ~np.isnan(yt[:, t])
        if valid.any() and len(np.unique(yt[valid, t])) == 2:
            scores.append(roc_auc_score(yt[valid, t], yp[valid, t]))
    return float(np.mean(scores)) if scores else float("nan")


def rmse(y_true: Tensor, y_pred: Tensor) -> float:
    valid = ~torch.isnan(y_true)
    return float(torch.sqrt(((y_pred[valid] - y_true[valid]) ** 2).mean()))


def mae(y_true: Tensor, y_pred: Tensor) -> float:
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
