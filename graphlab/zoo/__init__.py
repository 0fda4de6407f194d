"""Model zoos and experiments over them, built on :mod:`graphlab.metanets`.

Build a zoo of small trained networks (:func:`build_zoo`: deterministic, resumable, shardable),
open it with verified weights (:func:`load_zoo`, :class:`Zoo`), predict member properties from
weights or graphs (:func:`predict`), treat pruning as edge labelling (:func:`predict_edges`),
link the members into a graph of networks (:func:`zoo_graph`) and write a report
(:func:`analyze`), and check that a zoo is worth learning from (:func:`health_report`). The
command line is ``graphlab zoo build | health | predict | analyze``.

The modules: :mod:`~graphlab.zoo.architectures`, :mod:`~graphlab.zoo.presets`,
:mod:`~graphlab.zoo.training`, :mod:`~graphlab.zoo.inr`, :mod:`~graphlab.zoo.build`,
:mod:`~graphlab.zoo.store`, :mod:`~graphlab.zoo.splits`, :mod:`~graphlab.zoo.health`,
:mod:`~graphlab.zoo.tasks`, :mod:`~graphlab.zoo.graph`,
:mod:`~graphlab.zoo.analysis`, :mod:`~graphlab.zoo.cli`.

Names are imported lazily, so that ``graphlab.zoo.cli`` (and ``graphlab --help``) do not import
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> defining module
_EXPORTS: dict[str, str] = {
    "build_zoo": "build", "parse_shard": "build",
    "Zoo": "store", "load_zoo": "store", "phase_labels": "store",
    "save_state_dict_safe": "store", "load_state_dict_safe": "store", "clean_orphans": "store",
    "PRESETS": "presets", "Preset": "presets", "member_config": "presets",
    "make_model": "architectures", "example_input": "architectures",
    "input_shape": "architectures", "ResMLP": "architectures", "Conv1dNet": "architectures",
    "CNN2d": "architectures", "SIREN": "architectures", "Sine": "architectures",
    "fit_inrs": "inr", "inr_split": "inr", "digits_images": "inr",
    "train_member": "training", "train_members": "training", "digits_data": "training",
    "function_complexity": "training", "hessian_top_eigenvalue": "training",
    "health_report": "health", "write_health": "health",
    "zoo_splits": "splits",
    "predict": "tasks", "predict_edges": "tasks", "edge_importance": "tasks",
    "layer_collapse": "tasks", "prune_mask": "tasks", "prunable_edges": "tasks",
    "statnn_features": "tasks", "MODELS": "tasks",
    "zoo_graph": "graph", "node_predict": "graph", "node_task": "graph",
    "analyze": "analysis", "barrier_vs_width": "analysis", "collapse_curve": "analysis",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'graphlab.zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"graphlab.zoo.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
