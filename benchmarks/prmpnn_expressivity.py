"""EXP and CSL: PR-MPNN vs GIN (1-WL bounded). Paper: PR-MPNN near 100% on both, GIN ~50% / 10%.

Both models are trained with the datasets' standard folds from ``graphlab.datasets.get_dataset``
(EXP: 10-fold CV over graph pairs; CSL: 5-fold stratified CV); the test accuracy at the epoch of
best validation accuracy is reported per fold, then averaged. GIN: graphlab's ``GNN`` with GIN
layers. PR-MPNN follows the authors' configs (``configs/exp/best.yaml``,
``configs/csl/best_config.yaml`` of chendiqian/PR-MPNN), scaled to 2 CPU cores (see ``CONFIGS``):
longest-shortest-path candidates, several sampled rewirings per graph in training AND at
evaluation, whose readouts are averaged (``num_eval_samples``).

EXP graphs have several components. The authors' heuristic ("distance": unreachable pairs first)
then fills the candidate cap with unreachable pairs, which all tie, so the set is picked by node
order; and a scorer that sees only the graph is 1-WL bounded, so both graphs of a pair get the
same logits and differ only by sampling noise, which the downstream GIN did not learn from
(train accuracy 50% in a measured run). EXP therefore uses a scorer
that also passes messages along the candidate pairs (``upstream_candidates``) and
"component_distance" candidates (distance minus the component's diameter): with
"reachable_distance" the cap went entirely to the component of largest diameter, which both graphs
of a pair share, on 20 of 600 pairs, and 1-WL on graph + candidates could not separate them.
Both are options of the library, off by default. CSL graphs
are connected (the heuristics agree) and use the candidate-aware scorer too.

    python -m benchmarks.prmpnn_expressivity [--quick] [--datasets CSL] [--folds 1] [--epochs 30]
        [--out runs/prmpnn_expressivity]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch_geometric.loader import DataLoader

from benchmarks.common import TaskResult, load_dataset, register, run_script
from graphlab.engine import fit
from graphlab.models import GNN, PRMPNN
from graphlab.rewiring import EdgeCandidates
from graphlab.runfolder import atomic_write_json

PAPER = {("EXP", "PR-MPNN"): "~100", ("EXP", "GIN"): "~50",
         ("CSL", "PR-MPNN"): "~100", ("CSL", "GIN"): "~10"}


def _load(name: str):
    return load_dataset(name)  # TaskSkipped when the data is not available


#: per dataset: the downstream width/depth is shared by GIN and PR-MPNN. Authors: EXP add 10 /
#: delete 10 of 1024 longest-path candidates, 5 priors x 10 samples in training and evaluation,
#: 8 upstream and 6 downstream layers (hidden 32), 300 epochs; CSL add 1 (no deletion), 3 priors
#: x 3 training / 10 evaluation samples, 12 downstream layers (hidden 128), up to 1000 epochs.
#: We use one prior and fewer candidates, layers and epochs (CPU budget); for EXP the candidates,
#: the cap and the schedule were chosen on folds 0 and 1.
CONFIGS = {
    "EXP": {"hidden": 32, "layers": 6, "k_add": 10, "k_delete": 10, "candidates": 50,
            "num_samples": 4, "num_eval_samples": 10, "upstream_layers": 4, "batch_size": 32,
            "lr": 1e-3, "lr_schedule": "cosine", "heuristic": "component_distance",
            "upstream_candidates": True},
    "CSL": {"hidden": 64, "layers": 6, "k_add": 1, "k_delete": 0, "candidates": 20,
            "num_samples": 3, "num_eval_samples": 10, "upstream_layers": 4, "batch_size": 16,
            "lr": 3e-3, "upstream_candidates": True, "readout_norm": True},
}


def make_model(kind: str, spec, cfg: dict) -> nn.Module:
    if kind == "GIN":
        return GNN(spec.in_channels, cfg["hidden"], spec.out_channels, num_layers=cfg["layers"],
                   conv="gin", readout="add", dropout=0.0)
    return PRMPNN(spec.in_channels, cfg["hidden"], spec.out_channels, num_layers=cfg["layers"],
                  k_add=cfg["k_add"], k_delete=cfg["k_delete"], num_samples=cfg["num_samples"],
                  num_eval_samples=cfg["num_eval_samples"],
                  upstream_layers=cfg["upstream_layers"], num_candidates=cfg["candidates"],
                  heuristic=cfg.get("heuristic", "distance"), readout="add",
                  norm=cfg.get("norm", "batch_norm"),
                  upstream_candidates=cfg.get("upstream_candidates", False),
                  readout_norm=cfg.get("readout_norm", False))


def _acc(model: nn.Module, loader, generator: torch.Generator | None = None) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for data in loader:
            out = model.forward_data(data, generator) if isinstance(model, PRMPNN) \
                else model.forward_data(data)
            correct += int((out.argmax(-1) == data.y.view(-1)).sum())
            total += data.num_graphs
    return correct / max(total, 1)


def train_fold(kind: str, graphs: list, spec, split: dict, epochs: int, cfg: dict,
               seed: int = 0, verbose: bool = False) -> dict:
    """Trains one fold; returns validation/test/train accuracy at the epoch of best validation
    accuracy (the first such epoch) and the per-epoch curves.

    ``cfg["lr_schedule"] == "cosine"`` anneals the learning rate from ``cfg["lr"]`` to 0 over
    ``epochs`` (per epoch); absent, the rate is constant.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    torch.manual_seed(seed)
    sub = {k: [graphs[i] for i in v.tolist()] for k, v in split.items()}
    train = DataLoader(sub["train"], batch_size=cfg["batch_size"], shuffle=True)
    valid = DataLoader(sub["valid"], batch_size=128)
    test = DataLoader(sub["test"], batch_size=128)
    model = make_model(kind, spec, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    schedule = cfg.get("lr_schedule")
    if schedule not in (None, "cosine"):
        raise ValueError(f"lr_schedule must be None or 'cosine', got {schedule!r}")
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs) if schedule else None
    gen = torch.Generator().manual_seed(seed)
    # per epoch: mean training loss and accuracy of the training-mode predictions (sampled
    # rewirings, batch statistics), free by-products of the optimisation steps
    sums = {"loss": 0.0, "hits": 0.0}
    loss_curve: list[float] = []
    fit_curve: list[float] = []

    def step(m: nn.Module, data) -> torch.Tensor:
        out = m.forward_data(data, gen) if kind == "PR-MPNN" else m.forward_data(data)
        loss = nn.functional.cross_entropy(out, data.y.view(-1))
        sums["loss"] += loss.item() * data.num_graphs
        sums["hits"] += int((out.argmax(-1) == data.y.view(-1)).sum())
        return loss

    def epoch_end(epoch: int, record: dict) -> None:
        loss_curve.append(round(sums["loss"] / len(sub["train"]), 4))
        fit_curve.append(round(sums["hits"] / len(sub["train"]), 3))
        sums.update(loss=0.0, hits=0.0)
        if verbose:
            print(f"{kind} epoch {epoch + 1} loss {loss_curve[-1]:.4f} train(mode) "
                  f"{fit_curve[-1]:.3f} valid {record['valid']:.3f}", flush=True)

    start = time.perf_counter()
    # the best (first best) validation epoch's weights are restored: test and train passes
    # only once, on the kept weights (a train pass is ~10 valid ones)
    res = fit(model, opt, train_step=step, train_batches=train, epochs=epochs,
              evaluate=lambda m: {"valid": _acc(m, valid, gen)}, select=("valid", "max"),
              scheduler=sched, restore_best=True, generator=gen, on_epoch_end=epoch_end,
              progress=False)
    return {"valid": res.best["valid"], "test": _acc(model, test, gen),
            "train": _acc(model, train, gen),
            "valid_curve": [round(h["valid"], 3) for h in res.history],
            "loss_curve": loss_curve, "train_mode_acc_curve": fit_curve,
            "seconds": time.perf_counter() - start}


