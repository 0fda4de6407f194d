"""Speed of the exact k-subset marginals and of a full PR-MPNN training step.

1. ``k_subset_marginals`` forward + backward on a ZINC-sized batch (640 rows = 128 graphs x 5
   priors, n = 100 candidates, k = 80) against a straightforward sequential dynamic program: one
   row at a time, log-space prefix/suffix tables filled position by position (vectorised only over
   the subset size j), no complement trick. Also the batched DP without the complement trick
   (``k`` instead of ``min(k, n - k)``), to show what each part buys.
2. One training step (forward, backward, Adam) of PR-MPNN against the same downstream MPNN without
   rewiring, on a synthetic ZINC-sized batch (128 graphs of 23 nodes, ~50 directed edges each;
   ZINC itself is not in the offline mirror), with the ZINC configuration of the paper's rewiring:
   100 distance candidates, add k = 80, delete k = 20, 5 samples per graph.

Times are median CPU times of ``torch.utils.benchmark.Timer.blocked_autorange`` on one thread
(:func:`benchmarks.common.measure.cpu_time`).

**Anchor** (:func:`anchor_rows`, the k-subset rows of ``speed-anchors``): ``k_subset_marginals``
against the authors' SIMPLE circuit (``simple/simple.py`` of github.com/chendiqian/PR-MPNN,
loaded from ``--anchor-dir``, never copied here): ``Layer.log_pr``, the exact marginals of their
exactly-k circuit, forward + backward, at the paper's sizes (ZINC: 128 graphs x 5 priors, 100
addition candidates with k = 80 and ~50 deletion candidates with k = 20; peptides-func: 350
candidates, k = 80, on 32 rows: their circuit takes ~3 s CPU per pass there), padded to a
power of two as their ``EdgeSIMPLEBatched`` does. Their circuit reads log-probabilities
(``log sigmoid`` of our logits gives the same distribution) and runs eagerly (their
``DISABLE`` switch of ``torch.compile``: inductor did not finish compiling it within minutes
on this CPU). Their backward treats the negative literals as constants (a
``detach``), so only values are compared. Their ``Layer`` reads the circuit from a pickle file;
here the same circuit is built in memory by their ``create_exactly_k`` (nothing is unpickled).

    python -m benchmarks.prmpnn_speed [--quick] [--out runs/prmpnn_speed]
    python -m benchmarks.prmpnn_speed --anchors [--quick] [--device cuda] --anchor-dir ANCHORS
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import types
from pathlib import Path

import torch
from torch import Tensor

from benchmarks.common import TaskResult, format_table, register, run_script
from benchmarks.common.anchors import (
    AnchorMissing,
    anchor_row,
    interleaved_times,
    load_anchor_module,
    peak_memory,
    set_anchor_dir,
)
from benchmarks.common.measure import cpu_time
from graphlab.rewiring import k_subset_marginals


def _safe_logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))`` with a zero (not NaN) gradient where both are ``-inf`` (the DP
    tables are full of exact zeros); the reference's own copy, independent of the library."""
    m = torch.maximum(a, b)
    finite = torch.isfinite(m)
    zero = torch.zeros((), dtype=a.dtype)
    m0 = torch.where(finite, m, zero).detach()
    out = m0 + torch.log(torch.exp(torch.where(finite, a, zero) - m0)
                         + torch.exp(torch.where(finite, b, zero) - m0))
    return torch.where(finite, out, torch.full_like(out, float("-inf")))


def _safe_logsumexp(x: Tensor, dim: int) -> Tensor:
    """``logsumexp`` with a zero (not NaN) gradient for all-``-inf`` slices."""
    m = x.amax(dim=dim, keepdim=True)
    finite = torch.isfinite(m)
    zero = torch.zeros((), dtype=x.dtype)
    m0 = torch.where(finite, m, zero).detach()
    out = m0 + torch.log(torch.exp(torch.where(finite, x, zero) - m0).sum(dim=dim, keepdim=True))
    return torch.where(finite, out, torch.full_like(out, float("-inf"))).squeeze(dim)


