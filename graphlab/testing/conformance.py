"""A shared conformance suite for graph layers, in the spirit of scikit-learn's ``check_estimator``.

A layer is described once by a :class:`LayerCase` (how to build it, how to call it on a batched
graph, what level each output lives on) and every property check runs against that description::

    CASE = LayerCase(
        name="gin",
        make_module=lambda: GINConv(MLP([8, 16, 16])),
        forward=lambda m, b: m(b.x, b.edge_index),
        levels=("node",),
    )
    check_layer(CASE)                                   # all checks
    check_layer(CASE, checks=["permutation", "batch_composition"])

Tests parametrize over :data:`CHECKS` so each property shows up as its own test id. Modules are
run in ``eval()`` mode; all graphs are seeded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from graphlab.testing.graphs import permute_graph, random_graph

__all__ = ["LayerCase", "CHECKS", "check_layer", "EDGE_INDEX_MUTATIONS", "INDEX_MUTATIONS",
           "TARGET_MUTATIONS", "FEATURE_MUTATIONS", "conformance_params"]

Output = Tensor | Sequence[Tensor]


def _default_forward(module: nn.Module, batch: Batch) -> Output:
    return module(batch.x, batch.edge_index)


def _default_graph(seed: int) -> Data:
    return random_graph(7 + seed % 5, in_channels=8, seed=seed)


def _bad_edge_range(b: Batch) -> Batch:
    b.edge_index = b.edge_index.clone()
    b.edge_index[0, 0] = b.num_nodes + 5
    return b


def _bad_edge_shape(b: Batch) -> Batch:
    b.edge_index = torch.cat([b.edge_index, b.edge_index[:1]], dim=0)
    return b


def _bad_edge_dtype(b: Batch) -> Batch:
    b.edge_index = b.edge_index.float()
    return b


def _bad_x_dtype(b: Batch) -> Batch:
    b.x = b.x.round().long()
    return b


def _bad_batch_range(b: Batch) -> Batch:
    b.batch = b.batch.clone()
    b.batch[0] = -1
    return b


def _bad_batch_length(b: Batch) -> Batch:
    b.batch = b.batch[:-1]
    return b


def _bad_target_range(b: Batch) -> Batch:
    b.edge_index = b.edge_index.clone()
    b.edge_index[1, 0] = b.num_nodes + 5
    return b


#: mutations that a layer taking ``edge_index`` must reject with a ``ValueError``
EDGE_INDEX_MUTATIONS: dict[str, Callable[[Batch], Batch]] = {
    "edge_index_out_of_range": _bad_edge_range,
    "edge_index_wrong_shape": _bad_edge_shape,
    "edge_index_float": _bad_edge_dtype,
}
#: mutations that an aggregation/readout taking ``index``/``batch`` must reject
INDEX_MUTATIONS: dict[str, Callable[[Batch], Batch]] = {
    "negative_index": _bad_batch_range,
    "index_wrong_length": _bad_batch_length,
}
#: mutations that an aggregation of messages onto targets ``edge_index[1]`` must reject
TARGET_MUTATIONS: dict[str, Callable[[Batch], Batch]] = {
    "target_out_of_range": _bad_target_range,
}
#: mutations of the node features that layers with a float-feature contract must reject
FEATURE_MUTATIONS: dict[str, Callable[[Batch], Batch]] = {
    "x_integer": _bad_x_dtype,
}


@dataclass
class LayerCase:
    """How to build and call one layer configuration for the conformance checks.

    Args:
        name: test id.
        make_module: builds a fresh module (called once per check, seeded beforehand).
        forward: ``forward(module, batch) -> Tensor | tuple[Tensor, ...]``.
        levels: the level of each output: ``"node"``, ``"graph"``, ``"edge"`` or ``"ignore"``.
        make_graph: ``make_graph(seed) -> Data``; a raw graph before ``transform``.
        transform: applied to every single graph before batching (e.g. path enumeration).
        node_attrs / edge_attrs: attributes that are permuted/sliced with nodes/edges.
        grad_inputs: float attributes of the batch that ``gradcheck`` differentiates.
        bad_inputs: batch mutations that must raise ``ValueError``.
        atol: tolerance of the float32 comparisons (float64 checks use ``1e-9``-scale tolerances).
        skip: check name -> reason, for checks that do not apply (the reason is reported).
    """

    name: str
    make_module: Callable[[], nn.Module]
    forward: Callable[[nn.Module, Batch], Output] = _default_forward
    levels: tuple[str, ...] = ("node",)
    make_graph: Callable[[int], Data] = _default_graph
    transform: Callable[[Data], Data] | None = None
    node_attrs: tuple[str, ...] = ("x", "pos", "vel")
    edge_attrs: tuple[str, ...] = ("edge_attr", "edge_weight")
    grad_inputs: tuple[str, ...] = ("x",)
    bad_inputs: dict[str, Callable[[Batch], Batch]] = field(
        default_factory=lambda: dict(EDGE_INDEX_MUTATIONS))
    atol: float = 1e-5
    skip: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # pytest ids
        return self.name


# --------------------------------------------------------------------------- helpers
def _build(case: LayerCase, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return case.make_module().eval()


def _prepare(case: LayerCase, graph: Data) -> Data:
    return case.transform(graph) if case.transform is not None else graph


def _batch(case: LayerCase, graphs: list[Data]) -> Batch:
    return Batch.from_data_list([_prepare(case, g) for g in graphs])


def _outputs(case: LayerCase, module: nn.Module, batch: Batch) -> tuple[Tensor, ...]:
    out = case.forward(module, batch)
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    if len(outs) != len(case.levels):
        raise AssertionError(f"[{case.name}] forward returned {len(outs)} outputs but "
                             f"{len(case.levels)} levels were declared")
    return outs


def _close(a: Tensor, b: Tensor, atol: float, what: str) -> None:
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shape {list(a.shape)} != {list(b.shape)}")
    if a.numel() and not torch.allclose(a, b, atol=atol, rtol=atol):
        err = (a - b).abs().max().item()
        raise AssertionError(f"{what}: max abs difference {err:.3g} > atol {atol:g}")


def _num_edges(g: Data) -> int:
    return g.edge_index.size(1)


def _empty_like(case: LayerCase, g: Data) -> Data:
    empty = g.clone()
    empty.edge_index = g.edge_index[:, :0]
    for key in case.node_attrs:
        if key in g and g[key] is not None:
            empty[key] = g[key][:0]
    for key in case.edge_attrs:
        if key in g and g[key] is not None:
            empty[key] = g[key][:0]
    empty.num_nodes = 0
    return empty


def _with_isolated(case: LayerCase, g: Data, extra: int, seed: int) -> Data:
    gen = torch.Generator().manual_seed(seed)
    out = g.clone()
    for key in case.node_attrs:
        if key in g and g[key] is not None:
            val = g[key]
            pad = torch.randn((extra, *val.shape[1:]), generator=gen).to(val.dtype) \
                if val.is_floating_point() else val[:1].repeat(extra, *[1] * (val.dim() - 1))
            out[key] = torch.cat([val, pad], dim=0)
    out.num_nodes = g.num_nodes + extra
    return out


def _graph_slices(batch: Batch, graph_id: int, level: str) -> slice:
    if level == "node":
        ptr = batch.ptr
        return slice(int(ptr[graph_id]), int(ptr[graph_id + 1]))
    if level == "graph":
        return slice(graph_id, graph_id + 1)
    if level == "edge":
        counts = torch.bincount(batch.batch[batch.edge_index[0]], minlength=batch.num_graphs)
        start = int(counts[:graph_id].sum())
        return slice(start, start + int(counts[graph_id]))
    raise ValueError(level)


# --------------------------------------------------------------------------- checks
def check_permutation(case: LayerCase, seed: int = 0) -> None:
    """Relabel nodes and reorder edges: node outputs permute, graph outputs are unchanged."""
    module = _build(case)
    raw = case.make_graph(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    perm = torch.randperm(raw.num_nodes, generator=gen)
    eperm = torch.randperm(_num_edges(raw), generator=gen)
    with torch.no_grad():
        out = _outputs(case, module, _batch(case, [raw]))
        raw_p = permute_graph(raw, perm, eperm, case.node_attrs, case.edge_attrs)
        out_p = _outputs(case, module, _batch(case, [raw_p]))
    for i, (a, b, level) in enumerate(zip(out, out_p, case.levels)):
        what = f"[{case.name}] permutation, output {i} ({level})"
        if level == "node":
            _close(b, a[perm], case.atol, what)
        elif level == "graph":
            _close(b, a, case.atol, what)
        elif level == "edge":
            _close(b, a[eperm], case.atol, what)


def check_batch_composition(case: LayerCase, seed: int = 0) -> None:
    """A graph's output must not depend on which other graphs share its batch, or their order."""
    module = _build(case)
    target = case.make_graph(seed)
    others = [case.make_graph(seed + 10 + k) for k in range(3)]
    with torch.no_grad():
        alone = _outputs(case, module, _batch(case, [target]))
        for position, graphs in enumerate([[others[0], target, others[1]],
                                           [others[2], others[1], others[0], target]]):
            graph_id = graphs.index(target)
            batch = _batch(case, graphs)
            mixed = _outputs(case, module, batch)
            for i, (a, m, level) in enumerate(zip(alone, mixed, case.levels)):
                if level == "ignore":
                    continue
                what = f"[{case.name}] batch composition #{position}, output {i} ({level})"
                _close(m[_graph_slices(batch, graph_id, level)], a, case.atol, what)


