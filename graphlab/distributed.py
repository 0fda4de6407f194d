"""Data-parallel training on ``torch.distributed``: the training harness under ``torchrun``.

:func:`train_distributed` is :func:`graphlab.train.train` for ``N`` processes. Launched by
``torchrun --nproc_per_node=N`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...), every
process trains a :class:`~torch.nn.parallel.DistributedDataParallel` replica (``gloo`` on CPU,
``nccl`` on GPU) on its shard of each epoch's shuffled training set; with one process it *is*
:func:`graphlab.train.train`. The protocol is the single-process one:

* **Sharding.** Epoch ``e`` of seed ``s`` shuffles the training set with the generator seed
  ``s * 100003 + e`` (the single-process order), pads it by wrapping around to a multiple of
  ``N`` and gives rank ``r`` the positions ``r, r + N, ...`` (``DistributedSampler``'s scheme), so
  every rank runs the same number of steps. ``batch_size`` is the *global* batch; each rank takes
  ``batch_size // N`` graphs per step.
* **Evaluation.** Before evaluating, the model's buffers (batch-norm statistics, which every rank
  updated on its own shard) are broadcast from rank 0, so all ranks hold rank 0's model. Each rank
  predicts on a strided shard of the split, the ``(position, prediction)`` pairs are gathered with
  ``all_gather_object``, duplicates from the padding are dropped and the predictions are put back
  into the dataset's order, and the metric is computed over the whole split on every rank: it is
  exactly the metric a single process computes for rank 0's model, and all ranks agree on the
  best-validation epoch without a further broadcast.
* **Checkpoints** (``run_i/checkpoint.pt`` after every epoch, ``run_i/result.json`` when a run
  ends, ``results.json``) are written atomically by rank 0 only, followed by a barrier. They hold
  the RNG state of every rank, so a resumed run replays its dropout exactly; they are plain
  tensors and Python values, read with ``weights_only=True``, and keep the single-process format
  (a run started with one process can be resumed with several and the other way round).

Batch norm is per-replica during training (no ``SyncBatchNorm``, which PyTorch implements for
GPUs only), as in standard DDP training.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphlab.datasets import DatasetBundle, get_dataset
from graphlab.models.registry import build_model
from graphlab.train import (
    TrainConfig,
    atomic_torch_save,
    atomic_write_json,
    compute_loss,
    evaluate,
    is_better,
    pretransform,
    resume_checkpoint,
    summarize_runs,
    train,
)

__all__ = ["DistEnv", "init_distributed", "shard_indices", "distributed_predict",
           "distributed_evaluate", "broadcast_buffers", "train_distributed"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job: ``rank`` of ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistEnv:
    """Join the process group described by ``torchrun``'s environment variables, if any.

    Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) nothing is initialised and a one-process
    environment is returned. The backend is ``nccl`` for CUDA devices and ``gloo`` otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world <= 1:
        return DistEnv()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(dist.get_rank(), dist.get_world_size(), local)


def shard_indices(num: int, rank: int, world_size: int,
                  generator: torch.Generator | None = None) -> Tensor:
    """Positions ``0..num-1`` for ``rank``: optionally shuffled by ``generator`` (the same on all
    ranks), padded by wrapping around to a multiple of ``world_size``, then strided by rank.

    Every rank gets ``ceil(num / world_size)`` positions and every position is on some rank.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    order = torch.randperm(num, generator=generator) if generator is not None \
        else torch.arange(num)
    if num == 0:
        return order
    total = -(-num // world_size) * world_size
    if total > num:
        order = torch.cat([order, order.repeat(total // num + 1)[: total - num]])
    return order[rank:total:world_size]


def broadcast_buffers(module: nn.Module, env: DistEnv) -> None:
    """Copy rank 0's buffers (e.g. batch-norm running statistics) to every rank."""
    if not env.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=0)


