r"""The training engine: one fit / evaluate / checkpoint / resume loop for all of graphlab.

:func:`fit` trains a model for a number of epochs, evaluates it after each, keeps the
best-validation epoch and checkpoints everything needed to continue (model, optimizer,
scheduler, RNG states, generator, epoch, best scores, history) atomically after every epoch.
Called again with the same ``run_dir`` it resumes after the last completed epoch and gives the
result an uninterrupted run would have given (a killed process loses at most the epoch in
progress). One process is the world-size-1 case of data-parallel training: with a
:class:`~graphlab.distributed.DistEnv` of several ranks the same loop wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel`, synchronises batch-norm buffers before
evaluation, writes checkpoints from rank 0 only and records every rank's RNG state.

``graphlab train`` (:func:`graphlab.train.train`) is built on it; so can any loop that trains a
model (zoo members, benchmark scripts). The task-specific parts are hooks:

.. code-block:: python

    from graphlab.engine import fit

    def batches(epoch):                     # the batches of one epoch (any iterable)
        order = torch.Generator().manual_seed(1000 * seed + epoch)   # replayable on resume
        return DataLoader(train_set, batch_size=32, shuffle=True, generator=order)

    def step(model, batch):                 # the loss of one batch; the engine does
        return F.cross_entropy(model(batch), batch.y)   # zero_grad / backward / step

    @torch.no_grad()
    def scores(model):                      # called in eval mode after every epoch
        return {"valid": accuracy(model, valid_set), "test": accuracy(model, test_set)}

    result = fit(model, optimizer, train_step=step, train_batches=batches, epochs=100,
                 evaluate=scores, select=("valid", "max"), run_dir="runs/x/run_0")
    result.best_epoch, result.best["test"], result.history[-1]["loss"]

API
---
``fit(model, optimizer, *, train_step, train_batches, epochs, evaluate=None,
select=("valid", "max"), patience=None, min_epochs=None, run_dir=None, scheduler=None,
scheduler_interval="epoch", progress=True, generator=None, env=None, clip_grad_norm=None,
restore_best=False, on_epoch_end=None, desc="train") -> FitResult``

* ``train_step(model, batch) -> Tensor``: the scalar loss of one batch. ``model`` is the module
  to call (the DDP wrapper when distributed). The engine zeroes gradients, calls ``backward``,
  clips (``clip_grad_norm``) and steps the optimizer (and a ``scheduler_interval="step"``
  scheduler).
* ``train_batches``: ``epoch -> iterable`` (preferred: make the order a function of the epoch so
  a resumed run replays it) or an iterable re-iterated every epoch. An epoch without batches
  records ``loss=None``.
* ``evaluate(model) -> dict[str, float]``: called after every epoch on the plain module, in
  ``eval()`` mode, under ``torch.no_grad()``. Scores are merged into the epoch's history entry.
* ``select=(key, "max" | "min")``: the best epoch is the first with the best ``scores[key]``
  (NaN never wins); ``select=None`` makes the last epoch the best. A list of criteria is
  compared lexicographically: ``[("valid_acc", "max"), ("valid_loss", "min")]`` breaks ties in
  accuracy (frequent on small validation sets) by the lower validation loss.
* ``patience``: early stopping: training ends after ``patience`` epochs without a better
  selected score (``FitResult.stopped_early``). The decision is checkpointed, so a resumed run
  that had stopped trains no further.
* ``min_epochs``: early stopping never ends a run before this many epochs have been trained
  (PR-MPNN's configs: ``min_epochs: 200``); the best epoch is still selected over all of them.
  Without ``patience`` it changes nothing.
* ``run_dir``: where ``checkpoint.pt`` (with a ``checkpoint.pt.sha256`` sidecar) is written after
  every epoch and read back on the next call; ``None`` disables checkpointing. The caller owns
  the folder (use :class:`graphlab.runfolder.RunFolder` to lock it and record the config).
* ``scheduler``: stepped once per epoch (after evaluation; a
  :class:`~torch.optim.lr_scheduler.ReduceLROnPlateau` receives the selected score) or per step.
* ``generator``: a :class:`torch.Generator` your hooks draw from; its state is checkpointed
  and restored together with the global CPU (and CUDA) RNG states.
* ``restore_best``: keep a copy of the best epoch's weights (also checkpointed) and load them
  into ``model`` before returning.
* ``on_epoch_end(epoch, record)``: called with the epoch's history entry (logging, curves).

:class:`FitResult` holds ``history`` (one ``{"epoch", "loss", **scores}`` dict per epoch, all
epochs including those before a resume), ``best_epoch``, ``best`` (the scores of that epoch),
``epochs``, ``seconds`` (training + evaluation time, summed over all sessions),
``seconds_per_epoch``, ``resumed_from`` (the last epoch found in the checkpoint, ``-1`` for a
fresh run) and ``stopped_early``.

**Corrupt checkpoints.** A checkpoint that is empty, truncated, garbage, fails its SHA-256 or
holds objects a weights-only load refuses raises :class:`graphlab.runfolder.CorruptFileError`
naming the file and saying to delete it or start over with ``--overwrite``. The engine does not
silently fall back to an older epoch: checkpoints are written atomically, so a corrupt one means
the bytes changed on disk after the write, which a person should know about.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from graphlab.distributed import DistEnv, all_gather_object, barrier, broadcast_buffers
from graphlab.runfolder import CorruptFileError, atomic_torch_save, safe_torch_load

__all__ = ["fit", "FitResult", "is_better", "CHECKPOINT_NAME", "CHECKPOINT_FORMAT"]

#: file name of the engine's checkpoint inside ``run_dir``
CHECKPOINT_NAME = "checkpoint.pt"
#: format tag stored in every checkpoint
CHECKPOINT_FORMAT = "graphlab.checkpoint/1"


@dataclass
class FitResult:
    """What :func:`fit` returns; see the module docstring."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    resumed_from: int = -1
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        """Number of epochs trained (including those before a resume)."""
        return len(self.history)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1)


