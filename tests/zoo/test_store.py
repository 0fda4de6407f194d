"""Zoo storage: safe weight files, members verified against their recorded hashes, paths
confined to the zoo folder, orphaned temporary files cleaned."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from graphlab.metanets import to_graph
from graphlab.metanets.corpus import CORPUS
from graphlab.zoo import build_zoo, clean_orphans, load_state_dict_safe, load_zoo
from graphlab.zoo.store import member_paths, save_state_dict_safe, sha256_file


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


def test_corrupt_safetensors_file_names_the_file(tmp_path: Path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="bad.safetensors is not a valid safetensors file"):
        load_state_dict_safe(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_zoo("random-nets", 3, tmp_path_factory.mktemp("zoo") / "z", seed=0)


@pytest.fixture
def zoo_copy(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "z")
    return tmp_path / "z"


def test_members_load_verified(zoo_copy: Path):
    zoo = load_zoo(zoo_copy)
    for i in zoo.indices:
        sd = zoo.state_dict(i)
        assert all(torch.isfinite(v).all() for v in sd.values())
        assert zoo.record(i)["hash"] == sha256_file(member_paths(zoo_copy, i)[1])
    with pytest.raises(ValueError, match="member 7 is not in this zoo"):
        zoo.record(7)


def test_tampered_member_is_refused_naming_the_file(zoo_copy: Path):
    """Regression (issue 18): a member whose weights were replaced after the build (here with
    different, valid weights) no longer loads silently."""
    zoo = load_zoo(zoo_copy)
    _, st = member_paths(zoo_copy, 1)
    sd = zoo.state_dict(1)
    save_state_dict_safe({k: v + 0.5 for k, v in sd.items()}, st)
    zoo = load_zoo(zoo_copy)
    with pytest.raises(ValueError, match=r"000001\.safetensors does not match the SHA-256"):
        zoo.module(1)
    zoo.module(0)  # the other members are unaffected
    st.write_bytes(st.read_bytes()[:-7])  # truncated
    with pytest.raises(ValueError, match=r"000001\.safetensors does not match the SHA-256"):
        load_zoo(zoo_copy).state_dict(1)


def test_nan_filled_member_is_refused_naming_the_file(zoo_copy: Path):
    """Regression (issue 18): a NaN-filled member changed predictions silently. Even with its
    record's hash updated to match, non-finite weights are refused (members are always finite)."""
    zoo = load_zoo(zoo_copy)
    js, st = member_paths(zoo_copy, 2)
    save_state_dict_safe({k: torch.full_like(v, float("nan")) for k, v in
                          zoo.state_dict(2).items()}, st)
    with pytest.raises(ValueError, match=r"000002\.safetensors does not match the SHA-256"):
        load_zoo(zoo_copy).state_dict(2)
    rec = json.loads(js.read_text())
    rec["hash"] = sha256_file(st)
    js.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"000002\.safetensors holds non-finite values"):
        load_zoo(zoo_copy).module(2)


@pytest.mark.parametrize("weights", ["../../outside.safetensors", "../zoo.json",
                                     "/etc/passwd.safetensors", "sub/000000.safetensors",
                                     "000000.pt", 7])
def test_member_paths_are_confined_to_the_zoo(zoo_copy: Path, weights):
    """Regression (issue 18): a record `weights: "../../outside.safetensors"` was read from
    outside the zoo."""
    outside = zoo_copy.parent.parent / "outside.safetensors"
    shutil.copy(member_paths(zoo_copy, 0)[1], outside)
    js, _ = member_paths(zoo_copy, 0)
    rec = json.loads(js.read_text())
    rec["weights"] = weights
    js.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="refusing to read it") as err:
        load_zoo(zoo_copy)
    assert "000000.json" in str(err.value)


def test_member_symlink_out_of_the_zoo_is_refused(zoo_copy: Path):
    _, st = member_paths(zoo_copy, 0)
    outside = zoo_copy.parent / "outside.safetensors"
    shutil.move(st, outside)
    st.symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        load_zoo(zoo_copy)


def test_orphaned_temp_files_are_cleaned_on_build_and_open(zoo_copy: Path):
    """Regression (issue 18): interrupted writes left `.<name>.XXXX.safetensors` files forever.
    The next build removes them; so does the next open, unless a build holds the folder (then a
    temporary file may be a write in flight)."""
    from graphlab.zoo.store import open_zoo_folder, zoo_config

    members = zoo_copy / "members"
    old_style = members / ".000001.safetensors.k3j2h1g0.safetensors"  # earlier zoos' naming
    new_style = members / ".000002.json.a1b2c3.tmp"  # graphlab.runfolder's naming
    meta_tmp = zoo_copy / ".zoo.json.x9y8.tmp"
    keep = members / "notes.txt"  # not ours: never removed
    orphans = (old_style, new_style, meta_tmp)
    for p in (*orphans, keep):
        p.write_bytes(b"partial")
    with open_zoo_folder(zoo_copy, zoo_config("random-nets", 0)) as folder:
        assert folder.locked
        for p in orphans:  # RunFolder itself removed the .tmp files on entry; restore them
            p.write_bytes(b"partial")
        load_zoo(zoo_copy)  # a build holds the folder: nothing is touched
        assert all(p.exists() for p in orphans)
    assert len(load_zoo(zoo_copy)) == 3
    assert not any(p.exists() for p in orphans) and keep.exists()
    for p in orphans:
        p.write_bytes(b"partial")
    build_zoo("random-nets", 3, zoo_copy, seed=0)
    assert not any(p.exists() for p in orphans) and keep.exists()
    assert clean_orphans(zoo_copy) == []


def test_member_files_are_safetensors_only(built: Path):
    names = {p.name for p in (built / "members").iterdir()}
    assert names == {f"{i:06d}.{ext}" for i in range(3) for ext in ("json", "safetensors")}


def test_a_record_must_describe_its_own_member(zoo_copy: Path):
    js, _ = member_paths(zoo_copy, 1)
    rec = json.loads(js.read_text())
    rec["index"] = 0  # would shadow member 0 with member 1's weights
    js.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"000001\.json does not describe member 1"):
        load_zoo(zoo_copy)


def test_records_are_strict_json(tmp_path: Path):
    """A diverged member's curve holds NaN losses; its record must still be valid JSON."""
    from graphlab.zoo import make_model
    from graphlab.zoo.store import write_member

    (tmp_path / "members").mkdir()
    cfg = {"arch": "mlp", "width": 4, "depth": 1}
    write_member(tmp_path, 0, make_model(cfg), {"config": cfg, "metrics": {"test_acc": 0.1},
                                                "curve": [{"train_loss": float("nan")}]})

    def refuse(token: str) -> None:
        raise AssertionError(f"non-JSON token {token}")

    rec = json.loads(member_paths(tmp_path, 0)[0].read_text(), parse_constant=refuse)
    assert rec["curve"][0]["train_loss"] is None and rec["index"] == 0
