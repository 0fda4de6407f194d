"""``graphlab train``: best-validation training of a registered model on a registered dataset.

:func:`train` runs ``config.seeds`` runs (run ``i`` = seed ``i`` on split/fold
``i % len(splits)`` of the dataset's protocol) with the one training loop,
:func:`graphlab.engine.fit`, and returns a ``graphlab.results/1`` record
(:func:`graphlab.runfolder.results_record`) that it also writes to ``OUT/results.json``:

* ``summary``: ``test_mean``, ``test_std``, ``valid_mean``, ``valid_std`` (the scores at each
  run's best-validation epoch), ``num_runs``, ``num_params``, ``higher_is_better``;
* ``runs``: one entry per run (``run``, ``seed``, ``split``, ``best_epoch``, ``valid``, ``test``,
  ``epochs``, ``seconds_per_epoch``, ``num_params``, ``world_size``);
* ``timings``: ``seconds_per_epoch`` (mean over runs), ``seconds`` (sum over runs);
* ``extra``: ``protocol``, ``data_source``, ``world_size``, and with a preset ``preset``
  (name, source, per-dataset key, deviations: :mod:`graphlab.presets`).

Beyond a plain Adam run, a :class:`TrainConfig` expresses what the papers' protocols need (the
:mod:`graphlab.presets` fill these in): ``scheduler`` (step / plateau / cosine), ``patience``
(early stopping on the selected score), ``min_epochs`` (no early stop before that many epochs),
``select`` (lexicographic criteria over ``valid`` = the metric and ``valid_loss``),
``param_groups`` (per-group lr / weight decay, e.g. the NSD sheaf learners),
``steps_per_epoch`` (an epoch of that many random batches, as in the GIN authors' code) and
``epoch_selection="mean_over_runs"`` (GIN's protocol: one epoch for all folds, the one whose
validation score averaged over the folds is best; ``summary`` then reports the scores at that
epoch and ``extra["selected_epoch"]``).

The output folder is a :class:`~graphlab.runfolder.RunFolder`: it is locked while a process
trains into it, records the configuration in ``config.json`` and refuses a different one (naming
the keys; ``overwrite=True`` starts over). Each run checkpoints into ``OUT/run_<i>/`` after every
epoch; rerunning the same command resumes: finished runs are read back from
``run_<i>/result.json``, an interrupted run continues after its last completed epoch with its RNG
state restored. The same function runs data-parallel under ``torchrun`` when given a
:class:`~graphlab.distributed.DistEnv` of several ranks (:func:`graphlab.distributed.train_distributed`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphlab.datasets import DatasetBundle, get_dataset
from graphlab.datasets.spec import TaskSpec
from graphlab.distributed import (
    DistEnv,
    all_gather_object,
    barrier,
    distributed_evaluate,
    distributed_predict,
    shard_indices,
)
from graphlab.engine import fit
from graphlab.models.registry import available_models, build_model
from graphlab.runfolder import (
    RunFolder,
    RunFolderError,
    atomic_write_json,
    read_json,
    results_record,
    write_results,
)

__all__ = ["TrainConfig", "train", "fit_run", "compute_loss", "evaluate", "summarize_runs",
           "pretransform", "check_device", "build_optimizer", "build_scheduler",
           "mean_over_runs_epoch", "RESUMABLE_KEYS", "SCHEDULERS", "SELECT_KEYS"]

#: TrainConfig fields that may change between invocations on one output folder: they do not
#: change what a finished run computed (``seeds`` only adds or drops runs)
RESUMABLE_KEYS = ("seeds", "out", "root", "device", "progress")

#: schedulers a TrainConfig can name, with the keyword arguments each takes
SCHEDULERS = {"step": ("step_size", "gamma"), "plateau": ("factor", "patience", "min_lr"),
              "cosine": ("T_max", "eta_min")}
#: selection keys fit_run's evaluation provides (the metric, and the loss on the valid split)
SELECT_KEYS = ("valid", "valid_loss")


@dataclass
class TrainConfig:
    """Everything that defines a training job (recorded in ``config.json``/``results.json``).

    Budgets are validated on construction: ``epochs``, ``seeds`` and ``batch_size`` are positive
    integers, ``lr`` is a positive finite number and ``weight_decay`` a finite non-negative one.
    """

    dataset: str
    model: str
    epochs: int = 100
    seeds: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    root: str | None = None
    device: str = "cpu"
    progress: bool = True
    #: ``{"name": "step" | "plateau" | "cosine", **kwargs}`` (see :data:`SCHEDULERS`), stepped
    #: once per epoch; a plateau scheduler watches the first selection criterion
    scheduler: dict[str, Any] | None = None
    #: early stopping: stop a run after this many epochs without a better selected score
    patience: int | None = None
    #: early stopping never ends a run before this many epochs (no effect without patience)
    min_epochs: int | None = None
    #: ``[(key, "max" | "min"), ...]`` compared lexicographically, keys in :data:`SELECT_KEYS`;
    #: ``None`` selects on the metric (``valid``) in its direction
    select: list[tuple[str, str]] | None = None
    #: ``"per_run"`` (each run's best epoch) or ``"mean_over_runs"`` (one epoch for all runs)
    epoch_selection: str = "per_run"
    #: ``[{"match": "substring of parameter names", "lr": ..., "weight_decay": ...}, ...]``:
    #: parameters whose name contains ``match`` (first match wins) get that group's settings
    param_groups: list[dict[str, Any]] = field(default_factory=list)
    #: an epoch of this many random batches (sampled without replacement within a batch)
    #: instead of one pass over the training set
    steps_per_epoch: int | None = None
    #: the :class:`~graphlab.presets.TrainingPreset` this job came from (name, source,
    #: deviations), recorded in ``results.json``
    preset: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "seeds", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative number, got "
                             f"{self.weight_decay!r}")
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict, got {type(self.model_kwargs).__name__}")
        for name in ("patience", "min_epochs", "steps_per_epoch"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if self.scheduler is not None:
            kind = self.scheduler.get("name") if isinstance(self.scheduler, dict) else None
            if kind not in SCHEDULERS:
                raise ValueError(f"scheduler must be a dict with name one of "
                                 f"{', '.join(SCHEDULERS)}, got {self.scheduler!r}")
            unknown = sorted(set(self.scheduler) - {"name", *SCHEDULERS[kind]})
            if unknown:
                raise ValueError(f"scheduler {kind!r} takes {', '.join(SCHEDULERS[kind])}, got "
                                 f"{', '.join(unknown)}")
        if self.select is not None:
            self.select = [(str(k), str(m)) for k, m in self.select]
            bad = [k for k, m in self.select if k not in SELECT_KEYS or m not in ("max", "min")]
            if not self.select or bad:
                raise ValueError(f"select must be a non-empty list of (key, 'max' | 'min') with "
                                 f"keys in {SELECT_KEYS}, got {self.select!r}")
        if self.epoch_selection not in ("per_run", "mean_over_runs"):
            raise ValueError(f"epoch_selection must be 'per_run' or 'mean_over_runs', got "
                             f"{self.epoch_selection!r}")
        if self.epoch_selection == "mean_over_runs" and self.patience is not None:
            raise ValueError("epoch_selection='mean_over_runs' needs every run's full history: "
                             "it cannot be combined with patience (early stopping)")
        for group in self.param_groups:
            if not (isinstance(group, dict) and isinstance(group.get("match"), str)
                    and set(group) <= {"match", "lr", "weight_decay"}):
                raise ValueError(f"each param group is {{'match': str, 'lr'?, "
                                 f"'weight_decay'?}}, got {group!r}")

    def criteria(self, higher_is_better: bool) -> list[tuple[str, str]]:
        """The selection criteria: :attr:`select`, or the metric in its direction."""
        return list(self.select) if self.select else [
            ("valid", "max" if higher_is_better else "min")]


#: TrainConfig fields added after results were first recorded; left out of a run folder's
#: identity while at their defaults, so folders written before them still resume
_OPTIONAL_DEFAULTS: dict[str, Any] = {"scheduler": None, "patience": None, "min_epochs": None,
                                      "select": None,
                                      "epoch_selection": "per_run", "param_groups": [],
                                      "steps_per_epoch": None, "preset": None}


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam over ``model``'s parameters with ``config``'s lr / weight decay, and per-group
    overrides for parameters whose name contains a group's ``match``."""
    groups: list[list[Tensor]] = [[] for _ in range(len(config.param_groups) + 1)]
    for name, param in model.named_parameters():
        index = next((i for i, g in enumerate(config.param_groups) if g["match"] in name),
                     len(config.param_groups))
        groups[index].append(param)
    for group, params in zip(config.param_groups, groups):
        if not params:
            raise ValueError(f"param group {group['match']!r} matches no parameter of "
                             f"{config.model!r}")
    settings = [{k: v for k, v in g.items() if k != "match"} for g in config.param_groups]
    param_groups = [{"params": p, **s} for p, s in zip(groups, [*settings, {}]) if p]
    return torch.optim.Adam(param_groups, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    higher_is_better: bool) -> Any:
    """The epoch-level scheduler ``config.scheduler`` names (or ``None``)."""
    if config.scheduler is None:
        return None
    kwargs = {k: v for k, v in config.scheduler.items() if k != "name"}
    kind = config.scheduler["name"]
    sched = torch.optim.lr_scheduler
    if kind == "step":
        return sched.StepLR(optimizer, **kwargs)
    if kind == "plateau":
        mode = config.criteria(higher_is_better)[0][1]
        return sched.ReduceLROnPlateau(optimizer, mode=mode, **kwargs)
    return sched.CosineAnnealingLR(optimizer, **{"T_max": config.epochs, **kwargs})


