"""``get_dataset``: one entry point for the benchmark datasets, offline first.

Resolution order for the files of a dataset:

1. an explicit ``root`` (used as is: the standard PyG/OGB layout below it);
2. the cache folder ``$GRAPHLAB_CACHE`` (default ``~/.cache/graphlab``), which is filled from
3. a read-only mirror ``$GRAPHLAB_DATA_DIR`` laid out like the project's ``shared/data`` (raw files
   are copied into the cache and processed there; the mirror is never written to), or else from
4. the standard download of PyG / OGB; when the machine is offline the error says how to point
   ``GRAPHLAB_DATA_DIR`` at raw files.

**Never unpickling.** Processed files in the cache (or under ``root``) are as untrusted as any
file on disk: a pickle planted there must not run. PyG's ``fs.torch_load`` retries a refused
safe load with ``weights_only=False``, PyG's ``Dataset._process`` reads ``pre_transform.pt`` with
``weights_only=False`` and ``ogb`` calls ``torch.load`` itself, so instead of overriding each
loader, every dataset load runs inside
:func:`~graphlab.datasets.safe_load.safe_torch_loads`: for the duration of the load
``torch.load`` and ``torch_geometric.io.fs.torch_load`` are replaced by a loader that always uses
``weights_only=True`` (with PyG's storage classes allow-listed) and never retries. A processed
file that a safe load refuses, or that is truncated, is deleted with a warning and the dataset is
re-processed from its raw files; a raw file that is refused is an error naming the file. The
patch is process-global while it is active, so loading datasets from several threads at once is
not supported.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import InMemoryDataset

from graphlab.datasets.safe_load import UnsafeFileError, safe_torch_loads
from graphlab.datasets.spec import TaskSpec

__all__ = ["DatasetBundle", "DatasetInfo", "get_dataset", "known_datasets", "locate_raw",
           "cache_dir", "data_mirror", "dataset_info", "DataUnavailableError"]


class DataUnavailableError(RuntimeError):
    """A dataset's files are neither on this machine nor downloadable (in a safe format)."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: its family, where its raw files live, and its size."""

    name: str
    family: str  # ogb | tu | planetoid | webkb | actor | csl | exp | sr25
    subdir: str  # path of the dataset folder below the mirror / cache root
    size: str
    level: str = "graph"

    @property
    def raw_dir(self) -> str:
        """Folder (relative to the mirror or cache) whose presence means the raw files exist."""
        if self.family == "ogb":
            return f"{self.subdir}/raw"
        if self.family in ("exp", "sr25"):
            return f"{self.subdir}/raw"
        return f"{self.subdir}/raw"


_OGB = {
    "ogbg-molhiv": "41,127 graphs", "ogbg-molbace": "1,513 graphs", "ogbg-molesol": "1,128 graphs",
    "ogbg-molfreesolv": "642 graphs", "ogbg-mollipo": "4,200 graphs",
    "ogbg-molpcba": "437,929 graphs", "ogbg-moltox21": "7,831 graphs",
    "ogbg-molbbbp": "2,039 graphs", "ogbg-molclintox": "1,477 graphs",
    "ogbg-molsider": "1,427 graphs", "ogbg-moltoxcast": "8,576 graphs",
    "ogbg-molmuv": "93,087 graphs",
}
_TU = {
    "MUTAG": "188 graphs", "PROTEINS": "1,113 graphs", "ENZYMES": "600 graphs",
    "AIDS": "2,000 graphs", "Mutagenicity": "4,337 graphs", "NCI1": "4,110 graphs",
    "PTC_MR": "344 graphs", "IMDB-BINARY": "1,000 graphs", "IMDB-MULTI": "1,500 graphs",
    "DD": "1,178 graphs", "NCI109": "4,127 graphs", "COLLAB": "5,000 graphs",
    "REDDIT-BINARY": "2,000 graphs",
}
_PLANETOID = {"Cora": "2,708 nodes", "CiteSeer": "3,327 nodes", "PubMed": "19,717 nodes"}


