r"""Evaluating the network encoded by a neural-view graph by message passing
(:func:`graph_forward`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Data

from graphlab.metanets.spec import X_COLUMN_ID, Layout, NetSpec, Op

__all__ = ["graph_forward"]


def _to_node(m: Tensor, lay: Layout) -> Tensor:
    if lay.inner is not None:
        m = m.reshape(*m.shape[:lay.chan], -1, lay.inner)
    return m.movedim(lay.chan, 0)


def _to_module(h: Tensor, lay: Layout) -> Tensor:
    m = h.movedim(0, lay.chan)
    if lay.inner is not None:
        m = m.flatten(lay.chan, lay.chan + 1)
    return m


def _edges(graph: Data, net: NetSpec, bid: int) -> tuple[Tensor, Tensor, Tensor]:
    b = net.blocks[bid]
    sl = slice(b.start, b.start + b.src.numel())
    src = graph.edge_index[0, sl] - net.sets[b.src_set].start
    dst = graph.edge_index[1, sl] - net.sets[b.dst_set].start
    return src, dst, graph.edge_attr[sl, :b.width]


def _aggregate(h: Tensor, src: Tensor, dst: Tensor, w: Tensor, size: int,
               inner: int | None = None) -> Tensor:
    """Sum of weighted messages ``w_e * h[src_e]`` at each destination neuron."""
    hs = h[src]
    if inner is not None:  # Linear after Flatten: each edge holds one weight per position
        msg = (hs * w.view(w.size(0), *[1] * (hs.dim() - 2), w.size(1))).sum(-1)
    else:
        msg = hs * w[:, 0].view(-1, *[1] * (hs.dim() - 1))
    out = msg.new_zeros(size, *msg.shape[1:])
    return out.index_add_(0, dst, msg)


def _conv_messages(h: Tensor, src: Tensor, dst: Tensor, w: Tensor, size: int,
                   cfg: dict) -> Tensor:
    """Each edge convolves its source channel with its own kernel; destinations sum them."""
    conv = F.conv1d if cfg["dim"] == 1 else F.conv2d
    inp = h[src].movedim(0, 1)  # [B, E, *S]
    weight = w.reshape(w.size(0), 1, *cfg["kernel"])
    msg = conv(inp, weight, stride=cfg["stride"], padding=cfg["padding"],
               dilation=cfg["dilation"], groups=max(w.size(0), 1))
    out = msg.new_zeros(msg.size(0), size, *msg.shape[2:])
    return out.index_add_(1, dst, msg).movedim(1, 0)


def _col(graph: Data, net: NetSpec, sid: int, col: str) -> Tensor:
    s = net.sets[sid]
    return graph.x[s.start:s.start + s.size, X_COLUMN_ID[col]]


def _bcast(v: Tensor, h: Tensor) -> Tensor:
    return v.view(-1, *[1] * (h.dim() - 1))


def graph_forward(graph: Data, x: Tensor) -> Tensor:
    r"""Evaluate the network encoded by a neural-view graph on input ``x``, by message passing.

    Layer by layer along the traced DAG, every neuron sums the messages
    :math:`w_{ij} h_j` over its incoming edges (a conv edge convolves its source channel with the
    kernel it carries), adds its bias node feature and applies its recorded activation; norm layers
    use their node features, attention combines each head's query/key/value nodes. Weights are read
    from ``graph.edge_attr`` / ``graph.x``, so an edited graph evaluates the edited network. Equals
    ``module.eval()(x)``.

    Raises:
        ValueError: if ``graph`` is not a neural-view graph, or ``x`` does not fit its input layer
            (dtype, number of dims, input channels / feature width, token ids out of range).
    """
    net = getattr(graph, "net", None)
    if not isinstance(net, NetSpec) or net.view != "neural":
        raise ValueError("graph_forward needs a graph from to_graph(..., view='neural')")
    width = net.sets[net.input_set].size
    lay_in = net.input_layout
    if net.input_kind == "tokens":
        if x.is_floating_point():
            raise ValueError(f"this network takes integer token ids, got {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= width):
            raise ValueError(f"token ids must lie in [0, {width}) (the network's vocabulary), "
                             f"got values in [{int(x.min())}, {int(x.max())}]")
        h_in = F.one_hot(x, width).to(graph.edge_attr.dtype)
    else:
        if not x.is_floating_point():
            raise ValueError(f"x must be floating point, got {x.dtype}")
        if x.dtype != graph.edge_attr.dtype:
            raise ValueError(f"x is {x.dtype} but the graph's weights are "
                             f"{graph.edge_attr.dtype}: pass x.to({graph.edge_attr.dtype}) (or "
                             "convert the module before to_graph)")
        h_in = x
    if h_in.dim() != lay_in.ndim:
        raise ValueError(f"x must have {lay_in.ndim} dims (like the example input), "
                         f"got shape {list(x.shape)}")
    if net.input_kind != "tokens" and h_in.size(lay_in.chan) != width:
        raise ValueError(f"x has {h_in.size(lay_in.chan)} input channels (dim {lay_in.chan} of "
                         f"shape {list(x.shape)}), but the graph's input layer has {width}")
    h: dict[int, Tensor] = {net.input_set: _to_node(h_in, lay_in)}
    for op in net.program:
        o = op.out
        size = net.sets[o].size
        if op.kind in ("linear", "embedding"):
            src, dst, w = _edges(graph, net, op.blocks[0])
            out = _aggregate(h[op.ins[0]], src, dst, w, size, op.cfg.get("inner"))
            if op.cfg.get("bias"):
                out = out + _bcast(_col(graph, net, o, "bias"), out)
        elif op.kind == "conv":
            src, dst, w = _edges(graph, net, op.blocks[0])
            out = _conv_messages(h[op.ins[0]], src, dst, w, size, op.cfg)
            if op.cfg["bias"]:
                out = out + _bcast(_col(graph, net, o, "bias"), out)
        elif op.kind in ("sum", "copy", "batchnorm", "layernorm"):
            out = None
            for sid, bid in zip(op.ins, op.blocks):
                src, dst, w = _edges(graph, net, bid)
                msg = _aggregate(h[sid], src, dst, w, size)
                out = msg if out is None else out + msg
            if op.kind == "batchnorm":
                mean, var = _col(graph, net, o, "running_mean"), _col(graph, net, o, "running_var")
                out = (out - _bcast(mean, out)) / torch.sqrt(_bcast(var, out) + op.cfg["eps"])
                if op.cfg["affine"]:
                    out = out * _bcast(_col(graph, net, o, "weight"), out) + \
                        _bcast(_col(graph, net, o, "bias"), out)
            elif op.kind == "layernorm":
                mu = out.mean(0, keepdim=True)
                var = out.var(0, unbiased=False, keepdim=True)
                out = (out - mu) / torch.sqrt(var + op.cfg["eps"])
                if op.cfg["weight"]:
                    out = out * _bcast(_col(graph, net, o, "weight"), out)
                if op.cfg["bias"]:
                    out = out + _bcast(_col(graph, net, o, "bias"), out)
        elif op.kind == "attention":
            out = _attention(graph, net, op, h)
        else:  # pragma: no cover - the builder only emits the kinds above
            raise RuntimeError(op.kind)
        for post in net.post.get(o, []):
            m = post.fn(out.movedim(0, post.chan_in))
            if post.flat_inner is not None:
                out = m.reshape(m.size(0), size, post.flat_inner).movedim(1, 0)
            else:
                out = m.movedim(post.chan_out, 0)
        h[o] = out
    return _to_module(h[net.output_set], net.output_layout)


def _attention(graph: Data, net: NetSpec, op: Op, h: dict[int, Tensor]) -> Tensor:
    qs, ks, vs, _ = op.cfg["sets"]
    heads = op.cfg["heads"]
    proj = []
    for i, (sid, tgt) in enumerate(zip(op.ins, (qs, ks, vs))):
        src, dst, w = _edges(graph, net, op.blocks[i])
        p = _aggregate(h[sid], src, dst, w, net.sets[tgt].size)
        if op.cfg["in_bias"]:
            p = p + _bcast(_col(graph, net, tgt, "bias"), p)
        proj.append(p)
    q, k, v = proj  # node space [d, B, T] (batch_first) or [d, T, B]
    d = q.size(0)
    dh = d // heads

    def split(t: Tensor) -> Tensor:  # -> [B, H, T, dh]
        t = t.reshape(heads, dh, *t.shape[1:])
        return t.permute(2, 0, 3, 1) if op.cfg["batch_first"] else t.permute(3, 0, 2, 1)

    qh, kh, vh = split(q), split(k), split(v)
    att = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(dh), dim=-1)
    ctx = att @ vh  # [B, H, T, dh]
    ctx = ctx.permute(1, 3, 0, 2) if op.cfg["batch_first"] else ctx.permute(1, 3, 2, 0)
    ctx = ctx.reshape(d, *ctx.shape[2:])
    src, dst, w = _edges(graph, net, op.blocks[3])
    out = _aggregate(ctx, src, dst, w, net.sets[op.out].size)
    if op.cfg["out_bias"]:
        out = out + _bcast(_col(graph, net, op.out, "bias"), out)
    return out
