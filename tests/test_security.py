"""No code runs from files: planted pickles in the dataset cache, raw files and checkpoints.

Regression tests for issue 18 ("code execution through the dataset cache"): a pickle whose
``__reduce__`` calls ``timeit.timeit(<source>)`` (which torch's own blocklist lets through)
written into a cached processed ``data.pt`` ran when ``graphlab train`` or ``get_dataset`` loaded
it, because PyG's ``fs.torch_load`` retries a refused safe load with ``weights_only=False``.
Every test plants such a payload, whose source would create a marker file, and asserts the marker
never appears. The datasets are generated (a tiny EXP ``exp.npz`` and a tiny CSL), so no mirror
or network is needed.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import pytest
import torch

from graphlab.datasets import get_dataset
from graphlab.datasets.safe_load import UnsafeFileError
from graphlab.runfolder import CorruptFileError


class Payload:
    """Unpickling this calls ``timeit.timeit(<source>)``, which creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        # timeit(stmt, setup, timer, number): run the statement once, not a million times
        return timeit.timeit, (f"open({str(self.marker)!r}, 'w').close()", "pass",
                               time.perf_counter, 1)


def _write_exp(root: Path, num_pairs: int = 10) -> None:
    """A tiny EXP-format dataset (pairs of 4-cycles vs. two 2-paths, labelled by pair)."""
    gen = np.random.default_rng(0)
    xs, edges, ys, nodes, num_edges = [], [], [], [], []
    for i in range(2 * num_pairs):
        n = 4
        cyc = np.array([[0, 1, 2, 3, 1, 2, 3, 0], [1, 2, 3, 0, 0, 1, 2, 3]])
        xs.append(gen.integers(0, 2, size=(n, 1)).astype(np.float32))
        edges.append(cyc)
        ys.append(i % 2)
        nodes.append(n)
        num_edges.append(cyc.shape[1])
    raw = root / "exp" / "raw"
    raw.mkdir(parents=True)
    np.savez(raw / "exp.npz", x=np.concatenate(xs), edge_index=np.concatenate(edges, axis=1),
             y=np.array(ys), num_nodes=np.array(nodes), num_edges=np.array(num_edges))


def _write_csl(root: Path, labels: object = None, graphs: object = None) -> Path:
    """A tiny CSL raw folder: scipy COO adjacency matrices (pickle) and a label tensor."""
    from scipy.sparse import coo_matrix

    raw = root / "csl" / "CSL" / "raw"
    raw.mkdir(parents=True)
    if graphs is None:
        graphs = []
        for skip in (2, 3) * 10:
            n = 8
            row = np.concatenate([np.arange(n), np.arange(n)])
            col = np.concatenate([(np.arange(n) + 1) % n, (np.arange(n) + skip) % n])
            graphs.append(coo_matrix((np.ones(2 * n), (row, col)), shape=(n, n)))
    (raw / "graphs_Kary_Deterministic_Graphs.pkl").write_bytes(pickle.dumps(graphs))
    torch.save(torch.tensor([0, 1] * 10) if labels is None else labels,
               raw / "y_Kary_Deterministic_Graphs.pt")
    return raw


@pytest.mark.parametrize("planted", ["data.pt", "pre_transform.pt", "pre_filter.pt"])
def test_payload_in_processed_cache_is_reprocessed_not_run(tmp_path, planted):
    _write_exp(tmp_path)
    first = get_dataset("EXP", root=tmp_path)
    processed = tmp_path / "exp" / "processed"
    assert (processed / planted).exists()
    marker = tmp_path / "PWNED"
    torch.save(Payload(marker), processed / planted)
    with pytest.warns(UserWarning, match=f"{planted}.*refuses.*processing EXP again"):
        again = get_dataset("EXP", root=tmp_path)
    assert not marker.exists()
    assert len(again.dataset) == len(first.dataset) == 20
    assert torch.equal(again.dataset[3].edge_index, first.dataset[3].edge_index)
    # the rebuilt cache is clean: the next load is silent
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_dataset("EXP", root=tmp_path)
    assert not marker.exists()


def test_the_payload_is_live_without_the_guard(tmp_path):
    """Control: PyG's own loader, unguarded, does run the payload (so the tests above are not
    vacuous). Run in a subprocess so nothing leaks into this one."""
    marker, path = tmp_path / "PWNED", tmp_path / "data.pt"
    torch.save(Payload(marker), path)
    code = ("import sys, warnings; warnings.simplefilter('ignore')\n"
            "from torch_geometric.io import fs\n"
            f"fs.torch_load({str(path)!r})\n")
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert marker.exists()


