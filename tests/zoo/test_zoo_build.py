"""Building zoos: determinism, resumability, sharding, workers, safetensors-only storage and
refusing to mix zoos of different configurations."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from graphlab.zoo import build_zoo, load_zoo
from graphlab.zoo.training import ROUNDS

SIZE = 4


def _hashes(path: Path) -> dict[int, str]:
    return {r["index"]: r["hash"] for r in load_zoo(path).records}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_zoo("digits-mlp", SIZE, tmp_path_factory.mktemp("zoo") / "z", seed=3)


def test_records_and_safetensors_only(zoo_dir: Path):
    zoo = load_zoo(zoo_dir)
    assert len(zoo) == SIZE and zoo.indices == list(range(SIZE))
    files = list((zoo_dir / "members").iterdir())
    assert {f.suffix for f in files} == {".json", ".safetensors"}
    for r in zoo.records:
        m = r["metrics"]
        assert 0.0 <= m["test_acc"] <= 1.0 and 0.0 <= m["train_acc"] <= 1.0
        assert math.isclose(m["gen_gap"], m["train_acc"] - m["test_acc"], abs_tol=1e-9)
        assert len(r["curve"]) == ROUNDS and m["train_seconds"] > 0
        assert {"arch", "width", "depth", "lr", "batch_size", "weight_decay", "steps"} <= \
            set(r["config"])
        assert len(r["hash"]) == 64
    # the stored weights reproduce the recorded accuracy
    from graphlab.zoo import digits_data

    _, _, xt, yt = digits_data()
    i = zoo.indices[0]
    acc = float((zoo.module(i)(xt).argmax(-1) == yt).float().mean())
    assert acc == pytest.approx(zoo.record(i)["metrics"]["test_acc"], abs=1e-6)


def test_deterministic_rebuild(zoo_dir: Path, tmp_path: Path):
    again = build_zoo("digits-mlp", SIZE, tmp_path / "z2", seed=3)
    assert _hashes(again) == _hashes(zoo_dir)


def test_resume_rebuilds_only_missing_or_corrupt(zoo_dir: Path, tmp_path: Path):
    z = tmp_path / "z"
    shutil.copytree(zoo_dir, z)
    before = _hashes(z)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (z / "members").iterdir()}
    (z / "members" / "000001.json").unlink()  # killed after writing weights, before the record
    (z / "members" / "000002.safetensors").write_bytes(b"garbage")  # torn / corrupt weights
    orphan = z / "members" / ".000003.safetensors.tmp"
    orphan.write_bytes(b"partial")  # leftover temp file of a killed write
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
    with pytest.raises(ValueError, match="another configuration"):
        build_zoo("digits-mlp", 1, tmp_path / "c", seed=0)
    with pytest.raises(ValueError, match="size must be"):
        build_zoo("digits-mlp", -1, tmp_path / "d")
    with pytest.raises(ValueError, match="not a zoo"):
        load_zoo(tmp_path / "nothing")


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


def test_refuses_a_zoo_of_another_config_naming_the_keys(tmp_path: Path):
    """Regression (issue 18): `zoo build` into a folder holding another zoo names the differing
    keys and refuses, unless overwrite=True, which starts over."""
    z = tmp_path / "z"
    build_zoo("random-nets", 2, z, seed=0)
    with pytest.raises(ValueError, match=r"preset: 'random-nets' -> 'digits-cnn'"):
        build_zoo("digits-cnn", 2, z, seed=0)
    with pytest.raises(ValueError, match=r"seed: 0 -> 1\); pass --overwrite") as err:
        build_zoo("random-nets", 2, z, seed=1)
    assert "preset" not in str(err.value)  # only the differing key is named
    assert load_zoo(z).meta["seed"] == 0  # nothing was touched
    before = _hashes(z)
    build_zoo("random-nets", 2, z, seed=1, overwrite=True)
    zoo = load_zoo(z)
    assert zoo.meta["seed"] == 1 and len(zoo) == 2 and _hashes(z) != before
    assert all(r["zoo_seed"] == 1 for r in zoo.records)
    # the same configuration with a larger size extends the zoo (resume, not a mismatch)
    build_zoo("random-nets", 3, z, seed=1)
    assert len(load_zoo(z)) == 3 and load_zoo(z).meta["size"] == 3
    (z / "zoo.json").write_text("{not json")
    with pytest.raises(ValueError, match="zoo.json is unreadable"):
        build_zoo("random-nets", 3, z, seed=1)
    build_zoo("random-nets", 1, z, seed=1, overwrite=True)
    assert len(load_zoo(z)) == 1


def test_a_zoo_without_config_json_is_adopted(zoo_dir: Path, tmp_path: Path):
    """Zoos written before the folder recorded config.json resume from their zoo.json."""
    z = tmp_path / "legacy"
    shutil.copytree(zoo_dir, z)
    (z / "config.json").unlink()
    (z / ".lock").unlink(missing_ok=True)
    build_zoo("digits-mlp", SIZE, z, seed=3)
    assert _hashes(z) == _hashes(zoo_dir)
    (z / "config.json").unlink()
    with pytest.raises(ValueError, match="seed: 3 -> 4"):
        build_zoo("digits-mlp", SIZE, z, seed=4)


def test_a_second_build_into_a_locked_zoo_is_refused(zoo_dir: Path, tmp_path: Path):
    """Two builds in one folder shared temporary names and raced; now the second one stops."""
    from graphlab.zoo.store import open_zoo_folder, zoo_config

    z = tmp_path / "z"
    shutil.copytree(zoo_dir, z)
    with open_zoo_folder(z, zoo_config("digits-mlp", 3)):
        with pytest.raises(ValueError, match="in use by another process"):
            build_zoo("digits-mlp", SIZE, z, seed=3, shard="1/2")
    build_zoo("digits-mlp", SIZE, z, seed=3, shard="1/2")
