"""The INR zoo: one SIREN per digits image, fitted as one batched model, stored as plain SIREN
state dicts, with a stratified train / val / test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from graphlab.zoo import build_zoo, load_zoo, member_config, zoo_splits
from graphlab.zoo.architectures import SIREN
from graphlab.zoo.inr import (
    NUM_IMAGES,
    digits_images,
    fit_inrs,
    inr_split,
    pixel_coordinates,
)

SIZE = 12


@pytest.fixture(scope="module")
def inr_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_zoo("digits-inr", SIZE, tmp_path_factory.mktemp("inr") / "z", seed=0)


def test_members_reconstruct_their_images(inr_zoo: Path):
    zoo = load_zoo(inr_zoo)
    images, labels = digits_images()
    assert len(zoo) == SIZE and zoo.target("label").tolist() == labels[:SIZE].tolist()
    coords = pixel_coordinates()
    for i in zoo.indices:
        rec = zoo.record(i)
        assert rec["config"]["image_index"] == i and rec["config"]["label"] == int(labels[i])
        m = rec["metrics"]
        # the full zoo at w0 = 5: PSNR median 54 dB, minimum 29 dB, MSE <= 0.3% of the initial
        assert m["psnr"] > 28 and m["mse"] < 1e-2 * m["mse_init"]
        net = zoo.module(i)
        assert type(net) is SIREN and net.w0 == 5.0
        with torch.no_grad():
            mse = float((net(coords).view(8, 8) - images[i]).pow(2).mean())
        assert mse == pytest.approx(m["mse"], rel=1e-3, abs=1e-9)


def test_batched_fit_equals_fitting_alone():
    cfgs = [member_config("digits-inr", 0, i) | {"steps": 20} for i in (3, 7, 11)]
    together = fit_inrs(cfgs)
    alone = fit_inrs([cfgs[1]])[0][0]
    for (a, b) in zip(together[1][0].state_dict().values(), alone.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # distinct images (and seeds) give distinct weights
    assert not torch.allclose(together[0][0][0].weight, together[1][0][0].weight)


def test_fitting_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    fit_inrs([member_config("digits-inr", 0, 0) | {"steps": 2}])
    assert torch.equal(state, torch.get_rng_state())


def test_folded_siren_equals_the_paper_parameterisation():
    net = SIREN(2, 8, 2, 1, w0=30.0)
    net.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.rand(5, 2, dtype=torch.float64) * 2 - 1
    net = net.double()
    lins = [m for m in net if isinstance(m, torch.nn.Linear)]
    h = x
    for lin in lins[:-1]:  # sin(w0 (W h + b)) with W = folded / w0
        h = torch.sin(30.0 * (h @ (lin.weight / 30.0).T + lin.bias / 30.0))
    torch.testing.assert_close(net(x), lins[-1](h))
    # SIREN's first-layer bound 1/n, times w0
    assert float(lins[0].weight.detach().abs().max()) <= 30.0 / 2
    assert "SIREN(2, 8, depth=2" in repr(net)


def test_member_is_a_plain_module_to_graph_accepts(inr_zoo: Path):
    from graphlab.metanets import graph_forward, to_graph

    zoo = load_zoo(inr_zoo)
    net = zoo.module(0)
    g = to_graph(net, zoo.example_input(0))
    x = pixel_coordinates()
    with torch.no_grad():
        torch.testing.assert_close(graph_forward(g, x), net(x), rtol=1e-4, atol=1e-5)


def test_standard_split_is_stratified_and_fixed(inr_zoo: Path):
    labels = digits_images()[1].numpy()
    sp = inr_split(labels, 0)
    assert sorted(sp["train"] + sp["val"] + sp["test"]) == list(range(NUM_IMAGES))
    assert sp == inr_split(labels, 0) and sp != inr_split(labels, 1)
    for c in range(10):
        n = int((labels == c).sum())
        assert abs(int((labels[sp["train"]] == c).sum()) - 0.7 * n) <= 1
        assert abs(int((labels[sp["val"]] == c).sum()) - 0.15 * n) <= 1
    assert zoo_splits("digits-inr", NUM_IMAGES, 0) == {"id": sp}
    parts = load_zoo(inr_zoo).split_parts("id")
    assert set(parts) == {"train", "val", "test"}
    assert sorted(sum(parts.values(), [])) == list(range(SIZE))
    train, test = load_zoo(inr_zoo).split("id")
    assert (train, test) == (parts["train"], parts["test"])


def test_sharded_build_unions_to_the_whole(inr_zoo: Path, tmp_path: Path):
    whole = load_zoo(inr_zoo)
    for k in range(2):
        part = load_zoo(build_zoo("digits-inr", SIZE, tmp_path / "s", seed=0, shard=(k, 2)))
    assert part.indices == whole.indices
    for i in whole.indices:
        for a, b in zip(part.state_dict(i).values(), whole.state_dict(i).values()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bad_sizes_and_indices():
    with pytest.raises(ValueError, match="at most 1797"):
        build_zoo("digits-inr", NUM_IMAGES + 1, "/nonexistent/never-created")
    with pytest.raises(ValueError, match="members 0..1796"):
        member_config("digits-inr", 0, NUM_IMAGES)
    cfg = member_config("digits-inr", 0, 0)
    with pytest.raises(ValueError, match="one architecture at a time"):
        fit_inrs([cfg, cfg | {"width": 16}])
    assert np.isfinite(cfg["w0"]) and cfg["label"] == int(digits_images()[1][0])


def test_analyze_refuses_inr_zoos_clearly(inr_zoo: Path, tmp_path: Path):
    from graphlab.zoo import analyze

    with pytest.raises(ValueError, match="inr-classification"):
        analyze(load_zoo(inr_zoo), tmp_path / "a")
    assert not (tmp_path / "a").exists()
