"""SheafDiffusion speed and memory: against the authors' code (anchors) and against an assembled
sparse nd x nd Laplacian written from the equations, plus ConnectionSheaf's preprocessing cost.

**Anchors** (:func:`anchor_rows`, the sheaf rows of ``speed-anchors``): every map family against
the authors' models from a checkout of ``twitter-research/neural-sheaf-diffusion`` (located by
``--anchor-dir`` / ``$GRAPHLAB_ANCHOR_DIR``, never copied here): ``diag`` vs
``DiscreteDiagSheafDiffusion``, ``orthogonal`` (Householder, learned edge weights) vs
``DiscreteBundleSheafDiffusion``, ``general`` vs ``DiscreteGeneralSheafDiffusion``, and
``connection`` (Conn-NSD: fixed ``ConnectionSheaf`` maps) vs ``DiscreteBundleSheafDiffusion``
with its sheaf learner replaced by the same fixed maps (their Laplacian builder and diffusion
unchanged; the Conn-NSD authors' own code is not in that checkout). Both sides: d=3, 20 channels
per stalk, 2 layers, dropout 0, one training step (forward, cross-entropy, backward), one thread,
on Film (7,600 nodes) and on a generated 100k-node graph (Film's first 1,000 nodes and 2,000
nodes with ``--quick``). Time: the per-round ratio's median and range over interleaved rounds
(CPU time); memory: peak resident-set growth of one step in a fresh process
(:func:`benchmarks.common.anchors.peak_memory`, full runs only). ``max_abs_diff`` compares the
log-probabilities of both models with the same weights (eval mode; orthogonal without edge
weights, whose parametrisations differ). The anchors import ``torch_scatter``/``torch_sparse``/
``torch_householder``; without wheels here they run on the plain-torch shims of
:mod:`benchmarks.common.anchors` (each row says which).

**Reference** ("sparse-assembly"): the same model, same parameters, but every layer builds the
normalised sheaf Laplacian as a ``torch.sparse_coo_tensor`` of size nd x nd in each forward and
applies it with ``torch.sparse.mm``; checked to give the same output, each method timed in a
fresh subprocess over training epochs (forward, backward, Adam step).

    python -m benchmarks.sheaf_speed [--quick] [--anchor-dir ANCHORS] [--out runs/sheaf_speed]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import TaskResult, format_table, load_dataset, register, run_script
from benchmarks.common.anchors import set_anchor_dir
from benchmarks.common.measure import measure_in_subprocess
from graphlab.conv.sheaf_conv import SheafConv
from graphlab.nn.orthogonal import sym_inv_sqrt

VARIANTS = ("sheaf-diag", "sheaf-orth", "sheaf-general")
MODEL = dict(stalk_dim=3, num_layers=2, hidden_channels=20, dropout=0.5)


class SparseAssemblySheafConv(SheafConv):
    """Baseline: the same layer, but Delta_F is assembled as a sparse nd x nd matrix."""

    def laplacian(self, x: torch.Tensor, edge_index: torch.Tensor, maps: torch.Tensor,
                  scaled_orthogonal: bool = False) -> torch.Tensor:
        from torch_geometric.utils import scatter

        n, d = x.size(0), self.stalk_dim
        src, dst = edge_index
        tgt, srcm = maps[:, 0], maps[:, 1]
        ar = torch.arange(d)
        nodes = torch.arange(n)
        if maps.dim() == 3:
            diag = scatter(tgt * tgt, dst, 0, dim_size=n, reduce="sum")
            inv = (diag + 1.0).rsqrt()
            off = -(inv[dst] * tgt * srcm * inv[src])
            on = inv * diag * inv
            rows = torch.cat([(dst[:, None] * d + ar).reshape(-1), (nodes[:, None] * d + ar)
                              .reshape(-1)])
            cols = torch.cat([(src[:, None] * d + ar).reshape(-1), (nodes[:, None] * d + ar)
                              .reshape(-1)])
        else:
            diag = scatter(tgt.mT @ tgt, dst, 0, dim_size=n, reduce="sum")
            eye = torch.eye(d, dtype=x.dtype)
            if scaled_orthogonal:  # scalar normaliser, as the reference's connection builder
                scale = diag.diagonal(dim1=-2, dim2=-1).mean(-1) + 1.0
                inv = scale.rsqrt()[:, None, None] * eye
            else:
                inv = sym_inv_sqrt(diag + eye)
            off = -(inv[dst] @ (tgt.mT @ srcm) @ inv[src])
            on = inv @ diag @ inv
            ii, jj = ar.repeat_interleave(d), ar.repeat(d)
            rows = torch.cat([(dst[:, None] * d + ii).reshape(-1),
                              (nodes[:, None] * d + ii).reshape(-1)])
            cols = torch.cat([(src[:, None] * d + jj).reshape(-1),
                              (nodes[:, None] * d + jj).reshape(-1)])
        values = torch.cat([off.reshape(-1), on.reshape(-1)])
        lap = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n * d, n * d))
        lap = lap.coalesce()
        return torch.sparse.mm(lap, x.reshape(n * d, -1)).view(n, d, -1)


def _film(quick: bool):
    data = load_dataset("film").dataset[0]
    if quick:  # the first 1,000 nodes: same structure of work, a minute on 2 cores
        from torch_geometric.utils import subgraph

        keep = torch.arange(1000)
        data.edge_index, _ = subgraph(keep, data.edge_index, num_nodes=data.num_nodes)
        data.x, data.y = data.x[keep], data.y[keep]
        data.train_mask = data.train_mask[keep]
        data.num_nodes = 1000
    return data


def _build(variant: str, num_features: int, num_classes: int, method: str):
    from graphlab.datasets.spec import TaskSpec
    from graphlab.models import build_model

    torch.manual_seed(0)
    spec = TaskSpec("node", num_features, num_classes, "ce", "acc")
    model = build_model(variant, spec, **MODEL)
    if method == "sparse-assembly":
        # identical parameters, only the Laplacian product differs; build_model may wrap the
        # model for Data inputs (DataModel.model)
        for conv in getattr(model, "model", model).convs:
            conv.__class__ = SparseAssemblySheafConv
    return model


def _epoch_fn(model, data, opt):
    train = data.train_mask[:, 0]

    def epoch() -> None:
        model.train()
        opt.zero_grad()
        out = model(data)
        torch.nn.functional.cross_entropy(out[train], data.y[train]).backward()
        opt.step()

    return epoch


def epoch_step(path: str, variant: str, method: str):
    """One training epoch of ``variant`` with ``method`` on the saved graph (the factory the
    measurement calls in a fresh process)."""
    from torch_geometric.data import Data

    data = Data(**torch.load(path, weights_only=True))
    model = _build(variant, data.x.size(1), int(data.y.max()) + 1, method)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    return _epoch_fn(model, data, opt)


def _measure(path: str, variant: str, method: str, min_time: float) -> dict:
    res = measure_in_subprocess("benchmarks.sheaf_speed:epoch_step",
                                {"path": path, "variant": variant, "method": method},
                                warmup=False, steps=2, min_run_time=min_time)
    if "error" in res:
        raise RuntimeError(f"sheaf-speed worker ({variant}, {method}) failed: {res['error']}")
    return {"ms_per_epoch": 1000 * res["time_s"], "peak_rss_growth_mb": res["peak_mb"]}


def _check_same_output(data, variant: str) -> float:
    ours = _build(variant, data.x.size(1), int(data.y.max()) + 1, "message-passing").eval()
    ref = _build(variant, data.x.size(1), int(data.y.max()) + 1, "sparse-assembly").eval()
    with torch.no_grad():
        return float((ours(data) - ref(data)).abs().max())


# --------------------------------------------------------------------------- anchors
ANCHOR = "twitter-research/neural-sheaf-diffusion"
FAMILIES = ("diag", "orthogonal", "general", "connection")
ANCHOR_CLASSES = {"diag": "DiscreteDiagSheafDiffusion", "orthogonal": "DiscreteBundleSheafDiffusion",
                  "general": "DiscreteGeneralSheafDiffusion",
                  "connection": "DiscreteBundleSheafDiffusion"}
STALK_DIM, HIDDEN, LAYERS = 3, 20, 2
#: generated workload: nodes (full, quick), undirected edges per node, feature width, classes
GENERATED = {False: 100_000, True: 2_000}
GEN_DEGREE, GEN_FEATURES, GEN_CLASSES = 1.5, 64, 5


def generated_graph(num_nodes: int, seed: int = 0):
    """A random graph (``GEN_DEGREE * num_nodes`` undirected edges, both directions, no self
    loops), Gaussian features and random labels, with Conn-NSD maps from random per-node frames
    (``O_vu = Q_v^T Q_u``, exactly ``O_uv^T``): ``ConnectionSheaf``'s feature-space neighbour
    search is quadratic in nodes, a preprocessing cost this benchmark does not measure."""
    from torch_geometric.data import Data
    from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

    gen = torch.Generator().manual_seed(seed)
    num_edges = int(GEN_DEGREE * num_nodes)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)
    frames = torch.linalg.qr(torch.randn(num_nodes, STALK_DIM, STALK_DIM, generator=gen,
                                         dtype=torch.float64))[0]
    src, dst = edge_index
    transport = (frames[dst].mT @ frames[src]).float()
    eye = torch.eye(STALK_DIM).expand_as(transport)
    return Data(x=torch.randn(num_nodes, GEN_FEATURES, generator=gen), edge_index=edge_index,
                y=torch.randint(0, GEN_CLASSES, (num_nodes,), generator=gen),
                sheaf_maps=torch.stack([eye, transport], 1))


def workload_graph(workload: str, quick: bool):
    """``"film"`` (ConnectionSheaf maps) or ``"generated"``, undirected without self-loops."""
    if workload == "generated":
        return generated_graph(GENERATED[quick])
    from torch_geometric.transforms import RemoveSelfLoops, ToUndirected

    from graphlab.transforms import ConnectionSheaf

    data = ToUndirected()(RemoveSelfLoops()(_film(quick)))
    return ConnectionSheaf(STALK_DIM)(data)


def _anchor_args(data, family: str, edge_weights: bool = True) -> dict:
    # the authors' configuration for the same model (exp/parser.py names); add_lp/add_hp off
    return dict(d=STALK_DIM, add_lp=False, add_hp=False, hidden_channels=HIDDEN, device="cpu",
                graph_size=data.num_nodes, layers=LAYERS, normalised=True, deg_normalised=False,
                linear=False, input_dropout=0.0, dropout=0.0, left_weights=True,
                right_weights=True, sparse_learner=False, use_act=True,
                input_dim=data.x.size(1), output_dim=int(data.y.max()) + 1, sheaf_act="tanh",
                second_linear=False, orth="householder",
                edge_weights=edge_weights and family == "orthogonal", max_t=1.0)


class _FixedSheafLearner(torch.nn.Module):
    """Stands in for the anchor's sheaf learner in Conn-NSD: no learned maps, only a placeholder
    of the parameter shape their builder checks (its ``orth_transform`` returns the fixed maps)."""

    def __init__(self, num_edges: int, num_params: int) -> None:
        super().__init__()
        self.register_buffer("params", torch.zeros(num_edges, num_params))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.params

    def set_L(self, weights: torch.Tensor) -> None:  # noqa: N802 - the anchor's method name
        pass


class _FixedMaps(torch.nn.Module):
    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("maps", maps)

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        return self.maps


def anchor_model(data, family: str, edge_weights: bool = True) -> torch.nn.Module:
    """The authors' model for ``family`` on ``data`` (raises ``AnchorMissing`` without it)."""
    from benchmarks.common.anchors import load_anchor_module

    models = load_anchor_module("neural-sheaf-diffusion", "models.disc_models")
    model = getattr(models, ANCHOR_CLASSES[family])(data.edge_index,
                                                    _anchor_args(data, family, edge_weights))
    if family == "connection":
        # their maps are per directed edge (row, col) with L_{row,col} = -F_row^T F_col: I on
        # edges with row < col and O_{col,row} on the others gives L_vu = -O_vu, as ours
        src, dst = data.edge_index
        eye = torch.eye(STALK_DIM).expand(src.numel(), -1, -1)
        maps = torch.where((src < dst)[:, None, None], eye, data.sheaf_maps[:, 1])
        num_params = model.get_param_size()
        model.sheaf_learners = torch.nn.ModuleList(
            [_FixedSheafLearner(src.numel(), num_params) for _ in model.sheaf_learners])
        model.laplacian_builder.orth_transform = _FixedMaps(maps.contiguous())
    return model


