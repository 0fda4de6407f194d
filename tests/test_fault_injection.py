"""Fault injection on run folders: kills mid-write, damaged checkpoints, two writers, stale config.

Each case uses generated data and trains for seconds. The kill test runs the engine in a
subprocess whose checkpoint (a ~280k-parameter MLP with its Adam state, ~3.4 MB) takes long
enough to write that a SIGKILL can be aimed at the write itself: the test watches for the
temporary file of the atomic write and kills the process while it exists.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from graphlab.runfolder import CorruptFileError, RunFolderError
from graphlab.testing.tiny_bundle import tiny_regression_bundle
from graphlab.train import TrainConfig, train

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path

    import torch
    import torch.nn.functional as F
    from torch import nn

    from graphlab.engine import fit
    from graphlab.runfolder import RunFolder, atomic_write_json

    torch.set_num_threads(1)
    out, epochs = Path(sys.argv[1]), int(sys.argv[2])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=gen)
    y = x.sum(1, keepdim=True)
    with RunFolder(out, {"epochs": epochs, "task": "fault-injection"}):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(32, 512), nn.ReLU(), nn.Dropout(0.1),
                              nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(1)

        def batches(epoch):
            perm = torch.randperm(64, generator=order)
            return [perm[:32], perm[32:]]

        res = fit(model, opt, train_step=lambda m, i: F.mse_loss(m(x[i]), y[i]),
                  train_batches=batches, epochs=epochs,
                  evaluate=lambda m: {"valid": F.mse_loss(m(x), y).item()},
                  select=("valid", "min"), run_dir=out, generator=order, progress=False)
        atomic_write_json(out / "result.json", {
            "history": res.history, "best_epoch": res.best_epoch,
            "weights": [float(p.detach().double().sum()) for p in model.parameters()]})
""")


def _start(script: Path, out: Path, epochs: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    return subprocess.Popen([sys.executable, str(script), str(out), str(epochs)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _temp_files(out: Path) -> list[Path]:
    return list(out.glob(".checkpoint.pt*.tmp"))


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if pred():
            return True
        time.sleep(0.001)
    return False


def _run_in_process(script: Path, out: Path, epochs: int) -> None:
    threads = torch.get_num_threads()
    argv, sys.argv = sys.argv, [str(script), str(out), str(epochs)]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)


def test_sigkill_during_checkpoint_writes_resumes_identically(tmp_path):
    script = tmp_path / "fault_script.py"
    script.write_text(SCRIPT)
    epochs = 30
    _run_in_process(script, tmp_path / "ref", epochs)  # the uninterrupted reference
    reference = json.loads((tmp_path / "ref" / "result.json").read_text())

    out = tmp_path / "killed"
    rng = random.Random(0)
    mid_write = kills = 0
    for attempt in range(4):
        proc = _start(script, out, epochs)
        ckpt = out / "checkpoint.pt"
        if attempt % 2 == 0:  # aim at the write: kill while its temporary file exists
            hit = _wait_for(lambda: bool(_temp_files(out)), proc)
        else:  # anywhere in an epoch
            hit = _wait_for(ckpt.exists, proc)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            proc.wait()
            mid_write += bool(hit and attempt % 2 == 0 and _temp_files(out))
        else:
            proc.wait()
        if (out / "result.json").exists():
            break
    assert kills >= 3, "the run finished before it could be killed enough times"
    assert mid_write >= 1, "no kill landed inside a checkpoint write"

    final = _start(script, out, epochs)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err.decode()
    assert not _temp_files(out)  # the orphans of the killed writes were cleaned up
    resumed = json.loads((out / "result.json").read_text())
    assert [h["epoch"] for h in resumed["history"]] == list(range(epochs))
    assert resumed["best_epoch"] == reference["best_epoch"]
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in reference["history"]], rel=1e-6)
    assert resumed["weights"] == pytest.approx(reference["weights"], rel=1e-6)


