import os
import stat
import urllib.error
from pathlib import Path

import pytest
import torch

from graphlab.datasets import get_dataset, known_datasets, locate_raw
from graphlab.datasets.catalog import DataUnavailableError, dataset_info
from graphlab.datasets.safe_load import UnsafeFileError, safe_torch_loads


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
    with pytest.raises(DataUnavailableError, match="offline.*GRAPHLAB_DATA_DIR") as info:
        get_dataset("mutag")
    assert "\n" not in str(info.value)  # one line for the CLI


def test_exp_without_mirror_says_it_cannot_be_downloaded_safely(monkeypatch, tmp_path):
    """Regression (issue 18): EXP without a mirror claimed the machine looked offline."""
    monkeypatch.delenv("GRAPHLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("GRAPHLAB_CACHE", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="EXP cannot be downloaded in a safe format") \
            as info:
        get_dataset("EXP")
    assert "offline" not in str(info.value) and "exp.npz" in str(info.value)


def test_dataset_info_is_the_name_check():
    assert dataset_info("mutag").name == "MUTAG" and dataset_info("actor").name == "film"
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        dataset_info("nope")


def test_safe_torch_loads_never_unpickles(tmp_path):
    """Inside the guard, torch.load and PyG's fs.torch_load refuse pickles (no unsafe retry)."""
    import pickle
    import time
    import timeit

    from torch_geometric.io import fs

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return timeit.timeit, (f"open({str(marker)!r}, 'w').close()", "pass",
                                   time.perf_counter, 1)

    path = tmp_path / "data.pt"
    torch.save({"x": Payload()}, path)
    with safe_torch_loads():
        with pytest.raises(UnsafeFileError, match="safe") as info:
            fs.torch_load(str(path))
        assert info.value.path == str(path)
        with pytest.raises(UnsafeFileError):
            torch.load(path, weights_only=False)  # the caller's opt-out is overridden
        good = tmp_path / "good.pt"
        torch.save({"x": torch.ones(2)}, good)
        assert torch.equal(fs.torch_load(str(good))["x"], torch.ones(2))
        # PyG's CSL loader reads its raw file with pickle.load: restricted to numpy/scipy
        import torch_geometric.datasets.gnn_benchmark_dataset as gnnbench

        raw = tmp_path / "graphs.pkl"
        raw.write_bytes(pickle.dumps([Payload()]))
        with open(raw, "rb") as fh, pytest.raises(UnsafeFileError, match="timeit"):
            gnnbench.pickle.load(fh)
    assert not marker.exists()
    assert torch.load is not None and fs.torch_load.__module__ == "torch_geometric.io.fs"


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
