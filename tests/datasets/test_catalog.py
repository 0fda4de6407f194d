import os
import stat
import urllib.error
from pathlib import Path

import pytest
import torch

from graphlab.datasets import get_dataset, known_datasets, locate_raw


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'NOPE'.*ogbg-molhiv.*MUTAG.*texas"):
        get_dataset("NOPE")


def test_catalog_covers_the_families():
    names = {i.name for i in known_datasets()}
    for name in ("ogbg-molhiv", "ogbg-molpcba", "MUTAG", "PROTEINS", "NCI1", "Cora", "texas",
                 "cornell", "wisconsin", "film", "CSL", "EXP", "SR25"):
        assert name in names


def test_offline_without_mirror_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("GRAPHLAB_CACHE", str(tmp_path))

    def offline(self):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr("torch_geometric.datasets.TUDataset.download", offline)
    assert locate_raw("MUTAG") == "download (not found locally)"
    with pytest.raises(RuntimeError, match="offline.*GRAPHLAB_DATA_DIR"):
        get_dataset("mutag")


def _mirror_untouched(mirror: Path, sub: str) -> None:
    assert not (mirror / sub / "processed").exists()


@pytest.mark.real_data
@pytest.mark.parametrize("name,num,level,splits,metric", [
    ("mutag", 188, "graph", 10, "acc"),
    ("ogbg-molesol", 1128, "graph", 1, "rmse"),
    ("OGBG-MOLBACE", 1513, "graph", 1, "rocauc"),
    ("Cora", 1, "node", 1, "acc"),
    ("Texas", 1, "node", 10, "acc"),
    ("film", 1, "node", 10, "acc"),
    ("CSL", 150, "graph", 5, "acc"),
    ("EXP", 1200, "graph", 10, "acc"),
    ("SR25", 15, "graph", 1, "acc"),
])
def test_mirrored_datasets_load_with_protocol(data_mirror, name, num, level, splits, metric):
    bundle = get_dataset(name)
    assert len(bundle.dataset) == num
    assert bundle.spec.level == level and bundle.metric == metric
    assert len(bundle.splits) == splits
    assert bundle.source.startswith("mirror")
    n_items = bundle.dataset[0].num_nodes if level == "node" else len(bundle.dataset)
    for split in bundle.splits:
        parts = [set(split[k].tolist()) for k in ("train", "valid", "test")]
        if name != "SR25":  # SR25 is a memorisation test: all graphs in every part
            assert not (parts[0] & parts[1]) and not (parts[0] & parts[2])
            assert not (parts[1] & parts[2])
        assert max(max(p) for p in parts) < n_items
    # a second call reuses the processed cache (OGB reloads with weights_only=True)
    again = get_dataset(name)
    assert again.source.startswith("cache")
    assert torch.equal(again.dataset[0].edge_index, bundle.dataset[0].edge_index)


@pytest.mark.real_data
def test_tu_folds_cover_every_graph_once(data_mirror):
    bundle = get_dataset("MUTAG")
    tests = torch.cat([s["test"] for s in bundle.splits])
    assert sorted(tests.tolist()) == list(range(188))
    exp = get_dataset("EXP")
    for split in exp.splits:  # 1-WL-equivalent pairs never straddle train and test
        assert set((split["train"] // 2).tolist()).isdisjoint((split["test"] // 2).tolist())


@pytest.mark.real_data
def test_molhiv_official_split(data_mirror):
    bundle = get_dataset("ogbg-molhiv")
    sizes = [len(bundle.splits[0][k]) for k in ("train", "valid", "test")]
    assert sizes == [32901, 4113, 4113]
    assert bundle.spec.molecular and bundle.spec.out_channels == 1


@pytest.mark.real_data
def test_explicit_root_wins_and_mirror_is_never_written(data_mirror, tmp_path):
    bundle = get_dataset("PTC_MR", root=tmp_path)
    assert (tmp_path / "tu" / "PTC_MR" / "processed").is_dir()
    assert len(bundle.dataset) == 344
    _mirror_untouched(data_mirror, "tu/PTC_MR")
    assert locate_raw("PTC_MR", root=tmp_path).startswith("root")
    copied = tmp_path / "tu" / "PTC_MR" / "raw"
    assert all(os.stat(p).st_mode & stat.S_IWUSR for p in copied.iterdir())
