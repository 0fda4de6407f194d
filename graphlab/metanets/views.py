r"""Turn a :class:`torch.nn.Module` into a graph, and back.

One :mod:`torch.fx` trace feeds three views (see :func:`to_graph`):

* ``"neural"`` -- the *neural graph* of `Kofinas et al. (ICLR 2024)
  <https://arxiv.org/abs/2403.12143>`_: one node per neuron or channel, one edge per weight, a conv
  kernel (or the spatial block of a Linear after ``Flatten``) as **one** edge carrying the
  flattened kernel; biases and normalisation parameters are node features.
* ``"parameter"`` -- the *parameter graph* of `Lim et al. (GMN, ICLR 2024)
  <https://arxiv.org/abs/2312.04501>`_: the same neuron nodes, one edge per parameter (a conv kernel
  becomes :math:`k_h k_w` parallel edges tagged with their kernel position), biases and
  normalisation parameters on their own nodes, residuals as typed value-1 edges.
* ``"op"`` -- the operation DAG (op type, output shape, parameter count), as used by GHN-2-style
  architecture encoders and performance predictors.

Multi-head attention is encoded with its heads: separate query, key and value nodes per head
dimension, one ``attn_head`` node per head linked to its query/key/value nodes, and ``attn_qk``
edges pairing query dimension :math:`i` with key dimension :math:`i`. The graph's automorphisms are
then exactly head permutations, joint within-head Q/K permutations and within-head V/O
permutations (the true symmetries), and nothing that mixes heads.

The neural and parameter views are lossless: :func:`graph_to_state_dict` inverts them bit for bit,
and :func:`graph_forward` evaluates the network by message passing over the neural graph.

Sizes for a CIFAR-style ResNet-18 (11.2M parameters, ``corpus.resnet18``): neural view 11,533
nodes / 1,406,592 edges (edge dim 9, density 1.1%); parameter view 11,614 nodes / 11,192,202
edges; op view 70 nodes / 77 edges (``benchmarks/results/metanets-speed.md`` has the timings).
"""

from __future__ import annotations

import copy
import math
import operator

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch_geometric.data import Data

from graphlab.metanets.interpreter import graph_forward
from graphlab.metanets.spec import (
    ACT_TYPE_ID,
    EDGE_TYPE_ID,
    NODE_TYPE_ID,
    OP_TYPE_ID,
    VIEWS,
    X_COLUMNS,
    NetSpec,
    UnsupportedModuleError,
)
from graphlab.metanets.trace import (
    ACT_FUNCS,
    ACT_METHODS,
    ACT_MODULES,
    ALIAS_MODULES,
    POOL_FUNCS,
    POOL_MODULES,
    build_net,
    default_input,
    probe_inputs,
    trace_module,
)

__all__ = ["to_graph", "pad_edge_attr"]


def _node_ints(net: NetSpec) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    node_type, layer, io, act = [], [], [], []
    for s in net.sets:
        node_type.append(torch.full((s.size,), NODE_TYPE_ID[s.kind]))
        layer.append(torch.full((s.size,), s.layer))
        io.append(torch.arange(s.size) if s.io else torch.full((s.size,), -1))
        act.append(torch.full((s.size,), ACT_TYPE_ID[s.act]))
    return _cat(node_type), _cat(layer), _cat(io), _cat(act)


def _cat(xs: list[Tensor], dtype: torch.dtype = torch.long) -> Tensor:
    return torch.cat(xs) if xs else torch.zeros(0, dtype=dtype)