# --------------------------------------------------------------------------- loss / eval
def compute_loss(spec: TaskSpec, pred: Tensor, y: Tensor) -> Tensor:
    """The task's loss; NaN labels (missing OGB targets) are ignored."""
    if spec.loss == "ce":
        return F.cross_entropy(pred, y.view(-1).long())
    y = y.view(pred.shape).to(pred.dtype)
    labelled = ~torch.isnan(y)
    if spec.loss == "bce":
        return F.binary_cross_entropy_with_logits(pred[labelled], y[labelled])
    if spec.loss == "mse":
        return F.mse_loss(pred[labelled], y[labelled])
    raise ValueError(f"unknown loss {spec.loss!r}")


def evaluate(bundle: DatasetBundle, y_true: Tensor, y_pred: Tensor) -> float:
    """The bundle's metric for predictions ``y_pred`` of targets ``y_true``."""
    if bundle.spec.loss == "ce":
        y_true = y_true.view(-1)
    else:
        y_true = y_true.view(y_pred.shape)
    return bundle.evaluate(y_true, y_pred)


def pretransform(bundle: DatasetBundle, model: nn.Module) -> list | Any:
    """The bundle's graphs after the model's required pre-transform, applied once per run.

    A model that needs precomputed attributes (e.g. :class:`~graphlab.models.PathNN`'s path
    enumeration) exposes them as a ``transform`` attribute; it is applied to every graph once, up
    front, so epochs reuse the result; a transform with an ``apply_to_dataset`` method (such as
    :class:`~graphlab.transforms.AddPaths`) processes the dataset in chunks through it. Models
    without one get ``bundle.dataset`` unchanged.
    """
    transform: Callable | None = getattr(model, "transform", None)
    if transform is None:
        return bundle.dataset
    if hasattr(transform, "apply_to_dataset"):  # batched over chunks of graphs (AddPaths)
        return transform.apply_to_dataset(bundle.dataset, progress=len(bundle.dataset) >= 500)
    return [transform(d) for d in tqdm(bundle.dataset, desc="pre-transform", leave=False,
                                       disable=len(bundle.dataset) < 500)]


