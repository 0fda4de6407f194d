r"""Tracing a :class:`torch.nn.Module` into a :class:`~graphlab.metanets.spec.NetSpec`.

:func:`trace_module` runs :mod:`torch.fx` (falling back to chaining the leaf modules when a
``forward`` has data-dependent control flow) and propagates shapes on an example input;
:func:`build_net` walks the fx graph and expands every supported layer into node sets and edge
blocks (the neural-view IR). :func:`~graphlab.metanets.to_graph` materialises the views from it.
"""

from __future__ import annotations

import copy
import math
import numbers
import operator
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from graphlab.metanets.spec import (
    X_COLUMN_ID,
    X_COLUMNS,
    EdgeBlock,
    Layout,
    NetSpec,
    NodeSet,
    Op,
    PostOp,
    Seg,
    UnsupportedModuleError,
)

__all__ = ["ACT_MODULES", "POOL_MODULES", "ACT_FUNCS", "POOL_FUNCS", "ACT_METHODS",
           "ALIAS_MODULES", "default_input", "probe_inputs", "trace_module", "build_net"]

# --------------------------------------------------------------------------- tracing
ACT_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.GELU: "gelu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu",
    nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.Softplus: "softplus", nn.ReLU6: "relu6",
    nn.Hardtanh: "hardtanh", nn.Mish: "mish",
}
POOL_MODULES: dict[type, str] = {
    nn.MaxPool1d: "maxpool", nn.MaxPool2d: "maxpool", nn.AvgPool1d: "avgpool",
    nn.AvgPool2d: "avgpool", nn.AdaptiveAvgPool1d: "adaptive_avgpool",
    nn.AdaptiveAvgPool2d: "adaptive_avgpool", nn.AdaptiveMaxPool1d: "adaptive_maxpool",
    nn.AdaptiveMaxPool2d: "adaptive_maxpool",
}
ACT_FUNCS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.gelu: "gelu", torch.tanh: "tanh", F.tanh: "tanh",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.silu: "silu", F.leaky_relu: "leaky_relu",
    F.elu: "elu", F.softplus: "softplus", F.relu6: "relu6", F.hardtanh: "hardtanh", F.mish: "mish",
    torch.sin: "sine",  # SIREN (Sitzmann et al., 2020): an odd activation, so sign flips of a
    # hidden neuron's in- and out-weights are symmetries too
}
POOL_FUNCS: dict[Any, str] = {
    F.max_pool1d: "maxpool", F.max_pool2d: "maxpool", F.avg_pool1d: "avgpool",
    F.avg_pool2d: "avgpool", F.adaptive_avg_pool1d: "adaptive_avgpool",
    F.adaptive_avg_pool2d: "adaptive_avgpool", F.adaptive_max_pool1d: "adaptive_maxpool",
    F.adaptive_max_pool2d: "adaptive_maxpool",
}
ACT_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "sin": "sine"}
ALIAS_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
_SCALAR_OPS = {operator.mul, operator.truediv, operator.add, operator.sub, torch.mul, torch.add}
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm,
              nn.MultiheadAttention, nn.Embedding, nn.Flatten, *ALIAS_MODULES,
              *ACT_MODULES, *POOL_MODULES)


def default_input(module: nn.Module, seed: int = 0) -> Tensor:
    """A small example input guessed from the first layer (pass ``example_input`` to override),
    drawn from a generator seeded with ``seed`` (the global RNG is neither read nor advanced)."""
    p = next(module.parameters(), None)
    dtype = p.dtype if p is not None else torch.get_default_dtype()
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return torch.randn(2, m.in_features, dtype=dtype, generator=gen)
        if isinstance(m, nn.Conv1d):
            return torch.randn(2, m.in_channels, 16, dtype=dtype, generator=gen)
        if isinstance(m, nn.Conv2d):
            return torch.randn(2, m.in_channels, 16, 16, dtype=dtype, generator=gen)
        if isinstance(m, nn.Embedding):
            return torch.randint(0, m.num_embeddings, (2, 5), generator=gen)
        if isinstance(m, nn.MultiheadAttention):
            shape = (2, 5, m.embed_dim) if m.batch_first else (5, 2, m.embed_dim)
            return torch.randn(*shape, dtype=dtype, generator=gen)
        if isinstance(m, nn.LayerNorm):
            return torch.randn(2, *m.normalized_shape, dtype=dtype, generator=gen)
    raise ValueError(f"cannot guess an input for {type(module).__name__}; pass example_input")


