"""Tests for :func:`graphlab.train.train`: results record, resume after SIGKILL, run folders,
budgets, node-level masks and empty splits."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from graphlab.datasets import DatasetBundle, TaskSpec
from graphlab.runfolder import RESULTS_SCHEMA, RunFolderError
from graphlab.train import TrainConfig, compute_loss, train
from graphlab.utils.metrics import accuracy

# a generated classification task: no data files needed
SCRIPT = """
import sys, torch
from graphlab.datasets import DatasetBundle, TaskSpec, tree_or_cycle
from graphlab.train import TrainConfig, train
from graphlab.utils.metrics import accuracy

def bundle():
    graphs = tree_or_cycle(num_graphs=120, seed=3)
    split = {"train": torch.arange(80), "valid": torch.arange(80, 100), "test": torch.arange(100, 120)}
    spec = TaskSpec("graph", 1, 2, "ce", "acc")
    return DatasetBundle("toy", graphs, [split], spec, "toy", "generated", accuracy)

def config(out, epochs, **kw):
    return TrainConfig(dataset="toy", model="gin", epochs=epochs, seeds=2, batch_size=16,
                       model_kwargs={"hidden_channels": 16, "num_layers": 2, "readout": "sum"},
                       out=out, progress=False, **kw)

if __name__ == "__main__":
    torch.set_num_threads(1)
    train(config(sys.argv[1], int(sys.argv[2])), bundle())
