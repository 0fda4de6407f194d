r"""Reading a network's parameters back out of its graph: the exact inverse of
:func:`~graphlab.metanets.to_graph` for the neural and parameter views."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from graphlab.metanets.spec import NetSpec, Seg

__all__ = ["graph_to_state_dict"]


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
