"""Safe weight loading: safetensors and weights_only checkpoints only."""

import pytest
import torch

from graphlab.metanets import load_state_dict_safe, save_state_dict_safe, to_graph
from graphlab.metanets.corpus import CORPUS


def test_safetensors_round_trip_with_tied_weights(tmp_path):
    arch = CORPUS["tied_lm"]
    m = arch.build()
    path = tmp_path / "net.safetensors"
    save_state_dict_safe(m, path, metadata={"arch": "tied_lm"})
    sd = load_state_dict_safe(path)
    other = arch.build(seed=5)
    other.load_state_dict(sd)
    assert other.head.weight is other.emb.weight  # tying survives loading
    for k, v in m.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    x = arch.input()
    assert torch.equal(to_graph(other, x).edge_attr, to_graph(m, x).edge_attr)


def test_weights_only_checkpoint(tmp_path):
    m = CORPUS["cnn_bn"].build()
    path = tmp_path / "net.pt"
    torch.save(m.state_dict(), path)
    sd = load_state_dict_safe(path)
    assert sd.keys() == m.state_dict().keys()


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(CORPUS["mlp"].build(), path)  # a whole pickled module: unsafe to load
    with pytest.raises(ValueError, match="weights-only"):
        load_state_dict_safe(path)
    torch.save({"w": torch.ones(2), "meta": [1, 2]}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match="flat dict of tensors"):
        load_state_dict_safe(tmp_path / "mixed.pt")
