"""Recurrent aggregation over neighbours in a deterministic order, without padding."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence
from torch_geometric.nn.aggr import Aggregation

from graphlab.aggr._segment import prepare_inputs, sort_segments
from graphlab.utils.validation import check_input_dtype

__all__ = ["RecurrentAggregation"]


class RecurrentAggregation(Aggregation):
    r"""The recurrent aggregator of `"Recurrent Aggregators in Neural Algorithmic Reasoning"
    <https://arxiv.org/abs/2409.06953>`_ (Xu & Veličković, 2024): an RNN reads each
    neighbourhood in a deterministic order and its final state is the aggregate,

    .. math::
        \mathbf{h}_i^{(t)} = \mathrm{RNN}\big(\mathbf{x}_{\pi_i(t)}, \mathbf{h}_i^{(t-1)}\big),
        \qquad \mathbf{h}_i^{(0)} = \mathbf{0},
        \qquad \mathbf{x}^{\prime}_i = \mathbf{h}_i^{(\deg i)},

    where :math:`\pi_i` orders the neighbourhood of :math:`i` by ascending (or descending)
    ``key``, ties broken by input position (with no key: input order, which for a
    :class:`~torch_geometric.nn.conv.MessagePassing` whose ``edge_index`` is sorted with
    :func:`~torch_geometric.utils.sort_edge_index` is the source-node order). In RNAR the key is
    the node position ``pos`` of the CLRS-30 tasks, e.g.
    ``aggr(x_j, edge_index[1], key=pos[edge_index[0]])``.

    The sequences are run as :class:`~torch.nn.utils.rnn.PackedSequence` s built directly from
    the sorted rows, one per bucket of neighbourhood sizes :math:`[2^k, 2^{k+1})`: step
    :math:`t` processes only the rows of rank :math:`t`, so nothing is padded to the largest
    degree (PyG's :class:`~torch_geometric.nn.aggr.LSTMAggregation` builds
    a :math:`(N, d_{\max}, C)` tensor and reads the zero padding of short neighbourhoods), memory
    is :math:`\mathcal{O}(|\mathcal{E}| C)`, the output of a node depends only on its own
    neighbourhood, and ``index`` need not be sorted. Empty neighbourhoods return
    :math:`\mathbf{0}`.

    Under ``torch.compile`` the bucketed packed RNN calls (whose number and batch sizes depend
    on the degrees) are the one graph break and run eagerly; the graph around them is
    shape-polymorphic, so ``dynamic=True`` does not recompile per batch size. Under
    ``torch.autocast`` the RNN runs in its parameters' dtype (oneDNN's packed bfloat16 LSTM
    fails on CPU) and the output keeps ``x``'s dtype.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Size of each output sample (the hidden size of the cell).
        cell (str, optional): ``"lstm"`` or ``"gru"``. (default: ``"lstm"``)
        order (str, optional): ``None`` or ``"ascending"`` reads rows by ascending ``key``,
            ``"descending"`` by descending ``key``. (default: ``None``)

    Shapes:
        - **input:** rows :math:`(E, F_{in})`, segment index :math:`(E,)` (any order) or
          ``ptr`` :math:`(N + 1,)`, optional ``key`` :math:`(E,)`
        - **output:** :math:`(N, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, cell: str = "lstm",
                 order: str | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
        if order not in (None, "ascending", "descending"):
            raise ValueError(f"order must be None, 'ascending' or 'descending', got {order!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.cell = cell
        self.order = order
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(in_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.rnn.reset_parameters()

    def forward(self, x: Tensor, index: Tensor | None = None, ptr: Tensor | None = None,
                dim_size: int | None = None, dim: int = -2, key: Tensor | None = None) -> Tensor:
        index, dim_size = prepare_inputs(x, index, ptr, dim_size, dim)
        if x.size(-1) != self.in_channels:
            raise ValueError(f"{self.__class__.__name__} expects x with in_channels="
                             f"{self.in_channels} channels, got shape {list(x.shape)}")
        if key is not None:
            if not isinstance(key, Tensor) or key.dim() != 1 or key.numel() != x.size(0):
                shape = list(key.shape) if isinstance(key, Tensor) else type(key).__name__
                raise ValueError(f"key must be a 1-dimensional tensor with one entry per row "
                                 f"({x.size(0)}), got {shape}")
        return self._reduce(x, index, dim_size, key)

    @torch.compiler.disable(reason="the length buckets and packed batch sizes depend on the degrees")
    def _reduce(self, x: Tensor, index: Tensor, dim_size: int, key: Tensor | None) -> Tensor:
        """The final RNN state of every segment (zeros for empty ones), in ``x``'s dtype."""
        # here, not in forward: reading self.rnn while torch.compile traces is a graph break
        weight = self.rnn.weight_ih_l0
        check_input_dtype(x, weight)
        out = x.new_zeros(dim_size, self.out_channels)
        if x.size(0) == 0:
            return out
        # the RNN runs in its parameters' dtype even under torch.autocast: oneDNN's packed
        # bfloat16 LSTM fails on CPU ("could not create a primitive descriptor")
        with torch.autocast(x.device.type, enabled=False):
            return self._reduce_sorted(x.to(weight.dtype), out, index, dim_size, key)

    def _reduce_sorted(self, x: Tensor, out: Tensor, index: Tensor, dim_size: int,
                       key: Tensor | None) -> Tensor:
        seg = sort_segments(index, dim_size, key, descending=self.order == "descending")
        # One packed RNN call per length bucket [2^k, 2^(k+1)): in a single call over all
        # segments, every one of the max-degree steps costs autograd O(segments * C) (the
        # backward of the shrinking batch narrows), O(N * d_max * C) in all; inside a bucket
        # every sequence is at least half the bucket's longest, so the calls total O(E * C).
        bucket = torch.log2(seg.count.clamp(min=1).to(torch.float64)).floor().long()
        bucket = torch.where(seg.count > 0, bucket, -1)
        row_bucket = bucket[seg.index]
        for b in torch.unique(bucket[bucket >= 0]).tolist():  # at most log2(d_max) + 1 calls
            rows = torch.nonzero(row_bucket == b).squeeze(-1)  # sorted rows of this bucket
            nodes = torch.nonzero(bucket == b).squeeze(-1)
            state = self._run_packed(x, seg.perm[rows], seg.index[rows], seg.rank[rows], nodes,
                                     seg.count)
            out = out.index_put((nodes,), state.to(out.dtype))  # x may be in a lower precision
        return out

    def _run_packed(self, x: Tensor, perm: Tensor, sid: Tensor, rank: Tensor, nodes: Tensor,
                    count: Tensor) -> Tensor:
        """Final states of the segments ``nodes`` (their rows: ``x[perm]``, segment ``sid``,
        rank ``rank``), built as a time-major :class:`PackedSequence` without padding."""
        lengths = count[nodes]
        # PackedSequence wants sequences by decreasing length; stable for determinism
        by_len = torch.argsort(lengths, descending=True, stable=True)
        slot = torch.empty_like(count)
        slot[nodes[by_len]] = torch.arange(nodes.numel(), device=nodes.device)
        max_len = int(lengths.max())
        # batch_sizes[t] = number of sequences longer than t
        batch_sizes = torch.bincount(lengths, minlength=max_len + 1).flip(0).cumsum(0)
        batch_sizes = batch_sizes.flip(0)[1:max_len + 1]
        offsets = torch.cumsum(batch_sizes, 0) - batch_sizes
        gather = torch.empty_like(perm)
        gather[offsets[rank] + slot[sid]] = perm
        _, state = self.rnn(PackedSequence(x[gather], batch_sizes.cpu()))
        h_n = state[0] if isinstance(state, tuple) else state  # [1, len(nodes), C] by length
        return h_n[0][torch.argsort(by_len)]

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"cell={self.cell!r}, order={self.order!r})")
