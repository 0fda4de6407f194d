"""No public call that takes a seed reads or reseeds the global random state (torch, NumPy,
Python): randomness comes from explicit generators (issue 16)."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from graphlab.metanets import random_symmetry, weight_matching
from graphlab.metanets.corpus import CORPUS
from graphlab.zoo import (
    build_zoo,
    hessian_top_eigenvalue,
    load_zoo,
    member_config,
    node_predict,
    predict,
    predict_edges,
    train_member,
    zoo_graph,
    zoo_splits,
)
from graphlab.zoo.tasks import fit_graph_regressor, zoo_graphs


def _global_state() -> tuple:
    return (torch.random.get_rng_state(), np.random.get_state()[1].copy(),  # noqa: NPY002
            random.getstate())


def _assert_untouched(call: Callable[[], object]) -> object:
    torch.manual_seed(123)  # the test's own global state, which the call must leave alone
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what must stay untouched
    random.seed(123)
    before = _global_state()
    out = call()
    after = _global_state()
    assert torch.equal(before[0], after[0]), "torch global RNG changed"
    assert np.array_equal(before[1], after[1]), "NumPy global RNG changed"
    assert before[2] == after[2], "Python global RNG changed"
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    return load_zoo(build_zoo("random-nets", 12, tmp_path_factory.mktemp("zoo") / "rn", seed=4))


def test_member_generation(tmp_path: Path):
    _assert_untouched(lambda: member_config("digits-mlp", 0, 3))
    _assert_untouched(lambda: zoo_splits("arch-family", 20, 1))
    cfg = dict(member_config("digits-mlp", 0, 0), steps=10, train_fraction=0.1)
    m1, r1 = _assert_untouched(lambda: train_member(cfg))
    m2, r2 = _assert_untouched(lambda: train_member(cfg))
    assert r1 == r2 and all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    _assert_untouched(lambda: train_member(member_config("random-nets", 0, 1)))
    _assert_untouched(lambda: train_member(dict(member_config("digits-cnn", 0, 2), steps=10,
                                                train_fraction=0.1, init="orthogonal")))
    _assert_untouched(lambda: train_member(member_config("digits-inr", 0, 3) | {"steps": 2}))
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    _assert_untouched(lambda: hessian_top_eigenvalue(m1, x, y, iters=2, seed=1))
    _assert_untouched(lambda: build_zoo("random-nets", 2, tmp_path / "z", seed=0))


@pytest.mark.parametrize("model", ["statnn", "hparams", "neural", "gmn", "opgnn"])
def test_predict(zoo, model):
    a = _assert_untouched(lambda: predict(zoo, "complexity", model, "id", seeds=(0,), epochs=1,
                                          hidden=8))
    b = predict(zoo, "complexity", model, "id", seeds=(0,), epochs=1, hidden=8)
    assert a["pred"] == b["pred"]  # a pure function of its seeds


def test_graph_tasks(zoo):
    _assert_untouched(lambda: predict_edges(zoo, "prune_magnitude", "id", seeds=(0,), epochs=1,
                                            hidden=8))
    graphs = zoo_graphs(zoo, zoo.indices[:6], "neural")
    y = np.arange(4, dtype=float)
    _assert_untouched(lambda: fit_graph_regressor("neural", graphs[:4], y, graphs[4:], seed=2,
                                                  epochs=1, hidden=8))
    for embed in ("statnn", "gmn"):
        g = _assert_untouched(lambda e=embed: zoo_graph(zoo, embed=e, k=3,
                                                        targets=("complexity",), seed=1))
    mask = torch.zeros(g.num_nodes, dtype=torch.bool)
    mask[::2] = True
    for model in ("gcn", "mlp", "label_prop"):
        p1 = _assert_untouched(lambda m=model: node_predict(g, mask, model=m, epochs=3, seed=5))
        np.testing.assert_array_equal(p1, node_predict(g, mask, model=model, epochs=3, seed=5))


def test_metanet_core_calls():
    arch = CORPUS["cnn_bn"]
    a = _assert_untouched(lambda: arch.build(seed=1))
    b = _assert_untouched(lambda: arch.build(seed=2))
    x = arch.input()
    _assert_untouched(lambda: random_symmetry(a, seed=3, example_input=x))
    _assert_untouched(lambda: weight_matching(a, b, x, seed=1))
