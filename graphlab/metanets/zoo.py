r"""Model zoos: deterministic, resumable, shardable generation of small trained (or untrained)
networks, each stored as safetensors weights plus a JSON record.

A zoo directory holds ``zoo.json`` (preset, size, seed), ``splits.json`` (the standard splits)
and ``members/<index>.safetensors`` + ``members/<index>.json``. A member is *done* when its JSON
exists and the SHA-256 of its weights file matches the hash recorded in it, so a killed build
resumes where it stopped; writes are atomic (temporary file + ``os.replace``). Member ``i`` is a
pure function of ``(preset, seed, i)``: its configuration is sampled from a generator seeded with
``(seed, i)``, and it is trained single-threaded with that seed, so shards built on different
machines (``shard=(I, N)`` builds members ``i`` with ``i % N == I``) union to the full zoo.

Presets (see :data:`PRESETS`):

* ``digits-mlp``: MLPs on scikit-learn's digits over width, depth, activation, learning rate,
  batch size, weight decay, training length and train fraction (the phase-transition zoo's
  "temperature" ``lr / batch`` and "load" ``samples / parameters`` knobs), with a Hessian
  top-eigenvalue estimate (sharpness) per member;
* ``digits-cnn``: small CNNs on the 8x8 digit images (width, depth, BatchNorm or not);
* ``random-nets``: untrained 2-D -> 1 networks (activation, depth, width, residual, LayerNorm,
  init scale) labelled by the spectral complexity of the function on a grid ("Neural Redshift",
  Teney et al., CVPR 2024);
* ``arch-family``: MLPs, 1-D convnets and residual MLPs on digits, for cross-family prediction
  from op graphs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphlab.metanets.io import load_state_dict_safe, save_state_dict_safe

__all__ = ["PRESETS", "Preset", "Zoo", "build_zoo", "load_zoo", "member_config", "make_model",
           "train_member", "zoo_splits", "function_complexity", "hessian_top_eigenvalue",
           "digits_data", "example_input", "phase_labels", "ResMLP", "Conv1dNet", "CNN2d"]

ZOO_VERSION = 1
_ACTS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                                      "gelu": nn.GELU, "silu": nn.SiLU}


# --------------------------------------------------------------------------- architectures
class ResMLP(nn.Module):
    """``in -> width``, then ``depth`` residual blocks ``h + act(norm(W h))``, then ``-> out``."""

    def __init__(self, in_dim: int, width: int, depth: int, out_dim: int, act: str = "relu",
                 norm: bool = False, residual: bool = True) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, width)
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.norms = nn.ModuleList([nn.LayerNorm(width) if norm else nn.Identity()
                                    for _ in range(depth)])
        self.act = _ACTS[act]()
        self.out = nn.Linear(width, out_dim)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.inp(x))
        for lin, norm in zip(self.layers, self.norms):
            z = self.act(norm(lin(h)))
            h = h + z if self.residual else z
        return self.out(h)


class Conv1dNet(nn.Module):
    """Digits as 8 channels x 8 positions: ``depth`` 1-D convs (kernel 3), mean-pool, linear."""

    def __init__(self, width: int, depth: int, act: str = "relu") -> None:
        super().__init__()
        chans = [8] + [width] * depth
        self.convs = nn.ModuleList([nn.Conv1d(a, b, 3, padding=1) for a, b in
                                    zip(chans[:-1], chans[1:])])
        self.act = _ACTS[act]()
        self.out = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = x  # [B, 8, 8]
        for conv in self.convs:
            h = self.act(conv(h))
        return self.out(h.mean(dim=-1))


class CNN2d(nn.Module):
    """Digits as 1x8x8 images: ``depth`` 3x3 convs (optional BatchNorm), global mean, linear."""

    def __init__(self, width: int, depth: int, act: str = "relu", norm: bool = False) -> None:
        super().__init__()
        chans = [1] + [width] * depth
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1) for a, b in
                                    zip(chans[:-1], chans[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm2d(width) if norm else nn.Identity()
                                    for _ in range(depth)])
        self.act = _ACTS[act]()
        self.out = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = x  # [B, 1, 8, 8]
        for conv, norm in zip(self.convs, self.norms):
            h = self.act(norm(conv(h)))
        return self.out(h.mean(dim=(-2, -1)))


def _mlp(sizes: Sequence[int], act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(_ACTS[act]())
    return nn.Sequential(*layers)


def make_model(config: dict[str, Any]) -> nn.Module:
    """The (untrained) network described by a member's ``config``."""
    arch, a = config["arch"], config.get("act", "relu")
    w, d = int(config["width"]), int(config["depth"])
    if arch == "mlp":
        return _mlp([config.get("in_dim", 64)] + [w] * d + [config.get("out_dim", 10)], a)
    if arch == "resmlp":
        return ResMLP(config.get("in_dim", 64), w, d, config.get("out_dim", 10), a,
                      bool(config.get("norm", False)), bool(config.get("residual", True)))
    if arch == "conv1d":
        return Conv1dNet(w, d, a)
    if arch == "cnn2d":
        return CNN2d(w, d, a, bool(config.get("norm", False)))
    raise ValueError(f"unknown arch {arch!r}")


