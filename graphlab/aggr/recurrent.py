"""Recurrent aggregation over neighbours in a deterministic order, without padding."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch_geometric.nn.aggr import Aggregation

from graphlab.aggr._segment import Workspace, WorkspaceMixin, prepare_inputs, sort_segments
from graphlab.utils.validation import check_input_dtype

__all__ = ["RecurrentAggregation"]


class RecurrentAggregation(WorkspaceMixin, Aggregation):
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

    Rows are laid out time-major with the neighbourhoods sorted by decreasing size, so the
    neighbourhoods still being read at step :math:`t` are a prefix: each step is one cell update
    (one small matrix product and a few elementwise kernels) on contiguous slices, the input
    projections of all steps are one matrix product, and backpropagation through time is written
    by hand (no per-step autograd graph). Nothing is padded to the largest degree (PyG's
    :class:`~torch_geometric.nn.aggr.LSTMAggregation` builds a :math:`(N, d_{\max}, C)` tensor
    and reads the zero padding of short neighbourhoods), memory is
    :math:`\mathcal{O}(|\mathcal{E}| C)`, the output of a node depends only on its own
    neighbourhood, and ``index`` need not be sorted. Empty neighbourhoods return
    :math:`\mathbf{0}`. On the CPU the large buffers (time-major rows, gates, states and their
    gradients) stay allocated between calls and are reused, since mapping fresh memory costs as
    much as several passes over it; the module thus holds about one call's working set
    (~384 MB for the LSTM at 250k edges and 32 channels), freed with the module, by
    :meth:`release_workspace`, or never kept with ``keep_workspace=False``.

    Under ``torch.compile`` the recurrence (whose number of steps and batch sizes depend on the
    degrees) is the one graph break and runs eagerly; the graph around it is shape-polymorphic,
    so ``dynamic=True`` does not recompile per batch size. Under ``torch.autocast`` the RNN runs
    in its parameters' dtype and the output keeps ``x``'s dtype.

    Args:
        in_channels (int): Size of each input sample.
        out_channels (int): Size of each output sample (the hidden size of the cell).
        cell (str, optional): ``"lstm"`` or ``"gru"``. (default: ``"lstm"``)
        order (str, optional): ``None`` or ``"ascending"`` reads rows by ascending ``key``,
            ``"descending"`` by descending ``key``. (default: ``None``)
        keep_workspace (bool, optional): keep the CPU scratch buffers between calls (faster:
            no fresh pages to fault in); ``False`` allocates them per call and holds nothing
            between calls. (default: ``True``)

    Shapes:
        - **input:** rows :math:`(E, F_{in})`, segment index :math:`(E,)` (any order) or
          ``ptr`` :math:`(N + 1,)`, optional ``key`` :math:`(E,)`
        - **output:** :math:`(N, F_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, cell: str = "lstm",
                 order: str | None = None, keep_workspace: bool = True) -> None:
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
        self._workspace = Workspace(keep_workspace)  # CPU buffers reused between calls
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

    @torch.compiler.disable(reason="the number of steps and their batch sizes depend on the degrees")
    def _reduce(self, x: Tensor, index: Tensor, dim_size: int, key: Tensor | None) -> Tensor:
        """The final RNN state of every segment (zeros for empty ones), in ``x``'s dtype."""
        # here, not in forward: reading self.rnn while torch.compile traces is a graph break
        rnn = self.rnn
        weight = rnn.weight_ih_l0
        check_input_dtype(x, weight)
        if x.size(0) == 0:
            return x.new_zeros(dim_size, self.out_channels)
        seg = sort_segments(index, dim_size, key, descending=self.order == "descending")
        # segments by decreasing length: the ones still running at step t are a prefix
        order = torch.argsort(seg.count, descending=True, stable=True)
        slot = torch.empty_like(order)
        slot[order] = torch.arange(dim_size, device=x.device)
        length = seg.count[order]
        # live[t]: segments longer than t (one host read: every step's batch size)
        live = torch.bincount(length, minlength=int(length[0]) + 1).flip(0).cumsum(0).flip(0)[1:]
        steps = live.tolist()
        offsets = torch.cumsum(live, 0) - live
        # time-major rows: step t of sorted segment k is row offsets[t] + k
        time_major = torch.empty_like(seg.perm)
        time_major[offsets[seg.rank] + slot[seg.index]] = seg.perm
        # the recurrence runs in the parameters' dtype even under torch.autocast (oneDNN's
        # bfloat16 kernels are missing or slow on CPU); the output keeps x's dtype
        with torch.autocast(x.device.type, enabled=False):
            out = _Recurrence.apply(x.to(weight.dtype), time_major, steps, order, slot,
                                    self.cell, self._workspace, rnn.weight_ih_l0,
                                    rnn.weight_hh_l0,
                                    rnn.bias_ih_l0, rnn.bias_hh_l0)
        return out.to(x.dtype)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"cell={self.cell!r}, order={self.order!r})")


