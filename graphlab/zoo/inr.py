r"""The INR zoo: one SIREN implicit neural representation per image of scikit-learn's 8x8 digits,
fitted all at once as one batched model.

Member ``i`` of the ``digits-inr`` preset represents image ``i`` of
:func:`sklearn.datasets.load_digits` (1,797 images, intensities scaled to :math:`[0, 1]`) as a
function :math:`f: [-1, 1]^2 \to \mathbb{R}` from pixel coordinates (row, column) to intensity;
its label is the digit. This is the INR-classification setting of DWSNets (Navon et al., ICML
2023), NFN (Zhou et al., NeurIPS 2023) and Neural Graphs (Kofinas et al., ICLR 2024) on MNIST,
scaled to 8x8 images: classify the image from the INR's weights alone.

Fitting: every member of a build chunk is trained simultaneously, its weights stacked along a
leading member dimension and the layers applied with :func:`torch.baddbmm`, full-batch (all 64
pixels) with Adam on the sum of the members' mean squared errors. Adam's update is element-wise,
so members do not interact: each trains as it would alone (up to floating-point summation order).
Each member's initialisation is drawn from a generator seeded with its own seed, so a member does
not depend on which chunk or shard built it. The stored weights are a plain
:class:`~graphlab.zoo.architectures.SIREN` state dict with :math:`\omega_0` folded in.

The standard split (``splits.json["id"]``, see :func:`inr_split`) is stratified by label:
70 / 15 / 15 % train / val / test per class, drawn with ``numpy.random.default_rng(seed + 12345)``
where ``seed`` is the zoo seed (0 by default).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from graphlab.zoo.architectures import SIREN

__all__ = ["NUM_IMAGES", "digits_images", "pixel_coordinates", "fit_inrs", "inr_split",
           "psnr"]

#: the number of images in scikit-learn's digits (the largest ``digits-inr`` zoo)
NUM_IMAGES = 1797


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits_images() -> tuple[Tensor, Tensor]:
    """``(images [1797, 8, 8] in [0, 1], labels [1797])`` of scikit-learn's digits."""
    img, lab = _digits()
    return torch.from_numpy(img.copy()), torch.from_numpy(lab.copy())


def digit_label(index: int) -> int:
    """The class of digits image ``index``."""
    if not 0 <= index < NUM_IMAGES:
        raise ValueError(f"digits-inr has {NUM_IMAGES} images (indices 0..{NUM_IMAGES - 1}), "
                         f"got index {index}")
    return int(_digits()[1][index])


def pixel_coordinates(size: int = 8) -> Tensor:
    """The ``[size * size, 2]`` pixel-centre coordinates (row, column) on :math:`[-1, 1]^2`, in
    row-major order (``image.reshape(-1)``'s order)."""
    lin = torch.linspace(-1.0, 1.0, size)
    return torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)