def input_shape(config: dict[str, Any]) -> tuple[int, ...]:
    """Per-sample input shape of a member (digits are reshaped per architecture)."""
    return {"conv1d": (8, 8), "cnn2d": (1, 8, 8)}.get(config["arch"],
                                                      (int(config.get("in_dim", 64)),))


def example_input(config: dict[str, Any], batch: int = 2) -> Tensor:
    return torch.zeros(batch, *input_shape(config))


# --------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A zoo family: a configuration sampler and a trainer (``None``: untrained)."""

    name: str
    description: str
    sample: Callable[[np.random.Generator], dict[str, Any]]
    trained: bool = True


def _choice(rng: np.random.Generator, xs: Sequence[Any]) -> Any:
    return xs[int(rng.integers(len(xs)))]


def _sample_digits_mlp(rng: np.random.Generator) -> dict[str, Any]:
    return {"arch": "mlp", "width": _choice(rng, [8, 16, 32]), "depth": _choice(rng, [1, 2, 3]),
            "act": _choice(rng, ["relu", "tanh", "sigmoid"]),
            "lr": _choice(rng, [0.003, 0.01, 0.03, 0.1, 0.3]),
            "batch_size": _choice(rng, [16, 64, 256]),
            "weight_decay": _choice(rng, [0.0, 1e-4, 1e-3, 1e-2]),
            "epochs": _choice(rng, [2, 5, 10, 25]),
            "train_fraction": _choice(rng, [0.1, 0.25, 0.5, 1.0])}


def _sample_digits_cnn(rng: np.random.Generator) -> dict[str, Any]:
    return {"arch": "cnn2d", "width": _choice(rng, [4, 8]), "depth": _choice(rng, [1, 2]),
            "act": _choice(rng, ["relu", "tanh"]), "norm": bool(rng.integers(2)),
            "lr": _choice(rng, [0.01, 0.03, 0.1]), "batch_size": _choice(rng, [32, 128]),
            "weight_decay": _choice(rng, [0.0, 1e-3]), "epochs": _choice(rng, [1, 3, 8]),
            "train_fraction": _choice(rng, [0.25, 0.5, 1.0])}


def _sample_random_nets(rng: np.random.Generator) -> dict[str, Any]:
    return {"arch": "resmlp", "in_dim": 2, "out_dim": 1, "width": _choice(rng, [8, 16, 32, 64]),
            "depth": _choice(rng, [1, 2, 4, 6]),
            "act": _choice(rng, ["relu", "tanh", "sigmoid", "gelu"]),
            "residual": bool(rng.integers(2)), "norm": bool(rng.integers(2)),
            "init_scale": _choice(rng, [0.5, 1.0, 2.0, 4.0])}


def _sample_arch_family(rng: np.random.Generator) -> dict[str, Any]:
    arch = _choice(rng, ["mlp", "conv1d", "resmlp"])
    cfg = {"arch": arch, "width": _choice(rng, [8, 16, 32]), "depth": _choice(rng, [1, 2, 3]),
           "act": _choice(rng, ["relu", "tanh"]), "lr": _choice(rng, [0.01, 0.03, 0.1]),
           "batch_size": _choice(rng, [32, 128]), "weight_decay": 0.0,
           "epochs": _choice(rng, [1, 3, 8]), "train_fraction": _choice(rng, [0.25, 1.0])}
    if arch == "resmlp":
        cfg["norm"] = bool(rng.integers(2))
    return cfg


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("digits-mlp", "MLPs on sklearn digits over width/depth/act/lr/batch/wd/epochs/data",
           _sample_digits_mlp),
    Preset("digits-cnn", "small 2-D CNNs on 8x8 digits (width, depth, BatchNorm)",
           _sample_digits_cnn),
    Preset("random-nets", "untrained 2-D->1 nets labelled by function complexity",
           _sample_random_nets, trained=False),
    Preset("arch-family", "MLP / 1-D conv / residual MLP on digits (cross-family)",
           _sample_arch_family),
]}


