"""Paper figures beside ours, and one resumable run folder per run (fold, split or seed).

A reproduction at a paper's budget trains many independent runs (10 folds, 10 splits, 10 seeds)
that together take longer than one sitting. :func:`resumable_run` gives each run its own
:class:`graphlab.runfolder.RunFolder` (locked, configuration recorded and checked) in which the
engine checkpoints after every epoch; a finished run leaves ``result.json`` and is read back, an
interrupted one continues from its checkpoint. :class:`Resumption` collects which runs were not
computed from scratch in this call, for :attr:`benchmarks.common.TaskResult.resumed`.

:func:`compare` puts a paper's ``mean ± std`` (with its source) beside ours and says whether ours
is within the paper's std; a row outside it shows the diagnosis the script knows (measured by a
probe or an ablation), or says it has none yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphlab.engine import CHECKPOINT_NAME
from graphlab.runfolder import RunFolder, atomic_write_json, read_json

__all__ = ["PaperFigure", "mean_std", "compare", "resumable_run", "train_resumable", "note_runs",
           "Resumption", "budget_row", "parse_overrides", "cite", "NOT_DIAGNOSED"]

#: the diagnosis of a row outside the paper's std before anyone has measured why
NOT_DIAGNOSED = "not diagnosed yet"
_RESULT = "result.json"


@dataclass(frozen=True)
class PaperFigure:
    """A published ``mean ± std`` and where it is printed."""

    mean: float
    std: float | None
    source: str

    @classmethod
    def parse(cls, text: str, source: str) -> PaperFigure:
        """``"86.49 ± 7.35"`` (or a bare ``"86.49"``) with its source."""
        nums = re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)
        if not nums or len(nums) > 2:
            raise ValueError(f"expected 'mean ± std' or 'mean', got {text!r}")
        return cls(float(nums[0]), float(nums[1]) if len(nums) == 2 else None, source)

    def format(self, digits: int = 2) -> str:
        std = "" if self.std is None else f" ± {self.std:.{digits}f}"
        return f"{self.mean:.{digits}f}{std}"


def cite(source: str) -> str:
    """A preset's source shortened for a table: its first clause without the quoted title
    (``"Bodnar et al., 'Neural Sheaf Diffusion', NeurIPS 2022, Table 1; ..."`` ->
    ``"Bodnar et al., NeurIPS 2022, Table 1"``)."""
    return re.sub(r"\s*'[^']*',", "", source.split(";")[0]).strip()


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (``ddof=0``, as the papers' ``np.std``) of finite values."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std())


def compare(paper: PaperFigure | None, values: Sequence[float], *, digits: int = 2,
            diagnosis: str | None = None) -> dict[str, Any]:
    """The comparison columns of one table row.

    ``within paper std?`` is ``yes`` when ``|ours - paper| <= paper std`` (``-`` without a paper
    figure or std). A row outside gets ``diagnosis`` (what a probe measured), or
    :data:`NOT_DIAGNOSED`.
    """
    mean, std = mean_std(values)
    ours = f"{mean:.{digits}f} ± {std:.{digits}f}" if values else "-"
    within = "-"
    if paper is not None and paper.std is not None and values:
        within = "yes" if abs(mean - paper.mean) <= paper.std else "no"
    return {"paper": paper.format(digits) if paper else "-",
            "source": paper.source if paper else "-", "ours": ours,
            "within paper std?": within,
            "diagnosis": (diagnosis or NOT_DIAGNOSED) if within == "no" else ""}


def budget_row(seconds_per_epoch: float, epochs: int, runs: int, *, cap_hours: float = 3.0,
               gpu_speedup: float | None = None) -> dict[str, Any]:
    """The projection of a run too long for a CPU sitting: the CPU seconds per epoch of a probe
    (``time.process_time``, one thread: robust to a loaded machine) times the budget's epochs
    and runs (an upper bound when early stopping may end runs sooner)."""
    hours = seconds_per_epoch * epochs * runs / 3600
    row = {"CPU s/epoch (probe)": round(seconds_per_epoch, 4),
           "projected CPU h": round(hours, 1),
           "fits": "yes" if hours <= cap_hours else "budget"}
    if gpu_speedup:
        row["projected GPU h"] = round(hours / gpu_speedup, 2)
    return row


@dataclass
class Resumption:
    """Which runs of a task were read back or continued instead of computed from scratch."""

    read_back: list[str] = field(default_factory=list)
    continued: list[str] = field(default_factory=list)

    def note(self, out: Path) -> str:
        """The ``TaskResult.resumed`` text ("" when every run was computed now)."""
        parts = []
        if self.read_back:
            parts.append(f"{len(self.read_back)} finished run(s) read back from {out} "
                         f"({', '.join(self.read_back)})")
        if self.continued:
            parts.append(f"{len(self.continued)} run(s) continued from their checkpoint "
                         f"({', '.join(self.continued)})")
        return "; ".join(parts)


def resumable_run(folder: Path, config: dict[str, Any], train: Callable[[Path], dict],
                  name: str, resumption: Resumption | None = None) -> dict:
    """``train(folder)`` in its own locked run folder, or its earlier result.

    ``train`` must checkpoint through :func:`graphlab.engine.fit` with ``run_dir=folder`` and
    return a JSON-able dict, written to ``folder/result.json``. A folder that already holds
    ``result.json`` for the same ``config`` is read back (recorded in ``resumption`` under
    ``name``); one with only a checkpoint continues from it (also recorded). A folder of another
    configuration is refused by :class:`~graphlab.runfolder.RunFolder`, naming the keys.
    """
    with RunFolder(folder, config, ignore=("progress",)):
        done = folder / _RESULT
        if done.exists():
            result = read_json(done, "delete it to train that run again")
            if resumption is not None:
                resumption.read_back.append(name)
            return result
        continued = (folder / CHECKPOINT_NAME).exists()
        result = train(folder)
        atomic_write_json(done, result)
    if continued and resumption is not None:
        resumption.continued.append(name)
    return result


def note_runs(out: Path, runs: int, name: str, resumption: Resumption) -> None:
    """Note in ``resumption`` which of :func:`graphlab.train.train`'s ``out/run_<i>/`` folders
    hold a finished run (read back) or only a checkpoint (continued); call before training."""
    for run in range(runs):
        run_dir = Path(out) / f"run_{run}"
        if (run_dir / _RESULT).exists():
            resumption.read_back.append(f"{name}/run_{run}")
        elif (run_dir / CHECKPOINT_NAME).exists():
            resumption.continued.append(f"{name}/run_{run}")


def train_resumable(config: Any, bundle: Any, name: str,
                    resumption: Resumption | None = None) -> dict:
    """:func:`graphlab.train.train` into ``config.out`` (one ``run_<i>/`` folder per fold or
    seed, engine checkpoints), noting in ``resumption`` which runs were read back (finished
    earlier) or continued from a checkpoint."""
    from graphlab.train import train

    if resumption is not None:
        note_runs(Path(config.out), config.seeds, name, resumption)
    return train(config, bundle=bundle)


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["model_kwargs.dropout=0.5", "patience=500"]`` as the changes
    :meth:`graphlab.presets.TrainingPreset.with_overrides` takes (``{"model_kwargs":
    {"dropout": 0.5}, "patience": 500}``; values read as JSON when they parse, else kept as
    strings): the ``--ablate`` probes of a script, each recorded as a deviation."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key or key.count(".") > 1:
            raise ValueError(f"--ablate takes KEY=VALUE or model_kwargs.KEY=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        group, _, leaf = key.rpartition(".")
        if group:
            out.setdefault(group, {})[leaf] = value
        else:
            out[key] = value
    return out
