r"""The intermediate representation shared by the metanet converters.

A traced network becomes a :class:`NetSpec`: node sets (the channels of one tensor), edge blocks
(one weight matrix, one residual, ...), the program that :func:`~graphlab.metanets.graph_forward`
runs, where every parameter lives (for :func:`~graphlab.metanets.graph_to_state_dict`) and the
symmetry constraints read by :func:`~graphlab.metanets.permutation_spec`. The type vocabularies
(:data:`NODE_TYPES`, :data:`EDGE_TYPES`, ...) index the integer attributes of the graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = ["VIEWS", "NODE_TYPES", "EDGE_TYPES", "ACT_TYPES", "OP_TYPES", "X_COLUMNS",
           "NODE_TYPE_ID", "EDGE_TYPE_ID", "ACT_TYPE_ID", "OP_TYPE_ID", "X_COLUMN_ID",
           "UnsupportedModuleError", "NodeSet", "EdgeBlock", "Seg", "Op", "PostOp", "Layout",
           "NetSpec"]

#: the graph views :func:`~graphlab.metanets.to_graph` builds
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
    "flatten", "scalar", "other", "sine",
)
#: op types of the op view (``graph.node_type`` in ``view="op"``)
OP_TYPES: tuple[str, ...] = (
    "input", "output", "linear", "conv1d", "conv2d", "batchnorm", "layernorm", "add", "mul",
    "flatten", "pool", "activation", "attention", "embedding", "getitem", "dropout", "reshape",
    "other",
)
#: float node-feature columns of the neural view
X_COLUMNS: tuple[str, ...] = ("bias", "weight", "running_mean", "running_var")
#: name -> index lookups of the vocabularies above
NODE_TYPE_ID = {n: i for i, n in enumerate(NODE_TYPES)}
EDGE_TYPE_ID = {n: i for i, n in enumerate(EDGE_TYPES)}
ACT_TYPE_ID = {n: i for i, n in enumerate(ACT_TYPES)}
OP_TYPE_ID = {n: i for i, n in enumerate(OP_TYPES)}
X_COLUMN_ID = {n: i for i, n in enumerate(X_COLUMNS)}


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