"""


def _load_script(tmp_path: Path):
    path = tmp_path / "toy_train.py"
    path.write_text(SCRIPT)
    sys.path.insert(0, str(tmp_path))
    try:
        import toy_train  # noqa: PLC0415
    finally:
        sys.path.pop(0)
        sys.modules.pop("toy_train", None)
    return path, toy_train


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path]),
            "OMP_NUM_THREADS": "1"}


def test_results_json_and_skip_of_finished_runs(tmp_path):
    _, toy = _load_script(tmp_path)
    out = tmp_path / "run"
    res = train(toy.config(str(out), 3), toy.bundle())
    text = (out / "results.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert saved["schema"] == RESULTS_SCHEMA
    assert (saved["dataset"], saved["model"], saved["metric"]) == ("toy", "gin", "acc")
    for key in ("test_mean", "test_std", "valid_mean", "valid_std", "num_runs", "num_params"):
        assert key in saved["summary"]
    for key in ("commit", "date", "machine", "versions", "config", "timings"):
        assert key in saved
    assert saved["summary"]["num_runs"] == 2 and len(saved["runs"]) == 2
    assert saved["summary"]["test_mean"] == pytest.approx(res["summary"]["test_mean"])
    assert all(s["epochs"] == 3 for s in saved["runs"])
    assert json.loads((out / "config.json").read_text())["epochs"] == 3
    # checkpoints hold plain tensors/values only: they load with weights_only=True
    ckpt = torch.load(out / "run_0" / "checkpoint.pt", weights_only=True)
    assert len(ckpt["state"]["history"]) == 3
    # a rerun finds both runs finished and trains nothing
    mtime = (out / "run_0" / "result.json").stat().st_mtime
    again = train(toy.config(str(out), 3), toy.bundle())
    assert again["summary"] == res["summary"]
    assert (out / "run_0" / "result.json").stat().st_mtime == mtime


def test_killed_run_resumes_without_losing_or_repeating_epochs(tmp_path):
    script, toy = _load_script(tmp_path)
    epochs = 12
    reference = train(toy.config(str(tmp_path / "ref"), epochs), toy.bundle())

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(epochs)], env=_env())
    ckpt = out / "run_0" / "checkpoint.pt"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                state = torch.load(ckpt, weights_only=True)["state"]
            except Exception:  # noqa: BLE001 - replaced while we read it
                continue
            if len(state["history"]) >= 3:
                proc.send_signal(signal.SIGKILL)
                killed_at = len(state["history"])
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the training process ended before it could be killed"
    assert not (out / "run_0" / "result.json").exists()

    resumed = train(toy.config(str(out), epochs), toy.bundle())
    for ref_run, run in zip(reference["runs"], resumed["runs"]):
        assert run["epochs"] == epochs  # nothing repeated, nothing lost
        assert run["best_epoch"] == ref_run["best_epoch"]
        assert run["test"] == pytest.approx(ref_run["test"], abs=1e-6)
        assert run["valid"] == pytest.approx(ref_run["valid"], abs=1e-6)
    history = json.loads((out / "run_0" / "result.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(epochs))
    ref_history = json.loads((tmp_path / "ref" / "run_0" / "result.json").read_text())["history"]
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in ref_history],
                                                         rel=1e-5)


def test_changed_config_is_refused_naming_the_keys(tmp_path):
    """Regression (issue 18): a gcn run in a gin folder reported gin's runs as gcn's."""
    _, toy = _load_script(tmp_path)
    out = str(tmp_path / "d")
    gin = train(toy.config(out, 2), toy.bundle())
    changed = replace(toy.config(out, 1), model="gcn", lr=0.1)
    with pytest.raises(RunFolderError) as info:
        train(changed, toy.bundle())
    msg = str(info.value)
    assert "model: 'gin' -> 'gcn'" in msg and "epochs: 2 -> 1" in msg and "lr" in msg
    assert "--overwrite" in msg
    res = train(changed, toy.bundle(), overwrite=True)
    assert res["model"] == "gcn" and all(r["epochs"] == 1 for r in res["runs"])
    saved = json.loads((Path(out) / "results.json").read_text())
    assert saved["model"] == "gcn" and saved["summary"] == res["summary"]
    assert saved["summary"]["num_params"] != gin["summary"]["num_params"]  # gcn's own runs
    # changing only resumable keys (seeds, progress, device) continues the folder
    more = train(replace(changed, seeds=3, progress=False), toy.bundle())
    assert more["summary"]["num_runs"] == 3


@pytest.mark.parametrize("field,value,match", [
    ("epochs", 0, "epochs must be a positive integer"),
    ("epochs", -1, "epochs must be a positive integer"),
    ("seeds", 0, "seeds must be a positive integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("lr", -0.1, "lr must be a positive number"),
    ("lr", float("nan"), "lr must be a positive number"),
    ("weight_decay", -1.0, "weight_decay must be a non-negative number"),
])
def test_budgets_are_validated(field, value, match):
    """Regression (issue 18): --epochs 0/-1 and --seeds 0 wrote `nan ± nan` and bare NaN."""
    with pytest.raises(ValueError, match=match):
        TrainConfig(dataset="MUTAG", model="gin", **{field: value})


def test_unusable_device_is_a_clear_error(tmp_path):
    _, toy = _load_script(tmp_path)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        train(replace(toy.config(None, 1), device="cuda"), toy.bundle())
    with pytest.raises(ValueError, match="unknown device"):
        train(replace(toy.config(None, 1), device="gpu0"), toy.bundle())


def test_empty_training_split_is_a_clear_error():
    """Regression (issue 16): an empty training split raised NameError in the single-process
    loop (and trained nothing silently in the distributed one)."""
    from graphlab.datasets import tree_or_cycle

    graphs = tree_or_cycle(num_graphs=20, seed=0)
    split = {"train": torch.arange(0), "valid": torch.arange(10), "test": torch.arange(10, 20)}
    bundle = DatasetBundle("toy", graphs, [split], TaskSpec("graph", 1, 2, "ce", "acc"), "toy",
                           "generated", accuracy)
    with pytest.raises(ValueError, match="train split of run 0 is empty"):
        train(TrainConfig(dataset="toy", model="gin", epochs=1, progress=False), bundle)


def test_training_does_not_consume_the_callers_rng(tmp_path):
    _, toy = _load_script(tmp_path)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train(toy.config(None, 1), toy.bundle())
    assert torch.equal(torch.rand(3), expected)


def test_node_level_training_uses_masks():
    gen = torch.Generator().manual_seed(0)
    from torch_geometric.data import Data

    n = 60
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=gen) + y.unsqueeze(-1).float() * 3
    edge_index = torch.stack([torch.arange(n), (torch.arange(n) + 2) % n])
    data = Data(x=x, edge_index=torch.cat([edge_index, edge_index.flip(0)], 1), y=y)
    split = {"train": torch.arange(0, 40), "valid": torch.arange(40, 50),
             "test": torch.arange(50, 60)}
    bundle = DatasetBundle("toy-node", [data], [split], TaskSpec("node", 4, 2, "ce", "acc"),
                           "toy", "generated", accuracy)
    config = TrainConfig(dataset="toy-node", model="sage", epochs=30, progress=False, lr=0.01,
                         model_kwargs={"hidden_channels": 16, "num_layers": 2, "dropout": 0.0})
    res = train(config, bundle)
    run = res["runs"][0]
    assert run["valid"] == 1.0  # the masks carry the signal: the model learns the task
    # best-validation selection: the first epoch reaching the best validation score is kept
    from graphlab.train import fit_run

    history = fit_run(bundle, config, 0, None)["history"]
    best = max(range(len(history)), key=lambda e: (history[e]["valid"], -e))
    assert run["best_epoch"] == best and run["test"] == history[best]["test"]
    assert history[-1]["test"] == 1.0


def test_losses_ignore_missing_labels():
    spec = TaskSpec("graph", 1, 2, "bce", "rocauc")
    pred = torch.tensor([[0.0, 5.0], [1.0, -2.0]], requires_grad=True)
    y = torch.tensor([[0.0, float("nan")], [1.0, float("nan")]])
    loss = compute_loss(spec, pred, y)
    loss.backward()
    assert torch.isfinite(loss) and pred.grad[:, 1].abs().sum() == 0


def test_pretransform_of_pathnn_is_chunked_and_equals_the_per_graph_transform():
    from graphlab.models import PathNN
    from graphlab.testing import random_graph
    from graphlab.train import pretransform

    graphs = [random_graph(5 + i % 4, seed=i) for i in range(12)]
    model = PathNN(8, 8, 2, num_layers=3, kind="all_simple")
    chunked = pretransform(SimpleNamespace(dataset=graphs), model)  # only .dataset is read
    for got, graph in zip(chunked, graphs, strict=True):
        want = model.transform(graph)
        assert sorted(got.keys()) == sorted(want.keys())
        for key in want.keys():
            if isinstance(want[key], torch.Tensor):
                assert torch.equal(got[key], want[key]), key