def sequential_marginals(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: the O(n k) log-space DP one row at a time (no batching, no complement)."""
    out = []
    for theta in logits:
        n = theta.numel()
        neg = torch.full((1,), float("-inf"), dtype=theta.dtype)
        base = torch.cat([torch.zeros(1, dtype=theta.dtype), neg.expand(k)])
        pre, suf = [base], [base]
        for i in range(n):
            pre.append(_safe_logaddexp(pre[-1], torch.cat([neg, pre[-1][:-1]]) + theta[i]))
            suf.append(_safe_logaddexp(suf[-1], torch.cat([neg, suf[-1][:-1]]) + theta[n - 1 - i]))
        suf = suf[::-1]
        log_z = pre[n][k]
        mus = []
        for i in range(n):
            terms = pre[i][:k] + suf[i + 1][:k].flip(0)   # j + (k-1-j) = k-1
            mus.append(torch.exp(theta[i] + _safe_logsumexp(terms, 0) - log_z))
        out.append(torch.stack(mus))
    return torch.stack(out)


def _no_complement(logits: torch.Tensor, k: int) -> torch.Tensor:
    # the library evaluates k > n/2 as 1 - marginals(-theta, n - k); this ablation runs the
    # batched DP at the original k instead
    from graphlab.rewiring.k_subset import log_esp

    n = logits.size(-1)
    prefix = log_esp(logits, k)
    suffix = log_esp(logits.flip(-1), k).flip(0)
    log_z = prefix[n, :, k]
    terms = prefix[:n, :, :k] + suffix[1:, :, :k].flip(-1)
    log_others = _safe_logsumexp(terms, -1).t()
    return torch.exp(logits + log_others - log_z.unsqueeze(1))


def _time(fn, min_run_time: float) -> float:
    fn()  # warm-up
    return cpu_time(fn, min_run_time)


def _marginal_rows(quick: bool) -> list[dict]:
    rows_n = 160 if quick else 640
    n, k = 100, 80
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(rows_n, n, generator=gen)
    cot = torch.randn(rows_n, n, generator=gen)

    def run(fn):
        def step():
            x = logits.clone().requires_grad_(True)
            (fn(x, k) * cot).sum().backward()
        return step

    ref_check = sequential_marginals(logits[:4].double(), k)
    ours_check = k_subset_marginals(logits[:4].double(), k)
    max_err = (ref_check - ours_check).abs().max().item()
    t_ours = _time(run(k_subset_marginals), 0.5 if quick else 2.0)
    t_nocomp = _time(run(_no_complement), 0.5 if quick else 2.0)
    # the reference loops over rows, so its time is exactly linear in the row count: time it on a
    # tenth of the rows (the full 640 would take minutes) and scale by 10
    sub = rows_n // 10

    def seq_step():
        x = logits[:sub].clone().requires_grad_(True)
        (sequential_marginals(x, k) * cot[:sub]).sum().backward()

    t_seq = _time(seq_step, 0.1) * (rows_n / sub)
    base = {"rows": rows_n, "n": n, "k": k}
    return [
        {**base, "method": f"sequential DP (row by row), reference (timed on {sub} rows "
                           f"x {rows_n // sub})", "time_s": t_seq,
         "speedup_vs_reference": 1.0, "max_abs_err_vs_ref": 0.0},
        {**base, "method": "batched DP, no complement", "time_s": t_nocomp,
         "speedup_vs_reference": t_seq / t_nocomp, "max_abs_err_vs_ref": ""},
        {**base, "method": "graphlab k_subset_marginals", "time_s": t_ours,
         "speedup_vs_reference": t_seq / t_ours, "max_abs_err_vs_ref": max_err},
    ]


def _zinc_like_batch(num_graphs: int, seed: int = 0):
    from torch_geometric.data import Batch, Data
    from torch_geometric.utils import to_undirected

    gen = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(num_graphs):
        n = 23
        # a random tree (molecule backbone) plus 2 ring-closing edges: ~25 bonds, 50 directed
        parent = (torch.rand(n - 1, generator=gen) * torch.arange(1, n)).long()
        src = torch.cat([torch.arange(1, n), torch.randint(0, n, (2,), generator=gen)])
        dst = torch.cat([parent, torch.randint(0, n, (2,), generator=gen)])
        keep = src != dst
        ei = to_undirected(torch.stack([src[keep], dst[keep]]), num_nodes=n)
        graphs.append(Data(x=torch.randn(n, 16, generator=gen), edge_index=ei,
                           y=torch.randn(1, generator=gen)))
    return Batch.from_data_list(graphs)


def _step_rows(quick: bool) -> list[dict]:
    from graphlab.models import PRMPNN
    from graphlab.rewiring import EdgeCandidates

    num_graphs = 32 if quick else 128
    batch = _zinc_like_batch(num_graphs)
    cands = EdgeCandidates(100, "distance")
    batch.cand_index = torch.cat([cands(g.clone()).cand_index + int(batch.ptr[i])
                                  for i, g in enumerate(batch.to_data_list())], dim=1)
    rows = []
    times = {}
    for name, rewire in [("downstream MPNN alone", False), ("PR-MPNN", True)]:
        torch.manual_seed(0)
        model = PRMPNN(16, 64, 1, num_layers=4, k_add=80, k_delete=20, num_samples=5,
                       upstream_layers=2, num_candidates=100, rewire=rewire).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(0)

        def step(model=model, opt=opt, gen=gen):
            opt.zero_grad()
            loss = (model.forward_data(batch, gen).squeeze(-1) - batch.y).abs().mean()
            loss.backward()
            opt.step()

        times[name] = _time(step, 0.5 if quick else 3.0)
    for name, t in times.items():
        rows.append({"method": name, "graphs": num_graphs, "time_s": t,
                     "ratio_vs_downstream_alone": t / times["downstream MPNN alone"]})
    return rows


@register("prmpnn-speed", "k-subset marginals vs sequential DP; PR-MPNN step vs plain MPNN",
          paper="Qian et al. ICLR 2024 (PR-MPNN); Ahmed et al. 2023 (SIMPLE k-subset)")
def run(quick: bool, out: Path) -> TaskResult:
    torch.set_num_threads(1)
    rows = [{"bench": "marginals fwd+bwd", **r} for r in _marginal_rows(quick)]
    rows += [{"bench": "training step", **r} for r in _step_rows(quick)]
    ours = rows[2]
    step = [r for r in rows if r["method"] == "PR-MPNN"][0]
    return TaskResult(rows, paper="(no timing in the paper)",
                      ours=f"marginals {ours['speedup_vs_reference']:.0f}x the sequential DP; "
                           f"PR-MPNN step {step['ratio_vs_downstream_alone']:.0f}x the plain MPNN",
                      notes="Median CPU times, one thread. The reference DP is timed on the same "
                            "rows in the same run.")


# --------------------------------------------------------------------------- anchor
#: workload -> (rows = graphs x priors, candidates n, k), the paper's configurations
SIMPLE_WORKLOADS = {
    False: {"ZINC addition": (640, 100, 80), "ZINC deletion": (640, 50, 20),
            "peptides-func addition": (32, 350, 80)},
    True: {"ZINC addition": (64, 100, 80)},
}
LARGE_NUMBER = 1e10  # their padding score


def simple_layer(n: int, k: int, device: str = "cpu"):
    """The authors' SIMPLE ``Layer`` for ``n`` candidates (padded to a power of two, as their
    ``EdgeSIMPLEBatched`` does) and subset size ``k``, run eagerly."""
    simple = load_anchor_module("PR-MPNN", "simple.simple")
    build = load_anchor_module("PR-MPNN", "simple.create_simple_constraint")
    # their DISABLE switch, after the fact: the module-level functions and methods are already
    # wrapped by torch.compile; each wrapper keeps the original function
    for name in ("levelwiseSL", "levelwiseMars", "log1mexp", "gumbel_keys", "sample_subset"):
        fn = getattr(simple, name)
        setattr(simple, name, getattr(fn, "_torchdynamo_orig_callable", fn))
    for name in ("log_pr", "sample"):
        fn = getattr(simple.Layer, name)
        setattr(simple.Layer, name, getattr(fn, "_torchdynamo_orig_callable", fn))
    size = 2 ** math.ceil(math.log2(n))
    circuit = build.create_exactly_k(size, k)[0][-1]
    # their Layer reads the circuit from f"{root}/{n}C{k}.pkl"; hand it the one just built
    simple.pickle = types.SimpleNamespace(load=lambda _file: circuit)
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / f"{size}C{k}.pkl").touch()
        return simple.Layer(size, k, device, root=root)


def simple_marginals(layer, log_probs: Tensor) -> Tensor:
    """Their marginals ``[rows, n]`` of log-probabilities ``[rows, n]``, padded as they pad."""
    rows, n = log_probs.shape
    size = layer.literal_mask[0].numel() // 2
    pad = log_probs.new_full((rows, size - n), -LARGE_NUMBER)
    return layer.log_pr(torch.cat([log_probs, pad], dim=1)).exp().permute(1, 0)[:, :n]


def _simple_inputs(rows: int, n: int, device: str) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(rows, n, generator=gen).to(device),
            torch.randn(rows, n, generator=gen).to(device))


def _simple_step(impl: str, rows: int, n: int, k: int, device: str, layer=None):
    logits, cot = _simple_inputs(rows, n, device)
    if impl == "SIMPLE":
        layer = simple_layer(n, k, device) if layer is None else layer
        log_probs = torch.nn.functional.logsigmoid(logits)

        def step() -> None:
            x = log_probs.clone().requires_grad_(True)
            (simple_marginals(layer, x) * cot).sum().backward()
    else:
        def step() -> None:
            x = logits.clone().requires_grad_(True)
            (k_subset_marginals(x, k) * cot).sum().backward()
    return step


def simple_memory_step(impl: str, rows: int, n: int, k: int, device: str = "cpu"):
    """The peak-memory worker's step: forward + backward of ``impl`` (graphlab or SIMPLE)."""
    return _simple_step(impl, rows, n, k, device)