def ours_model(data, family: str, edge_weights: bool = True) -> torch.nn.Module:
    from graphlab.models.sheaf_diffusion import SheafDiffusion

    torch.manual_seed(0)
    return SheafDiffusion(data.x.size(1), HIDDEN, int(data.y.max()) + 1, LAYERS,
                          stalk_dim=STALK_DIM, maps=family, edge_weights=edge_weights)


def _copy_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Give the anchor our weights (same layouts; their learner also concatenates the map's own
    endpoint first)."""
    with torch.no_grad():
        theirs.lin1.load_state_dict(ours.lin_in.state_dict())
        theirs.lin2.load_state_dict(ours.lin_out.state_dict())
        for layer, conv in enumerate(ours.convs):
            theirs.lin_left_weights[layer].weight.copy_(conv.left.weight)
            theirs.lin_right_weights[layer].weight.copy_(conv.right.weight)
            theirs.epsilons[layer].copy_(conv.eps)
            if conv.learner is not None:
                theirs.sheaf_learners[layer].linear1.weight.copy_(conv.learner.lin.weight)


def _forward(impl: str, model: torch.nn.Module, data) -> torch.Tensor:
    if impl == "anchor":
        return model(data.x)  # log-probabilities; the graph is baked into their __init__
    maps = data.sheaf_maps if model.maps == "connection" else None
    return torch.log_softmax(model(data.x, data.edge_index, maps), -1)


def agreement(data, family: str, ours=None, theirs=None) -> float:
    """Max |difference| of the log-probabilities with equal weights (eval mode). ``ours`` and
    ``theirs`` (built here when not given) get the same weights; orthogonal models need
    ``edge_weights=False``, whose parametrisations differ between the two codes."""
    ours = ours_model(data, family, edge_weights=False) if ours is None else ours
    theirs = anchor_model(data, family, edge_weights=False) if theirs is None else theirs
    _copy_weights(ours.eval(), theirs.eval())
    with torch.no_grad():
        diff = (_forward("graphlab", ours, data) - _forward("anchor", theirs, data)).abs().max()
    return float(diff)


def _train_step(impl: str, model: torch.nn.Module, data):
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        torch.nn.functional.nll_loss(_forward(impl, model, data), data.y).backward()

    return step


def anchor_memory_step(impl: str, family: str, path: str):
    """One training step of ``impl`` on the graph saved at ``path`` (the factory
    :func:`benchmarks.common.anchors.peak_memory` calls in a fresh process)."""
    from torch_geometric.data import Data

    data = Data(**torch.load(path, weights_only=True))
    model = (anchor_model if impl == "anchor" else ours_model)(data, family)
    return _train_step(impl, model, data)


def _workload_label(workload: str, data) -> str:
    name = "Film" if workload == "film" else "generated"
    return (f"{name} {data.num_nodes:,} nodes, {data.edge_index.size(1):,} directed edges "
            f"(d={STALK_DIM}, {HIDDEN} ch/stalk, {LAYERS} layers, fwd+bwd)")


def anchor_rows(quick: bool, device: str = "cpu",
                workloads: tuple[str, ...] = ("film", "generated"),
                families: tuple[str, ...] = FAMILIES, rounds: int | None = None) -> list[dict]:
    """SheafDiffusion against the authors' models: one row per (workload, map family) with the
    time ratio's median and range over interleaved rounds, the memory ratio (full runs), and the
    output agreement with equal weights. Without the checkout: no rows (and
    :func:`benchmarks.common.anchors.skipped_anchors` says why). ``rounds`` overrides the number
    of interleaved rounds (7 on Film, 5 on the 100k-node graph, 3 with ``quick``)."""
    from tqdm import tqdm

    from benchmarks.common.anchors import (
        AnchorMissing,
        anchor_row,
        interleaved_times,
        load_anchor_module,
        peak_memory,
        shims_used,
    )

    if device != "cpu":
        raise ValueError("the sheaf anchors run on CPU (their shims and builders are CPU code)")
    try:
        load_anchor_module("neural-sheaf-diffusion", "models.disc_models")
    except AnchorMissing:
        return []
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in workloads:
            data = workload_graph(workload, quick)
            big = data.num_nodes > 50_000
            default, min_run_time = (3, 0.02) if quick else ((5, 0.2) if big else (7, 0.5))
            num_rounds = rounds or default
            path = str(Path(tmp) / f"{workload}.pt")
            torch.save({k: data[k] for k in ("x", "edge_index", "y", "sheaf_maps")}, path)
            for family in tqdm(families, desc=f"sheaf anchors ({workload})", leave=False):
                models = {"graphlab": ours_model(data, family), "anchor": anchor_model(data, family)}
                if family != "orthogonal":  # the timed pair, given equal weights
                    diff = f"{agreement(data, family, models['graphlab'], models['anchor']):.1e}"
                elif not big:  # one more anchor build (its __init__ loops over edges in Python)
                    diff = f"{agreement(data, family):.1e} (edge_weights=False)"
                else:
                    diff = "checked on Film (edge_weights=False)"
                steps = {impl: _train_step(impl, model, data) for impl, model in models.items()}
                times = interleaved_times(steps, num_rounds, min_run_time)
                del steps, models
                memory = {}
                if not quick:  # a fresh process per model; quick runs report no memory ratio
                    memory = {impl: peak_memory("benchmarks.sheaf_speed:anchor_memory_step",
                                                {"impl": impl, "family": family, "path": path},
                                                timeout=3000)
                              for impl in ("graphlab", "anchor")}
                rows.append(anchor_row(
                    _workload_label(workload, data), f"{ANCHOR} {ANCHOR_CLASSES[family]}",
                    times["graphlab"], times["anchor"], memory.get("graphlab"),
                    memory.get("anchor"), family=family, device=device, rounds=num_rounds,
                    max_abs_diff=diff, shims=", ".join(shims_used()) or "none"))
    return rows


@register("sheaf-speed", "SheafDiffusion time/memory vs the authors' models (anchors) and vs "
          "sparse nd x nd assembly, on Film and a 100k-node graph",
          paper="Bodnar et al. 2022 (twitter-research/neural-sheaf-diffusion)")
def run(quick: bool, out: Path) -> TaskResult:
    from benchmarks.common.anchors import skipped_anchors
    from graphlab.transforms import ConnectionSheaf

    torch.set_num_threads(1)
    from torch_geometric.transforms import RemoveSelfLoops, ToUndirected

    anchors = anchor_rows(quick)
    rows: list[dict] = [{"comparison": "anchor", **row} for row in anchors]
    if not anchors:
        reason = skipped_anchors().get(ANCHOR, f"anchor {ANCHOR} skipped")
        rows.append({"comparison": "anchor", "workload": "all", "anchor": reason})
    data = ToUndirected()(RemoveSelfLoops()(_film(quick)))
    variants = ("sheaf-diag",) if quick else VARIANTS
    min_time = 0.5 if quick else 2.0
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "film.pt")
        torch.save({"x": data.x, "edge_index": data.edge_index, "y": data.y,
                    "train_mask": data.train_mask}, path)
        for variant in variants:
            err = _check_same_output(data, variant)
            res = {m: _measure(path, variant, m, min_time)
                   for m in ("message-passing", "sparse-assembly")}
            ours, base = res["message-passing"], res["sparse-assembly"]
            rows.append({
                "comparison": "sparse-assembly reference", "model": variant,
                "workload": f"Film {data.num_nodes:,} nodes, {data.edge_index.size(1):,} "
                            "directed edges, training epoch",
                "ours ms/epoch": round(ours["ms_per_epoch"], 1),
                "sparse-assembly ms/epoch": round(base["ms_per_epoch"], 1),
                "speed-up": round(base["ms_per_epoch"] / ours["ms_per_epoch"], 2),
                "ours peak MB": round(ours["peak_rss_growth_mb"], 1),
                "sparse-assembly peak MB": round(base["peak_rss_growth_mb"], 1),
                "max |out diff|": f"{err:.1e}",
            })
    start = time.perf_counter()
    ConnectionSheaf(MODEL["stalk_dim"])(data.clone())
    prep = time.perf_counter() - start
    rows.append({"comparison": "preprocessing", "model": "ConnectionSheaf (d=3, once)",
                 "workload": f"Film {data.num_nodes:,} nodes", "ours ms/epoch":
                 f"{1000 * prep:.0f} ms total"})
    timed = [r for r in rows if "speed-up" in r]
    summary = "; ".join(f"{r['family']} on {r['workload'].split(' (')[0]}: "
                        f"{r['ratio_median']}x time"
                        + (f", {r['memory_ratio']}x memory" if r["memory_ratio"] else "")
                        for r in anchors)
    summary += ("; " if summary else "") + "; ".join(
        f"{r['model']} {r['speed-up']}x faster than sparse assembly" for r in timed)
    return TaskResult(rows, paper="(no timing in the paper: the anchors are the authors' code)",
                      ours=summary,
                      notes=f"Anchors: ratio = graphlab / authors' code (below 1 is better), "
                            f"median and range over interleaved rounds, CPU time, one thread; "
                            f"memory = peak RSS growth of one step in a fresh process. The "
                            f"authors' torch_scatter/torch_sparse/torch_householder imports run "
                            f"on plain-torch shims (no wheels here). Reference rows: model "
                            f"{MODEL}; one epoch = forward + backward + Adam step on the full "
                            f"graph (train mask of split 0). No GPU was available for this run.",
                      config={"model": MODEL, "variants": list(variants), "min_time": min_time,
                              "anchor_families": list(FAMILIES),
                              "generated_nodes": GENERATED[quick]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/sheaf_speed"))
    parser.add_argument("--anchor-dir", type=Path, default=None,
                        help="folder with a checkout of twitter-research/neural-sheaf-diffusion")
    parser.add_argument("--anchors", action="store_true",
                        help="print only the rows against the authors' models")
    args = parser.parse_args(argv)
    set_anchor_dir(args.anchor_dir)
    if args.anchors:
        print(format_table(anchor_rows(args.quick)))
        return 0
    return run_script("sheaf-speed", argv, args.out, args.quick, lambda: run(args.quick, args.out))


if __name__ == "__main__":
    sys.exit(main())
