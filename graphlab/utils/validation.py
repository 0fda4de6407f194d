"""Input checks for public entry points (the ``sklearn.utils.validation`` idea).

Every message names what was expected and what arrived. These run once at a public boundary;
library internals trust their own tensors.

Cost policy
-----------
* **Shape, dtype and layout checks always run.** They read metadata only: no host sync, and
  ``torch.compile`` turns them into guards without breaking the graph.
* **Value checks** (index ranges, non-negativity, finiteness) need the data on the host
  (``int(t.max())``). They run

  - never while ``torch.compile`` / ``torch.jit`` / FX is tracing (the compiler cannot trace a
    host read without a graph break; PyG's ``propagate`` skips its own checks the same way);
  - always on CPU tensors in eager mode (a reduction, no device synchronisation);
  - on accelerator tensors (CUDA, ...) only when debugging is on, because every check would
    stall the device once per call. Debugging is on inside ``with graphlab.utils.validation.debug():``
    or PyG's ``with torch_geometric.debug():``, after ``set_debug(True)``, or when the environment
    variable ``GRAPHLAB_DEBUG=1`` is set. Without it an out-of-range index on a GPU surfaces as a
    device-side assert, as in PyG.

Index dtype policy
------------------
One policy for the whole library: index tensors (``edge_index``, ``batch``, ``index``) must be
``torch.int64``. ``int32`` is refused at the boundary with a message that says how to fix it
(``.long()``) instead of failing deep inside a scatter with ``expected scalar type Long``.

Floating dtype policy
---------------------
A float32 layer given float16/bfloat16/float64 input outside ``torch.autocast`` raises a
``ValueError`` naming both dtypes (:func:`check_input_dtype`); under autocast mixed inputs are
expected and pass.

Helpers for other modules: :func:`check_edge_index` (``[2, E]`` index tensors), :func:`check_adj`
(every ``Adj`` form ``propagate`` accepts: tensor, ``EdgeIndex``, ``torch.sparse`` ``adj_t``,
``SparseTensor``), :func:`check_index` / :func:`check_batch_vector` (1-D indices),
:func:`check_index_dtype`, :func:`check_input_dtype`, :func:`value_checks_enabled`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = [
    "check_edge_index",
    "check_adj",
    "check_node_features",
    "check_same_num_nodes",
    "check_batch_vector",
    "check_index",
    "check_index_dtype",
    "check_input_dtype",
    "check_edge_features",
    "check_finite",
    "check_floating",
    "is_sparse_adj",
    "value_checks_enabled",
    "debug",
    "set_debug",
    "is_debug_enabled",
]

_DEBUG = os.environ.get("GRAPHLAB_DEBUG", "").lower() in {"1", "true", "yes", "on"}

NodeCount = int | tuple[int | None, int | None] | None


def set_debug(enabled: bool) -> None:
    """Turn value checks on accelerator tensors on or off for the whole process."""
    global _DEBUG
    _DEBUG = bool(enabled)


def is_debug_enabled() -> bool:
    """``True`` inside :func:`debug`, PyG's ``torch_geometric.debug()``, or after ``set_debug(True)``."""
    if _DEBUG:
        return True
    try:
        import torch_geometric

        return bool(torch_geometric.is_debug_enabled())
    except (ImportError, AttributeError):  # pragma: no cover - very old PyG
        return False


@contextlib.contextmanager
def debug() -> Iterator[None]:
    """Context manager: run value checks on every device (a host sync per check)."""
    global _DEBUG
    old = _DEBUG
    _DEBUG = True
    try:
        yield
    finally:
        _DEBUG = old


def _tracing() -> bool:
    if torch.compiler.is_compiling() or torch.jit.is_scripting() or torch.jit.is_tracing():
        return True
    fx = torch.fx._symbolic_trace
    # is_fx_symbolic_tracing (torch >= 2.5) is the FX-only test; is_fx_tracing warns on newer torch
    check = getattr(fx, "is_fx_symbolic_tracing", None) or getattr(fx, "is_fx_tracing", None)
    return bool(check()) if check is not None else False


def value_checks_enabled(t: Tensor) -> bool:
    """Whether checks that read ``t``'s values (a host sync) should run now (see module doc)."""
    if _tracing():
        return False
    return t.device.type == "cpu" or is_debug_enabled()


def _shape(t: Tensor) -> str:
    return str(list(t.shape))


