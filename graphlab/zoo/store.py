r"""Zoo storage: safetensors weights you can trust, JSON member records, and :class:`Zoo`.

A zoo directory holds ``zoo.json`` (preset, seed, size, version), ``splits.json`` (the standard
splits) and ``members/<index>.safetensors`` + ``members/<index>.json``. The record of a member
names its weights file and the SHA-256 of its bytes. On load, a member is

* confined to ``members/``: a record whose ``weights`` is a path (``"../../outside.safetensors"``,
  an absolute path, a symlink out of the folder) is refused;
* verified against its recorded hash, and its tensors must be finite (the builder zeroes
  non-finite weights of diverged members), so a tampered, truncated or NaN-filled file raises a
  ``ValueError`` naming it instead of silently changing predictions;
* read as safetensors only: nothing in a zoo is ever unpickled.

Writes go through :mod:`graphlab.runfolder` (a unique hidden temporary file in the same folder,
``fsync``, ``os.replace``), and a build holds the folder as a
:class:`~graphlab.runfolder.RunFolder`: one writer at a time, its configuration recorded in
``config.json``. A process killed mid-write leaves its temporary file behind; the next build, or
the next :func:`load_zoo` while no build holds the folder, removes it (:func:`clean_orphans`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from graphlab.runfolder import (
    RunFolder,
    RunFolderError,
    atomic_save_safetensors,
    atomic_write_json,
)
from graphlab.runfolder import clean_orphans as clean_tmp_files
from graphlab.zoo.architectures import example_input, make_model

__all__ = ["ZOO_VERSION", "Zoo", "load_zoo", "phase_labels", "save_state_dict_safe",
           "load_state_dict_safe", "sha256_file", "member_paths", "member_is_done",
           "write_member", "clean_orphans", "zoo_config", "open_zoo_folder"]

# 2: the healthy presets (digits-mlp / arch-family by steps, digits-cnn resampled) and
# digits-inr; a version-1 folder is refused by build_zoo (its members were sampled differently)
# and still loads
ZOO_VERSION = 3  # 3: digits-inr at w0 = 5 (500 steps)
# temporary files of the atomic writes of graphlab <= 0.x zoos (tempfile's
# ".<name>.XXXXXXXX[.safetensors]"); today's writes use graphlab.runfolder's ".<name>.XXXX.tmp"
_LEGACY_ORPHAN = re.compile(r"^\.(?:\d+\.(?:json|safetensors)|zoo\.json|splits\.json)\..+$")


# --------------------------------------------------------------------------- files
def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_state_dict_safe(net: nn.Module | dict[str, Tensor], path: str | Path,
                         metadata: dict[str, str] | None = None) -> None:
    """Save a module's ``state_dict`` (or a dict of tensors) as safetensors, atomically.

    Tied weights are stored once per name (as independent copies), which is what
    ``load_state_dict`` expects.
    """
    sd = net.state_dict() if isinstance(net, nn.Module) else net
    # clones: safetensors refuses tensors that share storage (tied weights)
    atomic_save_safetensors({k: v.detach().clone() for k, v in sd.items()}, path, metadata)


def load_state_dict_safe(path: str | Path, device: str = "cpu") -> dict[str, Tensor]:
    """Read a ``state_dict`` from ``.safetensors`` or from a ``weights_only=True`` torch file.

    Raises ``ValueError`` naming the file when it is not a valid safetensors file or holds
    anything other than tensors (e.g. a pickled module), instead of executing it.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return _load_safetensors_bytes(path.read_bytes(), path, device)
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler's refusal is re-raised clearly
        raise ValueError(f"{path} is not a weights-only checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); refusing to unpickle it") from exc
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a flat dict of tensors")
    return obj


def _load_safetensors_bytes(data: bytes, path: Path, device: str = "cpu") -> dict[str, Tensor]:
    from safetensors.torch import load

    try:
        sd = load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{path} is not a valid safetensors file ({type(exc).__name__}: "
                         f"{exc})") from exc
    # sorted like safetensors' own load_file (the in-memory loader's order is arbitrary)
    return {k: sd[k].to(device) for k in sorted(sd)}


def clean_orphans(root: str | Path) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in a zoo folder (and its
    ``members/``); returns the removed paths. Only call it while holding the folder
    (:func:`open_zoo_folder`): a concurrent writer's file in flight looks the same."""
    root = Path(root)
    removed = clean_tmp_files(root)
    for folder in (root, root / "members"):
        if folder.is_dir():
            for p in folder.iterdir():
                if _LEGACY_ORPHAN.match(p.name) and p.is_file() and not p.is_symlink():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


def zoo_config(preset: str, seed: int) -> dict[str, Any]:
    """The configuration that defines a zoo (its folder's ``config.json``): a folder holding
    another one is never mixed into. The size is not part of it (a zoo grows)."""
    return {"kind": "graphlab.zoo", "preset": preset, "seed": seed, "version": ZOO_VERSION}


