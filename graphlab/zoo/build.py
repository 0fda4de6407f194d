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
import time
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
from graphlab.zoo.training import train_members

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


def _build_chunk(args: tuple[str, int, list[int], str]) -> int:
    """Train (together, for batched presets) and store the unfinished members of a chunk;
    returns the chunk's size. Each member's train time is its share of the chunk's."""
    preset, seed, indices, out_s = args
    torch.set_num_threads(1)
    out = Path(out_s)
    indices = [i for i in indices if not member_is_done(out, i)]
    if not indices:
        return len(args[2])
    cfgs = [member_config(preset, seed, i) for i in indices]
    t0 = time.perf_counter()
    trained = train_members(cfgs)
    seconds = (time.perf_counter() - t0) / len(cfgs)
    for index, cfg, (model, metrics) in zip(indices, cfgs, trained):
        curve = metrics.pop("curve", [])
        metrics["train_seconds"] = seconds
        write_member(out, index, model, {"preset": preset, "zoo_seed": seed, "seed": cfg["seed"],
                                         "config": cfg, "metrics": metrics, "curve": curve})
    return len(args[2])


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
    limit = PRESETS[preset].max_size
    if limit is not None and size > limit:
        raise ValueError(f"preset {preset!r} has at most {limit} members, got size {size}")
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
        # batched presets: one job per chunk, split evenly over the workers
        step = max(1, min(PRESETS[preset].batch, -(-len(todo) // workers)))
        jobs = [(preset, seed, todo[s:s + step], str(out)) for s in range(0, len(todo), step)]
        _run(jobs, workers, progress, preset, len(todo))
    return out


def _run(jobs: list[tuple[str, int, list[int], str]], workers: int, progress: bool,
         preset: str, total: int) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"zoo {preset}", unit="member")
    if workers == 1 or len(jobs) <= 1:
        for j in jobs:
            n = _build_chunk(j)
            if bar is not None:
                bar.update(n)
    else:
        import multiprocessing as mp

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(workers) as pool:
            for n in pool.imap_unordered(_build_chunk, jobs):
                if bar is not None:
                    bar.update(n)
    if bar is not None:
        bar.close()