def is_better(new: float | None, best: float | None, higher_is_better: bool) -> bool:
    """Whether score ``new`` improves on ``best``; ``best=None`` or NaN accepts any non-NaN
    ``new``, and a NaN (or ``None``) ``new`` never wins."""
    if new is None or math.isnan(new):
        return False
    if best is None or math.isnan(best):
        return True
    return new > best if higher_is_better else new < best


Criterion = tuple[str, str]


def selection_criteria(select: Criterion | Sequence[Criterion] | None) -> list[Criterion]:
    """``select`` as a list of ``(key, "max" | "min")`` criteria, compared lexicographically
    (``[]`` for ``None``); raises ``ValueError`` for anything else."""
    if select is None:
        return []
    criteria = [select] if (len(select) == 2 and isinstance(select[0], str)) else list(select)
    for criterion in criteria:
        if (not isinstance(criterion, (tuple, list)) or len(criterion) != 2
                or not isinstance(criterion[0], str) or criterion[1] not in ("max", "min")):
            raise ValueError(f"select must be (key, 'max' | 'min'), a list of them, or None, "
                             f"got {select!r}")
    if not criteria:
        raise ValueError("select must name at least one (key, 'max' | 'min') criterion")
    return [(str(key), str(mode)) for key, mode in criteria]


def improves(new: dict[str, Any], best: dict[str, Any], criteria: Sequence[Criterion]) -> bool:
    """Whether scores ``new`` beat ``best`` lexicographically: the first criterion decides and
    the next ones break exact ties (a NaN or missing first score never wins; an empty ``best``
    accepts any non-NaN ``new``)."""
    for index, (key, mode) in enumerate(criteria):
        value, incumbent = new.get(key), best.get(key)
        if index == 0 and (value is None or math.isnan(value)):
            return False
        if is_better(value, incumbent, mode == "max"):
            return True
        if value is None or incumbent is None or value != incumbent:
            return False
    return False


def _validate(epochs: int, select: Any, scheduler_interval: str,
              patience: int | None, min_epochs: int | None = None) -> list[Criterion]:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if min_epochs is not None and (isinstance(min_epochs, bool) or not isinstance(min_epochs, int)
                                   or min_epochs < 1):
        raise ValueError(f"min_epochs must be a positive integer or None, got {min_epochs!r}")
    criteria = selection_criteria(select)
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got "
                         f"{scheduler_interval!r}")
    if patience is not None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
        if not criteria:
            raise ValueError("patience (early stopping) needs a selection criterion (select)")
    return criteria


def _rng_states(env: DistEnv) -> dict[str, Any]:
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return {"cpu": all_gather_object(cpu, env), "cuda": all_gather_object(cuda, env)}


def _restore_rng(states: dict[str, Any], env: DistEnv) -> None:
    cpu, cuda = states.get("cpu") or [], states.get("cuda") or []
    # a checkpoint from another world size restores rank 0's stream only; the other ranks keep
    # the seeding the caller gave them
    if len(cpu) == env.world_size:
        torch.set_rng_state(cpu[env.rank])
    elif env.rank == 0 and cpu:
        torch.set_rng_state(cpu[0])
    if len(cuda) == env.world_size and cuda[env.rank] is not None and torch.cuda.is_available():
        mine = cuda[env.rank]
        if len(mine) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(mine)


def _hint(path: Path) -> str:
    return (f"delete {path} to restart this run from scratch, or start the whole run folder "
            "over with --overwrite")


