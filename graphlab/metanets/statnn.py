r"""StatNN: per-layer weight statistics + a gradient-boosted or MLP head (the metanet baseline)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data import Data

__all__ = ["StatNN", "weight_statistics"]

_QUANTILES = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)

Net = nn.Module | Mapping[str, Tensor] | Data


def _stats(t: Tensor) -> Tensor:
    t = t.detach().reshape(-1).to(torch.float64)
    if t.numel() == 0:
        return torch.zeros(7, dtype=torch.float64)
    return torch.cat([t.mean().view(1), t.var(unbiased=False).view(1),
                      torch.quantile(t, _QUANTILES)])


def _tensors(net: Net) -> list[Tensor]:
    """The tensors whose statistics describe ``net``, in a fixed per-architecture order."""
    if isinstance(net, Data):  # a neural/parameter graph: one weight block per edge layer,
        # then one bias column per layer, both ordered by the (permutation-invariant) block id
        out = []
        if net.edge_attr.numel():
            for b in torch.unique(net.edge_layer):
                mask = net.edge_layer == b
                if bool((net.edge_type[mask] == 3).all() | (net.edge_type[mask] == 4).all()):
                    continue  # structural identity / residual edges carry no parameters
                out.append(net.edge_attr[mask])
        if getattr(net, "x", None) is not None:
            for layer in torch.unique(net.layer):
                out.append(net.x[net.layer == layer, 0])
        return out
    sd = net.state_dict() if isinstance(net, nn.Module) else net
    return [v for k, v in sd.items() if v.is_floating_point() and not k.endswith("running_var")
            and not k.endswith("running_mean")]


def weight_statistics(net: Net) -> Tensor:
    r"""Per-tensor mean, variance and the 0/25/50/75/100% quantiles (7 numbers per tensor), as in
    `Unterthiner et al. (2020) <https://arxiv.org/abs/2002.11448>`_; invariant under neuron
    permutations. Accepts a module, a ``state_dict`` or a graph from ``to_graph``."""
    return torch.cat([_stats(t) for t in _tensors(net)])


class StatNN:
    r"""The StatNN baseline of `"Predicting Neural Network Accuracy from Weights"
    <https://arxiv.org/abs/2002.11448>`_: :func:`weight_statistics` of each network fed to
    scikit-learn's ``HistGradientBoosting`` (``head="gbm"``) or a small MLP (``head="mlp"``).
    Every metanet result should be reported next to it.

    Args:
        head (str): ``"gbm"`` or ``"mlp"``. (default: :obj:`"gbm"`)
        task (str): ``"regression"`` or ``"classification"``. (default: :obj:`"regression"`)
        seed (int): random state of the head. (default: :obj:`0`)
        **head_kwargs: passed to the scikit-learn estimator.
    """

    def __init__(self, head: str = "gbm", task: str = "regression", seed: int = 0,
                 **head_kwargs: Any) -> None:
        if head not in ("gbm", "mlp"):
            raise ValueError(f"head must be 'gbm' or 'mlp', got {head!r}")
        if task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
        self.head, self.task, self.seed, self.head_kwargs = head, task, seed, head_kwargs
        self.model_: Any = None

    def _make(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
        from sklearn.neural_network import MLPClassifier, MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.head == "gbm":
            cls = HistGradientBoostingRegressor if self.task == "regression" else \
                HistGradientBoostingClassifier
            return cls(random_state=self.seed, **self.head_kwargs)
        cls = MLPRegressor if self.task == "regression" else MLPClassifier
        kw = {"hidden_layer_sizes": (64, 64), "max_iter": 500, **self.head_kwargs}
        return make_pipeline(StandardScaler(), cls(random_state=self.seed, **kw))

    @staticmethod
    def featurize(nets: Sequence[Net]) -> np.ndarray:
        """``[num_nets, num_features]`` statistics; all nets must share one layer layout."""
        feats = [weight_statistics(n) for n in nets]
        sizes = {f.numel() for f in feats}
        if len(sizes) > 1:
            raise ValueError(f"networks have different layer layouts ({sorted(sizes)} features); "
                             "StatNN needs one architecture (pad or group them first)")
        return torch.stack(feats).numpy() if feats else np.zeros((0, 0))

    def fit(self, nets: Sequence[Net] | np.ndarray, y: Sequence[float] | np.ndarray) -> StatNN:
        X = nets if isinstance(nets, np.ndarray) else self.featurize(nets)
        self.model_ = self._make().fit(X, np.asarray(y))
        return self

    def predict(self, nets: Sequence[Net] | np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise ValueError("StatNN is not fitted; call fit() first")
        X = nets if isinstance(nets, np.ndarray) else self.featurize(nets)
        return self.model_.predict(X)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(head={self.head!r}, task={self.task!r})"