def _neural_view(net: NetSpec, x: Tensor, dtype: torch.dtype) -> Data:
    src, dst, attr, etype, eblock = [], [], [], [], []
    for i, b in enumerate(net.blocks):
        n = b.src.numel()
        src.append(b.src + net.sets[b.src_set].start)
        dst.append(b.dst + net.sets[b.dst_set].start)
        vals = torch.zeros(n, net.width, dtype=dtype)
        if b.values is None:
            vals[:, 0] = 1.0
        else:
            vals[:, :b.width] = b.values
        attr.append(vals)
        etype.append(torch.full((n,), EDGE_TYPE_ID[b.etype]))
        eblock.append(torch.full((n,), i))
    node_type, layer, io, act = _node_ints(net)
    edge_index = torch.stack([torch.cat(src), torch.cat(dst)]) if src else \
        torch.zeros(2, 0, dtype=torch.long)
    return Data(x=x, edge_index=edge_index,
                edge_attr=torch.cat(attr) if attr else torch.zeros(0, net.width, dtype=dtype),
                edge_type=torch.cat(etype) if etype else torch.zeros(0, dtype=torch.long),
                edge_layer=torch.cat(eblock) if eblock else torch.zeros(0, dtype=torch.long),
                node_type=node_type, layer=layer, io_id=io, node_act=act,
                num_nodes=int(node_type.numel()))


_PARAM_NODE = {"bias": "bias", "weight": "norm_weight", "running_mean": "norm_mean",
               "running_var": "norm_var"}


def _parameter_view(net: NetSpec, x: Tensor, dtype: torch.dtype) -> Data:
    """GMN graph: neuron nodes + one parameter node per (layer, kind); one edge per parameter."""
    node_type, layer, io, act = _node_ints(net)
    n_neural = node_type.numel()
    src, dst, val, etype, epos, eblock = [], [], [], [], [], []
    count = 0
    net.pblock_start = []
    for i, b in enumerate(net.blocks):
        s0, d0 = net.sets[b.src_set].start, net.sets[b.dst_set].start
        w = b.width
        net.pblock_start.append(count)
        n = b.src.numel() * w
        src.append((b.src + s0).repeat_interleave(w))
        dst.append((b.dst + d0).repeat_interleave(w))
        if b.values is None:
            val.append(torch.ones(n, dtype=dtype))
            epos.append(torch.full((n,), -1))
        else:
            val.append(b.values.reshape(-1).to(dtype))
            epos.append(torch.arange(w).repeat(b.src.numel()))
        etype.append(torch.full((n,), EDGE_TYPE_ID[b.etype]))
        eblock.append(torch.full((n,), i))
        count += n
    # parameter nodes: one per (set, column) that holds parameters, with an edge to every neuron
    extra_type, extra_layer = [], []
    net.pnode_param, net.pset_edge_start = {}, {}
    used = sorted({(seg.ref, seg.col) for segs in net.params.values() for seg in segs
                   if seg.kind == "node"})
    nb = len(net.blocks)
    for j, (sid, col) in enumerate(used):
        s = net.sets[sid]
        pid = n_neural + j
        kind = _PARAM_NODE[X_COLUMNS[col]]
        if kind == "bias" and s.kind == "norm":
            kind = "norm_bias"
        net.pnode_param[(sid, col)] = pid
        extra_type.append(NODE_TYPE_ID[kind])
        extra_layer.append(s.layer)
        net.pset_edge_start[(sid, col)] = count
        src.append(torch.full((s.size,), pid))
        dst.append(torch.arange(s.size) + s.start)
        val.append(x[s.start:s.start + s.size, col].to(dtype))
        epos.append(torch.full((s.size,), -1))
        etype.append(torch.full((s.size,), EDGE_TYPE_ID[kind]))
        eblock.append(torch.full((s.size,), nb + j))
        count += s.size
    m = len(extra_type)
    return Data(edge_index=torch.stack([_cat(src), _cat(dst)]),
                edge_attr=_cat(val, dtype).unsqueeze(-1), edge_type=_cat(etype),
                edge_pos=_cat(epos), edge_layer=_cat(eblock),
                node_type=torch.cat([node_type, torch.tensor(extra_type, dtype=torch.long)]),
                layer=torch.cat([layer, torch.tensor(extra_layer, dtype=torch.long)]),
                io_id=torch.cat([io, torch.full((m,), -1)]),
                node_act=torch.cat([act, torch.zeros(m, dtype=torch.long)]),
                num_nodes=n_neural + m)