def _catalog() -> dict[str, DatasetInfo]:
    infos: list[DatasetInfo] = []
    infos += [DatasetInfo(n, "ogb", f"ogb/{n.replace('-', '_')}", s) for n, s in _OGB.items()]
    infos += [DatasetInfo(n, "tu", f"tu/{n}", s) for n, s in _TU.items()]
    infos += [DatasetInfo(n, "planetoid", f"planetoid/{n}", s, "node") for n, s in _PLANETOID.items()]
    infos += [DatasetInfo(n, "webkb", f"webkb/{n}", "183 nodes" if n != "wisconsin" else "251 nodes",
                          "node") for n in ("texas", "cornell", "wisconsin")]
    infos += [DatasetInfo("film", "actor", "webkb/film", "7,600 nodes", "node"),
              DatasetInfo("CSL", "csl", "csl/CSL", "150 graphs"),
              DatasetInfo("EXP", "exp", "exp", "1,200 graphs"),
              DatasetInfo("SR25", "sr25", "sr25", "15 graphs")]
    return {i.name.lower(): i for i in infos}


_CATALOG = _catalog()
_ALIASES = {"actor": "film"}


def known_datasets() -> list[DatasetInfo]:
    return list(_CATALOG.values())


def dataset_info(name: str) -> DatasetInfo:
    """The catalog entry of ``name`` (case-insensitive); ``ValueError`` listing the known
    datasets if there is none."""
    return _info(name)


def _info(name: str) -> DatasetInfo:
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _CATALOG:
        names = ", ".join(i.name for i in _CATALOG.values())
        raise ValueError(f"unknown dataset {name!r}; known datasets: {names}")
    return _CATALOG[key]


def cache_dir() -> Path:
    return Path(os.environ.get("GRAPHLAB_CACHE", Path.home() / ".cache" / "graphlab")).expanduser()


def data_mirror() -> Path | None:
    path = os.environ.get("GRAPHLAB_DATA_DIR")
    return Path(path).expanduser() if path else None


def _mirror_source(info: DatasetInfo) -> Path | None:
    """The mirror's file or folder for ``info`` if the mirror holds it."""
    mirror = data_mirror()
    if mirror is None:
        return None
    if info.family == "exp":
        path = mirror / "exp" / "exp.npz"
    elif info.family == "sr25":
        path = mirror / "sr25" / "sr251256.g6"
    elif info.family == "ogb":
        path = mirror / info.subdir
        return path if (path / "raw").is_dir() else None
    else:
        path = mirror / info.subdir / "raw"
    return path if path.exists() else None


def _raw_present(info: DatasetInfo, base: Path) -> bool:
    raw = base / info.raw_dir
    return raw.is_dir() and any(raw.iterdir())


def locate_raw(name: str, root: str | Path | None = None) -> str:
    """Where the raw files of ``name`` would be taken from (for ``graphlab datasets``)."""
    info = _info(name)
    if root is not None:
        return f"root: {Path(root) / info.subdir}"
    if _raw_present(info, cache_dir()):
        return f"cache: {cache_dir() / info.subdir}"
    src = _mirror_source(info)
    if src is not None:
        return f"mirror: {src}"
    return "download (not found locally)"


def _fill_from_mirror(info: DatasetInfo, base: Path) -> str:
    """Copy raw files from the mirror into ``base`` if they are missing there. Returns the source."""
    if _raw_present(info, base):
        return f"cache: {base / info.subdir}"
    src = _mirror_source(info)
    if src is None:
        return "download"
    dest = base / info.subdir
    if info.family == "ogb":
        # everything except a processed/ folder, so processing happens (and is written) in the cache
        shutil.copytree(src, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("processed"))
    elif info.family in ("exp", "sr25"):
        (dest / "raw").mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / "raw" / src.name)
    else:
        shutil.copytree(src, dest / "raw", dirs_exist_ok=True)
    _make_writable(dest)
    return f"mirror: {src}"


def _make_writable(path: Path) -> None:
    # the mirror is read-only; copies keep its modes, and loaders must write next to them
    for p in [path, *path.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)


def _offline_error(info: DatasetInfo, base: Path, exc: Exception) -> DataUnavailableError:
    if info.family == "exp":
        # the only public release of EXP is a pickle, which graphlab does not unpickle: there is
        # nothing safe to download, offline or not
        return DataUnavailableError(
            f"EXP cannot be downloaded in a safe format (it is published only as a Python "
            f"pickle). Put a converted 'exp.npz' (arrays x, edge_index, y, num_nodes, "
            f"num_edges) in '{base / info.raw_dir}', or point GRAPHLAB_DATA_DIR at a mirror "
            f"holding exp/exp.npz.")
    reason = (str(exc).splitlines() or [""])[0][:160]
    return DataUnavailableError(
        f"could not download {info.name!r} ({type(exc).__name__}: {reason}); this machine may be "
        f"offline. Point GRAPHLAB_DATA_DIR at a folder laid out like shared/data (it should hold "
        f"'{info.subdir}/'), or put the raw files under '{base / info.raw_dir}'.")


