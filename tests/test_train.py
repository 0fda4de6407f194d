import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from graphlab.datasets import DatasetBundle, TaskSpec
from graphlab.train import TrainConfig, compute_loss, train
from graphlab.utils.metrics import accuracy

# the generated task of the GIN benchmark: no data files needed
SCRIPT = """
import sys, torch
from graphlab.datasets import tree_or_cycle
from graphlab.datasets import DatasetBundle, TaskSpec
from graphlab.train import TrainConfig, train
from graphlab.utils.metrics import accuracy

def bundle():
    graphs = tree_or_cycle(num_graphs=120, seed=3)
    split = {"train": torch.arange(80), "valid": torch.arange(80, 100), "test": torch.arange(100, 120)}
    spec = TaskSpec("graph", 1, 2, "ce", "acc")
    return DatasetBundle("toy", graphs, [split], spec, "toy", "generated", accuracy)

def config(out, epochs):
    return TrainConfig(dataset="toy", model="gin", epochs=epochs, seeds=2, batch_size=16,
                       model_kwargs={"hidden_channels": 16, "num_layers": 2, "readout": "sum"},
                       out=out, progress=False)

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
    return path, toy_train


def test_results_json_and_skip_of_finished_runs(tmp_path):
    _, toy = _load_script(tmp_path)
    out = tmp_path / "run"
    res = train(toy.config(str(out), 3), toy.bundle())
    saved = json.loads((out / "results.json").read_text())
    for key in ("dataset", "model", "metric", "test_mean", "test_std", "valid_mean", "seeds"):
        assert key in saved
    assert saved["num_runs"] == 2 and len(saved["seeds"]) == 2
    assert saved["test_mean"] == pytest.approx(res["test_mean"])
    assert all(s["epochs"] == 3 for s in saved["seeds"])
    # checkpoints hold plain tensors/values only: they load with weights_only=True
    ckpt = torch.load(out / "run_0" / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["epoch"] == 2 and len(ckpt["state"]["history"]) == 3
    # a rerun finds both runs finished and trains nothing
    mtime = (out / "run_0" / "result.json").stat().st_mtime
    again = train(toy.config(str(out), 3), toy.bundle())
    assert again["test_mean"] == res["test_mean"]
    assert (out / "run_0" / "result.json").stat().st_mtime == mtime


def test_killed_run_resumes_without_losing_or_repeating_epochs(tmp_path):
    script, toy = _load_script(tmp_path)
    epochs = 12
    reference = train(toy.config(str(tmp_path / "ref"), epochs), toy.bundle())

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(epochs)], env=env)
    ckpt = out / "run_0" / "checkpoint.pt"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            state = torch.load(ckpt, weights_only=True)["state"]
            if state["epoch"] >= 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = state["epoch"]
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the training process ended before it could be killed"
    assert not (out / "run_0" / "result.json").exists()

    resumed = train(toy.config(str(out), epochs), toy.bundle())
    for ref_run, run in zip(reference["seeds"], resumed["seeds"]):
        assert run["epochs"] == epochs  # nothing repeated, nothing lost
        assert run["best_epoch"] == ref_run["best_epoch"]
        assert run["test"] == pytest.approx(ref_run["test"], abs=1e-6)
        assert run["valid"] == pytest.approx(ref_run["valid"], abs=1e-6)
    history = json.loads((out / "run_0" / "result.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(epochs))


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
    res = train(TrainConfig(dataset="toy-node", model="sage", epochs=30, progress=False, lr=0.01,
                            model_kwargs={"hidden_channels": 16, "num_layers": 2,
                                          "dropout": 0.0}), bundle)
    run = res["seeds"][0]
    assert run["valid"] == 1.0  # the masks carry the signal: the model learns the task
    # best-validation selection: the first epoch reaching the best validation score is kept
    from graphlab.train import fit_run

    history = fit_run(bundle, TrainConfig(dataset="toy-node", model="sage", epochs=30, lr=0.01,
                                          progress=False, model_kwargs={"hidden_channels": 16,
                                          "num_layers": 2, "dropout": 0.0}), 0, None)["history"]
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
