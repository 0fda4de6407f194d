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
edges; op view 70 nodes / 77 edges (``benchmarks/results/metanets_speed.md`` has the timings).
"""

from __future__ import annotations

import copy
import math
import numbers
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.fx.passes.shape_prop import ShapeProp
from torch_geometric.data import Data

__all__ = [
    "to_graph",
    "graph_to_state_dict",
    "graph_forward",
    "pad_edge_attr",
    "UnsupportedModuleError",
    "NODE_TYPES",
    "EDGE_TYPES",
    "OP_TYPES",
    "ACT_TYPES",
    "X_COLUMNS",
    "VIEWS",
]

VIEWS = ("neural", "parameter", "op")

#: node types of the neural and parameter views (``graph.node_type`` indexes this tuple)
NODE_TYPES: tuple[str, ...] = (
    "input", "neuron", "channel", "norm", "sum", "identity", "embedding", "token",
    "attn_query", "attn_key", "attn_value", "attn_head", "attn_out",
    # parameter-view parameter nodes
    "bias", "norm_weight", "norm_bias", "norm_mean", "norm_var",
)
#: edge types of the neural and parameter views (``graph.edge_type`` indexes this tuple)
EDGE_TYPES: tuple[str, ...] = (
    "linear", "conv", "flatten_linear", "identity", "residual", "embedding",
    "attn_q", "attn_k", "attn_v", "attn_out", "attn_qk", "attn_head",
    # parameter-view edges out of parameter nodes
    "bias", "norm_weight", "norm_bias", "norm_mean", "norm_var",
)
#: element-wise / channel-wise operations recorded on nodes (``graph.node_act``); 0 = none
ACT_TYPES: tuple[str, ...] = (
    "none", "relu", "gelu", "tanh", "sigmoid", "silu", "leaky_relu", "elu", "softplus", "relu6",
    "hardtanh", "mish", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "mean",
    "flatten", "scalar", "other",
)
#: op types of the op view (``graph.node_type`` in ``view="op"``)
OP_TYPES: tuple[str, ...] = (
    "input", "output", "linear", "conv1d", "conv2d", "batchnorm", "layernorm", "add", "mul",
    "flatten", "pool", "activation", "attention", "embedding", "getitem", "dropout", "reshape",
    "other",
)
#: float node-feature columns of the neural view
X_COLUMNS: tuple[str, ...] = ("bias", "weight", "running_mean", "running_var")

_NT = {n: i for i, n in enumerate(NODE_TYPES)}
_ET = {n: i for i, n in enumerate(EDGE_TYPES)}
_AT = {n: i for i, n in enumerate(ACT_TYPES)}
_OT = {n: i for i, n in enumerate(OP_TYPES)}
_XC = {n: i for i, n in enumerate(X_COLUMNS)}


class UnsupportedModuleError(ValueError):
    """A module or operation that the neural/parameter views cannot represent."""


# --------------------------------------------------------------------------- IR records
@dataclass
class NodeSet:
    """A set of neuron nodes: the channels of one intermediate tensor."""

    start: int
    size: int
    kind: str
    layer: int
    io: str | None = None  # "input" / "output" / None
    act: str = "none"


@dataclass
class EdgeBlock:
    """A block of edges from one node set to another (one weight matrix, one residual, ...)."""

    start: int  # first neural-view edge
    src: Tensor  # local source indices (within ``src_set``)
    dst: Tensor
    src_set: int
    dst_set: int
    etype: str
    values: Tensor | None  # [n, width] weights; ``None`` = structural value-1 edge
    width: int = 1


@dataclass
class Seg:
    """Where one slice of a parameter lives: ``attr[start:start+rows, col:col+width]``.

    ``value = param[sl]``, transposed if ``transpose``, reshaped to ``[rows, width]``.
    """

    kind: str  # "edge" (an EdgeBlock) or "node" (a node-feature column of a NodeSet)
    ref: int  # block id or set id
    col: int
    sl: tuple[int, int] | None
    transpose: bool = False


@dataclass
class Op:
    """One step of :func:`graph_forward` (a layer of message passing)."""

    kind: str
    out: int  # output set
    ins: list[int]  # input sets
    blocks: list[int]  # edge blocks aggregated into ``out``
    cfg: dict[str, Any] = field(default_factory=dict)


@dataclass
class PostOp:
    """A parameter-free per-channel operation applied to a set after aggregation."""

    fn: Callable[[Tensor], Tensor]
    chan_in: int  # channel dim of the module-space tensor before ``fn``
    chan_out: int
    flat_inner: int | None = None  # set when ``fn`` is a Flatten that folds spatial positions


@dataclass
class Layout:
    """How a set's node-space tensor ``[C, *rest]`` maps to the module's tensor."""

    chan: int
    ndim: int
    inner: int | None = None  # Flatten folded ``inner`` positions per channel into the feature dim


class NetSpec:
    """Non-tensor description of a converted network, stored on the graph as ``graph.net``.

    Holds the node sets, edge blocks, the :func:`graph_forward` program, where each parameter lives
    (for :func:`graph_to_state_dict`) and the symmetry constraints used by
    :func:`~graphlab.metanets.permutation_spec`.
    """

    def __init__(self) -> None:
        self.view = "neural"
        self.sets: list[NodeSet] = []
        self.blocks: list[EdgeBlock] = []
        self.program: list[Op] = []
        self.post: dict[int, list[PostOp]] = {}
        self.layout: dict[int, Layout] = {}
        self.params: dict[str, list[Seg]] = {}
        self.param_shapes: dict[str, torch.Size] = {}
        self.aliases: dict[str, str] = {}  # tied parameter name -> name it is stored under
        self.input_set: int | None = None
        self.input_kind = "float"
        self.input_layout: Layout | None = None
        self.output_set: int | None = None
        self.output_layout: Layout | None = None
        self.width = 1  # neural-view edge_attr width
        # symmetry constraints (see symmetry.py)
        self.ties: list[tuple[int, int]] = []
        self.fixed: set[int] = set()
        self.blocked: list[tuple[list[int], int, str]] = []  # (sets, num_blocks, family key)
        self.param_axes: dict[str, list[tuple[int, int]]] = {}  # name -> [(axis, set)]
        # parameter view bookkeeping
        self.pblock_start: list[int] = []
        self.pnode_param: dict[tuple[int, int], int] = {}  # (set, col) -> parameter-node id
        self.pset_edge_start: dict[tuple[int, int], int] = {}
        self.fallback: str | None = None
        self.input_shape: tuple[int, ...] = ()
        self.num_neural_nodes = 0
        self.num_neural_edges = 0

    def __repr__(self) -> str:
        return (f"NetSpec(view={self.view}, sets={len(self.sets)}, blocks={len(self.blocks)}, "
                f"ops={len(self.program)}, params={len(self.params)})")


# --------------------------------------------------------------------------- tracing
_ACT_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.GELU: "gelu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu",
    nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.Softplus: "softplus", nn.ReLU6: "relu6",
    nn.Hardtanh: "hardtanh", nn.Mish: "mish",
}
_POOL_MODULES: dict[type, str] = {
    nn.MaxPool1d: "maxpool", nn.MaxPool2d: "maxpool", nn.AvgPool1d: "avgpool",
    nn.AvgPool2d: "avgpool", nn.AdaptiveAvgPool1d: "adaptive_avgpool",
    nn.AdaptiveAvgPool2d: "adaptive_avgpool", nn.AdaptiveMaxPool1d: "adaptive_maxpool",
    nn.AdaptiveMaxPool2d: "adaptive_maxpool",
}
_ACT_FUNCS: dict[Any, str] = {
    F.relu: "relu", torch.relu: "relu", F.gelu: "gelu", torch.tanh: "tanh", F.tanh: "tanh",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.silu: "silu", F.leaky_relu: "leaky_relu",
    F.elu: "elu", F.softplus: "softplus", F.relu6: "relu6", F.hardtanh: "hardtanh", F.mish: "mish",
}
_POOL_FUNCS: dict[Any, str] = {
    F.max_pool1d: "maxpool", F.max_pool2d: "maxpool", F.avg_pool1d: "avgpool",
    F.avg_pool2d: "avgpool", F.adaptive_avg_pool1d: "adaptive_avgpool",
    F.adaptive_avg_pool2d: "adaptive_avgpool", F.adaptive_max_pool1d: "adaptive_maxpool",
    F.adaptive_max_pool2d: "adaptive_maxpool",
}
_ACT_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_ALIAS_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity)
_SCALAR_OPS = {operator.mul, operator.truediv, operator.add, operator.sub, torch.mul, torch.add}
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm,
              nn.MultiheadAttention, nn.Embedding, nn.Flatten, *_ALIAS_MODULES,
              *_ACT_MODULES, *_POOL_MODULES)


def _default_input(module: nn.Module) -> Tensor:
    """A small example input guessed from the first layer (pass ``example_input`` to override)."""
    p = next(module.parameters(), None)
    dtype = p.dtype if p is not None else torch.get_default_dtype()
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return torch.randn(2, m.in_features, dtype=dtype)
        if isinstance(m, nn.Conv1d):
            return torch.randn(2, m.in_channels, 16, dtype=dtype)
        if isinstance(m, nn.Conv2d):
            return torch.randn(2, m.in_channels, 16, 16, dtype=dtype)
        if isinstance(m, nn.Embedding):
            return torch.randint(0, m.num_embeddings, (2, 5))
        if isinstance(m, nn.MultiheadAttention):
            shape = (2, 5, m.embed_dim) if m.batch_first else (5, 2, m.embed_dim)
            return torch.randn(*shape, dtype=dtype)
        if isinstance(m, nn.LayerNorm):
            return torch.randn(2, *m.normalized_shape, dtype=dtype)
    raise ValueError(f"cannot guess an input for {type(module).__name__}; pass example_input")


def _trace(module: nn.Module, example_input: Tensor) -> tuple[fx.GraphModule, str | None]:
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
                    "is checked against the module's own output)")
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
        self.node_x[set_id][:, _XC[col]] = val
        self.place(name, param, Seg("node", set_id, _XC[col], sl))

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
        elif isinstance(m, _ALIAS_MODULES):
            self.alias(node, node.args[0])
        elif t in _ACT_MODULES:
            self.channelwise(node, node.args[0], copy.deepcopy(m), _ACT_MODULES[t])
        elif t in _POOL_MODULES:
            self.channelwise(node, node.args[0], copy.deepcopy(m), _POOL_MODULES[t])
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
        elif f in _ACT_FUNCS:
            self.channelwise(node, args[0], _Call(f, args[1:], node.kwargs), _ACT_FUNCS[f])
        elif f in _POOL_FUNCS:
            self.channelwise(node, args[0], _Call(f, args[1:], node.kwargs), _POOL_FUNCS[f])
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
        if name in _ACT_METHODS:
            self.channelwise(node, node.args[0], _Method(name, node.args[1:], node.kwargs),
                             _ACT_METHODS[name])
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


# --------------------------------------------------------------------------- materialising views
def _node_ints(net: NetSpec) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    node_type, layer, io, act = [], [], [], []
    for s in net.sets:
        node_type.append(torch.full((s.size,), _NT[s.kind]))
        layer.append(torch.full((s.size,), s.layer))
        io.append(torch.arange(s.size) if s.io else torch.full((s.size,), -1))
        act.append(torch.full((s.size,), _AT[s.act]))
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
        etype.append(torch.full((n,), _ET[b.etype]))
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
        etype.append(torch.full((n,), _ET[b.etype]))
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
        extra_type.append(_NT[kind])
        extra_layer.append(s.layer)
        net.pset_edge_start[(sid, col)] = count
        src.append(torch.full((s.size,), pid))
        dst.append(torch.arange(s.size) + s.start)
        val.append(x[s.start:s.start + s.size, col].to(dtype))
        epos.append(torch.full((s.size,), -1))
        etype.append(torch.full((s.size,), _ET[kind]))
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
                 (nn.Flatten, "flatten"), (_ALIAS_MODULES, "dropout"),
                 (tuple(_POOL_MODULES), "pool"), (tuple(_ACT_MODULES), "activation")]
        for cls, name in table:
            if isinstance(m, cls):
                return name, n
        return "other", n
    f = node.target
    if f in (operator.add, torch.add):
        return "add", 0
    if f in (operator.mul, torch.mul):
        return "mul", 0
    if f in _ACT_FUNCS or f in _ACT_METHODS:
        return "activation", 0
    if f in _POOL_FUNCS or f == "mean":
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
        types.append(_OT[t])
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
    against the module's own output on ``example_input`` and rejected if it differs.

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
            example_input = _default_input(module)
        gm, fallback = _trace(module, example_input)
        p = next(module.parameters(), None)
        dtype = p.dtype if p is not None else torch.get_default_dtype()
        if view == "op":
            g = _op_view(gm, dtype)
            g.net = None
            return g
        builder = _Builder(module, gm)
        net = builder.run()
        net.fallback = fallback
        net.input_shape = tuple(example_input.shape)
        g = _neural_view(net, builder.x, dtype)
        g.net = net
        if fallback is not None:
            with torch.no_grad():
                ref, got = module(example_input), graph_forward(g, example_input)
            if ref.shape != got.shape or not torch.allclose(ref, got, rtol=1e-4, atol=1e-5):
                raise UnsupportedModuleError(fallback + " -- and the fallback graph does not "
                                             "reproduce the module's output")
        if view == "parameter":
            pnet = copy.copy(net)
            pnet.view = "parameter"
            pg = _parameter_view(pnet, builder.x, dtype)
            pg.net = pnet
            return pg
        return g
    finally:
        module.train(was_training)


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


# --------------------------------------------------------------------------- inverse
def _seg_rows(net: NetSpec, seg: Seg) -> tuple[str, int, int, int]:
    """(attribute, first row, rows, width) of a segment in the graph's own view."""
    if seg.kind == "node":
        s = net.sets[seg.ref]
        if net.view == "parameter":
            return "edge_attr", net.pset_edge_start[(seg.ref, seg.col)], s.size, 1
        return "x", s.start, s.size, 1
    b = net.blocks[seg.ref]
    if net.view == "parameter":
        return "edge_attr", net.pblock_start[seg.ref], b.src.numel() * b.width, 1
    return "edge_attr", b.start, b.src.numel(), b.width


