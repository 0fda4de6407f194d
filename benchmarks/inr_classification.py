"""INR classification: which digit does a SIREN draw, from its weights alone?

On the ``digits-inr`` zoo (one 2-32-32-1 SIREN per scikit-learn digits image, label = digit,
the stratified 70/15/15 split), side by side in one run and under one protocol
(:func:`graphlab.zoo.tasks.classify_weights`: the same number of hyperparameter configurations
per model, selected on validation accuracy, then several seeds on test; symmetry augmentation
with neuron permutations and sine sign flips for every torch model):

* ``mlp``: an MLP on the flattened weights (the symmetry-blind baseline);
* ``statnn``: gradient boosting on per-tensor weight statistics (Unterthiner et al. 2020);
* ``neural``: NeuralGraphEncoder on the neural graph (the NG-GNN analogue, Kofinas et al. 2024);
* ``gmn``: GMN on the parameter graph (Lim et al. 2024);
* ``nfn_hnp`` / ``nfn_np``: NFN's HNP / NP equivariant layers from the authors' ``nfn`` package
  (Zhou et al. 2023; skipped, with the reason, when it is not installed).

    python -m benchmarks.inr_classification [--quick] [--out runs/inr_classification]
        [--models mlp,statnn,...] [--configs 3] [--seeds 0,1,2] [--epochs 40] [--size N]

Quick: a 150-INR zoo fitted in the run, 1 configuration, 1 seed, a few epochs (a smoke test of
the pipeline, not a result). Full: the 1,797-INR zoo (w0 = 5, built in ~2 CPU-minutes;
GRAPHLAB_ZOO_ROOT reuses a built one), sized to ~60 CPU-minutes at one thread, the same budget
for every torch model: 2 configurations per model (StatNN's gradient boosting too), the
selected one's first seed reused and 2 more seeds (3 in all), at most 12 epochs (patience 4) at
batch 16 (1,258 training INRs: ~79 steps per epoch). The metanet rows are NeuralGraphEncoder and
GMN on the weights alone, NeuralGraphEncoder with standardised probe features, and NFN HNP / NP;
GMN with probe features runs with ``--models`` (it would add ~15 CPU-minutes).

Paper numbers for context (28x28 MNIST INRs of DWSNets' data, not comparable in absolute
terms): NG-GNN 91.4%, DWSNets 85.7%, NFN-HNP 79.1% (on the DWSNets data), MLP ~17.5%.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import TaskResult, register, run_script

PAPER = "MNIST INRs: NG-GNN 91.4%, DWSNets 85.7%, MLP on flat weights ~17.5%"
_LABEL = {"mlp": "MLP (flat weights)", "statnn": "StatNN (GBM on statistics)",
          "neural": "NeuralGraphEncoder (neural graph, NG-GNN)",
          "gmn": "GMN (parameter graph)",
          "neural_probe": "NeuralGraphEncoder + probe features (NG-GNN w/ probes)",
          "gmn_probe": "GMN + probe features", "nfn_hnp": "NFN HNP (nfn package)",
          "nfn_np": "NFN NP (nfn package)"}


def _zoo(root: Path, size: int, quick: bool) -> Any:
    from graphlab.zoo import build_zoo, load_zoo

    t = time.perf_counter()
    zoo = load_zoo(build_zoo("digits-inr", size, root / f"digits-inr-{size}", seed=0,
                             workers=1 if quick else 2, progress=not quick))
    return zoo, time.perf_counter() - t


def _figure(rows: list[dict], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in rows:
        curve = r.get("curve") or []
        if not curve:
            continue
        ep = [c["epoch"] for c in curve]
        ax[0].plot(ep, [c["loss"] for c in curve], label=r["model"])
        ax[1].plot(ep, [c["valid_acc"] for c in curve], label=r["model"])
    for r in rows:
        if r.get("model") == "statnn" and "valid_acc" in r:
            ax[1].axhline(r["valid_acc"], ls="--", c="k", lw=0.8, label="statnn (valid)")
    ax[0].set(xlabel="epoch", ylabel="training loss (augmented)", yscale="log")
    ax[1].set(xlabel="epoch", ylabel="validation accuracy")
    ax[1].legend(fontsize=7)
    fig.suptitle("INR classification: selected configuration, first seed")
    fig.tight_layout()
    path = out / "inr_classification_curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def diagnostics(zoo: Any, ws: Any, flat: torch.Tensor, y: torch.Tensor,
                split: dict[str, list[int]]) -> list[dict]:
    """Where the label information sits in this zoo (cheap linear probes, no search): logistic
    regression on the INR's *outputs* at the 64 pixel centres (on the grid it was fitted to) and
    at 16 random points between them, on the flat weights, and on the weight change from each
    member's recorded initialisation; plus how far fitting moved each tensor from it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from graphlab.zoo.architectures import make_model

    tr, te = split["train"], split["test"]
    yn = y.numpy()

    def acc(X: np.ndarray) -> float:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1))
        return round(float(clf.fit(X[tr], yn[tr]).score(X[te], yn[te])), 3)

    side = 8
    lin = torch.linspace(-1.0, 1.0, side)
    grid = torch.stack(torch.meshgrid(lin, lin, indexing="ij"), -1).reshape(-1, 2)
    off = torch.rand(16, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = [{"probe": "outputs at the 64 pixel centres (the fitted grid)",
             "logreg_acc": acc(ws.activations(flat, grid)[:, -1].numpy())},
            {"probe": "outputs at 16 random points off the grid",
             "logreg_acc": acc(ws.activations(flat, off)[:, -1].numpy())},
            {"probe": "flat weights", "logreg_acc": acc(flat.numpy())}]
    inits = []
    for i in zoo.indices:  # each member's initialisation, re-drawn from its recorded seed
        net = make_model(zoo.record(i)["config"])
        if not hasattr(net, "reset_parameters"):
            return rows
        net.reset_parameters(torch.Generator().manual_seed(int(zoo.record(i)["config"]["seed"])))
        inits.append(ws.flatten([net])[0])
    delta = flat - torch.stack(inits)
    rows.append({"probe": "weights minus each member's initialisation",
                 "logreg_acc": acc(delta.numpy())})
    change = {n: round(float(delta[:, a:b].norm() / torch.stack(inits)[:, a:b].norm()), 3)
              for n, a, b in zip(ws.names, ws.offsets, ws.offsets[1:])}
    rows.append({"probe": "fitting's relative change norm(theta - theta_0) / norm(theta_0) per "
                          "tensor",
                 "logreg_acc": "", "change": change})
    return rows


def _cell(value: Any) -> str:
    """A table cell: a per-tensor mapping as ``name value`` pairs, not a Python dict."""
    if isinstance(value, dict):
        return ", ".join(f"{name} {v}" for name, v in value.items())
    return str(value)


def tables(rows: list[dict], build_s: float, size: int, diag: list[dict] | None = None) -> str:
    lines = [f"## INR classification on digits-inr ({size} SIRENs 2-32-32-1; zoo ready in "
             f"{build_s:.0f} s)", "",
             "| model | input | test acc (mean ± std) | seeds | valid acc (selected) | configs | "
             "epochs per seed | selected config | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {_LABEL[r['model']]} | {r['input']} | skipped: {r['skipped']} "
                         "| | | | | | |")
            continue
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {_LABEL[r['model']]} | {r['input']} | {r['test_acc_mean']:.3f} ± "
                     f"{r['test_acc_std']:.3f} | {len(r['seeds'])} | {r['valid_acc']:.3f} | "
                     f"{r['n_configs']} | {r['epochs'] or '-'} | {cfg} | {r['seconds']} |")
    if diag:
        lines += ["", "## Where the label is: linear probes on the same split (no search)", "",
                  "| input | logistic-regression test acc |", "|---|---|"]
        lines += [f"| {d['probe']} | {_cell(d.get('change', d['logreg_acc']))} |" for d in diag]
    return "\n".join(lines) + "\n"


