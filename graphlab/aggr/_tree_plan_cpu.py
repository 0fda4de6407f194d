"""CPU path of :func:`graphlab.aggr.lcm.tree_plan`: the same :class:`~graphlab.aggr.lcm.TreePlan`,
built with NumPy on zero-copy views of the tensors.

The torch path spends most of its time dispatching ~250 small ops (5-10 µs each on a CPU, against
~1 µs for a NumPy op), and two of its sorts are slow on a CPU: ``argsort`` of the segment sizes
(6 ms on 100k segments) and the stable sort of an already sorted index. Here the segments are
ordered by a radix sort of their sizes, an already sorted ``index`` is sorted by NumPy's timsort
(linear on sorted runs) or not at all, and the pairs of all levels are laid out at once. Every
field equals the torch path's (``tests/aggr/test_lcm_plan_cpu.py``): a stable sort has one
result, and the levels are laid out in the same order (level by level, segments by decreasing
size, pairs by rank).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from graphlab.aggr._segment import combined_sort_key, sort_segments
from graphlab.aggr.lcm import TreePlan

_U16 = 1 << 16


def tree_plan_cpu(index: Tensor, dim_size: int, key: Tensor | None) -> TreePlan:
    """:func:`~graphlab.aggr.lcm.tree_plan` for CPU tensors.

    Temporaries are few and updated in place: a fresh multi-megabyte array is page-faulted on
    first touch, which costs more than the arithmetic on it.
    """
    num_rows = index.numel()
    idx = index.numpy()
    count = np.bincount(idx, minlength=dim_size).astype(np.int64, copy=False)
    empty = count == 0
    if num_rows == 0:
        zeros = torch.zeros(dim_size, dtype=torch.long)
        return TreePlan([], [], [], zeros, torch.from_numpy(empty), zeros, zeros[:0], 0)
    perm = _sort_rows(index, idx, dim_size, key)
    start = np.cumsum(count)
    start -= count
    top = int(count.max())
    # ceil(log2 c) for c = 0..top, read from a table: frexp's exponent of c - 1 is its bit length
    steps = np.frexp(np.arange(-1, top).clip(0))[1].astype(np.int64)[count]

    # segments of two or more rows, by decreasing size (ties in index order): only they have
    # pairs, and they are the prefix of the torch path's order
    multi = np.flatnonzero(count > 1)
    deg_m = count[multi]
    if top < _U16:  # NumPy's stable sort of 16-bit integers is a radix sort
        order = multi[np.argsort((top - deg_m).astype(np.uint16), kind="stable")]
    else:
        order = multi[np.argsort(-deg_m, kind="stable")]
    deg, first = count[order], start[order]
    depth = int(steps[order[0]]) if order.size else 0

    # cell (level l, segment s): s (position in order) still has pairs at level l, i.e.
    # deg > 2^l; cells are laid out level by level, so level l's are a prefix of order
    alive = np.searchsorted(-deg, -(1 << np.arange(depth, dtype=np.int64)))
    cell_start = np.cumsum(alive) - alive
    cell_level = np.repeat(np.arange(depth, dtype=np.int64), alive)
    cell_seg = np.arange(cell_level.size, dtype=np.int64) - cell_start[cell_level]
    size = (deg[cell_seg] + (1 << cell_level) - 1) >> cell_level  # ceil(deg / 2^l)
    pairs = size >> 1
    pair_end = np.cumsum(pairs)
    pair_start = pair_end - pairs  # the cell's combined rows are num_rows + pair_start...
    total = int(pair_end[-1]) if depth else 0
    level_first = np.append(pair_start[cell_start], total)
    level_pairs = np.diff(level_first)
    n0 = int(alive[0]) if depth else 0  # level 0's cells (every multi-row segment)
    # level l > 0: a cell's operands are its segment's combined rows at level l - 1
    up = np.arange(n0, cell_level.size, dtype=np.int64)
    prev = up - alive[cell_level[n0:] - 1]

    # pair g of cell c takes elements 2j, 2j+1 (j = g - pair_start[c]) of its segment's level:
    # element 2j is sorted position first + 2j at level 0, combined row pair_start[prev] + 2j
    # above, i.e. 2g plus a per-cell constant
    const = np.empty(cell_level.size, dtype=np.int64)
    const[:n0] = first
    const[n0:] = pair_start[prev] + num_rows
    const -= 2 * pair_start
    pos = np.repeat(const, pairs)
    pos += np.arange(0, 2 * total, 2, dtype=np.int64)
    num_level0 = int(level_pairs[0]) if depth else 0
    left = np.empty(total, dtype=np.int64)
    right = np.empty(total, dtype=np.int64)
    np.take(perm, pos[:num_level0], out=left[:num_level0])
    left[num_level0:] = pos[num_level0:]
    pos += 1
    np.take(perm, pos[:num_level0], out=right[:num_level0])
    right[num_level0:] = pos[num_level0:]
    del pos

    # an odd level carries its last element up unchanged: last[c] is the row of the last
    # element of cell c's segment at its level (its last pair's row after an even level)
    last = np.empty(cell_level.size, dtype=np.int64)
    last[:n0] = perm[first + deg - 1]
    for level in range(1, depth):  # a loop over levels only
        at, below, n = int(cell_start[level]), int(cell_start[level - 1]), int(alive[level])
        last[at:at + n] = np.where(size[below:below + n] & 1, last[below:below + n],
                                   pair_end[below:below + n] + (num_rows - 1))
    # where the level below had an odd number of elements the last pair's right operand is
    # that carried element (it is past the combined rows when 2 pairs - 1 >= their number)
    carried = up[2 * pairs[n0:] - 1 >= pairs[prev]]
    right[pair_end[carried] - 1] = last[carried]

    # roots: a one-row segment's row, the last level's pair, or the zero row num_rows + total
    num_all = num_rows + total
    root = np.full(dim_size, num_all, dtype=np.int64)
    single = np.flatnonzero(count == 1)
    single_root = perm[start[single]]
    root[single] = single_root
    multi_root = pair_start[cell_start[steps[order] - 1] + np.arange(order.size)] + num_rows
    root[order] = multi_root

    # gradient buffer: [roots (dim_size); per pair (of all levels, in order): its left operand's
    # gradient, its right operand's] (the operands as interleaved in a block of the operator)
    source = np.empty(num_all, dtype=np.int64)
    source[single_root] = single
    source[multi_root] = order
    at = np.arange(dim_size, dim_size + 2 * total, 2, dtype=np.int64)
    source[left] = at
    at += 1
    source[right] = at
    splits = level_pairs.tolist()

    lefts = list(torch.from_numpy(left).split(splits)) if depth else []
    rights = list(torch.from_numpy(right).split(splits)) if depth else []
    offsets = (level_first[:-1] + num_rows).tolist()
    return TreePlan(lefts, rights, offsets, torch.from_numpy(root), torch.from_numpy(empty),
                    torch.from_numpy(steps), torch.from_numpy(source), num_all)


def _sort_rows(index: Tensor, idx: np.ndarray, dim_size: int, key: Tensor | None) -> np.ndarray:
    """``sort_segments(index, dim_size, key).perm`` as an array: the stable order by
    ``(index, key)``, ties in input order."""
    presorted = idx.size < 2 or not bool(np.any(idx[1:] < idx[:-1]))
    if key is None:
        if presorted:
            return np.arange(idx.size, dtype=np.int64)
        return torch.argsort(index, stable=True).numpy()
    combined = combined_sort_key(index, dim_size, key)  # sort_segments' own single sort key
    if combined is not None:
        if presorted:  # timsort: linear on the sorted runs of index (torch's sort is not)
            return np.argsort(combined.numpy(), kind="stable")
        return torch.argsort(combined, stable=True).numpy()
    return sort_segments(index, dim_size, key).perm.numpy()
