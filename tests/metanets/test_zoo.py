"""Model zoos: determinism, resumability, sharding, safetensors-only storage, splits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from graphlab.metanets.zoo import (
    PRESETS,
    build_zoo,
    function_complexity,
    load_zoo,
    member_config,
    train_member,
    zoo_splits,
)

SIZE = 4


def _hashes(path: Path) -> dict[int, str]:
    return {r["index"]: r["hash"] for r in load_zoo(path).records}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_zoo("digits-mlp", SIZE, tmp_path_factory.mktemp("zoo") / "z", seed=3)


def test_member_config_deterministic_and_varied():
    a = [member_config("digits-mlp", 0, i) for i in range(20)]
    b = [member_config("digits-mlp", 0, i) for i in range(20)]
    assert a == b
    assert len({json.dumps(c, sort_keys=True) for c in a}) == 20
    assert member_config("digits-mlp", 1, 0) != a[0]
    for name in PRESETS:
        assert "seed" in member_config(name, 0, 0)
    with pytest.raises(ValueError, match="unknown preset"):
        member_config("nope", 0, 0)


def test_records_and_safetensors_only(zoo_dir: Path):
    zoo = load_zoo(zoo_dir)
    assert len(zoo) == SIZE and zoo.indices == list(range(SIZE))
    files = list((zoo_dir / "members").iterdir())
    assert {f.suffix for f in files} == {".json", ".safetensors"}
    for r in zoo.records:
        m = r["metrics"]
        assert 0.0 <= m["test_acc"] <= 1.0 and 0.0 <= m["train_acc"] <= 1.0
        assert math.isclose(m["gen_gap"], m["train_acc"] - m["test_acc"], abs_tol=1e-9)
        assert len(r["curve"]) == r["config"]["epochs"]
        assert {"arch", "width", "depth", "lr", "batch_size", "weight_decay"} <= set(r["config"])
        assert len(r["hash"]) == 64
    # the stored weights reproduce the recorded accuracy
    from graphlab.metanets.zoo import digits_data

    _, _, xt, yt = digits_data()
    i = zoo.indices[0]
    acc = float((zoo.module(i)(xt).argmax(-1) == yt).float().mean())
    assert acc == pytest.approx(zoo.record(i)["metrics"]["test_acc"], abs=1e-6)


def test_deterministic_rebuild(zoo_dir: Path, tmp_path: Path):
    again = build_zoo("digits-mlp", SIZE, tmp_path / "z2", seed=3)
    assert _hashes(again) == _hashes(zoo_dir)


def test_resume_rebuilds_only_missing_or_corrupt(zoo_dir: Path, tmp_path: Path):
    import shutil

    z = tmp_path / "z"
    shutil.copytree(zoo_dir, z)
    before = _hashes(z)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (z / "members").iterdir()}
    (z / "members" / "000001.json").unlink()  # killed after writing weights, before the record
    (z / "members" / "000002.safetensors").write_bytes(b"garbage")  # torn / corrupt weights
    (z / "members" / ".000003.safetensors.tmp").write_bytes(b"partial")  # leftover temp file
    build_zoo("digits-mlp", SIZE, z, seed=3)
    assert _hashes(z) == before
    after = {p.name: p.stat().st_mtime_ns for p in (z / "members").iterdir()}
    assert after["000000.json"] == mtimes["000000.json"]  # finished members are not retrained
    assert after["000000.safetensors"] == mtimes["000000.safetensors"]


def test_shards_union_equals_full_zoo(zoo_dir: Path, tmp_path: Path):
    z = tmp_path / "sharded"
    build_zoo("digits-mlp", SIZE, z, seed=3, shard="0/2")
    assert set(load_zoo(z).indices) == {0, 2}
    build_zoo("digits-mlp", SIZE, z, seed=3, shard=(1, 2))
    assert _hashes(z) == _hashes(zoo_dir)


def test_parallel_workers_match_serial(zoo_dir: Path, tmp_path: Path):
    z = build_zoo("digits-mlp", SIZE, tmp_path / "par", seed=3, workers=2)
    assert _hashes(z) == _hashes(zoo_dir)


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="shard"):
        build_zoo("digits-mlp", 2, tmp_path / "a", shard="3/2")
    with pytest.raises(ValueError, match="shard"):
        build_zoo("digits-mlp", 2, tmp_path / "a", shard="x")
    with pytest.raises(ValueError, match="unknown preset"):
        build_zoo("nope", 2, tmp_path / "b")
    build_zoo("random-nets", 1, tmp_path / "c", seed=0)
    with pytest.raises(ValueError, match="refusing to mix"):
        build_zoo("digits-mlp", 1, tmp_path / "c", seed=0)
    with pytest.raises(ValueError, match="not a zoo"):
        load_zoo(tmp_path / "nothing")


def test_splits_partition_and_ood():
    size = 40
    for preset in PRESETS:
        sp = zoo_splits(preset, size, 0)
        assert {"id", "hparam", "width", "depth"} <= set(sp)
        cfgs = [member_config(preset, 0, i) for i in range(size)]
        for s in sp.values():
            assert not set(s["train"]) & set(s["test"])
            assert sorted(s["train"] + s["test"]) == list(range(size))
        wmax = max(c["width"] for c in cfgs)
        assert all(cfgs[i]["width"] == wmax for i in sp["width"]["test"])
        assert all(cfgs[i]["width"] < wmax for i in sp["width"]["train"])
    fam = zoo_splits("arch-family", size, 0)["family"]
    assert all(member_config("arch-family", 0, i)["arch"] == "resmlp" for i in fam["test"])


def test_other_presets_build(tmp_path: Path):
    for preset in ("random-nets", "digits-cnn", "arch-family"):
        zoo = load_zoo(build_zoo(preset, 2, tmp_path / preset, seed=0))
        assert len(zoo) == 2
        for i in zoo.indices:
            m = zoo.module(i)
            out = m(zoo.example_input(i))
            assert torch.isfinite(out).all()
        key = "complexity" if preset == "random-nets" else "test_acc"
        assert all(r["metrics"][key] is not None for r in zoo.records)


def test_function_complexity_orders_frequencies():
    class Sine(torch.nn.Module):
        def __init__(self, f: float) -> None:
            super().__init__()
            self.f = f
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sin(self.f * x[:, :1]) + self.p

    assert function_complexity(Sine(0.0)) == 0.0
    assert function_complexity(Sine(2.0)) < function_complexity(Sine(20.0))


def test_train_member_random_nets_untrained():
    cfg = member_config("random-nets", 0, 5)
    m1, r1 = train_member(cfg)
    m2, r2 = train_member(cfg)
    assert r1 == r2 and r1["complexity"] > 0
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)