class _Recurrence(torch.autograd.Function):
    r"""LSTM or GRU over time-major rows whose live batch shrinks as a prefix, with
    backpropagation through time written by hand.

    Step :math:`t` reads rows ``offsets[t]`` to ``offsets[t] + steps[t]`` and the first
    ``steps[t]`` hidden states of step :math:`t - 1`: contiguous slices, no masks or scatters.
    The input projections of all steps are one matrix product, so each step is one small
    ``addmm`` and a few elementwise kernels; the backward pass overwrites each step's stored
    gates with their gradients and then forms every weight gradient with one matrix product.
    """

    @staticmethod
    def forward(ctx, x: Tensor, time_major: Tensor, steps: list[int], order: Tensor,
                slot: Tensor, cell: str, ws: Workspace, w_ih: Tensor, w_hh: Tensor,
                b_ih: Tensor, b_hh: Tensor) -> Tensor:
        c, num_rows = w_hh.size(1), x.size(0)
        inputs = (x, time_major, order, slot, w_ih, w_hh)  # before the LSTM's gate reorder
        rows = torch.index_select(x, 0, time_major,
                                  out=ws.empty("rows", num_rows, x.size(1), x))
        lstm = cell == "lstm"
        if lstm:
            w_ih, w_hh, b_ih = w_ih[_ifog(c)], w_hh[_ifog(c)], (b_ih + b_hh)[_ifog(c)]
        # LSTM: pre-activations of [i, f, o, g]; GRU: input parts of [r, z, n]
        gates = torch.addmm(b_ih, rows, w_ih.t(),
                            out=ws.empty("gates", num_rows, w_ih.size(0), rows))
        hidden_in = ws.empty("hidden_in", num_rows, c, rows)  # the state each step reads
        # LSTM: cell states; GRU: W_hn h + b_hn, which n reads through r
        extra = ws.empty("extra", num_rows, c, rows)
        final = rows.new_zeros(order.numel(), c)  # by decreasing length
        # LSTM: tanh of the cell states, which the backward pass reads again
        tanh_cs = ws.empty("tanh_c", num_rows, c, rows) if lstm else None
        hidden_in[:steps[0]] = 0
        prev_state = None  # LSTM cell state of the previous step
        # column views made once: each step only slices rows (Python overhead per step is what
        # the long sequential tail of a high-degree node costs)
        w_hh_t, g_sig, g_i, g_f, g_o, g_g = (w_hh.t(), gates[:, :3 * c], gates[:, :c],
                                             gates[:, c:2 * c], gates[:, 2 * c:3 * c],
                                             gates[:, 3 * c:])
        start = 0
        for t, n in enumerate(steps):
            end = start + n
            h = hidden_in[start:end]
            # the new state goes straight to where it is read: the next step's first `done`
            # rows, and the segments of length t + 1 (which end here) to `final`
            done = steps[t + 1] if t + 1 < len(steps) else 0
            targets = (hidden_in[end:end + done], final[done:n])
            if lstm:  # gates reordered to [i, f, o, g]: one sigmoid and one tanh kernel
                if t:  # h is zero at t = 0
                    gates[start:end].addmm_(h, w_hh_t)
                g_sig[start:end].sigmoid_()
                state = torch.mul(g_i[start:end], g_g[start:end].tanh_(), out=extra[start:end])
                if t:
                    state.addcmul_(prev_state[:n], g_f[start:end])
                prev_state = state
                tanh_c, o = torch.tanh(state, out=tanh_cs[start:end]), g_o[start:end]
                if done == n:  # no segment ends here
                    torch.mul(tanh_c, o, out=targets[0])
                    start = end
                    continue
                for part, out in zip((slice(0, done), slice(done, n)), targets):
                    if out.numel():
                        torch.mul(tanh_c[part], o[part], out=out)
            else:
                g = gates[start:end]
                gh = torch.addmm(b_hh, h, w_hh_t)
                g[:, :2 * c].add_(gh[:, :2 * c]).sigmoid_()
                extra[start:start + n] = gh[:, 2 * c:]
                g[:, 2 * c:].addcmul_(g[:, :c], gh[:, 2 * c:]).tanh_()
                for part, out in zip((slice(0, done), slice(done, n)), targets):
                    if out.numel():
                        torch.lerp(g[part, 2 * c:], h[part], g[part, c:2 * c], out=out)
            start = end
        # the workspace views go through save_for_backward (not ctx attributes), so autograd
        # frees them after a backward pass that does not retain the graph, and the next call
        # reuses the buffers even while a training loop still holds the previous loss
        ctx.save_for_backward(*inputs, rows, gates, hidden_in, extra, tanh_cs)
        ctx.steps, ctx.lstm, ctx.ws = steps, lstm, ws
        return final.index_select(0, slot)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, time_major, order, slot, w_ih, w_hh, rows, gates, hidden_in, extra, tanh_cs = (
            ctx.saved_tensors)
        steps, lstm, c = ctx.steps, ctx.lstm, w_hh.size(1)
        if lstm:
            w_hh = w_hh[_ifog(c)]
        with torch.autocast(rows.device.type, enabled=False):
            grad_final = grad_out.to(rows.dtype).index_select(0, order)
            # the saved tensors stay intact (a retained graph may run backward again)
            d_gates = ctx.ws.empty("d_gates", *gates.shape, gates)
            d_hn = None if lstm else ctx.ws.empty("d_hn", *extra.shape, extra)  # W_hn h + b_hn
            if lstm:
                _lstm_backward(steps, grad_final, gates, extra, tanh_cs, d_gates, w_hh)
            else:
                _gru_backward(steps, grad_final, gates, extra, hidden_in, d_gates, d_hn, w_hh)
            # every weight gradient in one product over all steps
            d_w_ih = d_gates.t() @ rows
            d_b_ih = d_gates.sum(0)
            if lstm:  # back to PyTorch's gate order [i, f, g, o]
                d_w_ih, d_b_ih = d_w_ih[_ifog(c)], d_b_ih[_ifog(c)]
                d_w_hh, d_b_hh = (d_gates.t() @ hidden_in)[_ifog(c)], d_b_ih
            else:
                d_w_hh = torch.cat([d_gates[:, :2 * c].t() @ hidden_in, d_hn.t() @ hidden_in])
                d_b_hh = torch.cat([d_b_ih[:2 * c], d_hn.sum(0)])
            grad_x = None
            if ctx.needs_input_grad[0]:
                w_ih = w_ih[_ifog(c)] if lstm else w_ih  # the order of d_gates' columns
                grad_x = torch.empty_like(x).index_copy_(0, time_major, d_gates @ w_ih)
        return grad_x, None, None, None, None, None, None, d_w_ih, d_w_hh, d_b_ih, d_b_hh


