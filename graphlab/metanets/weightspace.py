r"""Batches of one architecture's weights as flat tensors: graphs, symmetries and layer tensors
without a trace per network.

A zoo of INRs or of same-architecture classifiers is a ``[B, P]`` matrix of flattened parameters.
:class:`WeightSpace` traces the architecture *once* and turns every per-network operation the
metanets need into an index gather on that matrix:

* :meth:`WeightSpace.graphs`: the neural- or parameter-view graphs of :func:`~graphlab.metanets.to_graph`
  for all rows at once (the structure is shared; ``edge_attr`` and ``x`` are gathered);
* :meth:`WeightSpace.augment`: a random element of the network's symmetry group per row
  (neuron permutations from :func:`~graphlab.metanets.random_symmetry` and, for odd activations
  such as SIREN's sine, sign flips), as the DWSNets / NFN / Neural Graphs training recipes do;
* :meth:`WeightSpace.layers`: the ``(weight [B, out, in], bias [B, out])`` pairs of an MLP (the
  input of NFN's and DWSNets' layers) and :meth:`WeightSpace.statistics` (StatNN's features).

Every map is read off *probe* networks whose parameter ``k`` holds the value ``k + 1``: whatever
slot of a graph, or of a symmetric twin, holds ``±(k + 1)`` holds ``±`` parameter ``k``. A
second probe (values ``2 (k + 1)``) proves the slot is a copy, not a transform, of the parameter.
So the maps are exactly those of :func:`~graphlab.metanets.to_graph` and
:func:`~graphlab.metanets.random_symmetry`, with no per-architecture bookkeeping.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from graphlab.metanets.statnn import _QUANTILES
from graphlab.metanets.symmetry import random_symmetry
from graphlab.metanets.views import to_graph

__all__ = ["WeightSpace"]

_GRAPH_FLOATS = ("edge_attr", "x")


class WeightSpace:
    r"""The weight space of one architecture: flat ``[B, P]`` parameter batches (float
    parameters in ``state_dict`` order) and the gathers that turn them into graphs, symmetric
    twins, layer tensors and statistics.

    Args:
        module (torch.nn.Module): a network of the architecture (its values are not used).
        example_input (torch.Tensor, optional): an input to trace it with (as for
            :func:`~graphlab.metanets.to_graph`).

    Example::

        ws = WeightSpace(zoo.module(0), zoo.example_input(0))
        flat = ws.flatten([zoo.state_dict(i) for i in zoo.indices])   # [B, P]
        batch = ws.graphs(ws.augment(flat, gen), view="neural")      # a PyG Batch of B graphs
    """

    def __init__(self, module: nn.Module, example_input: Tensor | None = None) -> None:
        self.module = copy.deepcopy(module).double().eval()
        self.example_input = None if example_input is None else example_input.double()
        sd = self.module.state_dict()
        self.names = [k for k, v in sd.items() if v.is_floating_point()]
        self.shapes = [tuple(sd[k].shape) for k in self.names]
        sizes = [sd[k].numel() for k in self.names]
        self.offsets = torch.tensor([0, *sizes]).cumsum(0).tolist()
        self.num_params = self.offsets[-1]
        if self.num_params == 0:
            raise ValueError("the network has no float parameters")
        self._templates: dict[str, tuple[Data, dict[str, Tensor]]] = {}
        self._batches: dict[tuple[str, int], Batch] = {}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(params={self.num_params}, tensors={len(self.names)})"

    # ---------------------------------------------------------------- flat <-> networks
    def flatten(self, nets: Sequence[nn.Module | Mapping[str, Tensor]]) -> Tensor:
        """``[B, P]`` float32 parameters of modules or state dicts of this architecture."""
        rows = []
        for net in nets:
            sd = net.state_dict() if isinstance(net, nn.Module) else net
            try:
                parts = [sd[k].reshape(-1) for k in self.names]
            except KeyError as exc:
                raise ValueError(f"network lacks parameter {exc.args[0]!r} of this "
                                 "architecture") from None
            if [p.numel() for p in parts] != [b - a for a, b in zip(self.offsets,
                                                                   self.offsets[1:])]:
                raise ValueError("network's parameter shapes differ from this architecture's")
            rows.append(torch.cat(parts).float())
        return torch.stack(rows) if rows else torch.zeros(0, self.num_params)

    def state_dict(self, row: Tensor) -> dict[str, Tensor]:
        """The state dict of one flat row (the inverse of :meth:`flatten`)."""
        return {k: row[a:b].reshape(shape) for k, shape, a, b in
                zip(self.names, self.shapes, self.offsets, self.offsets[1:])}

    def _check(self, flat: Tensor) -> None:
        if not isinstance(flat, Tensor) or flat.dim() != 2 or flat.size(1) != self.num_params:
            shape = list(flat.shape) if isinstance(flat, Tensor) else type(flat).__name__
            raise ValueError(f"expected flat parameters of shape [B, {self.num_params}], got "
                             f"{shape}")

    def _probe(self, scale: float) -> nn.Module:
        probe = copy.deepcopy(self.module)
        values = scale * torch.arange(1, self.num_params + 1, dtype=torch.float64)
        probe.load_state_dict(self.state_dict(values), strict=False)
        return probe

    # ---------------------------------------------------------------- graphs
    def _template(self, view: str) -> tuple[Data, dict[str, Tensor]]:
        if view not in self._templates:
            if view not in ("neural", "parameter"):
                raise ValueError(f"view must be 'neural' or 'parameter', got {view!r}")
            one = to_graph(self._probe(1.0), self.example_input, view=view)
            two = to_graph(self._probe(2.0), self.example_input, view=view)
            index: dict[str, Tensor] = {}
            for key in _GRAPH_FLOATS:
                a, b = getattr(one, key, None), getattr(two, key, None)
                if a is None:
                    continue
                moved = a != b
                if not torch.equal(b[moved], 2 * a[moved]):
                    raise ValueError(f"{view}-view {key} transforms the parameters (e.g. folded "
                                     "norm statistics): WeightSpace needs copies")
                # slot -> parameter index (-1: a constant of the architecture, kept as is)
                index[key] = torch.where(moved, a.round().long() - 1, -1)
                setattr(one, key, torch.where(moved, 0.0, a).float())
            for key in ("net",):
                if key in one:
                    del one[key]
            self._templates[view] = (one, index)
        return self._templates[view]

    def graphs(self, flat: Tensor, view: str = "neural", probe: Tensor | None = None,
               scale: Tensor | None = None,
               probe_stats: tuple[Tensor, Tensor] | None = None) -> Batch:
        """The ``view`` graphs of all rows as one PyG :class:`~torch_geometric.data.Batch`,
        equal to ``Batch.from_data_list([to_graph(net_b, view=view) for b])`` (in ``flat``'s
        dtype). With ``probe`` (``[K, in]`` inputs), every neuron node also carries its
        activations on the probe inputs (:meth:`activations`) as ``K`` more ``x`` columns
        (zeros on the parameter view's bias nodes): the probe features of Neural Graphs.
        ``scale`` (``[P]``) divides the weights on the graph (not the probe features, which
        evaluate the network itself); ``probe_stats`` (:meth:`probe_stats`) standardises the
        probe features."""
        self._check(flat)
        raw = flat
        if scale is not None:
            flat = flat / scale.to(flat.dtype)
        template, index = self._template(view)
        n = flat.size(0)
        if (view, n) not in self._batches:
            self._batches[(view, n)] = Batch.from_data_list([template] * n)
        batch = copy.copy(self._batches[(view, n)])
        for key, idx in index.items():
            const = getattr(template, key)
            vals = flat[:, idx.clamp(min=0).reshape(-1)].reshape(n, *idx.shape)
            vals = torch.where(idx >= 0, vals, const.to(flat.dtype))
            setattr(batch, key, vals.reshape(-1, idx.size(-1)))
        if probe is not None:
            acts = self.activations(raw, probe)  # [B, neurons, K]
            if probe_stats is not None:
                mean, std = probe_stats
                acts = (acts - mean.to(acts.dtype)) / std.to(acts.dtype)
            feats = acts.new_zeros(n, template.num_nodes, acts.size(-1))
            feats[:, :acts.size(1)] = acts  # neuron nodes come first in both views
            cols = [] if getattr(batch, "x", None) is None else [batch.x]
            batch.x = torch.cat([*cols, feats.reshape(-1, acts.size(-1))], dim=-1)
        return batch

    def activations(self, flat: Tensor, probe: Tensor) -> Tensor:
        r"""``[B, neurons, K]``: every neuron's value (after its activation) when network ``b``
        runs on the ``K`` probe inputs ``probe`` (``[K, in]``), in the neural view's node order
        (inputs, then each layer's neurons). Permuting or sign-flipping a network's neurons
        permutes or sign-flips these features with them (Kofinas et al., ICLR 2024, probe
        features). For ``nn.Sequential`` MLPs; batched over networks with ``torch.bmm``."""
        self._check(flat)
        if not isinstance(self.module, nn.Sequential):
            raise ValueError("activations() needs an nn.Sequential MLP")
        layers = iter(self.layers(flat))
        h = probe.to(flat.dtype).unsqueeze(0).expand(flat.size(0), -1, -1)  # [B, K, in]
        outs = [h]
        for m in self.module:
            if isinstance(m, nn.Linear):
                w, b = next(layers)
                h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
                outs.append(h)
            else:  # element-wise activation: replaces the layer's recorded values
                h = m.to(flat.dtype)(h)
                outs[-1] = h
        return torch.cat(outs, dim=2).transpose(1, 2)

    def probe_stats(self, flat: Tensor, probe: Tensor, eps: float = 1e-6
                    ) -> tuple[Tensor, Tensor]:
        r"""``(mean, std)``, each ``[neurons, K]``, that standardise the probe features of
        :meth:`activations`, fitted on ``flat`` (the training networks), shared within each
        orbit of the symmetry group so standardised features stay exactly equivariant: the
        input and output neurons (never permuted) get their own mean and standard deviation per
        probe point; a hidden layer's neurons share one root mean square per probe point and no
        shift (:math:`a / \sqrt{\mathbb{E}[a^2]}`, which commutes with their permutations and
        sign flips).

        Why: unstandardised, a SIREN's output neuron varies ~3x less over a zoo than its sine
        neurons (std 0.26 vs 0.71 on ``digits-inr``), and next to the node-type embeddings the
        one node that carries the label was too faint: NeuralGraphEncoder's training loss sat at
        :math:`\ln 10` for hundreds of steps; standardised, it learns from the first epoch."""
        self._check(flat)
        if flat.size(0) < 2:
            raise ValueError("probe_stats needs at least 2 networks to fit on")
        acts = self.activations(flat, probe)  # [B, neurons, K]
        sizes = [self.layers(flat[:1])[0][0].size(-1)] + [w.size(1) for w, _ in
                                                          self.layers(flat[:1])]
        means, stds = [], []
        start = 0
        for k, n in enumerate(sizes):
            blk = acts[:, start:start + n]
            start += n
            if 0 < k < len(sizes) - 1:  # hidden: one RMS per probe point, no shift
                rms = blk.pow(2).mean((0, 1)).sqrt().expand(n, -1)
                means.append(torch.zeros_like(rms))
                stds.append(rms)
            else:  # input / output neurons: fixed positions
                means.append(blk.mean(0))
                stds.append(blk.std(0))
        std = torch.cat(stds)
        # a constant feature (the input neurons: the probe itself) is centred, not amplified
        return torch.cat(means), torch.where(std > eps, std, torch.ones_like(std))

    # ---------------------------------------------------------------- symmetries
    def symmetries(self, num: int, seed: int = 0, signs: bool = True) -> tuple[Tensor, Tensor]:
        """``num`` random symmetries as ``(index [num, P], sign [num, P])``: the twin of a row is
        ``flat[:, index[k]] * sign[k]``. Drawn with :func:`~graphlab.metanets.random_symmetry`
        (``signs``: also sign flips where the activation is odd); row 0 is the identity."""
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}")
        probe = self._probe(1.0)
        idx, sgn = [torch.arange(self.num_params)], [torch.ones(self.num_params)]
        for k in range(1, num):
            twin = random_symmetry(probe, seed * 100_003 + k, self.example_input, signs=signs)
            v = torch.cat([twin.state_dict()[n].reshape(-1) for n in self.names])
            idx.append(v.abs().round().long() - 1)
            sgn.append(v.sign().float())
        return torch.stack(idx), torch.stack(sgn)

    def augment(self, flat: Tensor, generator: torch.Generator, pool: tuple[Tensor, Tensor]
                ) -> Tensor:
        """Each row replaced by a random one of its symmetric twins from ``pool`` (the output of
        :meth:`symmetries`), drawn from ``generator``."""
        self._check(flat)
        index, sign = pool
        k = torch.randint(0, index.size(0), (flat.size(0),), generator=generator)
        return torch.gather(flat, 1, index[k]) * sign[k].to(flat.dtype)

    # ---------------------------------------------------------------- layer tensors
    def layers(self, flat: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``[(weight [B, out, in], bias [B, out]), ...]`` of an MLP (``Linear`` layers with
        biases, in order), the input of NFN / DWSNets layers."""
        self._check(flat)
        lins = [m for m in self.module.modules() if isinstance(m, nn.Linear)]
        if not lins or any(m.bias is None for m in lins) or 2 * len(lins) != len(self.names):
            raise ValueError("layers() needs an MLP of Linear layers with biases (and nothing "
                             "else with parameters)")
        out = []
        for i in range(len(lins)):
            (wa, wb), (ba, bb) = self.offsets[2 * i:2 * i + 2], self.offsets[2 * i + 1:2 * i + 3]
            out.append((flat[:, wa:wb].reshape(-1, *self.shapes[2 * i]), flat[:, ba:bb]))
        return out

    def statistics(self, flat: Tensor) -> Tensor:
        """``[B, 7 * T]`` StatNN features (:func:`~graphlab.metanets.weight_statistics` of every
        parameter tensor), float64."""
        self._check(flat)
        cols = []
        for a, b in zip(self.offsets, self.offsets[1:]):
            t = flat[:, a:b].double()
            q = torch.quantile(t, _QUANTILES, dim=1).T if t.size(0) else t.new_zeros(0, 5)
            cols.append(torch.cat([t.mean(1, keepdim=True), t.var(1, unbiased=False,
                                                                 keepdim=True), q], dim=1))
        return torch.cat(cols, dim=1)