# --------------------------------------------------------------------------- one run
def _check_split(split: dict[str, Tensor], run: int) -> None:
    for key in ("train", "valid", "test"):
        if key not in split or len(split[key]) == 0:
            raise ValueError(f"the {key} split of run {run} is empty: nothing to "
                             f"{'train on' if key == 'train' else 'evaluate'}")


def _random_batches(train_set: list, steps: int, batch_size: int, order: torch.Generator,
                    env: DistEnv) -> list:
    """``steps`` batches, each ``batch_size`` graphs drawn without replacement (the GIN
    authors' epoch: ``np.random.permutation(n)[:batch_size]`` per step); ranks draw the same
    stream and take every ``world_size``-th batch."""
    n = len(train_set)
    draws = torch.rand(steps * env.world_size, n, generator=order).argsort(dim=1)
    mine = draws[env.rank::env.world_size, :min(batch_size, n)]
    return [Batch.from_data_list([train_set[int(i)] for i in row]) for row in mine]


def fit_run(bundle: DatasetBundle, config: TrainConfig, run: int, run_dir: Path | None,
            env: DistEnv | None = None) -> dict:
    """Train run ``run`` (seed ``run`` on split ``run % len(splits)``) with best-validation
    selection through :func:`graphlab.engine.fit`; returns the run's record (with ``history``).

    The global RNG is seeded for the run and restored afterwards (the caller's stream is not
    consumed).
    """
    env = env or DistEnv()
    spec = bundle.spec
    split = bundle.splits[run % len(bundle.splits)]
    _check_split(split, run)
    if env.distributed and spec.level != "graph":
        raise ValueError("distributed training shards graphs; node-level tasks run with one "
                         "process")
    seed, device = run, config.device
    cuda = [torch.device(device).index or 0] if device.startswith("cuda") else []
    higher = spec.higher_is_better
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)  # identical initial weights on every rank
        model = build_model(config.model, spec, **config.model_kwargs).to(device)
        optimizer = build_optimizer(model, config)
        scheduler = build_scheduler(optimizer, config, higher)
        criteria = config.criteria(higher)
        with_loss = any(key == "valid_loss" for key, _ in criteria)
        data = pretransform(bundle, model)
        # dropout streams differ between replicas, as for one process over the full batch
        torch.manual_seed(seed * 1_000 + env.rank)

        if spec.level == "node":
            graph = data[0].to(device)
            train_idx = split["train"].to(device)

            def batches(epoch: int) -> list:
                return [graph]

            def step(m: nn.Module, g: Any) -> Tensor:
                return compute_loss(spec, m(g)[train_idx], g.y[train_idx])

            def scores(m: nn.Module) -> dict[str, float]:
                out, y = m(graph).cpu(), graph.y.cpu()
                result = {k: evaluate(bundle, y[split[k]], out[split[k]])
                          for k in ("valid", "test")}
                if with_loss:
                    valid = split["valid"]
                    result["valid_loss"] = float(compute_loss(spec, out[valid], y[valid]))
                return result
        else:
            train_set = [data[int(i)] for i in split["train"]]
            eval_sets = {k: [data[int(i)] for i in split[k]] for k in ("valid", "test")}
            per_rank = max(1, config.batch_size // env.world_size)

            def batches(epoch: int) -> DataLoader | list:
                # the order is a function of (seed, epoch): a resumed run replays it exactly
                order = torch.Generator().manual_seed(seed * 100_003 + epoch)
                if config.steps_per_epoch is not None:
                    return _random_batches(train_set, config.steps_per_epoch, per_rank, order,
                                           env)
                mine = shard_indices(len(train_set), env.rank, env.world_size, order)
                return DataLoader([train_set[int(i)] for i in mine], batch_size=per_rank,
                                  drop_last=len(mine) > per_rank)

            def step(m: nn.Module, batch: Any) -> Tensor:
                batch = batch.to(device)
                return compute_loss(spec, m(batch), batch.y)

            def scores(m: nn.Module) -> dict[str, float]:
                if not with_loss:
                    return {k: distributed_evaluate(bundle, m, graphs, env, device)
                            for k, graphs in eval_sets.items()}
                result = {}
                for k, graphs in eval_sets.items():
                    y, pred = distributed_predict(m, graphs, env, device)
                    result[k] = evaluate(bundle, y, pred)
                    if k == "valid":
                        result["valid_loss"] = float(compute_loss(spec, pred, y))
                return result

        result = fit(model, optimizer, train_step=step, train_batches=batches,
                     epochs=config.epochs, evaluate=scores, select=criteria,
                     patience=config.patience, min_epochs=config.min_epochs,
                     scheduler=scheduler, run_dir=run_dir,
                     progress=config.progress, env=env, desc=f"run {run}")
    num_params = sum(p.numel() for p in model.parameters())
    return {
        "run": run, "seed": seed, "split": run % len(bundle.splits),
        "best_epoch": result.best_epoch, "valid": result.best.get("valid"),
        "test": result.best.get("test"), "epochs": result.epochs,
        "seconds_per_epoch": result.seconds_per_epoch, "num_params": num_params,
        "world_size": env.world_size, "history": result.history,
    }


# --------------------------------------------------------------------------- several runs
def _summary(values: list[float | None]) -> tuple[float | None, float | None]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std())


