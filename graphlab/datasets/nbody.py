"""The charged-particle N-body system of the EGNN paper, simulated from a seed."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

__all__ = ["NBody", "simulate_charged_particles"]

#: samples per split in the paper's ``nbody_small`` setting (3,000 of the generated 10,000
#: training simulations are used, ``max_training_samples=3000``)
SPLIT_SIZES = {"train": 3000, "val": 2000, "test": 2000}
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def simulate_charged_particles(
    num_sims: int,
    seed: int | Sequence[int],
    num_particles: int = 5,
    frames: tuple[int, ...] = (30, 40),
    sample_freq: int = 100,
    dt: float = 1e-3,
    loc_std: float = 1.0,
    vel_norm: float = 0.5,
    box_size: float = 5.0,
    interaction_strength: float = 1.0,
) -> dict[str, np.ndarray]:
    """Simulate the charged-particle system of NRI/EGNN for ``num_sims`` independent systems.

    Follows the authors' ``ChargedParticlesSim.sample_trajectory`` (leapfrog, step ``dt``,
    Coulomb forces :math:`q_i q_j (x_i - x_j)/\\|x_i - x_j\\|^3` clipped to ``+-0.1/dt`` per
    coordinate, charges +-1 with equal probability, Gaussian start with ``loc_std``, initial
    speed ``vel_norm``, the box reflection applied to the initial state only), vectorised over
    simulations. Frame ``k`` is the state after ``(k + 1) * sample_freq`` steps, as in the
    authors' saved trajectories (their frame 0 is overwritten by step ``sample_freq``).

    Returns ``{"loc": [S, F, n, 3], "vel": [S, F, n, 3], "charges": [S, n]}`` for the requested
    frames, in float64.
    """
    rng = np.random.default_rng(seed)
    n, s = num_particles, num_sims
    charges = rng.choice(np.array([-1.0, 1.0]), size=(s, n))
    loc = rng.standard_normal((s, n, 3)) * loc_std * (n / 5.0) ** (1.0 / 3.0)
    vel = rng.standard_normal((s, n, 3))
    vel = vel * vel_norm / np.linalg.norm(vel, axis=-1, keepdims=True)
    # Elastic reflection off the box walls, applied (as in the authors' code) to the start only.
    over, under = loc > box_size, loc < -box_size
    loc = np.where(over, 2 * box_size - loc, np.where(under, -2 * box_size - loc, loc))
    vel = np.where(over, -np.abs(vel), np.where(under, np.abs(vel), vel))
    # Torch float64, vectorised over simulations. Like the authors' ``_l2`` the squared
    # distances use |x_i|^2 + |x_j|^2 - 2 x_i.x_j (one bmm), and the force
    # F_i = sum_j w_ij (x_i - x_j) is computed as x_i sum_j w_ij - (W x)_i, so every step works on
    # [S, n, n] scalars instead of [S, n, n, 3] vectors. The zero diagonal of qq removes
    # self-forces (the +1 added to the diagonal of d2 avoids 0/0).
    eye = torch.eye(n, dtype=torch.float64)
    qq = torch.from_numpy(charges[:, :, None] * charges[:, None, :]) * interaction_strength
    qq = qq * (1 - eye)
    max_f = 0.1 / dt

    def force(x: torch.Tensor) -> torch.Tensor:
        gram = torch.bmm(x, x.transpose(1, 2))
        sq = torch.diagonal(gram, dim1=1, dim2=2)
        d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * gram + eye
        w = qq / (d2 * d2.sqrt())
        f = w.sum(dim=2, keepdim=True) * x - torch.bmm(w, x)
        return torch.clamp(f, -max_f, max_f)

    wanted = {(f + 1) * sample_freq: k for k, f in enumerate(frames)}
    out_loc = torch.zeros(s, len(frames), n, 3, dtype=torch.float64)
    out_vel = torch.zeros(s, len(frames), n, 3, dtype=torch.float64)
    loc_t, vel_t = torch.from_numpy(loc), torch.from_numpy(vel)
    vel_t = vel_t + dt * force(loc_t)  # the half step that starts the leapfrog
    for step in range(1, max(wanted) + 1):
        loc_t = loc_t + dt * vel_t
        if step in wanted:
            out_loc[:, wanted[step]] = loc_t
            out_vel[:, wanted[step]] = vel_t
        vel_t = vel_t + dt * force(loc_t)
    out_loc, out_vel = out_loc.numpy(), out_vel.numpy()
    return {"loc": out_loc, "vel": out_vel, "charges": charges}


class NBody(InMemoryDataset):
    r"""The charged-particle N-body system from the `"E(n) Equivariant Graph Neural Networks"
    <https://arxiv.org/abs/2102.09844>`_ paper (``nbody_small``).

    Five particles with charges :math:`\pm 1` interact by Coulomb forces; given positions and
    velocities at frame 30, predict the positions at frame 40 (1,000 simulation steps later).
    Every sample is a fully connected graph without self-loops with

    * ``pos`` :math:`(5, 3)`: positions at frame 30,
    * ``vel`` :math:`(5, 3)`: velocities at frame 30,
    * ``charge`` :math:`(5, 1)`: the charges,
    * ``edge_attr`` :math:`(20, 1)`: charge products :math:`q_i q_j`,
    * ``y`` :math:`(5, 3)`: positions at frame 40 (the target; the metric is their MSE).

    The data is simulated in NumPy from ``seed`` (each split from its own stream), so it is
    reproducible without downloads; it follows the authors' simulator but is not their exact
    files. Split sizes default to the paper's: 3,000 / 2,000 / 2,000.

    Args:
        root (str, optional): Folder to cache the simulation in (``.npz``); :obj:`None`
            simulates in memory.
        split (str): ``"train"``, ``"val"`` or ``"test"``.
        num_samples (int, optional): Number of samples (default: the paper's split size).
        seed (int): Base seed. (default: :obj:`43`, the authors' seed for ``nbody_small``)
        transform (callable, optional): Applied to every sample on access.
    """

    def __init__(self, root: str | None = None, split: str = "train",
                 num_samples: int | None = None, seed: int = 43,
                 transform: Callable | None = None) -> None:
        if split not in SPLIT_SIZES:
            raise ValueError(f"split must be one of {sorted(SPLIT_SIZES)}, got {split!r}")
        num_samples = SPLIT_SIZES[split] if num_samples is None else num_samples
        if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral) \
                or num_samples < 1:  # (an empty InMemoryDataset cannot be collated)
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        num_samples = int(num_samples)
        self.split, self.num_samples, self.seed = split, num_samples, seed
        super().__init__(None, transform)
        self.cache_root = root
        sim = self._load_or_simulate(root)
        self.data, self.slices = self.collate(self._to_graphs(sim))

    def _load_or_simulate(self, root: str | None) -> dict[str, np.ndarray]:
        path = None
        if root is not None:
            path = os.path.join(root, f"nbody_{self.split}_{self.num_samples}_seed{self.seed}.npz")
            if os.path.exists(path):
                with np.load(path, allow_pickle=False) as f:
                    return {k: f[k] for k in f.files}
        sim = simulate_charged_particles(self.num_samples,
                                         seed=[self.seed, _SPLIT_IDS[self.split]])
        if path is not None:
            os.makedirs(root, exist_ok=True)
            np.savez(path, **sim)
        return sim

    @staticmethod
    def _to_graphs(sim: dict[str, np.ndarray]) -> list[Data]:
        loc = torch.from_numpy(sim["loc"]).float()
        vel = torch.from_numpy(sim["vel"]).float()
        charges = torch.from_numpy(sim["charges"]).float()
        n = charges.size(1)
        src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="xy")
        mask = src != dst
        edge_index = torch.stack([src[mask], dst[mask]])
        graphs = []
        for k in range(loc.size(0)):
            q = charges[k].unsqueeze(-1)
            graphs.append(Data(pos=loc[k, 0], vel=vel[k, 0], charge=q, y=loc[k, 1],
                               edge_index=edge_index,
                               edge_attr=q[edge_index[0]] * q[edge_index[1]],
                               num_nodes=n))
        return graphs

    def as_tensors(self) -> dict[str, torch.Tensor]:
        """All samples stacked: ``pos``, ``vel``, ``y`` :math:`(S, 5, 3)`, ``charge`` :math:`(S, 5, 1)`.

        Handy for training loops that build fully connected batches by index arithmetic instead
        of collating ``Data`` objects.
        """
        data = self._data
        total = self.slices["pos"].numel() - 1
        out = {key: data[key].view(total, -1, data[key].size(-1))
               for key in ("pos", "vel", "y", "charge")}
        if self._indices is not None:  # a sliced or shuffled view of the dataset
            idx = torch.as_tensor(list(self.indices()), dtype=torch.long)
            out = {key: val[idx] for key, val in out.items()}
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, split={self.split!r}, seed={self.seed})"
