r"""Zoo presets: the families of networks a zoo samples from, and the configuration of each
member as a pure function of ``(preset, seed, index)``.

* ``digits-mlp``: MLPs on scikit-learn's digits over width, depth, activation, learning rate,
  batch size, weight decay, training steps and train fraction (the phase-transition zoo's
  "temperature" ``lr / batch`` and "load" ``samples / parameters`` knobs), with a Hessian
  top-eigenvalue estimate (sharpness) per member;
* ``digits-cnn``: small CNNs on the 8x8 digit images over the Small CNN Zoo's knobs (width,
  depth, activation, BatchNorm, dropout, init, learning rate, batch, weight decay, steps, train
  fraction);
* ``digits-cnn-fixed``: the same knobs on one architecture (width 16, depth 2, no BatchNorm),
  as in the Small CNN Zoo itself, where only the training run differs between members;
* ``random-nets``: untrained 2-D -> 1 networks (activation, depth, width, residual, LayerNorm,
  init scale) labelled by the spectral complexity of the function on a grid ("Neural Redshift",
  Teney et al., CVPR 2024);
* ``arch-family``: MLPs, 1-D convnets and residual MLPs on digits, for cross-family prediction
  from op graphs;
* ``digits-inr``: one SIREN per digits image (member ``i`` represents image ``i``, labelled by
  its digit), fitted all at once (:mod:`graphlab.zoo.inr`), for INR classification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Preset", "PRESETS", "member_seed", "member_config"]


@dataclass(frozen=True)
class Preset:
    """A zoo family.

    Attributes:
        name: the preset's key in :data:`PRESETS`.
        description: one line.
        sample: ``(rng, index) -> config``, member ``index``'s configuration from a generator
            seeded by the member's seed.
        trained: whether members are trained (``False``: initialised only).
        batch: how many members one job trains together (the INR zoo fits hundreds at once).
        max_size: the largest zoo (``None``: unbounded).
    """

    name: str
    description: str
    sample: Callable[[np.random.Generator, int], dict[str, Any]]
    trained: bool = True
    batch: int = 1
    max_size: int | None = None


def _choice(rng: np.random.Generator, xs: Sequence[Any]) -> Any:
    return xs[int(rng.integers(len(xs)))]


def _sample_digits_mlp(rng: np.random.Generator, index: int) -> dict[str, Any]:
    # a budget of optimizer steps, not epochs: with epochs, a 10% train fraction at batch 256
    # got 2-25 steps and sat at chance (the zoo before: median test accuracy 0.46)
    return {"arch": "mlp", "width": _choice(rng, [8, 16, 32]), "depth": _choice(rng, [1, 2, 3]),
            "act": _choice(rng, ["relu", "tanh", "sigmoid"]),
            "lr": _choice(rng, [0.01, 0.03, 0.1, 0.3]),
            "batch_size": _choice(rng, [16, 64, 256]),
            "weight_decay": _choice(rng, [0.0, 1e-4, 1e-3, 1e-2]),
            "steps": _choice(rng, [100, 200, 400]),
            "train_fraction": _choice(rng, [0.1, 0.25, 0.5, 1.0])}


def _sample_digits_cnn(rng: np.random.Generator, index: int) -> dict[str, Any]:
    # the Small CNN Zoo's knobs (Unterthiner et al. 2020: optimizer lr, init, width, depth,
    # dropout, weight decay, train fraction, training length) over ranges that mostly converge
    # on 8x8 digits: conv-pool blocks with a flattened head, AdamW, 50-200 steps
    return {"arch": "cnn2d", "pool": True, "width": _choice(rng, [4, 8, 16]),
            "depth": _choice(rng, [1, 2, 3]), "act": _choice(rng, ["relu", "tanh", "gelu"]),
            "norm": bool(rng.integers(2)), "dropout": _choice(rng, [0.0, 0.1, 0.3]),
            "init": _choice(rng, ["default", "xavier", "he", "orthogonal", "normal"]),
            "optimizer": "adam", "lr": _choice(rng, [3e-4, 1e-3, 3e-3, 0.01, 0.03]),
            "batch_size": _choice(rng, [32, 64, 128]),
            "weight_decay": _choice(rng, [0.0, 1e-3, 1e-2, 0.1]),
            "steps": _choice(rng, [50, 100, 200]),
            "train_fraction": _choice(rng, [0.05, 0.1, 0.25, 0.5, 1.0])}


def _sample_digits_cnn_fixed(rng: np.random.Generator, index: int) -> dict[str, Any]:
    # the Small CNN Zoo proper: one architecture, only the training knobs vary (its StatNN /
    # NFN / Neural Graphs accuracy-prediction results are on such zoos)
    cfg = _sample_digits_cnn(rng, index)
    return cfg | {"width": 16, "depth": 2, "act": cfg["act"] if cfg["act"] != "gelu" else "relu",
                  "norm": False}


def _sample_random_nets(rng: np.random.Generator, index: int) -> dict[str, Any]:
    return {"arch": "resmlp", "in_dim": 2, "out_dim": 1, "width": _choice(rng, [8, 16, 32, 64]),
            "depth": _choice(rng, [1, 2, 4, 6]),
            "act": _choice(rng, ["relu", "tanh", "sigmoid", "gelu"]),
            "residual": bool(rng.integers(2)), "norm": bool(rng.integers(2)),
            "init_scale": _choice(rng, [0.5, 1.0, 2.0, 4.0])}


def _sample_arch_family(rng: np.random.Generator, index: int) -> dict[str, Any]:
    arch = _choice(rng, ["mlp", "conv1d", "resmlp"])
    cfg = {"arch": arch, "width": _choice(rng, [8, 16, 32]), "depth": _choice(rng, [1, 2, 3]),
           "act": _choice(rng, ["relu", "tanh"]), "lr": _choice(rng, [0.01, 0.03, 0.1]),
           "batch_size": _choice(rng, [32, 128]), "weight_decay": 0.0,
           "steps": _choice(rng, [50, 100, 200]), "train_fraction": _choice(rng, [0.25, 1.0])}
    if arch == "resmlp":
        cfg["norm"] = bool(rng.integers(2))
    return cfg


def _sample_digits_inr(rng: np.random.Generator, index: int) -> dict[str, Any]:
    from graphlab.zoo.inr import digit_label

    # one architecture and fitting recipe for all members: the weights, not the recipe, carry
    # the label (DWSNets / NFN MNIST-INR setups, scaled to 8x8). w0 = 5, 500 steps, from a
    # probe on 600 images (runs/h3/probe_w0.log; logistic regression on the INR's outputs at 16
    # random off-grid points, PSNR on the 64 pixels): w0 = 30 fits the pixels (120 dB) but is
    # noise between them (probe 0.43); w0 = 3 underfits (26 dB); w0 = 5 fits (53 dB) and stays
    # smooth (probe 0.76, w0 = 10: 0.79, 120 dB) with the smallest folded first layer that fits
    # (entry std 1.6 vs 2.9 at w0 = 10), i.e. the weights closest to the encoders' input range
    return {"arch": "siren", "in_dim": 2, "width": 32, "depth": 2, "out_dim": 1, "w0": 5.0,
            "steps": 500, "lr": 1e-3, "image_index": index, "label": digit_label(index)}


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("digits-mlp", "MLPs on sklearn digits over width/depth/act/lr/batch/wd/epochs/data",
           _sample_digits_mlp),
    Preset("digits-cnn", "small 2-D CNNs on 8x8 digits (Small CNN Zoo knobs: lr, init, width, "
           "depth, dropout, wd, steps, data)",
           _sample_digits_cnn),
    Preset("digits-cnn-fixed", "one 2-D CNN architecture on 8x8 digits, Small CNN Zoo training "
           "knobs (lr, init, dropout, wd, steps, data)", _sample_digits_cnn_fixed),
    Preset("random-nets", "untrained 2-D->1 nets labelled by function complexity",
           _sample_random_nets, trained=False),
    Preset("arch-family", "MLP / 1-D conv / residual MLP on digits (cross-family)",
           _sample_arch_family),
    Preset("digits-inr", "one SIREN per sklearn digits image (label = digit), batched fitting",
           _sample_digits_inr, batch=512, max_size=1797),
]}


def member_seed(seed: int, index: int) -> int:
    """The 32-bit seed of member ``index`` of a zoo with seed ``seed`` (a hash, so members of
    different zoos and indices are decorrelated)."""
    h = hashlib.sha256(f"graphlab-zoo:{seed}:{index}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def member_config(preset: str, seed: int, index: int) -> dict[str, Any]:
    """The configuration of member ``index`` (a pure function of its arguments)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    limit = PRESETS[preset].max_size
    if index < 0 or (limit is not None and index >= limit):
        raise ValueError(f"preset {preset!r} has members 0..{limit - 1 if limit else 'inf'}, "
                         f"got index {index}")
    ms = member_seed(seed, index)
    cfg = PRESETS[preset].sample(np.random.default_rng(ms), index)
    cfg["seed"] = ms
    return cfg