def is_sparse_adj(adj: object) -> bool:
    """``True`` for a ``torch.sparse`` tensor or a ``torch_sparse.SparseTensor``."""
    if isinstance(adj, Tensor):
        return adj.layout != torch.strided
    from torch_geometric.typing import WITH_TORCH_SPARSE

    if WITH_TORCH_SPARSE:
        from torch_geometric.typing import SparseTensor

        return isinstance(adj, SparseTensor)
    return False


def check_index_dtype(index: Tensor, name: str = "index") -> None:
    """Index tensors must be ``torch.int64`` (the library-wide policy, see the module doc)."""
    if index.dtype == torch.int64:
        return
    if index.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError(f"{name} must be torch.int64 (long), got {index.dtype}; call .long()")
    raise ValueError(f"{name} must be torch.int64 (long), got {index.dtype}")


def _sizes(num_nodes: NodeCount) -> tuple[int | None, int | None]:
    if num_nodes is None or isinstance(num_nodes, int):
        return num_nodes, num_nodes
    src, dst = num_nodes
    return src, dst


def check_edge_index(edge_index: Tensor, num_nodes: NodeCount = None,
                     name: str = "edge_index") -> None:
    """Check that ``edge_index`` is a ``torch.int64`` tensor of shape ``[2, E]`` with ids in range.

    ``num_nodes`` is the node count, or ``(num_src, num_dst)`` for bipartite message passing
    (row 0 indexes sources, row 1 targets). PyG's ``EdgeIndex`` passes like a tensor. Sparse
    adjacencies are refused here; layers that accept them call :func:`check_adj`.
    """
    if not isinstance(edge_index, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(edge_index).__name__}")
    if edge_index.layout != torch.strided:
        raise ValueError(f"{name} must be a dense [2, E] index tensor, got a sparse tensor "
                         f"({edge_index.layout}); this entry point does not take adj_t")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, E], got {_shape(edge_index)}")
    check_index_dtype(edge_index, name)
    n_src, n_dst = _sizes(num_nodes)
    if edge_index.numel() == 0 or (n_src is None and n_dst is None):
        return
    if not value_checks_enabled(edge_index):
        return
    if n_src == n_dst:  # one reduction and one host read for the common homogeneous case
        rows = ((edge_index, n_src, "node ids"),)
    else:
        rows = ((edge_index[0], n_src, f"source node ids ({name}[0])"),
                (edge_index[1], n_dst, f"target node ids ({name}[1])"))
    for ids, n, what in rows:
        if n is None:
            continue
        lo, hi = (int(v) for v in torch.stack(torch.aminmax(ids)).tolist())
        if lo < 0 or hi >= n:
            raise ValueError(f"{name} holds {what} in [{lo}, {hi}], outside the valid range "
                             f"[0, {n - 1}] for {n} nodes")


def check_adj(adj: object, num_nodes: NodeCount = None, name: str = "edge_index") -> None:
    """Check any adjacency form PyG's ``propagate`` accepts.

    A ``[2, E]`` tensor or ``EdgeIndex`` goes through :func:`check_edge_index`. A ``torch.sparse``
    tensor (COO, CSR or CSC) or a ``SparseTensor`` is the *transposed* adjacency ``adj_t`` of
    shape ``[num_dst, num_src]`` (row = target); its shape is checked against ``num_nodes``.
    """
    if isinstance(adj, Tensor) and adj.layout == torch.strided:
        check_edge_index(adj, num_nodes, name)
        return
    if not is_sparse_adj(adj):
        raise ValueError(f"{name} must be a [2, E] torch.int64 tensor, an EdgeIndex, a "
                         f"torch.sparse adj_t or a SparseTensor, got {type(adj).__name__}")
    if isinstance(adj, Tensor):
        if adj.layout not in (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc):
            raise ValueError(f"{name} as a sparse tensor must be COO, CSR or CSC, got {adj.layout}")
        if adj.sparse_dim() != 2:
            raise ValueError(f"{name} as a sparse adj_t must have 2 sparse dimensions "
                             f"[num_dst, num_src], got shape {_shape(adj)}")
        rows, cols = adj.size(0), adj.size(1)
    else:
        rows, cols = adj.size(0), adj.size(1)
    n_src, n_dst = _sizes(num_nodes)
    if (n_dst is not None and rows != n_dst) or (n_src is not None and cols != n_src):
        raise ValueError(f"{name} as a sparse adj_t must have shape [num_dst, num_src] = "
                         f"[{n_dst}, {n_src}], got [{rows}, {cols}]")