def open_zoo_folder(root: str | Path, config: dict[str, Any], overwrite: bool = False
                    ) -> RunFolder:
    """A :class:`~graphlab.runfolder.RunFolder` for building into ``root``: locked against a
    second writer, orphaned temporary files removed, a different zoo refused naming the
    differing keys (or, with ``overwrite``, deleted). A zoo written before ``config.json``
    existed is adopted from its ``zoo.json``."""
    root = Path(root)
    cfg_path, meta_path = root / "config.json", root / "zoo.json"
    if not cfg_path.exists() and meta_path.exists() and not overwrite:
        try:
            old = json.loads(meta_path.read_text())
            legacy = zoo_config(old["preset"], old["seed"]) | {"version": old["version"]}
        except (OSError, ValueError, KeyError, TypeError):
            legacy = None  # RunFolder reports the folder as unrecognised
        if legacy is not None:
            atomic_write_json(cfg_path, legacy)
    return RunFolder(root, config, overwrite=overwrite)


# --------------------------------------------------------------------------- members
def member_paths(root: str | Path, index: int) -> tuple[Path, Path]:
    """``(record, weights)`` paths of member ``index``."""
    d = Path(root) / "members"
    return d / f"{index:06d}.json", d / f"{index:06d}.safetensors"


def member_is_done(root: str | Path, index: int) -> bool:
    """A member is done when its record exists and its weights match the recorded hash."""
    js, st = member_paths(root, index)
    if not (js.exists() and st.exists()):
        return False
    try:
        rec = json.loads(js.read_text())
        return rec.get("hash") == sha256_file(st)
    except (OSError, ValueError):
        return False


def write_member(root: str | Path, index: int, model: nn.Module, record: dict[str, Any]) -> None:
    """Store a member: weights first, then its record with their hash (a member whose record is
    missing or does not match is rebuilt, so a kill between the two writes is harmless)."""
    js, st = member_paths(root, index)
    save_state_dict_safe(model, st)  # weights first: a record always names finished weights
    rec = {**record, "index": index, "weights": st.name, "hash": sha256_file(st),
           "version": ZOO_VERSION}
    atomic_write_json(js, rec, indent=1)  # strict JSON: a diverged curve's NaN -> null


def _weights_path(members: Path, record_path: Path, rec: dict[str, Any]) -> Path:
    """The member's weights file, refused unless it is a plain file name inside ``members``."""
    w = rec.get("weights")
    if not isinstance(w, str) or not w or Path(w).name != w or w in (".", "..") \
            or not w.endswith(".safetensors"):
        raise ValueError(f"zoo member record {record_path}: weights {w!r} is not a safetensors "
                         f"file name inside {members}; refusing to read it")
    path = members / w
    if path.exists() and path.resolve().parent != members.resolve():
        raise ValueError(f"zoo member record {record_path}: weights {w!r} resolves to "
                         f"{path.resolve()}, outside {members}; refusing to read it")
    return path