def _op_type(gm: fx.GraphModule, node: fx.Node) -> tuple[str, int]:
    """(op type, parameter count) of one fx node."""
    if node.op == "placeholder":
        return "input", 0
    if node.op == "output":
        return "output", 0
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        n = sum(p.numel() for p in m.parameters())
        table = [(nn.Linear, "linear"), (nn.Conv1d, "conv1d"), (nn.Conv2d, "conv2d"),
                 (nn.modules.batchnorm._BatchNorm, "batchnorm"), (nn.LayerNorm, "layernorm"),
                 (nn.MultiheadAttention, "attention"), (nn.Embedding, "embedding"),
                 (nn.Flatten, "flatten"), (ALIAS_MODULES, "dropout"),
                 (tuple(POOL_MODULES), "pool"), (tuple(ACT_MODULES), "activation")]
        for cls, name in table:
            if isinstance(m, cls):
                return name, n
        return "other", n
    f = node.target
    if f in (operator.add, torch.add):
        return "add", 0
    if f in (operator.mul, torch.mul):
        return "mul", 0
    if f in ACT_FUNCS or f in ACT_METHODS:
        return "activation", 0
    if f in POOL_FUNCS or f == "mean":
        return "pool", 0
    if f in (torch.flatten, "flatten"):
        return "flatten", 0
    if f is operator.getitem:
        return "getitem", 0
    if f in ("view", "reshape", "permute", "transpose"):
        return "reshape", 0
    return "other", 0