def check_gradcheck(case: LayerCase, seed: int = 0) -> None:
    """float64 ``torch.autograd.gradcheck`` of the outputs w.r.t. ``grad_inputs``."""
    module = _build(case).double()
    batch = _batch(case, [case.make_graph(seed)])
    for key in batch.keys():
        val = batch[key]
        if isinstance(val, Tensor) and val.is_floating_point():
            batch[key] = val.double()
    inputs = tuple(batch[k].detach().clone().requires_grad_(True) for k in case.grad_inputs)

    def fn(*tensors: Tensor) -> tuple[Tensor, ...]:
        b = batch.clone()
        for key, t in zip(case.grad_inputs, tensors):
            b[key] = t
        outs = _outputs(case, module, b)
        return tuple(o for o, lvl in zip(outs, case.levels)
                     if lvl != "ignore" and o.is_floating_point())

    if not torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True):
        raise AssertionError(f"[{case.name}] gradcheck failed")


def check_empty_graph(case: LayerCase, seed: int = 0) -> None:
    """A graph with no nodes runs alone and inside a batch without changing its neighbours."""
    module = _build(case)
    g = case.make_graph(seed)
    other = case.make_graph(seed + 3)
    empty = _empty_like(case, g)
    with torch.no_grad():
        outs = _outputs(case, module, _batch(case, [empty]))
        for i, (o, level) in enumerate(zip(outs, case.levels)):
            if level == "node" and o.size(0) != 0:
                raise AssertionError(f"[{case.name}] empty graph: node output {i} has "
                                     f"{o.size(0)} rows, expected 0")
            if level == "graph" and o.size(0) != 1:
                raise AssertionError(f"[{case.name}] empty graph: graph output {i} has "
                                     f"{o.size(0)} rows, expected 1")
            if o.is_floating_point() and not bool(torch.isfinite(o).all()):
                raise AssertionError(f"[{case.name}] empty graph: output {i} is not finite")
        alone_g = _outputs(case, module, _batch(case, [g]))
        alone_o = _outputs(case, module, _batch(case, [other]))
        batch = _batch(case, [g, empty, other])
        mixed = _outputs(case, module, batch)
    for i, (a, b, m, level) in enumerate(zip(alone_g, alone_o, mixed, case.levels)):
        if level == "ignore":
            continue
        what = f"[{case.name}] empty graph inside a batch, output {i} ({level})"
        _close(m[_graph_slices(batch, 0, level)], a, case.atol, what)
        _close(m[_graph_slices(batch, 2, level)], b, case.atol, what)
        if level == "graph" and m.size(0) != 3:
            raise AssertionError(f"{what}: {m.size(0)} rows for 3 graphs")