# --------------------------------------------------------------------------- the zoo
class Zoo:
    """A built zoo on disk: member records, weights and splits.

    ``zoo.records`` lists the finished members' JSON records (sorted by index); missing members
    (e.g. another shard's) are simply absent. Weights are verified against their recorded
    SHA-256 and for finiteness every time they are loaded (:meth:`state_dict`). ``zoo.cache``
    holds objects derived from the members (graphs, edge labels) that the tasks reuse.

    Args:
        path: the zoo directory written by :func:`~graphlab.zoo.build_zoo`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "zoo.json"
        if not meta_path.exists():
            raise ValueError(f"{self.path} is not a zoo (no zoo.json); run build_zoo first")
        self.meta = _read_json(meta_path)
        self._clean_if_idle()
        self.preset: str = self.meta["preset"]
        members = self.path / "members"
        self.records: list[dict[str, Any]] = []
        self._weights: dict[int, Path] = {}
        for js in sorted(members.glob("*.json")):
            if js.name.startswith("."):
                continue
            rec = _read_json(js)
            if not isinstance(rec, dict) or rec.get("index") != _index_of(js):
                raise ValueError(f"zoo member record {js} does not describe member "
                                 f"{_index_of(js)}; the zoo folder is corrupted")
            st = _weights_path(members, js, rec)
            if st.exists():
                self.records.append(rec)
                self._weights[rec["index"]] = st
        self._pos = {r["index"]: k for k, r in enumerate(self.records)}
        self.cache: dict[Any, Any] = {}
        sp = self.path / "splits.json"
        self.splits: dict[str, dict[str, list[int]]] = _read_json(sp) if sp.exists() else {}

    def _clean_if_idle(self) -> None:
        """Remove orphaned temporary files, unless a build holds the folder (or it is
        read-only): only the holder of the lock may tell orphans from files in flight."""
        cfg = self.path / "config.json"
        if not cfg.exists():
            return
        try:
            with RunFolder(self.path, _read_json(cfg)):
                clean_orphans(self.path)
        except (RunFolderError, OSError):
            pass

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Zoo({self.preset!r}, members={len(self)}, path={str(self.path)!r})"

    @property
    def indices(self) -> list[int]:
        return [r["index"] for r in self.records]

    def record(self, index: int) -> dict[str, Any]:
        """The JSON record of member ``index`` (config, metrics, curve, weights, hash)."""
        if index not in self._pos:
            raise ValueError(f"member {index} is not in this zoo (finished members: "
                             f"{len(self)}, e.g. {self.indices[:5]})")
        return self.records[self._pos[index]]

    def state_dict(self, index: int) -> dict[str, Tensor]:
        """Member ``index``'s weights (in its architecture's ``state_dict`` order), after
        checking them against the recorded SHA-256.

        Raises:
            ValueError: naming the file, if it does not match its hash (tampered, truncated,
                replaced) or holds non-finite values.
        """
        rec = self.record(index)
        path = self._weights[index]
        data = path.read_bytes()  # hash and parse the same bytes
        if hashlib.sha256(data).hexdigest() != rec.get("hash"):
            raise ValueError(f"zoo member {path} does not match the SHA-256 recorded in its "
                             "record (it changed after it was written: tampered or corrupted); "
                             "rerun `graphlab zoo build` on this zoo to rebuild it")
        sd = _load_safetensors_bytes(data, path)
        bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise ValueError(f"zoo member {path} holds non-finite values in {bad}; a zoo member "
                             "is always finite, so the file is corrupted")
        with torch.device("meta"):  # the architecture's key order, without drawing weights
            keys = list(make_model(rec["config"]).state_dict())
        if set(keys) != set(sd):
            raise ValueError(f"zoo member {path} holds tensors {sorted(set(sd) - set(keys))} "
                             f"and lacks {sorted(set(keys) - set(sd))} of its architecture")
        return {k: sd[k] for k in keys}

    def module(self, index: int) -> nn.Module:
        """Member ``index`` as an ``nn.Module`` in eval mode (verified weights)."""
        sd = self.state_dict(index)
        with torch.device("meta"):  # no throw-away initial weights (nor global RNG draws)
            model = make_model(self.record(index)["config"])
        model.load_state_dict(sd, assign=True)
        return model.eval()

    def example_input(self, index: int) -> Tensor:
        """An input batch shaped for member ``index`` (for tracing it with ``to_graph``)."""
        return example_input(self.record(index)["config"])

    def target(self, name: str, indices: Sequence[int] | None = None) -> np.ndarray:
        """A metric (``test_acc``, ``gen_gap``, ``complexity``, ...) or a config field per member,
        or ``phase`` (see :func:`phase_labels`)."""
        indices = self.indices if indices is None else list(indices)
        if name == "phase":
            lab = phase_labels(self)
            return np.array([lab[i] for i in indices])
        out = []
        for i in indices:
            r = self.record(i)
            v = r["metrics"].get(name, r["config"].get(name))
            if v is None and name not in r["metrics"] and name not in r["config"]:
                raise ValueError(f"unknown target {name!r} for preset {self.preset!r}")
            out.append(np.nan if v is None else float(v))
        return np.asarray(out, dtype=np.float64)

    def split(self, name: str) -> tuple[list[int], list[int]]:
        """``(train, test)`` indices of a standard split, restricted to finished members (a
        split's ``val`` part, where it has one, is in neither: see :meth:`split_parts`)."""
        parts = self.split_parts(name)
        return parts["train"], parts["test"]

    def split_parts(self, name: str) -> dict[str, list[int]]:
        """Every part of a standard split (``train``, ``test`` and, where the preset defines one,
        e.g. ``digits-inr``, ``val``), restricted to finished members."""
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r}; this zoo has {sorted(self.splits)}")
        have = set(self.indices)
        return {part: [i for i in members if i in have]
                for part, members in self.splits[name].items()}


def _index_of(record_path: Path) -> int | None:
    return int(record_path.stem) if record_path.stem.isdigit() else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the zoo folder is corrupted") \
            from exc


def phase_labels(zoo: Zoo) -> dict[int, int]:
    """A 4-phase label per trained member on the phase-transition zoo's two axes: whether it fits
    its training data (train loss below 0.1) and whether it sits in a sharp minimum (Hessian top
    eigenvalue above the zoo median). 0: underfit/flat, 1: underfit/sharp, 2: fit/flat,
    3: fit/sharp."""
    sharp = np.array([r["metrics"].get("sharpness") or 0.0 for r in zoo.records], dtype=float)
    med = float(np.median(sharp)) if len(sharp) else 0.0
    out = {}
    for r in zoo.records:
        m = r["metrics"]
        if "train_loss" not in m:
            raise ValueError(f"preset {zoo.preset!r} has no training phases")
        fit = m["train_loss"] is not None and m["train_loss"] < 0.1
        out[r["index"]] = 2 * int(fit) + int((m.get("sharpness") or 0.0) > med)
    return out


def load_zoo(path: str | Path) -> Zoo:
    """Open a zoo directory written by :func:`~graphlab.zoo.build_zoo` (and remove the stale
    temporary files of interrupted writes in it)."""
    return Zoo(path)
