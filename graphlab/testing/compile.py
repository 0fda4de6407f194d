"""Helpers that measure how well a module compiles: graph breaks and graph (re)compilations.

Both are load-independent figures (unlike timings), so tests and ``benchmarks/compile_check.py``
can assert and record them on any machine::

    breaks, reasons = explain_graph_breaks(conv, x, edge_index)
    assert breaks == 0, reasons
    n = count_compiles(conv, [(x1, ei1), (x2, ei2), (x3, ei3)], dynamic=True)

``count_compiles`` counts the FX graphs that dynamo hands to the backend. A module that compiles
to one graph and never re-specialises counts 1; every graph break adds a graph per call site, and
every recompilation (a new input shape that the dynamic graph could not cover, a guard on a
parameter's value) adds more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["explain_graph_breaks", "count_graph_breaks", "count_compiles", "CountingBackend"]


def explain_graph_breaks(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, list[str]]:
    """Trace ``fn(*args, **kwargs)`` with ``torch._dynamo.explain``: ``(break count, reasons)``.

    Dynamo's caches are reset before and after, so the result does not depend on earlier
    compilations in the same process. A frame that dynamo skips altogether (no graph at all, so
    it silently runs eagerly) counts as one break.
    """
    import torch._dynamo

    torch._dynamo.reset()
    try:
        out = torch._dynamo.explain(fn)(*args, **kwargs)
    finally:
        torch._dynamo.reset()
    if out.graph_count == 0:
        # dynamo gave up on the whole frame (it runs eagerly): worse than any counted break
        return 1, ["dynamo compiled no graph: the frame was skipped and runs eagerly"]
    reasons = []
    for reason in out.break_reasons:
        where = ""
        if reason.user_stack:
            frame = reason.user_stack[-1]
            where = f" ({frame.filename}:{frame.lineno})"
        reasons.append(f"{reason.reason}{where}")
    return int(out.graph_break_count), reasons


def count_graph_breaks(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """The number of graph breaks dynamo hits when tracing ``fn(*args, **kwargs)``."""
    return explain_graph_breaks(fn, *args, **kwargs)[0]


class CountingBackend:
    """A ``torch.compile`` backend that runs each FX graph eagerly and counts the graphs.

    Running the graph eagerly (instead of through inductor) keeps the count cheap while still
    exercising dynamo's tracing, guards and recompilation logic.
    """

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: Sequence[Any]) -> Callable:
        self.graphs += 1
        return gm.forward


def count_compiles(
    fn: Callable[..., Any] | nn.Module,
    inputs: Iterable[Sequence[Any] | tuple[Sequence[Any], dict[str, Any]]],
    dynamic: bool | None = True,
    fullgraph: bool = False,
    call: Callable[[Callable[..., Any], Any], Any] | None = None,
) -> int:
    """Compile ``fn`` once, call it on every input, return how many graphs were compiled.

    Args:
        fn: a function or module.
        inputs: positional-argument tuples (or ``(args, kwargs)`` pairs) to call it with, e.g.
            batches of different sizes.
        dynamic: passed to ``torch.compile`` (``True``: one shape-polymorphic graph is expected).
        fullgraph: passed to ``torch.compile``.
        call: optional ``call(compiled, item)`` used instead of ``compiled(*item)``, for callers
            whose items are not argument tuples (e.g. a conformance case's ``forward(module, batch)``).
    """
    import torch._dynamo

    torch._dynamo.reset()
    backend = CountingBackend()
    compiled = torch.compile(fn, backend=backend, dynamic=dynamic, fullgraph=fullgraph)
    try:
        for item in inputs:
            if call is not None:
                call(compiled, item)
            elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], dict):
                compiled(*item[0], **item[1])
            else:
                compiled(*item)
    finally:
        torch._dynamo.reset()
    return backend.graphs