def _load_checkpoint(path: Path) -> dict[str, Any]:
    ckpt = safe_torch_load(path, map_location="cpu", hint=_hint(path))
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (written by "
                               f"another program or an older graphlab); {_hint(path)}")
    return ckpt


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, *,
        train_step: Callable[[nn.Module, Any], Tensor],
        train_batches: Callable[[int], Iterable[Any]] | Iterable[Any],
        epochs: int,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        select: Criterion | Sequence[Criterion] | None = ("valid", "max"),
        patience: int | None = None,
        min_epochs: int | None = None,
        run_dir: str | Path | None = None,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        progress: bool = True,
        generator: torch.Generator | None = None,
        env: DistEnv | None = None,
        clip_grad_norm: float | None = None,
        restore_best: bool = False,
        on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
        desc: str = "train") -> FitResult:
    """Train ``model`` for ``epochs`` epochs with best-epoch selection, checkpointing and resume.

    See the module docstring for the meaning of every argument and of the result.
    """
    criteria = _validate(epochs, select, scheduler_interval, patience, min_epochs)
    if criteria and evaluate is None:
        raise ValueError(f"select={select!r} needs an evaluate hook (or pass select=None)")
    env = env or DistEnv()
    ckpt_path = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
    result = FitResult()
    best_state: dict[str, Tensor] | None = None

    if ckpt_path is not None and ckpt_path.exists():
        ckpt = _load_checkpoint(ckpt_path)
        state = ckpt["state"]
        if len(state["history"]) > epochs:
            raise ValueError(f"{ckpt_path} holds {len(state['history'])} epochs, more than the "
                             f"{epochs} asked for; {_hint(ckpt_path)}")
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            if scheduler is not None and ckpt.get("scheduler") is not None:
                scheduler.load_state_dict(ckpt["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ValueError(f"{ckpt_path} was written for another model or optimizer "
                             f"({first}); {_hint(ckpt_path)}") from None
        if generator is not None and ckpt.get("generator") is not None:
            generator.set_state(ckpt["generator"])
        _restore_rng(ckpt["rng"], env)
        best_state = ckpt.get("best_model")
        result = FitResult(history=list(state["history"]), best_epoch=state["best_epoch"],
                           best=dict(state["best"]), seconds=float(state["seconds"]),
                           resumed_from=len(state["history"]) - 1,
                           stopped_early=bool(state.get("stopped_early", False)))

    train_model = model
    if env.distributed:
        device = next(model.parameters()).device
        device_ids = [env.local_rank] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=True)
    bar = tqdm(range(result.epochs, epochs), desc=desc, leave=False,
               disable=not (progress and env.is_main))
    for epoch in bar:
        if result.stopped_early:  # a resumed run that had already stopped trains no further
            break
        start = time.perf_counter()
        train_model.train()
        total, count = None, 0
        for batch in (train_batches(epoch) if callable(train_batches) else train_batches):
            optimizer.zero_grad(set_to_none=True)
            loss = train_step(train_model, batch)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            if scheduler is not None and scheduler_interval == "step":
                scheduler.step()
            # summed on the device: no host sync per step
            total = loss.detach() if total is None else total + loss.detach()
            count += 1
        broadcast_buffers(model, env)
        scores: dict[str, Any] = {}
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                scores = {k: (float(v) if isinstance(v, (int, float, Tensor)) else v)
                          for k, v in evaluate(model).items()}
        missing = [key for key, _ in criteria if key not in scores]
        if missing:
            raise ValueError(f"evaluate() returned {sorted(scores)}, without the selection "
                             f"key {', '.join(map(repr, missing))}")
        if scheduler is not None and scheduler_interval == "epoch":
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                # the plateau is in the selected score, or else in the training loss
                watched = scores[criteria[0][0]] if criteria else \
                    ((total / count).item() if count else None)
                if watched is not None:
                    scheduler.step(watched)
            else:
                scheduler.step()
        result.seconds += time.perf_counter() - start
        record = {"epoch": epoch, "loss": (total / count).item() if count else None, **scores}
        result.history.append(record)
        if not criteria or improves(scores, result.best, criteria):
            result.best_epoch, result.best = epoch, dict(scores)
            if restore_best and criteria:
                best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in model.state_dict().items()}
        if (patience is not None and epoch - result.best_epoch >= patience
                and epoch + 1 >= (min_epochs or 0)):
            result.stopped_early = True
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if scores:
            bar.set_postfix({k: f"{v:.4f}" for k, v in scores.items()
                             if isinstance(v, float)})
        rng = _rng_states(env)  # collective: every rank takes part
        if ckpt_path is not None and env.is_main:
            atomic_torch_save({
                "format": CHECKPOINT_FORMAT, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "generator": generator.get_state() if generator is not None else None,
                "rng": rng, "best_model": best_state,
                "state": {"history": result.history, "best_epoch": result.best_epoch,
                          "best": result.best, "seconds": result.seconds,
                          "stopped_early": result.stopped_early},
            }, ckpt_path, checksum=True)
        barrier(env)
        if result.stopped_early:
            break
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return result