def _op_view(gm: fx.GraphModule, dtype: torch.dtype) -> Data:
    nodes = list(gm.graph.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    types, feats, src, dst = [], [], [], []
    for n in nodes:
        t, count = _op_type(gm, n)
        types.append(OP_TYPE_ID[t])
        meta = n.meta.get("tensor_meta")
        if n.op == "output":
            meta = n.args[0].meta.get("tensor_meta") if isinstance(n.args[0], fx.Node) else None
        shape = list(meta.shape) if hasattr(meta, "shape") else []
        dims = (shape[1:] + [0, 0, 0])[:3]  # per-sample shape, batch dim dropped
        cfg = [0.0, 0.0, 0.0]
        if n.op == "call_module":
            m = gm.get_submodule(n.target)
            if isinstance(m, nn.Conv1d | nn.Conv2d):
                cfg = [math.prod(m.kernel_size), m.stride[0], m.groups]
            elif isinstance(m, nn.MultiheadAttention):
                cfg = [0.0, 0.0, m.num_heads]
        feats.append([math.log1p(count), *[math.log1p(d) for d in dims], *cfg])
        for a in n.all_input_nodes:
            src.append(index[a])
            dst.append(index[n])
    return Data(x=torch.tensor(feats, dtype=dtype), node_type=torch.tensor(types),
                edge_index=torch.tensor([src, dst], dtype=torch.long).view(2, -1),
                num_nodes=len(nodes))


def to_graph(module: nn.Module, example_input: Tensor | None = None,
             view: str = "neural") -> Data:
    r"""Convert a network into a PyG graph.

    The module is traced with :mod:`torch.fx` (user modules are traced through; ``torch.nn``
    layers arrive whole and are expanded by a per-type handler). When tracing fails, a warning
    explains why and the leaf modules are chained in registration order; that fallback is checked
    against the module's own output on ``example_input`` **and** on fresh random inputs of the
    same shape (a data-dependent branch may agree on the example only), and rejected with
    :class:`UnsupportedModuleError` if any of them differs.

    The graph encodes the **eval-mode** function (BatchNorm with running statistics, no dropout).

    Args:
        module: the network. Supported layers: ``Linear``, ``Conv1d``/``Conv2d`` (any groups,
            stride, padding, dilation), ``BatchNorm1d/2d``, ``LayerNorm``, ``MultiheadAttention``
            (fused in-projection, no masks), ``Embedding``, ``Flatten``, pooling, element-wise
            activations, dropout, residual ``+`` and scalar arithmetic. Anything else raises
            :class:`UnsupportedModuleError` naming the module and its type.
        example_input: an input batch (used for shapes); guessed from the first layer if ``None``.
        view: ``"neural"``, ``"parameter"`` or ``"op"``.

    Returns:
        :class:`~torch_geometric.data.Data` with

        * neural view: ``x`` ``[N, 4]`` (bias, norm weight, running mean, running var),
          ``node_type``, ``layer``, ``io_id`` (the index of an input/output neuron, ``-1`` for
          hidden ones), ``node_act``; ``edge_index``, ``edge_attr`` ``[E, K]`` (a weight, or a
          kernel flattened and zero-padded to the largest kernel ``K``), ``edge_type``,
          ``edge_layer`` (the edge block);
        * parameter view: the same integer node attributes (parameter nodes appended after the
          neurons), ``edge_attr`` ``[E, 1]``, ``edge_type``, ``edge_pos`` (flat kernel offset,
          ``-1`` for structural edges), ``edge_layer``;
        * op view: ``x`` (log parameter count, log output dims, kernel size, stride, groups/heads),
          ``node_type`` (index into :data:`OP_TYPES`), ``edge_index``.

        ``graph.net`` holds the :class:`NetSpec` used by :func:`graph_to_state_dict`,
        :func:`graph_forward` and :func:`~graphlab.metanets.permutation_spec`.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if any(t.device.type != "cpu" for t in (*module.parameters(), *module.buffers())):
        raise ValueError("to_graph converts CPU modules: call module.cpu() first (the graph can "
                         "be moved to a GPU afterwards with graph.to(device))")
    was_training = module.training
    module.eval()
    try:
        if example_input is None:
            example_input = default_input(module)
        gm, fallback = trace_module(module, example_input)
        p = next(module.parameters(), None)
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        if view == "op":
            g = _op_view(gm, dtype)
            g.net = None
            return g
        net, x = build_net(module, gm)
        net.fallback = fallback
        net.input_shape = tuple(example_input.shape)
        g = _neural_view(net, x, dtype)
        g.net = net
        if fallback is not None:
            _verify_fallback(module, g, example_input, fallback)
        if view == "parameter":
            pnet = copy.copy(net)
            pnet.view = "parameter"
            pg = _parameter_view(pnet, x, dtype)
            pg.net = pnet
            return pg
        return g
    finally:
        module.train(was_training)


def _verify_fallback(module: nn.Module, graph: Data, example_input: Tensor,
                     fallback: str) -> None:
    """Refuse a fallback graph that does not compute ``module`` on the example input and on
    fresh random inputs."""
    net = graph.net
    vocab = net.sets[net.input_set].size if net.input_kind == "tokens" else None
    probes = [("the example input", example_input)] + [
        ("a fresh random input", x) for x in probe_inputs(example_input, vocab=vocab)]
    with torch.no_grad():
        for what, x in probes:
            ref, got = module(x), graph_forward(graph, x)
            if ref.shape != got.shape:
                raise UnsupportedModuleError(
                    f"{fallback} -- and the fallback graph's output has shape {list(got.shape)} on "
                    f"{what}, the module's {list(ref.shape)}")
            if not torch.allclose(ref, got, rtol=1e-4, atol=1e-5):
                err = float((ref - got).abs().max())
                raise UnsupportedModuleError(
                    f"{fallback} -- and the fallback graph does not reproduce the module's output "
                    f"on {what} (max abs error {err:.3g}); the forward() is data-dependent or "
                    "uses operations the fallback cannot see, so it cannot be converted")


def pad_edge_attr(graph: Data, width: int) -> Data:
    """A shallow copy of a neural-view graph with ``edge_attr`` zero-padded to ``width`` columns,
    so that graphs of different architectures (different largest kernels) can share a batch.
    :func:`graph_to_state_dict` and :func:`graph_forward` ignore the padding."""
    cur = graph.edge_attr.size(1)
    if width < cur:
        raise ValueError(f"cannot pad edge_attr of width {cur} down to {width}")
    out = copy.copy(graph)
    out.edge_attr = F.pad(graph.edge_attr, (0, width - cur))
    return out