def mean_over_runs_epoch(runs: list[dict], criteria: list[tuple[str, str]]) -> int:
    """The epoch whose scores, averaged over ``runs``, are best under ``criteria``
    (lexicographic; the first such epoch): the GIN paper's selection. Only epochs every run
    reached are candidates."""
    histories = [r["history"] for r in runs]
    num_epochs = min(len(h) for h in histories)
    if num_epochs == 0:
        raise ValueError("epoch_selection='mean_over_runs' needs at least one epoch per run")

    def key(epoch: int) -> tuple[float, ...]:
        out = []
        for name, mode in criteria:
            values = [h[epoch].get(name) for h in histories]
            mean = float(np.mean(values)) if None not in values else math.nan
            mean = -math.inf if math.isnan(mean) else (mean if mode == "max" else -mean)
            out.append(mean)
        return tuple(out)

    return max(range(num_epochs), key=key)  # max returns the first of equal keys


def _at_epoch(run: dict, epoch: int) -> dict:
    scores = run["history"][epoch]
    return {**run, "best_epoch": epoch, "valid": scores.get("valid"), "test": scores.get("test")}


def summarize_runs(bundle: DatasetBundle, config: TrainConfig, runs: list[dict],
                   world_size: int = 1) -> dict:
    """The ``graphlab.results/1`` record of finished runs (see the module docstring)."""
    extra: dict[str, Any] = {"protocol": bundle.protocol, "data_source": bundle.source,
                             "world_size": world_size}
    if config.epoch_selection == "mean_over_runs" and runs:
        epoch = mean_over_runs_epoch(runs, config.criteria(bundle.spec.higher_is_better))
        runs = [_at_epoch(r, epoch) for r in runs]
        extra["selected_epoch"] = epoch
    if config.preset is not None:
        extra["preset"] = config.preset
    test_mean, test_std = _summary([r["test"] for r in runs])
    valid_mean, valid_std = _summary([r["valid"] for r in runs])
    per_epoch = [r["seconds_per_epoch"] for r in runs]
    return results_record(
        task="train", dataset=bundle.name, model=config.model, metric=bundle.metric,
        config=asdict(config),
        runs=[{k: v for k, v in r.items() if k != "history"} for r in runs],
        summary={"test_mean": test_mean, "test_std": test_std, "valid_mean": valid_mean,
                 "valid_std": valid_std, "num_runs": len(runs),
                 "num_params": runs[0]["num_params"] if runs else 0,
                 "higher_is_better": bundle.spec.higher_is_better},
        timings={"seconds_per_epoch": float(np.mean(per_epoch)) if runs else None,
                 "seconds": float(sum(r["seconds_per_epoch"] * r["epochs"] for r in runs))},
        extra=extra)