def probe_inputs(example_input: Tensor, num: int = 3, seed: int = 0,
                 vocab: int | None = None) -> list[Tensor]:
    """Fresh random inputs shaped like ``example_input``, used to verify a fallback trace away
    from the example (a data-dependent branch taken on the example may not be taken elsewhere).

    Float inputs are drawn around the example's own scale (and one is its negation); integer
    token inputs uniformly from ``[0, vocab)``. Drawn from a seeded generator.
    """
    gen = torch.Generator().manual_seed(seed)
    x = example_input
    if not x.is_floating_point():
        high = vocab if vocab is not None else int(x.max()) + 1
        return [torch.randint(0, max(high, 1), x.shape, generator=gen, dtype=x.dtype)
                for _ in range(num)]
    scale = float(x.float().std()) if x.numel() > 1 else 1.0
    scale = scale if scale > 0 and scale == scale else 1.0
    out = [-x]
    for k in range(num - 1):
        out.append((2.0 ** k) * scale * torch.randn(x.shape, dtype=x.dtype, generator=gen))
    return out


def trace_module(module: nn.Module, example_input: Tensor) -> tuple[fx.GraphModule, str | None]:
    """fx-trace ``module``; on failure fall back to chaining its leaf modules in order."""
    try:
        gm = fx.symbolic_trace(module)
        fallback = None
    except Exception as exc:  # noqa: BLE001 - any tracing failure triggers the fallback
        leaves = [(n, m) for n, m in module.named_modules() if not list(m.children())
                  and n != ""]
        fallback = (f"torch.fx could not trace {type(module).__name__} "
                    f"({type(exc).__name__}: {exc}); falling back to chaining its "
                    f"{len(leaves)} leaf modules in registration order (functional operations "
                    "and skip connections in forward() are invisible to this fallback; the result "
                    "is checked against the module's own output on the example input and on "
                    "fresh random inputs)")
        warnings.warn(fallback, stacklevel=3)
        if not leaves:
            raise UnsupportedModuleError(fallback) from exc
        graph = fx.Graph()
        val = graph.placeholder("x")
        for name, _ in leaves:
            val = graph.call_module(name, (val,))
        graph.output(val)
        gm = fx.GraphModule(module, graph)
    with torch.no_grad():
        ShapeProp(gm).propagate(example_input)
    return gm, fallback


def _shape(node: fx.Node) -> torch.Size:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise UnsupportedModuleError(f"no tensor shape for fx node {node.name!r} ({node.target})")
    return meta.shape