def _load(info: DatasetInfo, base: Path) -> InMemoryDataset:
    import torch_geometric.transforms as T
    from torch_geometric import datasets as pyg

    fam = info.family
    if fam == "ogb":
        from ogb.graphproppred import PygGraphPropPredDataset

        return PygGraphPropPredDataset(name=info.name, root=str(base / "ogb"))
    if fam == "tu":
        # featureless TU datasets (IMDB, COLLAB, REDDIT) get a constant node feature
        ds = pyg.TUDataset(root=str(base / "tu"), name=info.name)
        if ds[0].x is None:
            ds = pyg.TUDataset(root=str(base / "tu"), name=info.name, transform=T.Constant())
        return ds
    if fam == "planetoid":
        return pyg.Planetoid(root=str(base / "planetoid"), name=info.name)
    if fam == "webkb":
        return pyg.WebKB(root=str(base / "webkb"), name=info.name)
    if fam == "actor":
        return pyg.Actor(root=str(base / info.subdir))
    if fam == "csl":
        return pyg.GNNBenchmarkDataset(root=str(base / "csl"), name="CSL", transform=T.Constant())
    if fam == "exp":
        from graphlab.datasets.exp import EXPDataset

        return EXPDataset(root=str(base / info.subdir))
    if fam == "sr25":
        from graphlab.datasets.sr25 import SR25Dataset

        return SR25Dataset(root=str(base / info.subdir))
    raise AssertionError(fam)


@dataclass
class DatasetBundle:
    """A dataset with its protocol: splits, task spec and metric.

    Attributes:
        splits: one dict ``{"train", "valid", "test"}`` of index tensors per run of the
            protocol (1 for OGB/Planetoid, 10 folds for TU, 10 splits for WebKB, ...). For
            node-level datasets the indices are node ids of the single graph.
        protocol: a human-readable description of where the splits come from.
        source: where the raw files were found (``root``, ``cache``, ``mirror`` or ``download``).
    """

    name: str
    dataset: InMemoryDataset
    splits: list[dict[str, Tensor]]
    spec: TaskSpec
    protocol: str
    source: str
    evaluate: Callable[[Tensor, Tensor], float] = field(repr=False)

    @property
    def metric(self) -> str:
        return self.spec.metric