PLAN_FULL = {"EXP": (10, 30), "CSL": (5, 80)}     # folds, epochs
PLAN_QUICK = {"CSL": (1, 3)}  # EXP (1,200 graphs) only in the full run
QUICK_CFG = {"layers": 3, "candidates": 10, "num_samples": 2, "num_eval_samples": 4,
             "upstream_layers": 1}


def _row(name: str, kind: str, res: list[dict], n_folds: int, total_folds: int, n_epochs: int,
         cfg: dict) -> dict:
    accs = torch.tensor([r["test"] for r in res]) * 100
    knobs = {k: cfg[k] for k in ("hidden", "layers", "batch_size", "lr")} if kind == "GIN" else cfg
    done = f"{len(res)}/{total_folds}" + ("" if len(res) == n_folds else f" (of {n_folds} planned)")
    return {"dataset": name, "model": kind, "folds": done, "epochs": n_epochs,
            "test_acc": round(accs.mean().item(), 1),
            "test_std": round(accs.std().item(), 1) if len(res) > 1 else 0.0,
            "test_per_fold": "/".join(f"{a:.0f}" for a in accs.tolist()),
            "train_acc": round(100 * sum(r["train"] for r in res) / len(res), 1),
            "paper": PAPER[(name, kind)],
            "seconds": round(sum(r["seconds"] for r in res), 1),
            "config": " ".join(f"{k}={v}" for k, v in knobs.items()),
            "curves": {c: [r[c] for r in res]
                       for c in ("valid_curve", "loss_curve", "train_mode_acc_curve")}}


