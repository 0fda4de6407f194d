"""A small, readable training loop: best-validation model selection over several seeds/folds.

Each run (one seed on one split of the dataset's protocol) checkpoints atomically after every
epoch into ``OUT/run_<i>/checkpoint.pt``; rerunning with the same ``out`` resumes where it stopped
(finished runs are read back from their ``result.json``, an interrupted run continues from its
last completed epoch with its RNG state restored). Checkpoints hold only tensors and plain
Python values and are read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphlab.datasets import DatasetBundle, get_dataset
from graphlab.datasets.spec import TaskSpec
from graphlab.models.registry import available_models, build_model

__all__ = ["TrainConfig", "train", "fit_run", "compute_loss", "evaluate", "summarize_runs",
           "resume_checkpoint", "is_better", "pretransform", "atomic_write_json",
           "atomic_torch_save"]


@dataclass
class TrainConfig:
    """Everything that defines a training job (stored in ``results.json``)."""

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


# --------------------------------------------------------------------------- atomic files
def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON so that a reader never sees a half-written file (write, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Tensor):
        return obj.tolist()
    return str(obj)


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


@torch.no_grad()
def _predict_graphs(model: nn.Module, loader: DataLoader, device: str) -> tuple[Tensor, Tensor]:
    model.eval()
    ys, preds = [], []
    for batch in loader:
        batch = batch.to(device)
        preds.append(model(batch).cpu())
        ys.append(batch.y.cpu())
    return torch.cat(ys), torch.cat(preds)


def evaluate(bundle: DatasetBundle, y_true: Tensor, y_pred: Tensor) -> float:
    spec = bundle.spec
    if spec.loss == "ce":
        y_true = y_true.view(-1)
    else:
        y_true = y_true.view(y_pred.shape)
    return bundle.evaluate(y_true, y_pred)


# --------------------------------------------------------------------------- one run
def is_better(spec: TaskSpec, new: float, best: float | None) -> bool:
    """Whether validation score ``new`` improves on ``best`` for the task's metric direction.

    ``best=None`` (no epoch yet) or NaN accepts any non-NaN score; a NaN ``new`` never wins.
    Shared by single-process and distributed training so both select the same epoch.
    """
    if best is None or math.isnan(best):
        return not math.isnan(new)
    return new > best if spec.higher_is_better else new < best


def pretransform(bundle: DatasetBundle, model: nn.Module) -> list | Any:
    """The bundle's graphs after the model's required pre-transform, applied once per run.

    A model that needs precomputed attributes (e.g. :class:`~graphlab.models.PathNN`'s path
    enumeration) exposes them as a ``transform`` attribute; it is applied to every graph once, up
    front, so epochs reuse the result. Models without one get ``bundle.dataset`` unchanged.
    """
    transform: Callable | None = getattr(model, "transform", None)
    if transform is None:
        return bundle.dataset
    return [transform(d) for d in tqdm(bundle.dataset, desc="pre-transform", leave=False,
                                       disable=len(bundle.dataset) < 500)]


def resume_checkpoint(ckpt_path: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer,
                      device: str) -> tuple[dict, dict | None]:
    """Load model/optimizer from ``ckpt_path`` if it exists (``weights_only=True``).

    Returns the run state (a fresh one when there is no checkpoint) and the raw checkpoint, whose
    RNG entries the caller restores (single-process and DDP runs store them differently).
    """
    if ckpt_path is None or not ckpt_path.exists():
        return {"epoch": -1, "best_valid": None, "best_test": None, "best_epoch": -1,
                "history": [], "seconds": 0.0}, None
    ckpt = torch.load(ckpt_path, weights_only=True, map_location=device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt["state"], ckpt


def fit_run(bundle: DatasetBundle, config: TrainConfig, run: int, run_dir: Path | None) -> dict:
    """Train one run (seed ``run`` on split ``run % len(splits)``) with best-validation selection."""
    spec = bundle.spec
    split = bundle.splits[run % len(bundle.splits)]
    seed = run
    torch.manual_seed(seed)
    model = build_model(config.model, spec, **config.model_kwargs).to(config.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    data = pretransform(bundle, model)

    ckpt_path = run_dir / "checkpoint.pt" if run_dir is not None else None
    state, ckpt = resume_checkpoint(ckpt_path, model, optimizer, config.device)
    if ckpt is not None:
        torch.set_rng_state(ckpt["rng"])

    node_level = spec.level == "node"
    if node_level:
        graph = data[0].to(config.device)
    else:
        eval_loaders = {k: DataLoader([data[int(i)] for i in split[k]], batch_size=256)
                        for k in ("valid", "test")}
        train_set = [data[int(i)] for i in split["train"]]

    bar = tqdm(range(state["epoch"] + 1, config.epochs), desc=f"run {run}",
               disable=not config.progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        if node_level:
            optimizer.zero_grad()
            out = model(graph)
            loss = compute_loss(spec, out[split["train"]], graph.y[split["train"]])
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.eval()
                out = model(graph).cpu()
            scores = {k: evaluate(bundle, graph.y.cpu()[split[k]], out[split[k]])
                      for k in ("valid", "test")}
        else:
            # the shuffle order is a function of (seed, epoch), so a resumed run replays it exactly
            order = torch.Generator().manual_seed(seed * 100_003 + epoch)
            loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                generator=order, drop_last=len(train_set) > config.batch_size)
            for batch in loader:
                batch = batch.to(config.device)
                optimizer.zero_grad()
                loss = compute_loss(spec, model(batch), batch.y)
                loss.backward()
                optimizer.step()
            scores = {k: evaluate(bundle, *_predict_graphs(model, loader_, config.device))
                      for k, loader_ in eval_loaders.items()}
        state["seconds"] += time.perf_counter() - start
        state["history"].append({"epoch": epoch, "loss": loss.item(), **scores})
        if is_better(spec, scores["valid"], state["best_valid"]):
            state.update(best_valid=scores["valid"], best_test=scores["test"], best_epoch=epoch)
        state["epoch"] = epoch
        bar.set_postfix(valid=f"{scores['valid']:.4f}", test=f"{scores['test']:.4f}")
        if ckpt_path is not None:
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "rng": torch.get_rng_state(), "state": state}, ckpt_path)
    epochs_run = len(state["history"])
    return {
        "run": run, "seed": seed, "split": run % len(bundle.splits),
        "best_epoch": state["best_epoch"], "valid": state["best_valid"],
        "test": state["best_test"], "epochs": epochs_run,
        "seconds_per_epoch": state["seconds"] / max(epochs_run, 1),
        "num_params": sum(p.numel() for p in model.parameters()),
        "history": state["history"],
    }


# --------------------------------------------------------------------------- several runs
def _summary(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std())


def summarize_runs(bundle: DatasetBundle, config: TrainConfig, runs: list[dict]) -> dict:
    """The ``results.json`` summary of finished runs: mean ± std at best validation, and more."""
    test_mean, test_std = _summary([r["test"] for r in runs])
    valid_mean, valid_std = _summary([r["valid"] for r in runs])
    return {
        "dataset": bundle.name, "model": config.model, "metric": bundle.metric,
        "higher_is_better": bundle.spec.higher_is_better,
        "test_mean": test_mean, "test_std": test_std,
        "valid_mean": valid_mean, "valid_std": valid_std,
        "seeds": [{k: v for k, v in r.items() if k != "history"} for r in runs],
        "num_runs": len(runs), "protocol": bundle.protocol, "data_source": bundle.source,
        "num_params": runs[0]["num_params"] if runs else 0,
        "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in runs])) if runs else 0,
        "config": asdict(config),
        "torch": torch.__version__,
    }


def train(config: TrainConfig, bundle: DatasetBundle | None = None) -> dict:
    """Run ``config.seeds`` runs and return (and write to ``OUT/results.json``) the summary."""
    if config.model.lower() not in available_models():  # fail before any data is loaded
        raise ValueError(f"unknown model {config.model!r}; known models: "
                         f"{', '.join(available_models())}")
    bundle = bundle or get_dataset(config.dataset, root=config.root)
    out = Path(config.out) if config.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    runs = []
    for run in range(config.seeds):
        run_dir = out / f"run_{run}" if out is not None else None
        done = run_dir / "result.json" if run_dir is not None else None
        if done is not None and done.exists():
            runs.append(json.loads(done.read_text()))
            continue
        if run_dir is not None:
            run_dir.mkdir(exist_ok=True)
        result = fit_run(bundle, config, run, run_dir)
        if done is not None:
            atomic_write_json(done, result)
        runs.append(result)

    results = summarize_runs(bundle, config, runs)
    if out is not None:
        atomic_write_json(out / "results.json", results)
    return results
