"""Private segment helpers shared by the aggregations of :mod:`graphlab.aggr`.

An aggregation receives rows ``x`` and a (possibly unsorted) segment ``index``; these helpers
validate that input at the public boundary and compute, with tensor ops only, a stable sort of the
rows by segment (optionally by a secondary key inside each segment), the segment sizes and each
row's rank inside its segment. Nothing is padded to the largest segment, so memory stays
proportional to the number of rows.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from graphlab.utils.validation import check_floating, check_index, value_checks_enabled


def prepare_inputs(x: Tensor, index: Tensor | None, ptr: Tensor | None, dim_size: int | None,
                   dim: int) -> tuple[Tensor, int]:
    """Validate an aggregation call and return ``(index, dim_size)`` as a long index.

    ``ptr`` (CSR boundaries of sorted rows) is converted to an index so that every code path
    works on unsorted input. Errors follow PyG's :class:`~torch_geometric.nn.aggr.Aggregation`
    (``"Encountered invalid 'dim_size' (got '3' but expected >= '5')"``). Checks of index
    values read them on the host, so they follow :mod:`graphlab.utils.validation`'s policy (never
    while ``torch.compile`` traces, on accelerators only in debug mode); shape and dtype checks
    always run.
    """
    check_floating(x, "x")
    if x.dim() != 2:
        raise ValueError(f"Aggregation requires two-dimensional inputs [num_elements, channels] "
                         f"(got shape {list(x.shape)})")
    if dim not in (0, -2):
        raise ValueError(f"Aggregation needs to perform aggregation in first dimension (got "
                         f"'{dim}')")
    if dim_size is not None and (isinstance(dim_size, bool)
                                 or not isinstance(dim_size, (int, torch.SymInt))
                                 or dim_size < 0):
        raise ValueError(f"Encountered invalid 'dim_size' (got '{dim_size}' but expected a "
                         f"non-negative int)")
    if ptr is not None:
        check_index(ptr, name="ptr")
        if ptr.numel() == 0:
            raise ValueError("ptr must hold at least one entry (0), got an empty tensor")
        if dim_size is not None and dim_size != ptr.numel() - 1:
            raise ValueError(f"Encountered invalid 'dim_size' (got '{dim_size}' but expected "
                             f"'{ptr.numel() - 1}')")
        if value_checks_enabled(ptr) and (int(ptr[0]) != 0 or int(ptr[-1]) != x.size(0)
                                          or bool((ptr.diff() < 0).any())):
            raise ValueError(f"ptr must be non-decreasing from 0 to {x.size(0)} (the number of "
                             f"rows of x), got {ptr.tolist()[:8]}...")
        counts = ptr.diff()
        # output_size: the result's length is known, so torch.compile needs no data-dependent size
        index = torch.repeat_interleave(torch.arange(counts.numel(), device=x.device), counts,
                                        output_size=x.size(0))
        dim_size = counts.numel()
    if index is None:
        index = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
    check_index(index, size=x.size(0))
    if dim_size is None:  # PyG's Aggregation.__call__ fills it in before forward
        dim_size = int(index.max()) + 1 if index.numel() else 0
    elif index.numel() and value_checks_enabled(index):
        lo, hi = (int(v) for v in torch.aminmax(index))
        if lo < 0:
            raise ValueError(f"index must be non-negative, got minimum {lo}")
        if hi >= dim_size:
            raise ValueError(f"Encountered invalid 'dim_size' (got '{dim_size}' but expected "
                             f">= '{hi + 1}')")
    return index, dim_size


class Segments(NamedTuple):
    """Rows sorted by segment: ``x[perm]`` groups each segment contiguously."""

    perm: Tensor  # [E] row order: by segment, then by key, then by input position
    index: Tensor  # [E] segment of each sorted row (non-decreasing)
    rank: Tensor  # [E] position of each sorted row inside its segment
    count: Tensor  # [dim_size] number of rows per segment
    start: Tensor  # [dim_size] position of each segment's first sorted row


def sort_segments(index: Tensor, dim_size: int, key: Tensor | None = None,
                  descending: bool = False) -> Segments:
    """Stable sort by ``(index, key)``; ties keep input order.

    Two stable sorts (key first, then segment) give the lexicographic order without building a
    combined integer key, so ``key`` may be any real-valued tensor.
    """
    combined = combined_sort_key(index, dim_size, key, descending)
    if key is None:
        perm = torch.argsort(index, stable=True)
    elif combined is not None:
        perm = torch.argsort(combined, stable=True)
    else:
        by_key = torch.argsort(key, stable=True, descending=descending)
        perm = by_key[torch.argsort(index[by_key], stable=True)]
    sorted_index = index[perm]
    count = torch.bincount(index, minlength=dim_size)
    start = torch.cumsum(count, 0) - count
    rank = torch.arange(index.numel(), device=index.device) - start[sorted_index]
    return Segments(perm, sorted_index, rank, count, start)


def combined_sort_key(index: Tensor, dim_size: int, key: Tensor | None,
                      descending: bool = False) -> Tensor | None:
    """One int64 key whose stable sort is the order by ``(index, key)``: ``index * 2^32`` plus a
    32-bit integer with the order of a float32 (or narrower) ``key``; ``None`` where no such key
    exists (no key, a wider or integer key, or ``dim_size >= 2^31``)."""
    if key is None or key.dtype not in (torch.float32, torch.float16, torch.bfloat16) \
            or dim_size >= 2 ** 31:
        return None
    return (index << 32) | _ordered_bits(key, descending)


def _ordered_bits(key: Tensor, descending: bool) -> Tensor:
    """Integers in ``[0, 2^32)`` ordered as the float32 values of ``key`` (reversed with
    ``descending``); ``-0.0`` and ``0.0`` tie, as they compare equal."""
    bits = key.float().view(torch.int32).long()
    value = torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)  # sign-magnitude to two's complement
    return (-value if descending else value) + 2 ** 31


class Workspace:
    """Scratch buffers an aggregation keeps between calls, on the CPU.

    A fresh multi-megabyte CPU tensor is mapped by the allocator and page-faulted on first
    touch, which costs ~0.5 ms per MB here, as much as a few elementwise passes over it; the
    tree and recurrent aggregations need several such buffers per call (tens to hundreds of MB
    on a 250k-edge graph). A buffer is handed out again only when nothing else still views its
    storage (e.g. an autograd graph that has not run backward yet keeps it), so reuse never
    overwrites live data. Accelerators keep plain allocation (their caching allocators already
    reuse memory). Copies and pickles of a module start with an empty workspace.

    The buffers live as long as the workspace (i.e. its module) or until :meth:`release`;
    with ``keep=False`` nothing is kept and every call allocates afresh.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._buffers: dict[str, Tensor] = {}

    @property
    def nbytes(self) -> int:
        """Bytes held between calls."""
        return sum(b.untyped_storage().nbytes() for b in self._buffers.values())

    def release(self) -> None:
        """Drop the kept buffers (memory still viewed by a live autograd graph is freed with
        it); the next call allocates afresh."""
        self._buffers.clear()

    def empty(self, name: str, rows: int, cols: int, like: Tensor,
              dtype: torch.dtype | None = None) -> Tensor:
        """An uninitialised ``[rows, cols]`` tensor on ``like``'s device (``dtype`` or its)."""
        dtype = dtype or like.dtype
        if not self.keep or like.device.type != "cpu" or _use_count is None:
            return like.new_empty(rows, cols, dtype=dtype)
        buf = self._buffers.get(name)
        # one reference from the cache, one from the temporary storage object of the check
        if (buf is None or buf.dtype != dtype or buf.size(1) != cols or buf.size(0) < rows
                or _use_count(buf.untyped_storage()._cdata) > 2):
            buf = like.new_empty(rows, cols, dtype=dtype)
            self._buffers[name] = buf
        return buf[:rows]

    def __deepcopy__(self, memo: dict) -> Workspace:
        return Workspace(self.keep)

    def __getstate__(self) -> dict:
        return {"keep": self.keep, "_buffers": {}}

    def __setstate__(self, state: dict) -> None:
        self.keep = state.get("keep", True)
        self._buffers = {}


class WorkspaceMixin:
    """:meth:`release_workspace` and :attr:`workspace_bytes` for a module holding a
    :class:`Workspace` as ``self._workspace``."""

    _workspace: Workspace

    @property
    def workspace_bytes(self) -> int:
        """Bytes of CPU scratch memory this module holds between calls."""
        return self._workspace.nbytes

    def release_workspace(self) -> None:
        """Free the CPU scratch buffers kept between calls (e.g. after training, before
        inference on other graphs); the next call allocates them again. Construct the module
        with ``keep_workspace=False`` to never keep them."""
        self._workspace.release()


_use_count = getattr(torch._C, "_storage_Use_Count", None)