def test_dataset_classes_load_weights_only_on_their_own(tmp_path):
    """``EXPDataset``/``SR25Dataset`` used directly (not through get_dataset) are guarded too."""
    import networkx as nx

    from graphlab.datasets import EXPDataset, SR25Dataset

    _write_exp(tmp_path)
    (tmp_path / "sr25" / "raw").mkdir(parents=True)
    nx.write_graph6(nx.cycle_graph(6), tmp_path / "sr25" / "raw" / "sr251256.g6", header=False)
    marker = tmp_path / "PWNED"
    for cls, folder in ((EXPDataset, "exp"), (SR25Dataset, "sr25")):
        assert len(cls(str(tmp_path / folder))) > 0
        torch.save(Payload(marker), tmp_path / folder / "processed" / "data.pt")
        with pytest.raises(UnsafeFileError, match="data.pt"):
            cls(str(tmp_path / folder))
    assert not marker.exists()


def test_pre_transformed_graphlab_data_reloads_with_the_safe_loader(tmp_path):
    """A cache built with a graphlab pre_transform (AddPaths -> PathData) reloads silently:
    graphlab's registered Data subclasses are allow-listed."""
    import warnings

    from graphlab.datasets import EXPDataset
    from graphlab.transforms import AddPaths

    _write_exp(tmp_path)
    first = EXPDataset(str(tmp_path / "exp"), pre_transform=AddPaths(2))
    assert type(first[0]).__name__ == "PathData"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = EXPDataset(str(tmp_path / "exp"), pre_transform=AddPaths(2))
    assert type(again[0]).__name__ == "PathData" and len(again) == 20


def test_truncated_processed_file_is_reprocessed(tmp_path):
    _write_exp(tmp_path)
    get_dataset("EXP", root=tmp_path)
    data = tmp_path / "exp" / "processed" / "data.pt"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.warns(UserWarning, match="truncated"):
        assert len(get_dataset("EXP", root=tmp_path).dataset) == 20


def test_payload_in_cache_dir_via_env(tmp_path, monkeypatch):
    """The same through ``GRAPHLAB_CACHE`` (no ``root``), with a CSL dataset whose raw files
    PyG reads with ``pickle.load`` and ``fs.torch_load``."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRAPHLAB_CACHE", str(cache))
    monkeypatch.delenv("GRAPHLAB_DATA_DIR", raising=False)
    _write_csl(cache)
    assert len(get_dataset("CSL").dataset) == 20
    marker = tmp_path / "PWNED"
    torch.save(Payload(marker), cache / "csl" / "CSL" / "processed" / "data.pt")
    with pytest.warns(UserWarning, match="refuses"):
        assert len(get_dataset("CSL").dataset) == 20
    assert not marker.exists()


@pytest.mark.parametrize("where", ["graphs", "labels"])
def test_payload_in_raw_files_is_refused_with_a_clear_error(tmp_path, where):
    marker = tmp_path / "PWNED"
    if where == "graphs":
        raw = _write_csl(tmp_path, graphs=[Payload(marker)])
        bad = raw / "graphs_Kary_Deterministic_Graphs.pkl"
    else:
        raw = _write_csl(tmp_path, labels={"y": Payload(marker)})
        bad = raw / "y_Kary_Deterministic_Graphs.pt"
    with pytest.raises(UnsafeFileError) as info:
        get_dataset("CSL", root=tmp_path)
    assert not marker.exists()
    msg = str(info.value)
    assert str(bad) in msg and "Delete" in msg and "weights_only=False" not in msg


def test_graphlab_train_never_runs_a_planted_dataset_pickle(tmp_path):
    """End to end through the CLI with ``--root``: the run succeeds on re-processed data."""
    _write_exp(tmp_path / "data")
    get_dataset("EXP", root=tmp_path / "data")
    marker = tmp_path / "PWNED"
    torch.save(Payload(marker), tmp_path / "data" / "exp" / "processed" / "data.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "graphlab", "train", "--dataset", "EXP", "--model", "gin",
         "--epochs", "1", "--hidden-channels", "8", "--num-layers", "1", "--root",
         str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--no-progress"],
        capture_output=True, text=True, timeout=300, env=env)
    assert not marker.exists()
    assert proc.returncode == 0, proc.stderr
    assert "processing EXP again" in proc.stderr
    assert (tmp_path / "out" / "results.json").exists()


def test_planted_checkpoint_is_refused(tmp_path):
    """A checkpoint is loaded weights-only too: a payload is a clear error, never run."""
    from graphlab.testing.tiny_bundle import tiny_regression_bundle
    from graphlab.train import TrainConfig, train

    config = TrainConfig(dataset="tiny", model="gin", epochs=2, batch_size=8, out=str(tmp_path),
                         progress=False, model_kwargs={"hidden_channels": 8, "num_layers": 1})
    train(config, tiny_regression_bundle())
    (tmp_path / "run_0" / "result.json").unlink()
    ckpt = tmp_path / "run_0" / "checkpoint.pt"
    (tmp_path / "run_0" / "checkpoint.pt.sha256").unlink()  # an attacker would drop it too
    marker = tmp_path / "PWNED"
    torch.save({"model": Payload(marker)}, ckpt)
    with pytest.raises(CorruptFileError, match="safe") as info:
        train(config, tiny_regression_bundle())
    assert not marker.exists()
    assert str(ckpt) in str(info.value) and "weights_only=False" not in str(info.value)