def anchor_rows(quick: bool, device: str = "cpu") -> list[dict]:
    """``k_subset_marginals`` against the authors' SIMPLE circuit: one row per workload, with
    the ratio's median and range over interleaved rounds, the memory ratio (full run) and the
    largest difference of the marginals (float32, both). No row when the checkout is missing
    (:func:`benchmarks.common.anchors.skipped_anchors` says why)."""
    from tqdm import tqdm

    torch.set_num_threads(1)
    rounds, min_run_time = (3, 0.05) if quick else (7, 0.5)
    try:
        load_anchor_module("PR-MPNN", "simple.node")
    except AnchorMissing:
        return []
    rows = []
    for name, (n_rows, n, k) in tqdm(SIMPLE_WORKLOADS[quick].items(), desc="SIMPLE anchor",
                                     leave=False):
        layer = simple_layer(n, k, device)
        logits, _ = _simple_inputs(n_rows, n, device)
        with torch.no_grad():
            theirs = simple_marginals(layer, torch.nn.functional.logsigmoid(logits))
            diff = (theirs - k_subset_marginals(logits, k)).abs().max().item()
        steps = {impl: _simple_step(impl, n_rows, n, k, device, layer)
                 for impl in ("graphlab", "SIMPLE")}
        # their circuit takes seconds per pass on the CPU: one call is its own figure
        times = interleaved_times(steps, rounds, min_run_time, device, slow_s=1.0)
        memory = {}
        if not quick:
            memory = {impl: peak_memory("benchmarks.prmpnn_speed:simple_memory_step",
                                        {"impl": impl, "rows": n_rows, "n": n, "k": k,
                                         "device": device}, device)
                      for impl in ("graphlab", "SIMPLE")}
        rows.append(anchor_row(
            f"k-subset marginals fwd+bwd, {name} ({n_rows} rows x {n} candidates, k = {k})",
            "authors' SIMPLE circuit (chendiqian/PR-MPNN, eager)", times["graphlab"],
            times["SIMPLE"], memory.get("graphlab"), memory.get("SIMPLE"), device=device,
            rounds=rounds, max_abs_diff=diff))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/prmpnn_speed"))
    parser.add_argument("--anchors", action="store_true",
                        help="print the rows against the authors' SIMPLE circuit instead")
    parser.add_argument("--anchor-dir", type=Path, default=None,
                        help="folder with a checkout of github.com/chendiqian/PR-MPNN as PR-MPNN/")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (with --anchors)")
    args = parser.parse_args(argv)
    set_anchor_dir(args.anchor_dir)
    if args.anchors:
        print(format_table(anchor_rows(args.quick, args.device)))
        return 0
    return run_script("prmpnn-speed", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out))


if __name__ == "__main__":
    sys.exit(main())