def _member_seed(seed: int, index: int) -> int:
    h = hashlib.sha256(f"graphlab-zoo:{seed}:{index}".encode()).digest()
    return int.from_bytes(h[:4], "little")


def member_config(preset: str, seed: int, index: int) -> dict[str, Any]:
    """The configuration of member ``index`` (a pure function of its arguments)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    ms = _member_seed(seed, index)
    cfg = PRESETS[preset].sample(np.random.default_rng(ms))
    cfg["seed"] = ms
    return cfg


# --------------------------------------------------------------------------- data & training
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


def _evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    with torch.no_grad():
        out = model(x)
        return float(F.cross_entropy(out, y)), float((out.argmax(-1) == y).float().mean())


def train_member(config: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """Build (and for trained presets, train) one member; returns the model and its metrics."""
    torch.manual_seed(config["seed"])
    model = make_model(config)
    if config["arch"] == "resmlp" and config.get("out_dim", 10) == 1:  # random-nets
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight") and p.dim() == 2:
                    nn.init.normal_(p, 0.0, config["init_scale"] / math.sqrt(p.size(1)))
                elif name.endswith("bias") and "norm" not in name:
                    nn.init.normal_(p, 0.0, 0.1 * config["init_scale"])
        model.eval()
        return model, {"complexity": function_complexity(model),
                       "num_params": sum(p.numel() for p in model.parameters())}
    x_tr, y_tr, x_te, y_te = digits_data()
    shape = input_shape(config)
    x_tr, x_te = x_tr.view(-1, *shape), x_te.view(-1, *shape)
    gen = torch.Generator().manual_seed(config["seed"])
    n = max(32, int(config["train_fraction"] * len(y_tr)))
    sub = torch.randperm(len(y_tr), generator=gen)[:n]
    x_tr, y_tr = x_tr[sub], y_tr[sub]
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9,
                          weight_decay=config["weight_decay"])
    bs = int(config["batch_size"])
    curve = []
    model.train()
    for _ in range(int(config["epochs"])):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            opt.zero_grad()
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            if not torch.isfinite(loss):
                break
            loss.backward()
            opt.step()
        model.eval()
        tr_loss, tr_acc = _evaluate(model, x_tr, y_tr)
        te_loss, te_acc = _evaluate(model, x_te, y_te)
        model.train()
        curve.append({"train_loss": tr_loss, "train_acc": tr_acc, "test_loss": te_loss,
                      "test_acc": te_acc})
    model.eval()
    with torch.no_grad():  # diverged members are kept (they are part of the phase diagram)
        for p in model.parameters():
            p.nan_to_num_(0.0, 0.0, 0.0)
    tr_loss, tr_acc = _evaluate(model, x_tr, y_tr)
    te_loss, te_acc = _evaluate(model, x_te, y_te)
    try:
        sharp = hessian_top_eigenvalue(model, x_tr, y_tr, iters=8, seed=config["seed"] % 1000)
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


# --------------------------------------------------------------------------- storage
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _member_paths(out: Path, index: int) -> tuple[Path, Path]:
    d = out / "members"
    return d / f"{index:06d}.json", d / f"{index:06d}.safetensors"


def _is_done(out: Path, index: int) -> bool:
    js, st = _member_paths(out, index)
    if not (js.exists() and st.exists()):
        return False
    try:
        rec = json.loads(js.read_text())
        return rec.get("hash") == _sha256(st)
    except (OSError, ValueError):
        return False


def _build_one(args: tuple[str, int, int, str]) -> int:
    preset, seed, index, out_s = args
    torch.set_num_threads(1)
    out = Path(out_s)
    if _is_done(out, index):
        return index
    cfg = member_config(preset, seed, index)
    model, metrics = train_member(cfg)
    js, st = _member_paths(out, index)
    fd, tmp = tempfile.mkstemp(dir=st.parent, prefix=f".{st.name}.", suffix=".safetensors")
    os.close(fd)
    try:
        save_state_dict_safe(model, tmp)
        os.replace(tmp, st)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    curve = metrics.pop("curve", [])
    rec = {"index": index, "preset": preset, "zoo_seed": seed, "seed": cfg["seed"],
           "config": cfg, "metrics": metrics, "curve": curve, "weights": st.name,
           "hash": _sha256(st), "version": ZOO_VERSION}
    _atomic_write_text(js, json.dumps(rec, indent=1))
    return index


def _parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int]:
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


def zoo_splits(preset: str, size: int, seed: int) -> dict[str, dict[str, list[int]]]:
    """The standard splits (member indices), computed from configurations alone:

    * ``id``: a seeded 50/50 random split;
    * ``hparam``: hold out one hyperparameter value (``lr == 0.03`` for trained presets,
      ``init_scale == 2`` for random-nets);
    * ``width``: train on the narrower widths, test on the widest;
    * ``depth``: train on the shallower depths, test on the deepest;
    * ``family`` (``arch-family`` only): train on MLPs and 1-D convnets, test on residual MLPs.
    """
    cfgs = [member_config(preset, seed, i) for i in range(size)]
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
    if size:
        wmax = max(c["width"] for c in cfgs)
        dmax = max(c["depth"] for c in cfgs)
        splits["width"] = by(lambda c: c["width"] == wmax)
        splits["depth"] = by(lambda c: c["depth"] == dmax)
    if preset == "arch-family":
        splits["family"] = by(lambda c: c["arch"] == "resmlp")
    return splits


def build_zoo(preset: str, size: int, out: str | Path, seed: int = 0, workers: int = 1,
              shard: str | tuple[int, int] | None = None, progress: bool = False) -> Path:
    """Generate (or resume) a zoo; returns its directory.

    Args:
        preset: a key of :data:`PRESETS`.
        size: number of members (indices ``0 .. size-1``).
        out: zoo directory (created; reruns skip finished members).
        seed: zoo seed; member ``i`` depends only on ``(preset, seed, i)``.
        workers: processes (each single-threaded).
        shard: ``"I/N"`` or ``(I, N)``: build only members with ``index % N == I``.
        progress: show a tqdm bar.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    if size < 0 or workers < 1:
        raise ValueError(f"size must be >= 0 and workers >= 1, got {size}, {workers}")
    si, sn = _parse_shard(shard)
    out = Path(out)
    (out / "members").mkdir(parents=True, exist_ok=True)
    meta = {"preset": preset, "size": size, "seed": seed, "version": ZOO_VERSION}
    meta_path = out / "zoo.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if (old["preset"], old["seed"]) != (preset, seed):
            raise ValueError(f"{out} holds a {old['preset']!r} zoo with seed {old['seed']}; "
                             f"refusing to mix it with {preset!r} seed {seed}")
        meta["size"] = max(size, old["size"])
    _atomic_write_text(meta_path, json.dumps(meta, indent=1))
    _atomic_write_text(out / "splits.json",
                       json.dumps(zoo_splits(preset, meta["size"], seed)))
    todo = [i for i in range(si, size, sn) if not _is_done(out, i)]
    jobs = [(preset, seed, i, str(out)) for i in todo]
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
    return out


