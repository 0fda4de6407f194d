r"""Training (or, for untrained presets, initialising) one zoo member, and the measurements
recorded with it: test/train accuracy and loss curves, Hessian sharpness, function complexity.

Every random draw comes from generators seeded by the member's ``config["seed"]`` (weights from
one, the data subsample and batch order from another), so a member is a pure function of its
configuration and the global RNG is never touched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphlab.engine import fit
from graphlab.metanets.init import seeded_module
from graphlab.zoo.architectures import input_shape, make_model

__all__ = ["INITS", "digits_data", "hessian_top_eigenvalue", "function_complexity", "train_member",
           "train_members"]


@lru_cache(maxsize=1)
def digits_data() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Standardised digits features, fixed 70/30 split: ``(x_train, y_train, x_test, y_test)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_tr = int(0.7 * len(y))
    x, y = x[perm], y[perm]
    mu, sd = x[:n_tr].mean(0), x[:n_tr].std(0) + 1e-3
    x = (x - mu) / sd
    return x[:n_tr], y[:n_tr], x[n_tr:], y[n_tr:]


def hessian_top_eigenvalue(model: nn.Module, x: Tensor, y: Tensor, iters: int = 10,
                           seed: int = 0) -> float:
    """Largest Hessian eigenvalue of the cross-entropy loss (power iteration on Hessian-vector
    products), the usual sharpness measure of loss-landscape studies."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen) for p in params]
    eig = 0.0
    for _ in range(iters):
        norm = torch.sqrt(sum((u * u).sum() for u in v))
        v = [u / norm for u in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        eig = float(sum((a * b).sum() for a, b in zip(hv, v)))
        v = [h.detach() for h in hv]
    return eig


def function_complexity(model: nn.Module, resolution: int = 64) -> float:
    r"""Spectral complexity of a 2-D -> 1 function on :math:`[-1, 1]^2`: the magnitude-weighted
    mean spatial frequency of its 2-D FFT (DC excluded), as in "Neural Redshift". Constant
    functions get 0."""
    lin = torch.linspace(-1, 1, resolution)
    grid = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).view(-1, 2)
    with torch.no_grad():
        f = model(grid.to(next(model.parameters()).dtype)).view(resolution, resolution).double()
    f = f - f.mean()
    mag = torch.fft.fft2(f).abs()
    k = torch.fft.fftfreq(resolution, d=1.0 / resolution).double().abs()
    freq = torch.sqrt(k.view(-1, 1) ** 2 + k.view(1, -1) ** 2)
    total = mag.sum()
    if float(total) < 1e-12:
        return 0.0
    return float((mag * freq).sum() / total)


#: curve points (evaluations) of a member trained for a number of ``steps``
ROUNDS = 10

#: weight initialisation schemes of the ``init`` knob (the Small CNN Zoo varies it too);
#: biases keep the default
INITS = ("default", "xavier", "he", "orthogonal", "normal")