def _ifog(c: int) -> Tensor:
    """Row order [i, f, o, g] of PyTorch's LSTM weights [i, f, g, o] (its own inverse)."""
    return torch.cat([torch.arange(2 * c), torch.arange(3 * c, 4 * c), torch.arange(2 * c, 3 * c)])


def _lstm_backward(steps: list[int], grad_final: Tensor, gates: Tensor, state: Tensor,
                   tanh_state: Tensor, d_gates: Tensor, w_hh: Tensor) -> None:
    """Backpropagation through time of the LSTM (gates [i, f, o, g]), writing each step's
    pre-activation gradients into ``d_gates``. The running gradients of h and c live in two
    buffers whose prefix is the live batch: no per-step concatenation."""
    c = w_hh.size(1)
    d_h, d_c = grad_final.new_empty(steps[0], c), grad_final.new_empty(steps[0], c)
    # column views made once; each step slices rows only
    g_sig, g_i, g_f, g_o, g_g = (gates[:, :3 * c], gates[:, :c], gates[:, c:2 * c],
                                 gates[:, 2 * c:3 * c], gates[:, 3 * c:])
    dg_sig, dg_i, dg_f, dg_o, dg_g = (d_gates[:, :3 * c], d_gates[:, :c], d_gates[:, c:2 * c],
                                      d_gates[:, 2 * c:3 * c], d_gates[:, 3 * c:])
    sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
    tanh_backward = torch.ops.aten.tanh_backward
    end, done = gates.size(0), 0
    for t in range(len(steps) - 1, -1, -1):
        n = steps[t]
        start = end - n
        if n > done:  # segments of length t + 1 end here
            d_h[done:n] = grad_final[done:n]
            d_c[done:n] = 0
        dh, dc = d_h[:n], d_c[:n]
        tanh_c, g_gt = tanh_state[start:end], g_g[start:end]
        dc.addcmul_(dh, tanh_backward(g_o[start:end], tanh_c))
        torch.mul(dc, g_gt, out=dg_i[start:end])  # i
        if t:
            prev = start - steps[t - 1]
            torch.mul(dc, state[prev:prev + n], out=dg_f[start:end])  # f
        else:
            dg_f[start:end] = 0
        torch.mul(dh, tanh_c, out=dg_o[start:end])  # o
        dgg = torch.mul(dc, g_i[start:end], out=dg_g[start:end])  # g
        dsig = dg_sig[start:end]
        sigmoid_backward(dsig, g_sig[start:end], grad_input=dsig)
        tanh_backward.grad_input(dgg, g_gt, grad_input=dgg)
        if t:
            dc.mul_(g_f[start:end])
            torch.mm(d_gates[start:end], w_hh, out=dh)
        end, done = start, n