def _config(out: Path, **kw) -> TrainConfig:
    base = dict(dataset="tiny", model="gin", epochs=2, batch_size=8, lr=1e-2, out=str(out),
                progress=False, model_kwargs={"hidden_channels": 8, "num_layers": 1})
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "flipped"])
def test_damaged_checkpoint_names_the_file_and_overwrite_recovers(tmp_path, damage):
    """Regression (issue 18): an empty/truncated/garbage checkpoint gave a bare EOFError /
    PytorchStreamReader / UnpicklingError naming no file; 64 flipped bytes loaded silently."""
    bundle = tiny_regression_bundle()
    train(_config(tmp_path), bundle)
    (tmp_path / "run_0" / "result.json").unlink()  # the run was interrupted
    ckpt = tmp_path / "run_0" / "checkpoint.pt"
    data = ckpt.read_bytes()
    if damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(os.urandom(len(data)))
    else:
        flipped = bytearray(data)
        for i in range(64):
            flipped[len(data) // 3 + 7 * i] ^= 0xA5
        ckpt.write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError) as info:
        train(_config(tmp_path), bundle)
    msg = str(info.value)
    assert str(ckpt) in msg and "--overwrite" in msg and "weights_only=False" not in msg
    assert len(msg.splitlines()) == 1
    res = train(_config(tmp_path), bundle, overwrite=True)
    assert res["runs"][0]["epochs"] == 2


def test_second_writer_gets_the_lock_error_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """Regression (issue 18): two processes in one --out shared checkpoint.pt.tmp and one died
    with FileNotFoundError."""
    script = tmp_path / "fault_script.py"
    script.write_text(SCRIPT)
    out = tmp_path / "shared"
    holder = _start(script, out, 100_000)
    try:
        assert _wait_for(lambda: (out / "checkpoint.pt").exists(), holder)
        with pytest.raises(RunFolderError, match=rf"in use by another process \(pid "
                                                 rf"{holder.pid}\)"):
            train(_config(out), tiny_regression_bundle())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel released the dead holder's lock; the folder's config differs, so starting
    # over must be explicit
    with pytest.raises(RunFolderError, match="another configuration"):
        train(_config(out), tiny_regression_bundle())
    res = train(_config(out), tiny_regression_bundle(), overwrite=True)
    assert res["summary"]["num_runs"] == 1 and not _temp_files(out)


def test_cli_refuses_stale_config_naming_keys_and_overwrite_starts_over(tmp_path, monkeypatch,
                                                                         capsys):
    """Regression (issue 18): gin's results reported under gcn's name in a reused --out."""
    from graphlab.cli import main

    monkeypatch.setattr("graphlab.train.get_dataset", lambda *a, **k: tiny_regression_bundle())
    out = str(tmp_path / "D")
    common = ["--dataset", "MUTAG", "--out", out, "--no-progress", "--hidden-channels", "8",
              "--num-layers", "1"]
    assert main(["train", "--model", "gin", "--epochs", "2", *common]) == 0
    capsys.readouterr()
    assert main(["train", "--model", "gcn", "--epochs", "1", "--lr", "0.1", *common]) == 2
    err = capsys.readouterr().err
    assert "model: 'gin' -> 'gcn'" in err and "epochs: 2 -> 1" in err and "lr: 0.001 -> 0.1" \
        in err and "--overwrite" in err
    assert json.loads((Path(out) / "results.json").read_text())["model"] == "gin"
    assert main(["train", "--model", "gcn", "--epochs", "1", "--lr", "0.1", *common,
                 "--overwrite"]) == 0
    saved = json.loads((Path(out) / "results.json").read_text())
    assert saved["model"] == "gcn" and saved["config"]["epochs"] == 1
    assert all(r["epochs"] == 1 for r in saved["runs"])
    assert torch.load(Path(out) / "run_0" / "checkpoint.pt", weights_only=True)["state"][
        "history"][-1]["epoch"] == 0