def check_index(index: Tensor, dim_size: int | None = None, size: int | None = None,
                name: str = "index") -> None:
    """Check a 1-D ``torch.int64`` segment index (aggregation target or batch vector)."""
    if not isinstance(index, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dim() != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {_shape(index)}")
    check_index_dtype(index, name)
    if size is not None and index.numel() != size:
        raise ValueError(f"{name} must have {size} entries (one per input row), got {index.numel()}")
    if not index.numel() or not value_checks_enabled(index):
        return
    if dim_size is not None:
        lo, hi = int(index.min()), int(index.max())
        if lo < 0 or hi >= dim_size:
            raise ValueError(f"{name} holds ids in [{lo}, {hi}], outside [0, {dim_size - 1}]")
    elif int(index.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {int(index.min())}")


def check_floating(t: Tensor, name: str) -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")


def check_input_dtype(t: Tensor, reference: torch.nn.Module | Tensor | torch.dtype | None,
                      name: str = "x") -> None:
    """A floating input must match the layer's floating dtype unless ``torch.autocast`` is on.

    ``reference`` is a module (its first floating parameter or buffer is used), a tensor or a
    dtype; ``None`` or a module without floating parameters passes. Without this check a float16
    input to a float32 layer fails with ``mat1 and mat2 must have the same dtype``.
    """
    if reference is None or not t.is_floating_point():
        return
    if isinstance(reference, torch.nn.Module):
        ref = next((p.dtype for p in reference.parameters() if p.is_floating_point()), None)
        if ref is None:
            ref = next((b.dtype for b in reference.buffers() if b.is_floating_point()), None)
    elif isinstance(reference, Tensor):
        ref = reference.dtype
    else:
        ref = reference
    if ref is None or t.dtype == ref:
        return
    if torch.is_autocast_enabled(t.device.type):
        return
    raise ValueError(f"{name} has dtype {t.dtype} but the layer computes in {ref}; cast the input "
                     f"(.to({ref})) or the layer (.to({t.dtype})), or run under torch.autocast")


def check_node_features(x: Tensor, name: str = "x", channels: int | None = None,
                        num_nodes: int | None = None, ndim: int = 2) -> None:
    """Check a floating node-feature matrix ``[N, channels]``."""
    check_floating(x, name)
    if x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {_shape(x)}")
    if channels is not None and x.size(-1) != channels:
        raise ValueError(f"{name} must have {channels} channels in its last dimension, "
                         f"got shape {_shape(x)}")
    if num_nodes is not None and x.size(0) != num_nodes:
        raise ValueError(f"{name} must have {num_nodes} rows (one per node), got shape {_shape(x)}")


def check_edge_features(edge_attr: Tensor, num_edges: int, channels: int | None = None,
                        name: str = "edge_attr") -> None:
    """Check per-edge features ``[E]`` or ``[E, channels]``."""
    check_floating(edge_attr, name)
    if edge_attr.size(0) != num_edges:
        raise ValueError(f"{name} must have {num_edges} rows (one per edge), got shape "
                         f"{_shape(edge_attr)}")
    if channels is not None:
        width = 1 if edge_attr.dim() == 1 else edge_attr.size(-1)
        if width != channels:
            raise ValueError(f"{name} must have {channels} channels, got shape {_shape(edge_attr)}")


def check_same_num_nodes(**tensors: Tensor | None) -> int:
    """Check that all given node-level tensors have the same number of rows; return it."""
    sizes = {k: v.size(0) for k, v in tensors.items() if v is not None}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k} has {n}" for k, n in sizes.items())
        raise ValueError(f"node-level inputs must have the same number of rows: {detail}")
    return next(iter(sizes.values())) if sizes else 0


def check_batch_vector(batch: Tensor | None, num_nodes: int, name: str = "batch") -> None:
    """Check a graph-membership vector ``[N]`` (``torch.int64``) with values in ``[0, B)``."""
    if batch is None:
        return
    check_index(batch, size=num_nodes, name=name)


def check_finite(t: Tensor, name: str) -> None:
    """``NaN``/``inf`` check: a value check, so it follows the cost policy in the module doc."""
    if not value_checks_enabled(t):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