# --------------------------------------------------------------------------- loading
class Zoo:
    """A built zoo on disk: member records, weights and splits.

    ``zoo.records`` lists the finished members' JSON records (sorted by index); missing members
    (e.g. another shard's) are simply absent.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "zoo.json"
        if not meta_path.exists():
            raise ValueError(f"{self.path} is not a zoo (no zoo.json); run build_zoo first")
        self.meta = json.loads(meta_path.read_text())
        self.preset: str = self.meta["preset"]
        self.records: list[dict[str, Any]] = []
        for js in sorted((self.path / "members").glob("*.json")):
            rec = json.loads(js.read_text())
            if (self.path / "members" / rec["weights"]).exists():
                self.records.append(rec)
        self._pos = {r["index"]: k for k, r in enumerate(self.records)}
        sp = self.path / "splits.json"
        self.splits: dict[str, dict[str, list[int]]] = json.loads(sp.read_text()) \
            if sp.exists() else {}

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Zoo({self.preset!r}, members={len(self)}, path={str(self.path)!r})"

    @property
    def indices(self) -> list[int]:
        return [r["index"] for r in self.records]

    def record(self, index: int) -> dict[str, Any]:
        return self.records[self._pos[index]]

    def state_dict(self, index: int) -> dict[str, Tensor]:
        return load_state_dict_safe(self.path / "members" / self.record(index)["weights"])

    def module(self, index: int) -> nn.Module:
        """Member ``index`` as an ``nn.Module`` in eval mode (weights from safetensors)."""
        cfg = self.record(index)["config"]
        model = make_model(cfg)
        model.load_state_dict(self.state_dict(index))
        return model.eval()

    def example_input(self, index: int) -> Tensor:
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
        """``(train, test)`` indices of a standard split, restricted to finished members."""
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r}; this zoo has {sorted(self.splits)}")
        have = set(self.indices)
        sp = self.splits[name]
        return ([i for i in sp["train"] if i in have], [i for i in sp["test"] if i in have])


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
    """Open a zoo directory written by :func:`build_zoo`."""
    return Zoo(path)
