import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from graphlab.utils.metrics import OGBMetric, accuracy, mae, rmse, roc_auc


def test_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert accuracy(torch.tensor([0, 1, 1]), logits) == pytest.approx(2 / 3)
    assert math.isnan(accuracy(torch.tensor([], dtype=torch.long), torch.zeros(0, 2)))


def test_roc_auc_matches_sklearn_and_ignores_nan_labels():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (50, 2), generator=gen).float()
    pred = torch.randn(50, 2, generator=gen)
    y[:5, 1] = float("nan")
    expected = np.mean([roc_auc_score(y[:, 0], pred[:, 0]), roc_auc_score(y[5:, 1], pred[5:, 1])])
    assert roc_auc(y, pred) == pytest.approx(expected)


def test_regression_metrics_ignore_nan():
    y = torch.tensor([[1.0], [2.0], [float("nan")]])
    pred = torch.tensor([[2.0], [4.0], [100.0]])
    assert rmse(y, pred) == pytest.approx(math.sqrt((1 + 4) / 2))
    assert mae(y, pred) == pytest.approx(1.5)


def test_ogb_evaluator_agrees_with_ours():
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (40, 1), generator=gen).float()
    pred = torch.randn(40, 1, generator=gen)
    metric = OGBMetric("ogbg-molhiv")
    assert metric.metric == "rocauc"
    assert metric(y, pred) == pytest.approx(roc_auc(y, pred))
    assert OGBMetric("ogbg-molesol")(y, pred) == pytest.approx(rmse(y, pred), rel=1e-5)


@pytest.mark.parametrize("metric", [rmse, mae])
def test_regression_metrics_match_shapes_instead_of_broadcasting(metric):
    """[N] targets against [N, 1] predictions broadcast to N x N (rmse 1.15 for a perfect fit)."""
    y = torch.tensor([1.0, 2.0, 3.0])
    assert metric(y, y.view(3, 1)) == 0.0
    with pytest.raises(ValueError, match=r"y_true of shape \[3\] and y_pred of shape \[2, 1\]"):
        metric(y, torch.zeros(2, 1))


def test_accuracy_and_roc_auc_check_the_prediction_shape():
    with pytest.raises(ValueError, match=r"logits \[N, C\] for N = 2 labels, got shape \[1, 2\]"):
        accuracy(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="roc_auc"):
        roc_auc(torch.tensor([[0.0], [1.0]]), torch.zeros(3, 1))
