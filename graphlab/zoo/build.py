r"""Building a zoo: deterministic, resumable, shardable generation of small trained (or
untrained) networks.

Member ``i`` is a pure function of ``(preset, seed, i)``: its configuration is sampled from a
generator seeded with ``(seed, i)`` and it is built and trained single-threaded from generators
seeded by it, so shards built on different machines (``shard=(I, N)`` builds the members with
``i % N == I``) union to the full zoo, and a killed build resumes where it stopped (a member is
done when its record exists and its weights match the hash recorded in it; see
:mod:`graphlab.zoo.store`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from graphlab.runfolder import atomic_write_json
from graphlab.zoo.presets import PRESETS, member_config
from graphlab.zoo.splits import zoo_splits
from graphlab.zoo.store import (
    ZOO_VERSION,
    clean_orphans,
    member_is_done,
    open_zoo_folder,
    write_member,
    zoo_config,
)
from graphlab.zoo.training import train_member

__all__ = ["build_zoo", "parse_shard"]

def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"I/N"`` or ``(I, N)`` -> ``(I, N)``; ``None`` is the whole zoo ``(0, 1)``."""
    if shard is None:
        return 0, 1
    if isinstance(shard, str):
        try:
            i, n = (int(s) for s in shard.split("/"))
        except ValueError as exc:
            raise ValueError(f"shard must look like 'I/N', got {shard!r}") from exc
    else:
        i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard index must satisfy 0 <= I < N, got {i}/{n}")
    return i, n


def _build_one(args: tuple[str, int, int, str]) -> int:
    preset, seed, index, out_s = args
    torch.set_num_threads(1)
    out = Path(out_s)
    if member_is_done(out, index):
        return index
    cfg = member_config(preset, seed, index)
    model, metrics = train_member(cfg)
    curve = metrics.pop("curve", [])
    write_member(out, index, model, {"preset": preset, "zoo_seed": seed, "seed": cfg["seed"],
                                     "config": cfg, "metrics": metrics, "curve": curve})
    return index


def build_zoo(preset: str, size: int, out: str | Path, seed: int = 0, workers: int = 1,
              shard: str | tuple[int, int] | None = None, progress: bool = False,
              overwrite: bool = False) -> Path:
    """Generate (or resume) a zoo; returns its directory.

    Args:
        preset: a key of :data:`~graphlab.zoo.PRESETS`.
        size: number of members (indices ``0 .. size-1``); a rerun with a larger size extends
            the zoo.
        out: zoo directory (created; reruns skip finished members).
        seed: zoo seed; member ``i`` depends only on ``(preset, seed, i)``.
        workers: processes (each single-threaded).
        shard: ``"I/N"`` or ``(I, N)``: build only members with ``index % N == I``.
        progress: show a tqdm bar.
        overwrite: delete everything in ``out`` and start over. Without it, a folder holding a
            zoo of another preset, seed or format version is refused
            (:class:`~graphlab.runfolder.RunFolderError`, a ``ValueError``, naming the
            differing keys).

    While building, ``out`` is locked: a second build into it (another shard included) fails
    at once with a clear message; build shards in parallel with ``workers`` or in separate
    folders and copy the members together.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if size < 0 or workers < 1:
        raise ValueError(f"size must be >= 0 and workers >= 1, got {size}, {workers}")
    si, sn = parse_shard(shard)
    out = Path(out)
    with open_zoo_folder(out, zoo_config(preset, seed), overwrite):
        clean_orphans(out)  # the tmp files RunFolder removed, plus older zoos' temp names
        meta: dict[str, Any] = {"preset": preset, "size": size, "seed": seed,
                                "version": ZOO_VERSION}
        if (out / "zoo.json").exists():
            try:
                old_size = int(json.loads((out / "zoo.json").read_text())["size"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{out / 'zoo.json'} is unreadable ({exc}); pass --overwrite "
                                 "(overwrite=True) to start over") from exc
            meta["size"] = max(size, old_size)
        (out / "members").mkdir(exist_ok=True)
        atomic_write_json(out / "zoo.json", meta, indent=1)
        atomic_write_json(out / "splits.json", zoo_splits(preset, meta["size"], seed), indent=None)
        todo = [i for i in range(si, size, sn) if not member_is_done(out, i)]
        _run([(preset, seed, i, str(out)) for i in todo], workers, progress, preset)
    return out


def _run(jobs: list[tuple[str, int, int, str]], workers: int, progress: bool,
         preset: str) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"zoo {preset}")
    if workers == 1 or len(jobs) <= 1:
        for j in jobs:
            _build_one(j)
            if bar is not None:
                bar.update()
    else:
        import multiprocessing as mp

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for _ in pool.imap_unordered(_build_one, jobs):
                if bar is not None:
                    bar.update()
    if bar is not None:
        bar.close()