NOTES = ("Test accuracy (%) at the epoch of best validation accuracy, mean over folds; train_acc: "
         "accuracy on the training fold at that epoch, in eval mode. Adam, sum readout; PR-MPNN "
         "evaluated with num_eval_samples sampled rewirings per graph (readouts averaged). "
         "Per-fold curves (validation accuracy, training loss, training-mode accuracy per epoch) "
         "are in the JSON record.")


@register("prmpnn-expressivity", "EXP and CSL accuracy: PR-MPNN vs GIN",
          paper="Qian et al. ICLR 2024 (PR-MPNN), EXP and CSL")
def run(quick: bool, out: Path, datasets: list[str] | None = None, folds: int | None = None,
        epochs: int | None = None, models: tuple[str, ...] = ("GIN", "PR-MPNN"),
        verbose: bool = False) -> TaskResult:
    from tqdm import tqdm

    torch.set_num_threads(1)
    plan = PLAN_QUICK if quick else PLAN_FULL

    def table(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "curves"} for r in rows]

    rows: list[dict] = []
    for name in datasets or list(plan):
        n_folds, n_epochs = plan.get(name, PLAN_FULL[name])
        n_folds, n_epochs = folds or n_folds, epochs or n_epochs
        bundle = _load(name)
        cfg = {**CONFIGS[name], **(QUICK_CFG if quick else {})}
        cands = EdgeCandidates(cfg["candidates"], cfg.get("heuristic", "distance"))
        graphs = [cands(g) for g in bundle.dataset]
        for kind in models:
            res: list[dict] = []
            for f in tqdm(range(n_folds), desc=f"{name} {kind}"):
                res.append(train_fold(kind, graphs, bundle.spec, bundle.splits[f], n_epochs, cfg,
                                      seed=f, verbose=verbose))
                # after every fold, so an interrupted long run keeps the folds it finished
                atomic_write_json(out / "progress.json", table(
                    rows + [_row(name, kind, res, n_folds, len(bundle.splits), n_epochs, cfg)]))
            rows.append(_row(name, kind, res, n_folds, len(bundle.splits), n_epochs, cfg))
    acc = {(r["dataset"], r["model"]): f"{r['test_acc']} ± {r['test_std']}" for r in rows}
    return TaskResult(table(rows),
                      paper="PR-MPNN ~100 on EXP and CSL; GIN ~50 (EXP), ~10 (CSL)",
                      ours=", ".join(f"{d} {m} {v}" for (d, m), v in acc.items()), notes=NOTES,
                      config={"plan": {d: plan.get(d, PLAN_FULL[d]) for d in datasets or plan},
                              "configs": CONFIGS, "quick_overrides": QUICK_CFG if quick else {}},
                      extra={"curves": {f"{r['dataset']} {r['model']}": r["curves"]
                                        for r in rows}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--datasets", nargs="+", choices=sorted(CONFIGS))
    parser.add_argument("--folds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--models", nargs="+", default=["GIN", "PR-MPNN"],
                        choices=["GIN", "PR-MPNN"])
    parser.add_argument("--out", type=Path, default=Path("runs/prmpnn_expressivity"))
    parser.add_argument("--verbose", action="store_true", help="print one line per epoch")
    args = parser.parse_args(argv)
    return run_script("prmpnn-expressivity", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, args.datasets, args.folds, args.epochs,
                                  tuple(args.models), args.verbose))


if __name__ == "__main__":
    sys.exit(main())