@register("inr-classification", "classify digits SIRENs from their weights: graph metanets vs "
          "StatNN, flat MLP and NFN", paper="Kofinas et al. 2024 (Neural Graphs); Zhou et al. "
          "2023 (NFN); Navon et al. 2023 (DWSNets)")
def run(quick: bool, out: Path, models: list[str] | None = None, n_configs: int | None = None,
        seeds: list[int] | None = None, epochs: int | None = None,
        size: int | None = None) -> TaskResult:
    from graphlab.metanets.weightspace import WeightSpace
    from graphlab.zoo.tasks import WEIGHT_MODELS, classify_weights

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    root = Path(os.environ.get("GRAPHLAB_ZOO_ROOT", out / "zoos"))
    size = size or (150 if quick else 1797)
    # quick: one model per code path (flat, statistics, neural view + probes, parameter view,
    # the nfn package)
    models = models or (["mlp", "statnn", "neural_probe", "gmn", "nfn_hnp"] if quick
                        else [m for m in WEIGHT_MODELS if m != "gmn_probe"])
    # full: a graph-metanet epoch over 1,258 training graphs of 1,120 edges costs ~15-20
    # CPU-seconds, so 2 configurations x 12 epochs (4 fits per model) keep the run to ~1 hour
    n_configs = n_configs or (1 if quick else 2)
    seeds = seeds or ([0] if quick else [0, 1, 2])
    epochs = epochs or (2 if quick else 12)
    batch_size = 16
    zoo, build_s = _zoo(root, size, quick)
    parts = zoo.split_parts("id")
    ws = WeightSpace(zoo.module(zoo.indices[0]), zoo.example_input(zoo.indices[0]))
    flat = ws.flatten([zoo.state_dict(i) for i in zoo.indices])
    pos = {i: k for k, i in enumerate(zoo.indices)}
    split = {p: [pos[i] for i in parts[p]] for p in ("train", "val", "test")}
    y = torch.tensor([int(zoo.record(i)["config"]["label"]) for i in zoo.indices])
    rows = classify_weights(ws, flat, y, split, models=models, n_configs=n_configs, seeds=seeds,
                            epochs=epochs, patience=5 if quick else 4, batch_size=batch_size,
                            num_symmetries=4 if quick else 64,
                            log=lambda m: print(m, flush=True))
    diag = diagnostics(zoo, ws, flat, y, split)
    fig = _figure(rows, out)
    table_rows = [{k: v for k, v in r.items() if k not in ("curve", "search", "per_seed")}
                  for r in rows]
    done = {r["model"]: r["test_acc_mean"] for r in rows if "test_acc_mean" in r}
    ours = ", ".join(f"{k} {v:.3f}" for k, v in done.items())
    notes = (f"Protocol: {n_configs} configurations per model (the same number for StatNN's "
             "gradient boosting), selected on the validation part, then "
             f"{len(seeds)} seed(s) on test (the selected search run is the first); torch "
             f"models: AdamW, batch {batch_size}, up to {epochs} epochs with early stopping on "
             "validation accuracy, weights divided by one scale per tensor, probe features "
             "standardised per symmetry orbit on the training INRs, "
             "a random neuron permutation + sine sign flip per training example. StatNN's "
             "gradient boosting is deterministic given its configuration, so its std is ~0."
             + (" QUICK: a smoke test of the pipeline (tiny zoo, 1 config, few epochs); not a "
                "result." if quick else ""))
    return TaskResult(table_rows, paper=PAPER, ours=f"test acc: {ours}", notes=notes,
                      skipped=[f"{r['model']}: {r['skipped']}" for r in rows if "skipped" in r],
                      figures=[fig] if fig else [], markdown=tables(rows, build_s, len(flat), diag),
                      config={"size": len(flat), "models": models, "n_configs": n_configs,
                              "seeds": seeds, "epochs": epochs, "batch_size": batch_size,
                              "zoo_root": str(root)},
                      extra={"curves": {r["model"]: r.get("curve") for r in rows},
                             "search": {r["model"]: r.get("search") for r in rows},
                             "per_seed": {r["model"]: r.get("per_seed") for r in rows},
                             "diagnostics": diag, "zoo_build_s": round(build_s, 1)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/inr_classification"))
    parser.add_argument("--models", default=None, help="comma list (default: all)")
    parser.add_argument("--configs", type=int, default=None, help="configurations per model")
    parser.add_argument("--seeds", default=None, help="comma list of seeds")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--size", type=int, default=None, help="INRs in the zoo")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else None
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    return run_script("inr-classification", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, models, args.configs, seeds, args.epochs,
                                  args.size))


if __name__ == "__main__":
    sys.exit(main())
