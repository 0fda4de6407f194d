"""Process-group and sharding utilities for data-parallel training on ``torch.distributed``.

The training loop itself is :func:`graphlab.engine.fit`, in which one process is the world-size-1
case of this module's :class:`DistEnv`; :func:`train_distributed` is :func:`graphlab.train.train`
on every process of a ``torchrun --nproc_per_node=N`` job (which sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ...). Every process trains a
:class:`~torch.nn.parallel.DistributedDataParallel` replica (``gloo`` on CPU, ``nccl`` on GPU)
on its shard of each epoch's shuffled training set. The protocol:

* **Sharding.** Epoch ``e`` of seed ``s`` shuffles the training set with the generator seed
  ``s * 100003 + e``, pads it by wrapping around to a multiple of ``N`` and gives rank ``r`` the
  positions ``r, r + N, ...`` (:func:`shard_indices`, ``DistributedSampler``'s scheme), so every
  rank runs the same number of steps. ``batch_size`` is the *global* batch; each rank takes
  ``batch_size // N`` graphs per step. With ``N = 1`` this is the single-process order.
* **Evaluation.** Before evaluating, the model's buffers (batch-norm statistics, which every rank
  updated on its own shard) are broadcast from rank 0 (:func:`broadcast_buffers`), so all ranks
  hold rank 0's model. Each rank predicts on a strided shard of the split, the
  ``(position, prediction)`` pairs are gathered, padding duplicates are dropped and the
  predictions are put back into the dataset's order (:func:`distributed_predict`); the metric is
  computed over the whole split on every rank, so all ranks agree on the best epoch.
* **Checkpoints** are written by rank 0 only, followed by a :func:`barrier`; they hold the RNG
  state of every rank and keep the single-process format (a run started with one process can be
  resumed with several and the other way round).

Batch norm is per-replica during training (no ``SyncBatchNorm``, which PyTorch implements for
GPUs only), as in standard DDP training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

if TYPE_CHECKING:
    from graphlab.datasets import DatasetBundle
    from graphlab.train import TrainConfig

__all__ = ["DistEnv", "init_distributed", "shard_indices", "distributed_predict",
           "distributed_evaluate", "broadcast_buffers", "barrier", "all_gather_object",
           "train_distributed"]


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
    from torch_geometric.loader import DataLoader  # the engine imports this module: keep it light

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
    from graphlab.train import evaluate

    return evaluate(bundle, *distributed_predict(model, graphs, env, device, batch_size))


def barrier(env: DistEnv) -> None:
    """Wait for every rank (nothing to do with one process)."""
    if env.distributed:
        dist.barrier()


def all_gather_object(obj: Any, env: DistEnv) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank; ``[obj]`` with one process."""
    if not env.distributed:
        return [obj]
    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def train_distributed(config: TrainConfig, bundle: DatasetBundle | None = None,
                      env: DistEnv | None = None, overwrite: bool = False) -> dict:
    """:func:`graphlab.train.train` on all processes of the job (``torchrun``) or on one.

    ``env`` defaults to :func:`init_distributed`. Every rank returns the same results record;
    rank 0 writes the files.
    """
    from graphlab.train import train

    env = env or init_distributed(config.device)
    return train(config, bundle, env=env, overwrite=overwrite)