# --------------------------------------------------------------------------- the builder
class _Builder:
    def __init__(self, module: nn.Module, gm: fx.GraphModule) -> None:
        self.module = module
        self.gm = gm
        self.net = NetSpec()
        self.node_x: list[Tensor] = []  # per set [size, len(X_COLUMNS)]
        self.value: dict[fx.Node, int] = {}  # fx value -> node set
        self.consumed: set[int] = set()
        self.param_owner: dict[int, str] = {}  # id(param) -> first name
        p = next(module.parameters(), None)
        self.dtype = p.dtype if p is not None else torch.get_default_dtype()
        self.pending_input: fx.Node | None = None

    # ---- helpers
    def new_set(self, size: int, kind: str, layer: int, io: str | None = None) -> int:
        start = sum(s.size for s in self.net.sets)
        self.net.sets.append(NodeSet(start, size, kind, layer, io))
        self.node_x.append(torch.zeros(size, len(X_COLUMNS), dtype=self.dtype))
        return len(self.net.sets) - 1

    def layer_of(self, *sets: int) -> int:
        return 1 + max(self.net.sets[s].layer for s in sets)

    def add_block(self, src_set: int, dst_set: int, src: Tensor, dst: Tensor, etype: str,
                  values: Tensor | None) -> int:
        start = sum(b.src.numel() for b in self.net.blocks)
        width = 1 if values is None else values.size(1)
        self.net.blocks.append(EdgeBlock(start, src, dst, src_set, dst_set, etype,
                                         None if values is None else values.detach(), width))
        self.net.width = max(self.net.width, width)
        return len(self.net.blocks) - 1

    def dense_block(self, src_set: int, dst_set: int, etype: str, values: Tensor,
                    groups: int = 1) -> int:
        """Edges dst-major (matching ``weight[out, in]``); block-diagonal when ``groups > 1``."""
        n_in, n_out = self.net.sets[src_set].size, self.net.sets[dst_set].size
        in_g, out_g = n_in // groups, n_out // groups
        dst = torch.arange(n_out).repeat_interleave(in_g)
        src = (dst // out_g) * in_g + torch.arange(in_g).repeat(n_out)
        return self.add_block(src_set, dst_set, src, dst, etype, values)

    def identity_block(self, src_set: int, dst_set: int, etype: str) -> int:
        idx = torch.arange(self.net.sets[src_set].size)
        return self.add_block(src_set, dst_set, idx, idx, etype, None)

    def place(self, name: str, param: Tensor, seg: Seg) -> None:
        self.net.params.setdefault(name, []).append(seg)
        self.net.param_shapes[name] = param.shape

    def register_param(self, name: str, param: Tensor) -> bool:
        """Record ``name``; return ``False`` (and an alias) when it is tied to an earlier one."""
        first = self.param_owner.setdefault(id(param), name)
        if first != name:
            self.net.aliases[name] = first
            return False
        return True

    def node_param(self, set_id: int, col: str, name: str, param: Tensor | None,
                   sl: tuple[int, int] | None = None) -> None:
        if param is None:
            return
        val = param.detach() if sl is None else param.detach()[sl[0]:sl[1]]
        self.node_x[set_id][:, X_COLUMN_ID[col]] = val
        self.place(name, param, Seg("node", set_id, X_COLUMN_ID[col], sl))

    def input_set(self, node: fx.Node, chan: int | None, kind: str = "float",
                  size: int | None = None) -> int:
        """The set of an fx value; a placeholder gets its set from its first consumer."""
        if node in self.value:
            s = self.value[node]
            if node.op == "placeholder" and chan is not None:
                lay = self.net.layout[s]
                if lay.chan != chan % lay.ndim:
                    raise UnsupportedModuleError(
                        f"input {node.name!r} is used with channel dims {lay.chan} and {chan}")
            self.consumed.add(s)
            return s
        if node.op != "placeholder":
            raise UnsupportedModuleError(f"fx node {node.name!r} ({node.op} {node.target}) has no "
                                         "node set: an unsupported operation produced it")
        shape = _shape(node)
        if kind == "tokens":
            s = self.new_set(size, "token", 0, "input")
            self.net.input_kind = "tokens"
            lay = Layout(chan=len(shape), ndim=len(shape) + 1)  # one-hot dim appended
        else:
            if chan is None:
                raise UnsupportedModuleError(f"cannot tell the channel dim of input {node.name!r}")
            chan = chan % len(shape)
            s = self.new_set(int(shape[chan]), "input", 0, "input")
            lay = Layout(chan=chan, ndim=len(shape))
        self.net.layout[s] = lay
        self.net.input_set, self.net.input_layout = s, lay
        self.net.fixed.add(s)
        self.value[node] = s
        self.consumed.add(s)
        return s

    def module_of(self, node: fx.Node) -> nn.Module:
        return self.gm.get_submodule(node.target)

    def param_name(self, node: fx.Node, attr: str) -> str:
        return f"{node.target}.{attr}"

    # ---- handlers for parameterised layers
    def linear(self, node: fx.Node, m: nn.Linear) -> None:
        src_node = node.args[0]
        s = self.input_set(src_node, -1)
        lay = self.net.layout[s]
        n_in = self.net.sets[s].size
        inner = lay.inner or 1
        if lay.inner is None and lay.chan != lay.ndim - 1:
            raise UnsupportedModuleError(
                f"Linear {node.target!r} is applied to a tensor whose channels are not last")
        if n_in * inner != m.in_features:
            raise UnsupportedModuleError(
                f"Linear {node.target!r} expects {m.in_features} features, its input has "
                f"{n_in} channels x {inner} positions")
        o = self.new_set(m.out_features, "neuron", self.layer_of(s))
        etype = "flatten_linear" if lay.inner is not None and inner > 1 else "linear"
        name = self.param_name(node, "weight")
        w = m.weight.detach().reshape(m.out_features * n_in, inner)
        b = self.dense_block(s, o, etype, w)
        if self.register_param(name, m.weight):
            self.place(name, m.weight, Seg("edge", b, 0, None))
        self.net.param_axes.setdefault(name, []).extend([(0, o), (1, s)])
        if m.bias is not None and self.register_param(self.param_name(node, "bias"), m.bias):
            self.node_param(o, "bias", self.param_name(node, "bias"), m.bias)
        out_shape = _shape(node)
        self.net.layout[o] = Layout(chan=len(out_shape) - 1, ndim=len(out_shape))
        self.net.program.append(Op("linear", o, [s], [b], {"inner": lay.inner,
                                                             "bias": m.bias is not None}))
        self.value[node] = o

    def conv(self, node: fx.Node, m: nn.Conv1d | nn.Conv2d) -> None:
        if m.padding_mode != "zeros":
            raise UnsupportedModuleError(f"Conv {node.target!r}: padding_mode={m.padding_mode!r} "
                                         "is not supported (only 'zeros')")
        s = self.input_set(node.args[0], 1)
        lay = self.net.layout[s]
        if lay.inner is not None or lay.chan != 1:
            raise UnsupportedModuleError(f"Conv {node.target!r} needs a [B, C, ...] input")
        o = self.new_set(m.out_channels, "channel", self.layer_of(s))
        k = math.prod(m.kernel_size)
        w = m.weight.detach().reshape(-1, k)
        b = self.dense_block(s, o, "conv", w, groups=m.groups)
        name = self.param_name(node, "weight")
        if self.register_param(name, m.weight):
            self.place(name, m.weight, Seg("edge", b, 0, None))
        if m.groups > 1:
            self.net.blocked.append(([s, o], m.groups, f"conv:{node.target}"))
        else:
            self.net.param_axes.setdefault(name, []).extend([(0, o), (1, s)])
        if m.bias is not None and self.register_param(self.param_name(node, "bias"), m.bias):
            self.node_param(o, "bias", self.param_name(node, "bias"), m.bias)
        self.net.layout[o] = Layout(chan=1, ndim=len(_shape(node)))
        cfg = {"dim": len(m.kernel_size), "kernel": tuple(m.kernel_size), "stride": m.stride,
               "padding": m.padding, "dilation": m.dilation, "bias": m.bias is not None}
        self.net.program.append(Op("conv", o, [s], [b], cfg))
        self.value[node] = o

    def batchnorm(self, node: fx.Node, m: nn.modules.batchnorm._BatchNorm) -> None:
        if not m.track_running_stats or m.running_mean is None:
            raise UnsupportedModuleError(
                f"BatchNorm {node.target!r} without running statistics is not a fixed function")
        s = self.input_set(node.args[0], 1)
        o = self._norm_set(node, s)
        for col, attr in (("weight", "weight"), ("bias", "bias"), ("running_mean", "running_mean"),
                          ("running_var", "running_var")):
            t = getattr(m, attr)
            if t is not None and self.register_param(self.param_name(node, attr), t):
                self.node_param(o, col, self.param_name(node, attr), t)
        cfg = {"eps": m.eps, "affine": m.affine}
        self.net.program.append(Op("batchnorm", o, [s], [self._last_block], cfg))
        self.value[node] = o

    def layernorm(self, node: fx.Node, m: nn.LayerNorm) -> None:
        if len(m.normalized_shape) != 1:
            raise UnsupportedModuleError(
                f"LayerNorm {node.target!r}: only a 1-D normalized_shape is supported")
        s = self.input_set(node.args[0], -1)
        lay = self.net.layout[s]
        if lay.inner is not None or lay.chan != lay.ndim - 1:
            raise UnsupportedModuleError(f"LayerNorm {node.target!r} must normalise the last dim")
        o = self._norm_set(node, s)
        for col, attr in (("weight", "weight"), ("bias", "bias")):
            t = getattr(m, attr, None)
            if t is not None and self.register_param(self.param_name(node, attr), t):
                self.node_param(o, col, self.param_name(node, attr), t)
        cfg = {"eps": m.eps, "weight": m.weight is not None, "bias": getattr(m, "bias", None)
               is not None}
        self.net.program.append(Op("layernorm", o, [s], [self._last_block], cfg))
        self.value[node] = o

    def _norm_set(self, node: fx.Node, s: int) -> int:
        o = self.new_set(self.net.sets[s].size, "norm", self.layer_of(s))
        self._last_block = self.identity_block(s, o, "identity")
        self.net.layout[o] = copy.copy(self.net.layout[s])
        self.net.ties.append((s, o))
        return o

    def embedding(self, node: fx.Node, m: nn.Embedding) -> None:
        if m.max_norm is not None:
            raise UnsupportedModuleError(f"Embedding {node.target!r}: max_norm is not supported")
        s = self.input_set(node.args[0], None, kind="tokens", size=m.num_embeddings)
        o = self.new_set(m.embedding_dim, "embedding", self.layer_of(s))
        w = m.weight.detach().t().reshape(-1, 1)  # dst-major: [dim, vocab]
        b = self.dense_block(s, o, "embedding", w)
        name = self.param_name(node, "weight")
        if self.register_param(name, m.weight):
            self.place(name, m.weight, Seg("edge", b, 0, None, transpose=True))
        self.net.param_axes.setdefault(name, []).extend([(0, s), (1, o)])
        out_shape = _shape(node)
        self.net.layout[o] = Layout(chan=len(out_shape) - 1, ndim=len(out_shape))
        self.net.program.append(Op("embedding", o, [s], [b], {}))
        self.value[node] = o

    def attention(self, node: fx.Node, m: nn.MultiheadAttention) -> None:
        bad = []
        if not m._qkv_same_embed_dim:
            bad.append("kdim/vdim different from embed_dim")
        if m.bias_k is not None:
            bad.append("add_bias_kv")
        if m.add_zero_attn:
            bad.append("add_zero_attn")
        extra = set(node.kwargs) - {"need_weights", "average_attn_weights"}
        if len(node.args) > 3 or extra:
            bad.append(f"extra arguments {sorted(extra) or node.args[3:]} (masks are not encoded)")
        if bad:
            raise UnsupportedModuleError(f"MultiheadAttention {node.target!r}: "
                                         f"{', '.join(bad)} not supported")
        users = list(node.users)
        if any(u.target is not operator.getitem for u in users):
            raise UnsupportedModuleError(f"MultiheadAttention {node.target!r}: use its output "
                                         "through [0]")
        q_in, k_in, v_in = (self.input_set(a, -1) for a in node.args[:3])
        for si in (q_in, k_in, v_in):
            lay = self.net.layout[si]
            if lay.inner is not None or lay.chan != lay.ndim - 1 or lay.ndim != 3:
                raise UnsupportedModuleError(f"MultiheadAttention {node.target!r} needs 3-D "
                                             "inputs with features last")
        d, h = m.embed_dim, m.num_heads
        layer = self.layer_of(q_in, k_in, v_in)
        qs = self.new_set(d, "attn_query", layer)
        ks = self.new_set(d, "attn_key", layer)
        vs = self.new_set(d, "attn_value", layer)
        hs = self.new_set(h, "attn_head", layer)
        os_ = self.new_set(d, "attn_out", layer + 1)
        w_in = m.in_proj_weight.detach()
        in_name = self.param_name(node, "in_proj_weight")
        own = self.register_param(in_name, m.in_proj_weight)
        blocks = []
        bias_name = self.param_name(node, "in_proj_bias")
        own_b = m.in_proj_bias is not None and self.register_param(bias_name, m.in_proj_bias)
        for i, (si, so, et) in enumerate(((q_in, qs, "attn_q"), (k_in, ks, "attn_k"),
                                          (v_in, vs, "attn_v"))):
            b = self.dense_block(si, so, et, w_in[i * d:(i + 1) * d].reshape(-1, 1))
            blocks.append(b)
            if own:
                self.place(in_name, m.in_proj_weight, Seg("edge", b, 0, (i * d, (i + 1) * d)))
            if own_b:
                self.node_param(so, "bias", bias_name, m.in_proj_bias, (i * d, (i + 1) * d))
        # heads as heads: membership edges head -> its q/k/v nodes, and q_i <-> k_i pairing edges
        dh = d // h
        head_of = torch.arange(d) // dh
        for tgt in (qs, ks, vs):
            self.add_block(hs, tgt, head_of, torch.arange(d), "attn_head", None)
        self.identity_block(qs, ks, "attn_qk")
        b_out = self.dense_block(vs, os_, "attn_out",
                                 m.out_proj.weight.detach().reshape(-1, 1))
        out_name = f"{node.target}.out_proj.weight"
        if self.register_param(out_name, m.out_proj.weight):
            self.place(out_name, m.out_proj.weight, Seg("edge", b_out, 0, None))
        ob_name = f"{node.target}.out_proj.bias"
        if m.out_proj.bias is not None and self.register_param(ob_name, m.out_proj.bias):
            self.node_param(os_, "bias", ob_name, m.out_proj.bias)
        self.net.ties.append((qs, ks))
        self.net.blocked.append(([qs, ks, vs], h, f"attn:{node.target}"))
        self.net.blocked.append(([hs], h, f"attn:{node.target}"))
        for sid in (qs, ks, vs, os_):
            self.net.layout[sid] = copy.copy(self.net.layout[q_in])
        self.net.layout[hs] = copy.copy(self.net.layout[q_in])
        cfg = {"heads": h, "batch_first": m.batch_first,
               "in_bias": m.in_proj_bias is not None, "out_bias": m.out_proj.bias is not None,
               "sets": (qs, ks, vs, hs)}
        self.net.program.append(Op("attention", os_, [q_in, k_in, v_in], [*blocks, b_out], cfg))
        for u in users:
            if u.args[1] == 0:
                self.value[u] = os_
        self.value[node] = os_

    def add(self, node: fx.Node, a: fx.Node, b: fx.Node) -> None:
        sa, sb = self.input_set(a, None), self.input_set(b, None)
        la, lb = self.net.layout[sa], self.net.layout[sb]
        if (la.chan, la.ndim, la.inner) != (lb.chan, lb.ndim, lb.inner) or \
                _shape(a) != _shape(b) or self.net.sets[sa].size != self.net.sets[sb].size:
            raise UnsupportedModuleError(f"add {node.name!r}: operands with different layouts "
                                         f"{list(_shape(a))} and {list(_shape(b))}")
        o = self.new_set(self.net.sets[sa].size, "sum", self.layer_of(sa, sb))
        blocks = [self.identity_block(sa, o, "residual"), self.identity_block(sb, o, "residual")]
        self.net.ties.extend([(sa, o), (sb, o)])
        self.net.layout[o] = copy.copy(la)
        self.net.program.append(Op("sum", o, [sa, sb], blocks))
        self.value[node] = o

    # ---- parameter-free per-channel operations
    def channelwise(self, node: fx.Node, src: fx.Node, fn: Callable[[Tensor], Tensor],
                    act: str, flatten: bool = False) -> None:
        if src not in self.value and src.op == "placeholder":
            raise UnsupportedModuleError(f"{node.name!r}: a parameter-free operation directly on "
                                         "the network input is not supported")
        if src not in self.value:
            raise UnsupportedModuleError(f"fx node {src.name!r} ({src.op} {src.target}) has no "
                                         "node set: an unsupported operation produced it")
        s = self.value[src]
        already = s in self.consumed
        lay = self.net.layout[s]
        in_shape, out_shape = _shape(src), _shape(node)
        inner = None
        if flatten:
            if lay.chan != 1 or lay.inner is not None:
                raise UnsupportedModuleError(f"{node.name!r}: only flattening [B, C, ...] from "
                                             "dim 1 is supported")
            inner = math.prod(in_shape[2:])
            new_lay = Layout(chan=1, ndim=2, inner=inner)
        else:
            if len(out_shape) < lay.chan + 1 or out_shape[lay.chan] != in_shape[lay.chan]:
                raise UnsupportedModuleError(f"{node.name!r} ({node.target}) changes the channel "
                                             "dimension; it is not a per-channel operation")
            new_lay = Layout(chan=lay.chan, ndim=len(out_shape), inner=lay.inner)
        fuse = (len(src.users) == 1 and not already and s != self.net.input_set
                and not self.net.sets[s].io)
        if not fuse:
            o = self.new_set(self.net.sets[s].size, "identity", self.layer_of(s))
            b = self.identity_block(s, o, "identity")
            self.net.ties.append((s, o))
            self.net.layout[o] = copy.copy(lay)
            self.net.program.append(Op("copy", o, [s], [b]))
            self.consumed.add(s)
            s = o
        post = PostOp(fn, lay.chan, new_lay.chan, inner)
        self.net.post.setdefault(s, []).append(post)
        self.net.layout[s] = new_lay
        if act != "flatten":
            self.net.sets[s].act = act
        self.value[node] = s

    def alias(self, node: fx.Node, src: fx.Node) -> None:
        if src not in self.value:
            raise UnsupportedModuleError(f"{node.name!r}: identity applied to the raw input is not "
                                         "supported")
        self.value[node] = self.value[src]

    # ---- dispatch
    def run(self) -> NetSpec:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                self.output(node)
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "call_method":
                self.call_method(node)
            elif node.op == "get_attr":
                raise UnsupportedModuleError(
                    f"functional use of the tensor attribute {node.target!r}: only parameters of "
                    "supported modules can be encoded")
        self.finish()
        return self.net

    def call_module(self, node: fx.Node) -> None:
        m = self.module_of(node)
        t = type(m)
        if isinstance(m, nn.Linear):
            self.linear(node, m)
        elif isinstance(m, nn.Conv1d | nn.Conv2d):
            self.conv(node, m)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            self.batchnorm(node, m)
        elif isinstance(m, nn.LayerNorm):
            self.layernorm(node, m)
        elif isinstance(m, nn.MultiheadAttention):
            self.attention(node, m)
        elif isinstance(m, nn.Embedding):
            self.embedding(node, m)
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise UnsupportedModuleError(f"Flatten {node.target!r}: only start_dim=1, "
                                             "end_dim=-1 is supported")
            self.channelwise(node, node.args[0], nn.Flatten(), "flatten", flatten=True)
        elif isinstance(m, ALIAS_MODULES):
            self.alias(node, node.args[0])
        elif t in ACT_MODULES:
            self.channelwise(node, node.args[0], copy.deepcopy(m), ACT_MODULES[t])
        elif t in POOL_MODULES:
            self.channelwise(node, node.args[0], copy.deepcopy(m), POOL_MODULES[t])
        else:
            raise UnsupportedModuleError(
                f"module {node.target!r} of type {t.__module__}.{t.__qualname__} is not supported "
                f"by the neural/parameter views (supported: "
                f"{', '.join(sorted({c.__name__ for c in _SUPPORTED}))})")

    def call_function(self, node: fx.Node) -> None:
        f = node.target
        args = node.args
        tensors = [a for a in args if isinstance(a, fx.Node)]
        if f in (operator.add, torch.add) and len(tensors) == 2 and not node.kwargs:
            self.add(node, args[0], args[1])
        elif f in _SCALAR_OPS and len(tensors) == 1 and len(args) == 2 and \
                isinstance(args[1 - args.index(tensors[0])], numbers.Number):
            pos = args.index(tensors[0])
            c = args[1 - pos]
            fn = _ScalarOp(f, c, pos)
            self.channelwise(node, tensors[0], fn, "scalar")
        elif f in ACT_FUNCS:
            self.channelwise(node, args[0], _Call(f, args[1:], node.kwargs), ACT_FUNCS[f])
        elif f in POOL_FUNCS:
            self.channelwise(node, args[0], _Call(f, args[1:], node.kwargs), POOL_FUNCS[f])
        elif f is torch.flatten:
            self._flatten(node, args, node.kwargs)
        elif f is F.dropout:
            self.alias(node, args[0])
        elif f is operator.getitem and node.args[0] in self.value:
            if node not in self.value:
                raise UnsupportedModuleError(f"getitem {node.name!r} on a tensor is not supported")
        else:
            name = getattr(f, "__name__", str(f))
            raise UnsupportedModuleError(f"function {name!r} (fx node {node.name!r}) is not "
                                         "supported by the neural/parameter views")

    def _flatten(self, node: fx.Node, args: tuple, kwargs: dict) -> None:
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        if start != 1 or end != -1:
            raise UnsupportedModuleError(f"flatten {node.name!r}: only start_dim=1, end_dim=-1 "
                                         "is supported")
        self.channelwise(node, args[0], nn.Flatten(), "flatten", flatten=True)

    def call_method(self, node: fx.Node) -> None:
        name = node.target
        if name in ACT_METHODS:
            self.channelwise(node, node.args[0], _Method(name, node.args[1:], node.kwargs),
                             ACT_METHODS[name])
        elif name == "flatten":
            self._flatten(node, node.args, node.kwargs)
        elif name == "contiguous":
            self.alias(node, node.args[0])
        elif name == "mean":
            self.channelwise(node, node.args[0], _Method(name, node.args[1:], node.kwargs), "mean")
        else:
            raise UnsupportedModuleError(f"tensor method {name!r} (fx node {node.name!r}) is not "
                                         "supported by the neural/parameter views")

    def output(self, node: fx.Node) -> None:
        out = node.args[0]
        if not isinstance(out, fx.Node) or out not in self.value:
            raise UnsupportedModuleError("the network must return a single tensor computed by "
                                         "supported layers")
        s = self.value[out]
        if s == self.net.input_set:
            raise UnsupportedModuleError("the network output is its input")
        self.net.sets[s].io = "output"
        self.net.fixed.add(s)
        self.net.output_set = s
        self.net.output_layout = self.net.layout[s]

    def finish(self) -> None:
        net = self.net
        net.num_neural_nodes = sum(s.size for s in net.sets)
        net.num_neural_edges = sum(b.src.numel() for b in net.blocks)
        self.x = torch.cat(self.node_x) if self.node_x else torch.zeros(0, len(X_COLUMNS))


class _Call:
    """A picklable ``f(x, *args, **kwargs)``."""

    def __init__(self, f: Callable, args: tuple, kwargs: dict) -> None:
        self.f, self.args, self.kwargs = f, tuple(args), dict(kwargs)

    def __call__(self, x: Tensor) -> Tensor:
        return self.f(x, *self.args, **self.kwargs)


class _Method(_Call):
    def __init__(self, name: str, args: tuple, kwargs: dict) -> None:
        super().__init__(getattr(torch.Tensor, name), args, kwargs)


class _ScalarOp:
    def __init__(self, f: Callable, c: Any, pos: int) -> None:
        self.f, self.c, self.pos = f, c, pos

    def __call__(self, x: Tensor) -> Tensor:
        return self.f(x, self.c) if self.pos == 0 else self.f(self.c, x)


def build_net(module: nn.Module, gm: fx.GraphModule) -> tuple[NetSpec, Tensor]:
    """Expand a shape-propagated fx graph of ``module`` into its :class:`NetSpec` and the
    neural-view node features ``x`` ``[N, len(X_COLUMNS)]``."""
    builder = _Builder(module, gm)
    net = builder.run()
    return net, builder.x
