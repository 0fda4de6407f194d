"""StatNN baseline: permutation-invariant features, fit/predict, errors."""

import numpy as np
import pytest
import torch

from graphlab.metanets import StatNN, random_symmetry, to_graph, weight_statistics
from graphlab.metanets.corpus import CORPUS, make_mlp


@pytest.mark.parametrize("name", list(CORPUS))
def test_statistics_are_invariant(name):
    arch = CORPUS[name]
    m = arch.build()
    m2 = random_symmetry(m, seed=4, example_input=arch.input())
    a, b = weight_statistics(m), weight_statistics(m2)
    assert a.numel() % 7 == 0 and a.numel() > 0
    assert torch.allclose(a, b, atol=1e-12, rtol=0)
    # graphs give the same kind of invariant summary
    ga = weight_statistics(to_graph(m, arch.input()))
    gb = weight_statistics(to_graph(m2, arch.input()))
    assert torch.allclose(ga, gb, atol=1e-12, rtol=0)


def _zoo(n: int, seed: int = 0):
    torch.manual_seed(seed)
    nets, y = [], []
    for i in range(n):
        m = make_mlp((4, 8, 3))
        scale = 0.2 + 2.0 * (i % 10) / 10
        with torch.no_grad():
            m[0].weight.mul_(scale)
        nets.append(m)
        y.append(scale)
    return nets, np.array(y)


@pytest.mark.parametrize("head", ["gbm", "mlp"])
def test_fit_predict(head):
    nets, y = _zoo(80)
    model = StatNN(head=head, seed=0, **({"max_iter": 30} if head == "gbm" else {}))
    model.fit(nets[:60], y[:60])
    pred = model.predict(nets[60:])
    r2 = 1 - ((pred - y[60:]) ** 2).sum() / ((y[60:] - y[60:].mean()) ** 2).sum()
    assert r2 > (0.8 if head == "gbm" else 0.3), r2  # the MLP head is data-hungry
    # permuted networks get the same predictions
    perm = [random_symmetry(m, seed=1) for m in nets[60:]]
    assert np.allclose(model.predict(perm), pred, atol=1e-9)


def test_classification_and_errors():
    nets, y = _zoo(40)
    clf = StatNN(task="classification", max_iter=20).fit(nets, (y > 1).astype(int))
    assert set(clf.predict(nets[:5])) <= {0, 1}
    with pytest.raises(ValueError, match="not fitted"):
        StatNN().predict(nets)
    with pytest.raises(ValueError, match="layer layouts"):
        StatNN.featurize([make_mlp((4, 8, 3)), make_mlp((4, 8, 8, 3))])
    with pytest.raises(ValueError, match="head"):
        StatNN(head="svm")
    with pytest.raises(ValueError, match="task"):
        StatNN(task="ranking")
    assert "StatNN" in repr(StatNN())