def _folder_identity(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(config).items() if k not in ("out", "root", "progress")
            and not (k in _OPTIONAL_DEFAULTS and v == _OPTIONAL_DEFAULTS[k])}


@contextlib.contextmanager
def _locked_folder(out: Path | None, config: TrainConfig, overwrite: bool, env: DistEnv):
    """Rank 0 takes the run folder (lock + config check); every rank learns whether it could."""
    with contextlib.ExitStack() as stack:
        error = None
        if out is not None and env.is_main:
            try:
                stack.enter_context(RunFolder(out, _folder_identity(config), overwrite=overwrite,
                                              ignore=RESUMABLE_KEYS))
            except RunFolderError as exc:
                error = str(exc)
        error = all_gather_object(error, env)[0]
        if error is not None:
            raise RunFolderError(error)
        yield


def _read_result(path: Path) -> dict:
    return read_json(path, "delete it to train that run again, or start over with --overwrite")


def check_device(device: str) -> None:
    """Raise ``ValueError`` if ``device`` cannot be used by this torch build / machine."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available (torch "
                             f"{torch.__version__}, built with CUDA: "
                             f"{torch.version.cuda or 'no'}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")


def train(config: TrainConfig, bundle: DatasetBundle | None = None, *,
          env: DistEnv | None = None, overwrite: bool = False) -> dict:
    """Run ``config.seeds`` runs and return (and write to ``OUT/results.json``) their record.

    Args:
        config: The job.
        bundle: The data; default ``get_dataset(config.dataset, root=config.root)``.
        env: This process's place in a data-parallel job (default: one process).
        overwrite: Delete the output folder's contents and start over.

    Raises:
        ValueError: unknown model, unusable device, empty split.
        RunFolderError: the output folder is locked, holds another configuration or cannot be
            written.
        CorruptFileError: a checkpoint or run result in the output folder is damaged.
    """
    env = env or DistEnv()
    if config.model.lower() not in available_models():  # fail before any data is loaded
        raise ValueError(f"unknown model {config.model!r}; known models: "
                         f"{', '.join(available_models())}")
    check_device(config.device)
    out = Path(config.out) if config.out else None
    with _locked_folder(out, config, overwrite, env):
        bundle = bundle or get_dataset(config.dataset, root=config.root)
        runs = []
        for run in range(config.seeds):
            run_dir = out / f"run_{run}" if out is not None else None
            done = run_dir / "result.json" if run_dir is not None else None
            if done is not None and done.exists():
                runs.append(_read_result(done))
                continue
            if run_dir is not None and env.is_main:
                run_dir.mkdir(exist_ok=True)
            barrier(env)
            result = fit_run(bundle, config, run, run_dir, env)
            if done is not None and env.is_main:
                atomic_write_json(done, result)
            barrier(env)
            runs.append(result)
        record = summarize_runs(bundle, config, runs, env.world_size)
        if out is not None and env.is_main:
            write_results(out / "results.json", record)
        barrier(env)
    return record