def psnr(mse: Tensor) -> Tensor:
    r"""Peak signal-to-noise ratio of intensities in :math:`[0, 1]`: :math:`-10 \log_{10}
    \mathrm{MSE}` (dB)."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def _initial_weights(configs: list[dict[str, Any]]) -> list[list[tuple[Tensor, Tensor]]]:
    """Per member, the SIREN initialisation ``[(W, b), ...]`` (folded), from its own seed."""
    c0 = configs[0]
    with torch.random.fork_rng(devices=[]):  # the constructor's throw-away draw
        net = SIREN(c0.get("in_dim", 2), c0["width"], c0["depth"], c0.get("out_dim", 1),
                    c0["w0"])
    lins = [m for m in net if isinstance(m, nn.Linear)]
    out = []
    for c in configs:
        net.reset_parameters(torch.Generator().manual_seed(int(c["seed"])))
        out.append([(m.weight.detach().clone(), m.bias.detach().clone()) for m in lins])
    return out


def fit_inrs(configs: list[dict[str, Any]]) -> list[tuple[nn.Module, dict[str, Any]]]:
    r"""Fit one SIREN per configuration (all at once) to its digits image.

    The configurations must share the architecture and optimisation knobs (``width``,
    ``depth``, ``w0``, ``steps``, ``lr``); each names its ``image_index`` and ``seed``.
    Training runs in SIREN's own parameterisation (:math:`\sin(\omega_0 (W h + b))`, where
    :math:`\omega_0` scales the gradients as in the paper) and the result is folded.

    Returns:
        per configuration, the fitted :class:`~graphlab.zoo.architectures.SIREN` (eval mode) and
        its metrics: ``mse`` and ``psnr`` (dB) of the reconstruction, ``mse_init`` (before
        fitting), ``num_params``, ``label`` and a short loss ``curve``.
    """
    if not configs:
        return []
    shared = ("width", "depth", "w0", "steps", "lr")
    c0 = configs[0]
    for c in configs:
        if c["arch"] != "siren" or any(c[k] != c0[k] for k in shared):
            raise ValueError(f"fit_inrs fits one architecture at a time; {shared} differ "
                             f"between {c0} and {c}")
    w0, steps, lr = float(c0["w0"]), int(c0["steps"]), float(c0["lr"])
    images, _ = digits_images()
    idx = torch.tensor([int(c["image_index"]) for c in configs])
    if int(idx.min()) < 0 or int(idx.max()) >= NUM_IMAGES:
        raise ValueError(f"image_index must be in 0..{NUM_IMAGES - 1}")
    target = images[idx].reshape(len(configs), -1, 1)  # [B, 64, 1]
    coords = pixel_coordinates(images.size(-1)).expand(len(configs), -1, -1)  # [B, 64, 2]
    init = _initial_weights(configs)
    n_layers = len(init[0])
    # stacked, unfolded, transposed for baddbmm: W_l [B, in, out], b_l [B, 1, out]
    params: list[Tensor] = []
    for layer in range(n_layers):
        scale = 1.0 if layer == n_layers - 1 else w0
        w = torch.stack([m[layer][0] for m in init]).transpose(1, 2) / scale
        b = torch.stack([m[layer][1] for m in init]).unsqueeze(1) / scale
        params += [w.requires_grad_(), b.requires_grad_()]

    def forward() -> Tensor:
        h = coords
        for layer in range(n_layers):
            h = torch.baddbmm(params[2 * layer + 1], h, params[2 * layer])
            if layer < n_layers - 1:
                h = torch.sin(w0 * h)
        return h

    def member_mse() -> Tensor:
        return (forward() - target).pow(2).mean(dim=(1, 2))  # [B]

    opt = torch.optim.Adam(params, lr=lr)
    with torch.no_grad():
        mse_init = member_mse()
    curve = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        mse = member_mse()
        mse.sum().backward()  # a sum: each member's gradient is its own loss's
        opt.step()
        if step % max(1, steps // 10) == 0:
            curve.append(mse.detach())
    with torch.no_grad():
        mse = member_mse()
    curve.append(mse)
    curves = torch.stack(curve, 1)  # [B, points]
    results = []
    for k, c in enumerate(configs):
        net = _initial_module(c)
        lins = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer, lin in enumerate(lins):
                scale = 1.0 if layer == n_layers - 1 else w0
                lin.weight.copy_(params[2 * layer][k].T * scale)
                lin.bias.copy_(params[2 * layer + 1][k, 0] * scale)
        m = float(mse[k])
        results.append((net.eval(), {
            "mse": m, "psnr": float(psnr(mse[k])), "mse_init": float(mse_init[k]),
            "num_params": sum(p.numel() for p in net.parameters()),
            "label": int(c["label"]),
            "curve": [{"step": min(s * max(1, steps // 10), steps), "mse": float(v)}
                      for s, v in enumerate(curves[k])]}))
    return results


def _initial_module(config: dict[str, Any]) -> SIREN:
    with torch.device("meta"):  # no initial draw: every weight is overwritten
        net = SIREN(config.get("in_dim", 2), config["width"], config["depth"],
                    config.get("out_dim", 1), config["w0"])
    return net.to_empty(device="cpu")


def inr_split(labels: np.ndarray, seed: int, fractions: tuple[float, float] = (0.7, 0.15)
              ) -> dict[str, list[int]]:
    """A stratified ``train`` / ``val`` / ``test`` split of member indices by label: per class,
    ``round(fractions[0] * n)`` train, ``round(fractions[1] * n)`` val, the rest test, drawn
    from ``numpy.random.default_rng(seed + 12345)``."""
    rng = np.random.default_rng(seed + 12345)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_tr = int(round(fractions[0] * len(members)))
        n_va = int(round(fractions[1] * len(members)))
        out["train"] += members[:n_tr].tolist()
        out["val"] += members[n_tr:n_tr + n_va].tolist()
        out["test"] += members[n_tr + n_va:].tolist()
    return {k: sorted(int(i) for i in v) for k, v in out.items()}