def check_isolated_nodes(case: LayerCase, seed: int = 0) -> None:
    """Isolated nodes give finite outputs and leave the connected nodes' outputs unchanged."""
    module = _build(case)
    g = case.make_graph(seed)
    g_iso = _with_isolated(case, g, extra=3, seed=seed)
    no_edges = _empty_like(case, g)
    for key in case.node_attrs:
        if key in g and g[key] is not None:
            no_edges[key] = g[key]
    no_edges.num_nodes = g.num_nodes
    with torch.no_grad():
        base = _outputs(case, module, _batch(case, [g]))
        iso = _outputs(case, module, _batch(case, [g_iso]))
        bare = _outputs(case, module, _batch(case, [no_edges]))
    for i, (a, b, c, level) in enumerate(zip(base, iso, bare, case.levels)):
        for o, what in ((b, "with isolated nodes"), (c, "without edges")):
            if o.is_floating_point() and not bool(torch.isfinite(o).all()):
                raise AssertionError(f"[{case.name}] {what}: output {i} is not finite")
        if level == "node":
            _close(b[: g.num_nodes], a, case.atol,
                   f"[{case.name}] isolated nodes changed connected nodes' output {i}")


def check_dtype_roundtrip(case: LayerCase, seed: int = 0) -> None:
    """float32 -> float64 -> float32 keeps results; float64 in gives float64 out (and CUDA if any)."""
    module = _build(case)
    batch = _batch(case, [case.make_graph(seed)])
    with torch.no_grad():
        ref = _outputs(case, module, batch)
        module64 = copy.deepcopy(module).double()
        b64 = batch.clone()
        for key in b64.keys():
            if isinstance(b64[key], Tensor) and b64[key].is_floating_point():
                b64[key] = b64[key].double()
        out64 = _outputs(case, module64, b64)
        back = _outputs(case, module64.float(), batch)
    for i, (r, o64, o32, level) in enumerate(zip(ref, out64, back, case.levels)):
        if level == "ignore" or not r.is_floating_point():
            continue
        if o64.dtype != torch.float64:
            raise AssertionError(f"[{case.name}] float64 input gave {o64.dtype} output {i}")
        _close(o64.float(), r, max(case.atol, 1e-4), f"[{case.name}] float64 vs float32 output {i}")
        _close(o32, r, case.atol, f"[{case.name}] round trip output {i}")
    if torch.cuda.is_available():
        cuda_out = _outputs(case, copy.deepcopy(module).cuda(), batch.clone().to("cuda"))
        for i, (r, c) in enumerate(zip(ref, cuda_out)):
            _close(c.cpu(), r, max(case.atol, 1e-4), f"[{case.name}] cuda output {i}")