def _gru_backward(steps: list[int], grad_final: Tensor, gates: Tensor, gh_n: Tensor,
                  hidden_in: Tensor, d_gates: Tensor, d_hn: Tensor, w_hh: Tensor) -> None:
    """Backpropagation through time of the GRU (gates [r, z, n]), writing each step's gradients
    of the input parts into ``d_gates`` and of ``W_hn h + b_hn`` into ``d_hn``."""
    c = w_hh.size(1)
    d_h = grad_final.new_empty(steps[0], c)
    end, done = gates.size(0), 0
    for t in range(len(steps) - 1, -1, -1):
        n = steps[t]
        start = end - n
        if n > done:
            d_h[done:n] = grad_final[done:n]
        dh = d_h[:n]
        g, dg, dhn = gates[start:end], d_gates[start:end], d_hn[start:end]
        r, z, nn_ = g[:, :c], g[:, c:2 * c], g[:, 2 * c:]
        torch.mul(dh, hidden_in[start:end] - nn_, out=dg[:, c:2 * c])
        torch.ops.aten.sigmoid_backward.grad_input(dg[:, c:2 * c], z, grad_input=dg[:, c:2 * c])
        torch.ops.aten.tanh_backward.grad_input(dh - dh * z, nn_, grad_input=dg[:, 2 * c:])
        torch.mul(dg[:, 2 * c:], gh_n[start:end], out=dg[:, :c])
        torch.ops.aten.sigmoid_backward.grad_input(dg[:, :c], r, grad_input=dg[:, :c])
        torch.mul(dg[:, 2 * c:], r, out=dhn)
        if t:
            torch.addmm(dh * z, dg[:, :2 * c], w_hh[:2 * c], out=dh).addmm_(dhn, w_hh[2 * c:])
        end, done = start, n