def _reinit(model: nn.Module, scheme: str, gen: torch.Generator) -> None:
    """Re-draw every Linear / Conv weight of ``model`` with ``scheme`` from ``gen``."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose from {INITS}")
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, nn.Linear | nn.modules.conv._ConvNd):
                continue
            w = m.weight
            if scheme == "xavier":
                nn.init.xavier_uniform_(w, generator=gen)
            elif scheme == "he":
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
            elif scheme == "orthogonal":
                nn.init.orthogonal_(w, generator=gen)
            else:  # "normal": a fixed, fan-independent scale (too small for deep nets)
                nn.init.normal_(w, 0.0, 0.05, generator=gen)


def _optimizer(model: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
    name = config.get("optimizer", "sgd")
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9,
                               weight_decay=config["weight_decay"])
    if name == "adam":
        return torch.optim.AdamW(model.parameters(), lr=config["lr"],
                                 weight_decay=config["weight_decay"])
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")


def _evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    with torch.no_grad():
        out = model(x)
        return float(F.cross_entropy(out, y)), float((out.argmax(-1) == y).float().mean())


def train_member(config: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Build (and for trained presets, train) one member; returns the model and its metrics.

    Trained members use mini-batch SGD with momentum 0.9 (``optimizer: "sgd"``, the default)
    or AdamW (``"adam"``, decoupled ``weight_decay``) on the digits train split (subsampled to
    ``train_fraction``), from the layers' default initialisation or the ``init`` scheme
    (:data:`INITS`), for ``epochs`` epochs of ``batch_size`` (or, when the configuration has
    ``steps``, that many mini-batches in :data:`ROUNDS` evaluated rounds) through
    :func:`graphlab.engine.fit`, recording a per-epoch curve. A batch whose loss is not finite is
    not stepped and ends its epoch; diverged members are kept (they are part of the phase
    diagram), with any non-finite weights zeroed.
    """
    if config["arch"] == "siren":  # INR members: fitted to their image, not trained on digits
        from graphlab.zoo.inr import fit_inrs

        return fit_inrs([config])[0]
    seed = int(config["seed"])
    model = seeded_module(lambda: make_model(config), torch.Generator().manual_seed(seed))
    if config["arch"] == "resmlp" and config.get("out_dim", 10) == 1:  # random-nets
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight") and p.dim() == 2:
                    nn.init.normal_(p, 0.0, config["init_scale"] / math.sqrt(p.size(1)),
                                    generator=gen)
                elif name.endswith("bias") and "norm" not in name:
                    nn.init.normal_(p, 0.0, 0.1 * config["init_scale"], generator=gen)
        model.eval()
        return model, {"complexity": function_complexity(model),
                       "num_params": sum(p.numel() for p in model.parameters())}
    if config.get("init", "default") != "default":
        _reinit(model, config["init"], torch.Generator().manual_seed(seed + 2))
    x_tr, y_tr, x_te, y_te = digits_data()
    shape = input_shape(config)
    x_tr, x_te = x_tr.view(-1, *shape), x_te.view(-1, *shape)
    gen = torch.Generator().manual_seed(seed)
    n = max(32, int(config["train_fraction"] * len(y_tr)))
    sub = torch.randperm(len(y_tr), generator=gen)[:n]
    x_tr, y_tr = x_tr[sub], y_tr[sub]
    opt = _optimizer(model, config)
    bs = int(config["batch_size"])
    diverged = False

    # a "steps" budget: ROUNDS rounds of steps / ROUNDS mini-batches each (one curve point per
    # round), cycling through fresh permutations, so small train fractions are not evaluated
    # hundreds of times; otherwise "epochs" passes over the data
    steps = config.get("steps")
    rounds = ROUNDS if steps else int(config["epochs"])
    stream: list[Tensor] = []

    def next_batch() -> Tensor:
        if not stream:
            order = torch.randperm(n, generator=gen)
            stream.extend(order[s:s + bs] for s in range(0, n, bs))
        return stream.pop(0)

    def batches(epoch: int) -> Iterator[Tensor]:
        nonlocal diverged
        diverged = False  # every epoch tries again from the kept weights
        if steps:
            for _ in range(-(-int(steps) // ROUNDS)):
                if diverged:
                    return
                yield next_batch()
            return
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, bs):
            if diverged:  # the rest of this epoch is skipped, as the step was
                return
            yield order[s:s + bs]

    def step(net: nn.Module, idx: Tensor) -> Tensor:
        nonlocal diverged
        loss = F.cross_entropy(net(x_tr[idx]), y_tr[idx])
        diverged = not bool(torch.isfinite(loss))
        # a non-finite loss is not stepped: a loss detached from the parameters leaves every
        # .grad None, and SGD skips those (no momentum or weight-decay update either), so a
        # diverged member keeps its last finite weights
        return loss.detach().requires_grad_() if diverged else loss

    def scores(net: nn.Module) -> dict[str, float]:
        tr_loss, tr_acc = _evaluate(net, x_tr, y_tr)
        te_loss, te_acc = _evaluate(net, x_te, y_te)
        return {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
                "test_acc": te_acc}

    # dropout draws its masks from the global RNG (F.dropout takes no generator): train inside a
    # fork seeded by the member, so masks are reproducible and the caller's RNG state is restored
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)
        result = fit(model, opt, train_step=step, train_batches=batches,
                     epochs=rounds, evaluate=scores, select=None, progress=False,
                     desc="zoo member")
    curve = [{k: r[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
             for r in result.history]
    model.eval()
    with torch.no_grad():  # diverged members are kept (they are part of the phase diagram)
        for p in model.parameters():
            p.nan_to_num_(0.0, 0.0, 0.0)
    tr_loss, tr_acc = _evaluate(model, x_tr, y_tr)
    te_loss, te_acc = _evaluate(model, x_te, y_te)
    try:
        # on at most 512 training points: the estimate's cost, not the training's, would
        # otherwise dominate the build of a convnet zoo
        sharp = hessian_top_eigenvalue(model, x_tr[:512], y_tr[:512], iters=8,
                                       seed=config["seed"] % 1000)
    except RuntimeError:
        sharp = float("nan")
    num_params = sum(p.numel() for p in model.parameters())
    metrics = {"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
               "test_acc": te_acc, "gen_gap": tr_acc - te_acc, "sharpness": sharp,
               "num_params": num_params, "temperature": config["lr"] / bs,
               "load": n / num_params, "num_train": n}
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in metrics.items()}
    return model, {**metrics, "curve": curve}


def train_members(configs: list[dict[str, Any]]) -> list[tuple[nn.Module, dict[str, Any]]]:
    """:func:`train_member` for several configurations: INR members (``arch == "siren"``) are
    fitted together as one batched model (:func:`graphlab.zoo.inr.fit_inrs`), the others one by
    one."""
    if configs and all(c["arch"] == "siren" for c in configs):
        from graphlab.zoo.inr import fit_inrs

        return fit_inrs(configs)
    return [train_member(c) for c in configs]
