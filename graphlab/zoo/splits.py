r"""The standard splits of a zoo, computed from member configurations alone (so every shard
and every reader agrees on them without looking at weights or metrics)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphlab.zoo.presets import member_config

__all__ = ["zoo_splits"]


def zoo_splits(preset: str, size: int, seed: int) -> dict[str, dict[str, list[int]]]:
    """The standard splits (member indices), computed from configurations alone:

    * ``id``: a seeded 50/50 random split;
    * ``hparam``: hold out one hyperparameter value (``lr == 0.03`` for trained presets,
      ``init_scale == 2`` for random-nets);
    * ``width``: train on the narrower widths, test on the widest (where widths vary);
    * ``depth``: train on the shallower depths, test on the deepest (where depths vary);
    * ``family`` (``arch-family`` only): train on MLPs and 1-D convnets, test on residual MLPs.

    ``digits-inr`` has one split, ``id``: stratified by label, 70 / 15 / 15 % ``train`` /
    ``val`` / ``test`` (:func:`graphlab.zoo.inr.inr_split`; the members share one architecture,
    so there is nothing to hold out but images).
    """
    cfgs = [member_config(preset, seed, i) for i in range(size)]
    if preset == "digits-inr":
        from graphlab.zoo.inr import inr_split

        return {"id": inr_split(np.array([c["label"] for c in cfgs], dtype=np.int64), seed)}
    idx = np.arange(size)
    rng = np.random.default_rng(seed + 12345)
    perm = rng.permutation(size)
    splits: dict[str, dict[str, list[int]]] = {
        "id": {"train": sorted(perm[: size // 2].tolist()), "test": sorted(perm[size // 2:].tolist())}}

    def by(pred: Callable[[dict[str, Any]], bool]) -> dict[str, list[int]]:
        test = [int(i) for i in idx if pred(cfgs[i])]
        return {"train": [int(i) for i in idx if not pred(cfgs[i])], "test": test}

    if preset == "random-nets":
        splits["hparam"] = by(lambda c: c["init_scale"] == 2.0)
    else:
        splits["hparam"] = by(lambda c: c["lr"] == 0.03)
    # width / depth: only where they vary (digits-cnn-fixed has one architecture)
    if len({c["width"] for c in cfgs}) > 1:
        wmax = max(c["width"] for c in cfgs)
        splits["width"] = by(lambda c: c["width"] == wmax)
    if len({c["depth"] for c in cfgs}) > 1:
        dmax = max(c["depth"] for c in cfgs)
        splits["depth"] = by(lambda c: c["depth"] == dmax)
    if preset == "arch-family":
        splits["family"] = by(lambda c: c["arch"] == "resmlp")
    return splits