def graph_to_state_dict(graph: Data, module: nn.Module) -> dict[str, Tensor]:
    r"""Read the parameters back out of a neural- or parameter-view graph (exact inverse).

    Returns a full ``state_dict`` for ``module`` (same keys, shapes and dtypes); entries the graph
    does not encode (``num_batches_tracked``) are copied from ``module``. Edit ``graph.x`` /
    ``graph.edge_attr`` in place (same shapes) and load the result to edit the network; a tied
    parameter is read from its first use (edit all its uses alike), and structural edges
    (residual, identity, attention membership) and the zero padding of short kernels carry no
    parameters.
    """
    net = getattr(graph, "net", None)
    if not isinstance(net, NetSpec):
        raise ValueError("graph has no weights: use a graph from to_graph(..., view='neural' or "
                         "'parameter')")
    sd = module.state_dict()
    out: dict[str, Tensor] = {}
    for name, segs in net.params.items():
        if name not in sd:
            raise ValueError(f"module has no entry {name!r}; was the graph built from this "
                             "architecture?")
        ref = sd[name]
        if ref.shape != net.param_shapes[name]:
            raise ValueError(f"{name}: graph holds shape {list(net.param_shapes[name])}, module "
                             f"has {list(ref.shape)}")
        t = torch.empty_like(ref)
        for seg in segs:
            attr, start, rows, width = _seg_rows(net, seg)
            col = seg.col if (seg.kind == "node" and net.view == "neural") else 0
            block = graph[attr][start:start + rows, col:col + width]
            target = t if seg.sl is None else t[seg.sl[0]:seg.sl[1]]
            if seg.transpose:
                target.t().copy_(block.reshape(target.t().shape))
            else:
                target.copy_(block.reshape(target.shape))
        out[name] = t
    for alias, name in net.aliases.items():
        out[alias] = out[name]
    for key, val in sd.items():
        if key not in out:
            out[key] = val.clone()
    return {k: out[k] for k in sd}


# --------------------------------------------------------------------------- forward by MP
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
    return graph.x[s.start:s.start + s.size, _XC[col]]


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
    """
    net = getattr(graph, "net", None)
    if not isinstance(net, NetSpec) or net.view != "neural":
        raise ValueError("graph_forward needs a graph from to_graph(..., view='neural')")
    if net.input_kind == "tokens":
        if x.is_floating_point():
            raise ValueError("this network takes integer token ids")
        h_in = F.one_hot(x, net.sets[net.input_set].size).to(graph.edge_attr.dtype)
    else:
        if not x.is_floating_point():
            raise ValueError(f"x must be floating point, got {x.dtype}")
        h_in = x
    lay_in = net.input_layout
    if h_in.dim() != lay_in.ndim:
        raise ValueError(f"x must have {lay_in.ndim} dims (like the example input), "
                         f"got shape {list(x.shape)}")
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
