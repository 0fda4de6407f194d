"""DDP training: sharding, gathered metrics equal single-process ones, rank-0 checkpoints, resume.

The two-process test spawns 2 CPU workers (gloo) on a small generated regression task once and
checks everything inside that one job, so it stays well under a minute.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from graphlab.datasets import DatasetBundle
from graphlab.distributed import DistEnv, shard_indices, train_distributed
from graphlab.testing.tiny_bundle import tiny_regression_bundle as tiny_bundle
from graphlab.train import TrainConfig, train


def _config(out: Path, epochs: int) -> TrainConfig:
    return TrainConfig(dataset="tiny", model="gin", epochs=epochs, seeds=1, batch_size=8,
                       lr=1e-2, model_kwargs={"hidden_channels": 8, "num_layers": 2,
                                              "dropout": 0.2},
                       out=str(out), progress=False)


def _single_process_scores(bundle: DatasetBundle, ckpt: Path) -> dict[str, float]:
    """Valid/test metric of a checkpointed model evaluated by one process, batch size 3."""
    from torch_geometric.loader import DataLoader

    from graphlab.models import build_model
    from graphlab.train import evaluate

    torch.manual_seed(0)
    model = build_model("gin", bundle.spec, hidden_channels=8, num_layers=2, dropout=0.2)
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    model.eval()
    scores = {}
    with torch.no_grad():
        for key in ("valid", "test"):
            graphs = [bundle.dataset[int(i)] for i in bundle.splits[0][key]]
            batches = list(DataLoader(graphs, batch_size=3))
            y = torch.cat([b.y for b in batches])
            pred = torch.cat([model(b) for b in batches])
            scores[key] = evaluate(bundle, y, pred)
    return scores


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from graphlab.distributed import distributed_predict, init_distributed

    env = init_distributed("cpu")
    assert env.world_size == world and env.rank == rank
    root = Path(tmp)
    bundle = tiny_bundle()
    report: dict = {}

    # 1) uninterrupted 2-epoch run
    res_a = train_distributed(_config(root / "a", 2), bundle, env)
    report["a"] = res_a["summary"]["test_mean"]

    # 2) gathered predictions are the single-process predictions, in dataset order
    from graphlab.models import build_model

    torch.manual_seed(0)
    model = build_model("gin", bundle.spec, hidden_channels=8, num_layers=2, dropout=0.2)
    model.load_state_dict(torch.load(root / "a" / "run_0" / "checkpoint.pt",
                                     weights_only=True)["model"])
    graphs = [bundle.dataset[int(i)] for i in bundle.splits[0]["test"]]
    y, pred = distributed_predict(model, graphs, env, batch_size=2)
    report["pred"] = pred.view(-1).tolist()
    report["y"] = y.view(-1).tolist()

    # 3) interrupted run: a 2-epoch job "killed" after its first epoch, then resumed. The
    # checkpoint after epoch 0 does not depend on the epoch budget, so a 1-epoch job's folder
    # with the 2-epoch config recorded and no result files is exactly what the kill leaves.
    train_distributed(_config(root / "b", 1), bundle, env)
    if env.is_main:
        (root / "b" / "run_0" / "result.json").unlink()
        (root / "b" / "results.json").unlink()
        cfg = json.loads((root / "b" / "config.json").read_text())
        (root / "b" / "config.json").write_text(json.dumps({**cfg, "epochs": 2}))
    dist.barrier()
    train_distributed(_config(root / "b", 2), bundle, env)

    # 4) rerunning a finished command trains nothing and changes no file
    ckpt = root / "a" / "run_0" / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    res_again = train_distributed(_config(root / "a", 2), bundle, env)
    report["rerun_same"] = res_again["summary"] == res_a["summary"]
    report["ckpt_untouched"] = ckpt.stat().st_mtime_ns == before
    if env.is_main:
        (root / "report.json").write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp(tmp_path: Path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    report = json.loads((tmp_path / "report.json").read_text())
    bundle = tiny_bundle()
    a = json.loads((tmp_path / "a" / "run_0" / "result.json").read_text())
    b = json.loads((tmp_path / "b" / "run_0" / "result.json").read_text())
    assert a["world_size"] == 2 and a["epochs"] == 2

    # the metrics logged during DDP training are those of one process evaluating the same model
    single = _single_process_scores(bundle, tmp_path / "a" / "run_0" / "checkpoint.pt")
    for key in ("valid", "test"):
        assert a["history"][-1][key] == pytest.approx(single[key], rel=1e-6, abs=1e-7)
    # gathered predictions: every test graph once, in order, equal to one-process predictions
    test_y = torch.cat([bundle.dataset[int(i)].y for i in bundle.splits[0]["test"]]).view(-1)
    assert torch.allclose(torch.tensor(report["y"]), test_y)
    assert len(report["pred"]) == 9

    # resume: no epoch repeated or lost, and the same numbers as the uninterrupted run
    assert [h["epoch"] for h in b["history"]] == [0, 1]
    for ha, hb in zip(a["history"], b["history"]):
        assert ha["valid"] == pytest.approx(hb["valid"], rel=1e-6)
        assert ha["loss"] == pytest.approx(hb["loss"], rel=1e-6)
    assert b["test"] == pytest.approx(a["test"], rel=1e-6)
    assert report["rerun_same"] and report["ckpt_untouched"]

    # rank 0 alone wrote files: one checkpoint, results, no stray temporaries
    files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert files == [".lock", "config.json", "results.json", "run_0/checkpoint.pt",
                     "run_0/checkpoint.pt.sha256", "run_0/result.json"]
    assert json.loads((tmp_path / "a" / "results.json").read_text())["extra"]["world_size"] == 2


def test_shard_indices_cover_and_balance():
    for num in (0, 1, 7, 10):
        for world in (1, 2, 3):
            shards = [shard_indices(num, r, world, torch.Generator().manual_seed(1))
                      for r in range(world)]
            assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
            if num:
                assert set(torch.cat(shards).tolist()) == set(range(num))
                assert len(shards[0]) == -(-num // world)
    with pytest.raises(ValueError, match="rank"):
        shard_indices(5, 2, 2)


def test_single_process_is_the_plain_harness(tmp_path: Path):
    bundle = tiny_bundle()
    ours = train_distributed(_config(tmp_path / "d", 2), bundle, DistEnv())
    plain = train(_config(tmp_path / "p", 2), bundle)
    assert ours["summary"] == plain["summary"]
    assert ours["runs"][0]["best_epoch"] == plain["runs"][0]["best_epoch"]