def _stratified_folds(y: np.ndarray, num_folds: int, seed: int,
                      groups: np.ndarray | None = None) -> list[dict[str, Tensor]]:
    """k-fold CV; each fold's training part gives 10% (stratified) to validation."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

    if groups is None:
        splitter = StratifiedKFold(num_folds, shuffle=True, random_state=seed)
        folds = splitter.split(np.zeros(len(y)), y)
    else:
        splitter = StratifiedGroupKFold(num_folds, shuffle=True, random_state=seed)
        folds = splitter.split(np.zeros(len(y)), y, groups)
    splits = []
    for train_val, test in folds:
        if groups is None:
            train, valid = train_test_split(train_val, test_size=0.1, random_state=seed,
                                            stratify=y[train_val])
        else:  # keep pairs together: validate on a tenth of the training groups
            g = np.unique(groups[train_val])
            rng = np.random.default_rng(seed)
            val_groups = rng.choice(g, size=max(1, len(g) // 10), replace=False)
            is_val = np.isin(groups[train_val], val_groups)
            train, valid = train_val[~is_val], train_val[is_val]
        splits.append({k: torch.as_tensor(np.sort(v), dtype=torch.long)
                       for k, v in (("train", train), ("valid", valid), ("test", test))})
    return splits


def _mask_splits(data) -> list[dict[str, Tensor]]:
    masks = (data.train_mask, data.val_mask, data.test_mask)
    if masks[0].dim() == 1:
        masks = tuple(m.unsqueeze(-1) for m in masks)
    return [{"train": masks[0][:, i].nonzero().view(-1), "valid": masks[1][:, i].nonzero().view(-1),
             "test": masks[2][:, i].nonzero().view(-1)} for i in range(masks[0].size(1))]


def _evaluator(metric: str, ogb_name: str | None = None) -> Callable[[Tensor, Tensor], float]:
    from graphlab.utils import metrics

    if ogb_name is not None:
        return metrics.OGBMetric(ogb_name)
    return metrics.METRICS[metric]


def get_dataset(name: str, root: str | Path | None = None, seed: int = 0) -> DatasetBundle:
    """Load a benchmark dataset with its standard split and metric.

    Args:
        name: case-insensitive dataset name (``ogbg-molhiv``, ``MUTAG``, ``Cora``, ``texas``,
            ``film``, ``CSL``, ``EXP``, ``SR25``, ...). Unknown names raise ``ValueError``
            listing the known ones.
        root: folder to load from / process into; default: the cache folder.
        seed: seed of the cross-validation folds for datasets without an official split.
    """
    info = _info(name)
    base = Path(root) if root is not None else cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    source = f"root: {base / info.subdir}" if root is not None and _raw_present(info, base) \
        else _fill_from_mirror(info, base)
    processed = base / info.subdir / "processed"
    try:
        return _load_bundle(info, base, source, seed)
    except UnsafeFileError as exc:
        if exc.path is None or not processed.is_dir() or \
                Path(processed.resolve()) not in Path(exc.path).resolve().parents:
            raise UnsafeFileError(f"{exc}. Delete {base / info.subdir} to fetch and process "
                                  f"{info.name} again.", exc.path) from None
        warnings.warn(f"{exc}; deleting {processed} and processing {info.name} again from its "
                      "raw files", stacklevel=2)
        shutil.rmtree(processed)
    return _load_bundle(info, base, source, seed)


def _load_bundle(info: DatasetInfo, base: Path, source: str, seed: int) -> DatasetBundle:
    with safe_torch_loads():
        try:
            dataset = _load(info, base)
        except UnsafeFileError:
            raise
        except Exception as exc:
            if source == "download" and not _raw_present(info, base):
                raise _offline_error(info, base, exc) from exc
            raise
        # the split of an OGB dataset is read (torch.load) here, so this is inside the guard too
        return _bundle(info, dataset, source, seed)


def _bundle(info: DatasetInfo, dataset: InMemoryDataset, source: str, seed: int) -> DatasetBundle:
    data0 = dataset[0]
    edge_dim = dataset.num_edge_features or None
    fam = info.family
    if fam == "ogb":
        split = dataset.get_idx_split()
        metric = dataset.eval_metric
        task_type = dataset.task_type
        loss = "bce" if "classification" in task_type else "mse"
        spec = TaskSpec("graph", data0.x.size(-1), dataset.num_tasks, loss, metric,
                        edge_dim=data0.edge_attr.size(-1), molecular=True)
        splits = [{"train": split["train"], "valid": split["valid"], "test": split["test"]}]
        return DatasetBundle(info.name, dataset, splits, spec, "official OGB scaffold split",
                             source, _evaluator(metric, info.name))
    if info.level == "node":
        num_classes = int(data0.y.max()) + 1
        spec = TaskSpec("node", dataset.num_features, num_classes, "ce", "acc")
        splits = _mask_splits(data0)
        protocol = "public Planetoid split" if fam == "planetoid" else \
            f"{len(splits)} standard 60/20/20 splits (Geom-GCN)"
        return DatasetBundle(info.name, dataset, splits, spec, protocol, source,
                             _evaluator("acc"))
    y = dataset.y.view(-1).numpy() if dataset.y is not None else np.zeros(len(dataset), int)
    num_classes = int(y.max()) + 1
    spec = TaskSpec("graph", dataset.num_features, num_classes, "ce", "acc", edge_dim=edge_dim)
    if fam == "sr25":
        everything = torch.arange(len(dataset))
        splits = [{"train": everything, "valid": everything, "test": everything}]
        protocol = "all 15 graphs in every split (an expressivity fit, not generalisation)"
    elif fam == "exp":
        splits = _stratified_folds(y, 10, seed, groups=np.arange(len(y)) // 2)
        protocol = f"10-fold CV over graph pairs (seed {seed})"
    elif fam == "csl":
        splits = _stratified_folds(y, 5, seed)
        protocol = f"5-fold stratified CV (seed {seed})"
    else:
        splits = _stratified_folds(y, 10, seed)
        protocol = f"10-fold stratified CV, 10% of each training fold for validation (seed {seed})"
    return DatasetBundle(info.name, dataset, splits, spec, protocol, source, _evaluator("acc"))