def check_compile(case: LayerCase, seed: int = 0) -> None:
    """``torch.compile`` (``aot_eager`` backend: traces forward and backward) matches eager."""
    import torch._dynamo

    torch._dynamo.reset()
    module = _build(case)
    batch = _batch(case, [case.make_graph(seed)])
    with torch.no_grad():
        ref = _outputs(case, module, batch)
    compiled = torch.compile(module, backend="aot_eager")
    with torch.no_grad():
        out = _outputs(case, compiled, batch)
    for i, (r, o, level) in enumerate(zip(ref, out, case.levels)):
        if level != "ignore":
            _close(o, r, case.atol, f"[{case.name}] torch.compile output {i}")


def check_bad_inputs(case: LayerCase, seed: int = 0) -> None:
    """Each declared malformed input raises a ``ValueError`` (not an IndexError or a crash)."""
    module = _build(case)
    for label, mutate in case.bad_inputs.items():
        batch = mutate(_batch(case, [case.make_graph(seed)]))
        try:
            with torch.no_grad():
                case.forward(module, batch)
        except ValueError:
            continue
        except Exception as exc:  # noqa: BLE001 - the point is to report the wrong type
            raise AssertionError(f"[{case.name}] {label}: expected ValueError, got "
                                 f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError(f"[{case.name}] {label}: expected ValueError, nothing was raised")


#: every property check, by name
CHECKS: dict[str, Callable[[LayerCase], None]] = {
    "permutation": check_permutation,
    "batch_composition": check_batch_composition,
    "gradcheck": check_gradcheck,
    "empty_graph": check_empty_graph,
    "isolated_nodes": check_isolated_nodes,
    "dtype_roundtrip": check_dtype_roundtrip,
    "compile": check_compile,
    "bad_inputs": check_bad_inputs,
}


def check_layer(case: LayerCase, checks: Sequence[str] | None = None) -> dict[str, str]:
    """Run the named checks (default: all) and return ``{check: "ok" | "skipped: reason"}``.

    Raises ``AssertionError`` on the first failing check.
    """
    report: dict[str, str] = {}
    for name in checks or list(CHECKS):
        if name in case.skip:
            report[name] = f"skipped: {case.skip[name]}"
            continue
        CHECKS[name](case)
        report[name] = "ok"
    return report


def conformance_params(cases: Sequence[LayerCase], checks: Sequence[str] | None = None) -> list:
    """``pytest.param(case, check)`` for every case x check, skipped ones marked with their reason.

    Use as ``@pytest.mark.parametrize("case,check", conformance_params(CASES))`` and call
    ``CHECKS[check](case)`` in the test body.
    """
    import pytest

    params = []
    for case in cases:
        for name in checks or list(CHECKS):
            marks = [pytest.mark.skip(reason=case.skip[name])] if name in case.skip else []
            params.append(pytest.param(case, name, id=f"{case.name}-{name}", marks=marks))
    return params