@torch.no_grad()
def distributed_predict(model: nn.Module, graphs: list, env: DistEnv, device: str = "cpu",
                        batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Predictions and targets for ``graphs``, in their order, computed by all ranks together.

    Each rank predicts a strided shard; the shards are gathered, padding duplicates dropped and
    the rows put back at their positions. Every rank returns the full ``(y, pred)``.
    """
    model.eval()
    positions = shard_indices(len(graphs), env.rank, env.world_size)
    ys, preds = [], []
    loader = DataLoader([graphs[int(i)] for i in positions], batch_size=batch_size)
    for batch in loader:
        batch = batch.to(device)
        preds.append(model(batch).cpu())
        ys.append(batch.y.cpu())
    local = (positions, torch.cat(ys) if ys else None, torch.cat(preds) if preds else None)
    if not env.distributed:
        return local[1], local[2]
    parts: list = [None] * env.world_size
    dist.all_gather_object(parts, local)
    parts = [p for p in parts if p[1] is not None]
    if not parts:
        raise ValueError("cannot evaluate an empty split")
    pos = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    pred = torch.cat([p[2] for p in parts])
    # padded positions appear twice with the same graph; keep one row per position
    y_out = y.new_empty((len(graphs), *y.shape[1:]))
    pred_out = pred.new_empty((len(graphs), *pred.shape[1:]))
    y_out[pos] = y
    pred_out[pos] = pred
    return y_out, pred_out


def distributed_evaluate(bundle: DatasetBundle, model: nn.Module, graphs: list, env: DistEnv,
                         device: str = "cpu", batch_size: int = 256) -> float:
    """The bundle's metric (OGB's ``Evaluator`` for ``ogbg-*``) over ``graphs``, on every rank."""
    return evaluate(bundle, *distributed_predict(model, graphs, env, device, batch_size))


def _barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def _gather_rng(env: DistEnv) -> list[Tensor]:
    state = torch.get_rng_state()
    if not env.distributed:
        return [state]
    states: list = [None] * env.world_size
    dist.all_gather_object(states, state)
    return states


def fit_run_distributed(bundle: DatasetBundle, config: TrainConfig, run: int,
                        run_dir: Path | None, env: DistEnv) -> dict:
    """One run (seed ``run``) of best-validation training with DDP; see the module docstring."""
    spec = bundle.spec
    if spec.level != "graph":
        raise ValueError("distributed training shards graphs; node-level tasks run with one "
                         "process (graphlab.train.train)")
    split = bundle.splits[run % len(bundle.splits)]
    seed = run
    torch.manual_seed(seed)  # identical initial weights on every rank
    module = build_model(config.model, spec, **config.model_kwargs).to(config.device)
    data = pretransform(bundle, module)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    # dropout differs between replicas (as with one process over the full batch)
    torch.manual_seed(seed * 1_000 + env.rank)

    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    state, ckpt = resume_checkpoint(ckpt_path, module, optimizer, config.device)
    if ckpt is not None:
        ranks = ckpt.get("rng_ranks")
        if ranks is not None and len(ranks) == env.world_size:
            torch.set_rng_state(ranks[env.rank])
        elif env.rank == 0:
            torch.set_rng_state(ckpt["rng"])

    device_ids = [env.local_rank] if config.device.startswith("cuda") else None
    model = nn.parallel.DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=True) if env.distributed \
        else module
    eval_sets = {k: [data[int(i)] for i in split[k]] for k in ("valid", "test")}
    train_set = [data[int(i)] for i in split["train"]]
    per_rank = max(1, config.batch_size // env.world_size)

    bar = tqdm(range(state["epoch"] + 1, config.epochs), desc=f"run {run}",
               disable=not (config.progress and env.is_main), leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        order = torch.Generator().manual_seed(seed * 100_003 + epoch)
        mine = shard_indices(len(train_set), env.rank, env.world_size, order)
        loader = DataLoader([train_set[int(i)] for i in mine], batch_size=per_rank,
                            drop_last=len(mine) > per_rank)
        loss = torch.zeros(())
        for batch in loader:
            batch = batch.to(config.device)
            optimizer.zero_grad()
            loss = compute_loss(spec, model(batch), batch.y)
            loss.backward()
            optimizer.step()
        broadcast_buffers(module, env)
        scores = {k: distributed_evaluate(bundle, module, graphs, env, config.device)
                  for k, graphs in eval_sets.items()}
        state["seconds"] += time.perf_counter() - start
        state["history"].append({"epoch": epoch, "loss": loss.item(), **scores})
        if is_better(spec, scores["valid"], state["best_valid"]):
            state.update(best_valid=scores["valid"], best_test=scores["test"], best_epoch=epoch)
        state["epoch"] = epoch
        bar.set_postfix(valid=f"{scores['valid']:.4f}", test=f"{scores['test']:.4f}")
        rng = _gather_rng(env)
        if ckpt_path is not None and env.is_main:
            atomic_torch_save({"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                               "rng": rng[0], "rng_ranks": rng, "state": state}, ckpt_path)
        _barrier(env)
    epochs_run = len(state["history"])
    return {
        "run": run, "seed": seed, "split": run % len(bundle.splits),
        "best_epoch": state["best_epoch"], "valid": state["best_valid"],
        "test": state["best_test"], "epochs": epochs_run,
        "seconds_per_epoch": state["seconds"] / max(epochs_run, 1),
        "num_params": sum(p.numel() for p in module.parameters()),
        "world_size": env.world_size,
        "history": state["history"],
    }


def train_distributed(config: TrainConfig, bundle: DatasetBundle | None = None,
                      env: DistEnv | None = None) -> dict:
    """:func:`graphlab.train.train` on all processes of the job (``torchrun``) or on one.

    Finished runs are read back from ``OUT/run_i/result.json``; an interrupted run resumes from
    its last checkpoint. Every rank returns the same summary; rank 0 writes the files.
    """
    env = env or init_distributed(config.device)
    if not env.distributed:
        return train(config, bundle)
    bundle = bundle or get_dataset(config.dataset, root=config.root)
    out = Path(config.out) if config.out else None
    if out is not None and env.is_main:
        out.mkdir(parents=True, exist_ok=True)
    _barrier(env)
    runs = []
    for run in range(config.seeds):
        run_dir = out / f"run_{run}" if out is not None else None
        done = run_dir / "result.json" if run_dir is not None else None
        if done is not None and done.exists():
            runs.append(json.loads(done.read_text()))
            continue
        if run_dir is not None and env.is_main:
            run_dir.mkdir(exist_ok=True)
        _barrier(env)
        result = fit_run_distributed(bundle, config, run, run_dir, env)
        if done is not None and env.is_main:
            atomic_write_json(done, result)
        _barrier(env)
        runs.append(result)

    results = {**summarize_runs(bundle, config, runs), "world_size": env.world_size}
    if out is not None and env.is_main:
        atomic_write_json(out / "results.json", results)
    _barrier(env)
    return results
