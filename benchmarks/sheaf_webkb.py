"""Sheaf diffusion on Texas, Cornell and Film (10 standard Geom-GCN splits) vs the papers.

Variants: ``sheaf-diag`` / ``sheaf-orth`` / ``sheaf-general`` (Neural Sheaf Diffusion, Bodnar et al.
2022) and ``sheaf-conn`` (connection Laplacian, Barbero et al. 2022). Hyperparameters start from
the NSD authors' per-dataset scripts (``exp/scripts/run_{texas,cornell}.sh``); Film has no script
there, so it uses the parser defaults with a CPU budget (fewer epochs, early stopping).
Selection: the epoch with the best validation accuracy (ties: lower validation loss).

    python -m benchmarks.sheaf_webkb --quick
    python -m benchmarks.sheaf_webkb              # the recorded plan (FULL_PLAN)
    python -m benchmarks.sheaf_webkb --datasets film --variants sheaf-orth [--epochs 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmarks.common import TaskResult, load_dataset, register, run_script

VARIANTS = ("sheaf-diag", "sheaf-orth", "sheaf-general", "sheaf-conn")
FULL_EPOCHS, FULL_PATIENCE = 150, 75

#: (model kwargs, optimiser settings, epochs, patience); NSD authors' scripts as starting point
CONFIGS: dict[str, dict] = {
    # run_texas.sh: BundleSheaf d=3, 4 layers, 20 channels, lr 0.02, wd 5e-3, dropout 0.7
    "texas": dict(model=dict(stalk_dim=3, num_layers=4, hidden_channels=20, dropout=0.7,
                             input_dropout=0.0),
                  lr=0.02, weight_decay=5e-3, sheaf_decay=5e-3, epochs=500, patience=200,
                  # 4 layers of general maps at lr 0.02 diverge (loss 1.7 -> 4.9 in 5 epochs)
                  overrides={"sheaf-general": dict(num_layers=2)}),
    # run_cornell.sh: DiagSheaf d=4, 2 layers, 16 channels, lr 0.02, dropout 0.7 / input 0.2
    # (their add_lp extra stalk dimension is not implemented)
    "cornell": dict(model=dict(stalk_dim=4, num_layers=2, hidden_channels=16, dropout=0.7,
                               input_dropout=0.2),
                    lr=0.02, weight_decay=6.914841722570725e-4,
                    sheaf_decay=3.1764232712732976e-4, epochs=500, patience=200),
    # no script upstream: parser defaults (d=2 -> 3 as in the O(d) runs, 2 layers, 20 channels,
    # lr 0.01, wd 5e-4) with a CPU budget
    "film": dict(model=dict(stalk_dim=3, num_layers=2, hidden_channels=20, dropout=0.5,
                            input_dropout=0.0),
                 lr=0.01, weight_decay=5e-4, sheaf_decay=5e-4, epochs=120, patience=40),
}

#: paper numbers (test accuracy, mean ± std over the 10 splits)
PAPER: dict[tuple[str, str], str] = {
    ("texas", "sheaf-diag"): "85.67 ± 6.95",
    ("texas", "sheaf-orth"): "85.95 ± 5.51",
    ("texas", "sheaf-general"): "82.97 ± 5.13",
    ("texas", "sheaf-conn"): "86.16 ± 2.24",
    ("cornell", "sheaf-diag"): "86.49 ± 7.35",
    ("cornell", "sheaf-orth"): "84.86 ± 4.71",
    ("cornell", "sheaf-general"): "85.68 ± 6.51",
    ("cornell", "sheaf-conn"): "85.95 ± 7.72",
    ("film", "sheaf-diag"): "37.79 ± 1.01",
    ("film", "sheaf-orth"): "37.81 ± 1.15",
    ("film", "sheaf-general"): "37.80 ± 1.22",
}


def train_split(bundle, variant: str, split: int, cfg: dict, epochs: int, patience: int,
                data_cache: dict) -> dict:
    """Train one model on one split; return best-validation accuracies and timings."""
    from graphlab.models import build_model

    torch.manual_seed(split)
    kwargs = {**cfg["model"], **cfg.get("overrides", {}).get(variant, {})}
    model = build_model(variant, bundle.spec, **kwargs)
    key = (bundle.name, variant == "sheaf-conn")
    if key not in data_cache:  # the pre-transform depends only on the data (and d)
        start = time.perf_counter()
        data_cache[key] = (model.transform(bundle.dataset[0].clone()),
                           time.perf_counter() - start)
    data, prep_s = data_cache[key]
    idx = bundle.splits[split]
    learner = [p for n, p in model.named_parameters() if ".learner." in n]
    rest = [p for n, p in model.named_parameters() if ".learner." not in n]
    opt = torch.optim.Adam([{"params": rest, "weight_decay": cfg["weight_decay"]},
                            {"params": learner, "weight_decay": cfg["sheaf_decay"]}],
                           lr=cfg["lr"])
    best = (-1.0, float("inf"), 0.0, -1)  # val acc, val loss, test acc, epoch
    start = time.perf_counter()
    epoch = 0
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data)
        F.cross_entropy(out[idx["train"]], data.y[idx["train"]]).backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            out = model(data)
        pred = out.argmax(-1)
        val_acc = float((pred[idx["valid"]] == data.y[idx["valid"]]).float().mean())
        val_loss = float(F.cross_entropy(out[idx["valid"]], data.y[idx["valid"]]))
        if val_acc > best[0] or (val_acc == best[0] and val_loss < best[1]):
            test_acc = float((pred[idx["test"]] == data.y[idx["test"]]).float().mean())
            best = (val_acc, val_loss, test_acc, epoch)
        if epoch - best[3] >= patience:
            break
    seconds = time.perf_counter() - start
    return {"split": split, "val": 100 * best[0], "test": 100 * best[2], "best_epoch": best[3],
            "epochs": epoch + 1, "s_per_epoch": seconds / (epoch + 1), "prep_s": prep_s}


def _row(name: str, variant: str, results: list[dict]) -> dict:
    test = np.array([r["test"] for r in results])
    return {
        "dataset": name, "model": variant, "splits": len(results),
        "ours (test acc)": f"{test.mean():.2f} ± {test.std():.2f}",
        "paper": PAPER.get((name, variant), "-"),
        "val acc": f"{np.mean([r['val'] for r in results]):.2f}",
        "epochs (mean)": f"{np.mean([r['epochs'] for r in results]):.0f}",
        "s/epoch": f"{np.mean([r['s_per_epoch'] for r in results]):.3f}",
        "pre-transform s": f"{results[0]['prep_s']:.2f}",
    }


def evaluate(datasets: list[str], variants: list[str], splits: list[int],
             epoch_cap: int | None = None, patience_cap: int | None = None,
             on_split=None) -> tuple[list[dict], list[dict]]:
    """Train every (dataset, variant, split); ``on_split(rows, runs)`` sees partial results."""
    rows, runs = [], []
    for name in datasets:
        bundle = load_dataset(name)
        cfg = CONFIGS[name]
        epochs = min(cfg["epochs"], epoch_cap) if epoch_cap else cfg["epochs"]
        patience = min(cfg["patience"], epochs, patience_cap or epochs)
        cache: dict = {}
        for variant in variants:
            results = []
            for split in tqdm(splits, desc=f"{name} {variant}", leave=False):
                res = train_split(bundle, variant, split, cfg, epochs, patience, cache)
                results.append(res)
                runs.append({"dataset": name, "variant": variant, **res})
                if on_split is not None:
                    on_split([*rows, _row(name, variant, results)], runs)
            rows.append(_row(name, variant, results))
    return rows, runs


#: the recorded run: (datasets, variants, splits, epoch cap, patience cap) per part. CPU budget:
#: 150 epochs with patience 75 instead of the authors' 500 / 200; Film (7,600 nodes) O(d) only,
#: 60 epochs, patience 20
FULL_PLAN = [(["texas", "cornell"], list(VARIANTS), list(range(10)), FULL_EPOCHS, FULL_PATIENCE),
             (["film"], ["sheaf-orth"], list(range(10)), 60, 20)]
#: 2 splits of the two small graphs, 100 epochs: about a minute on 2 cores
QUICK_PLAN = [(["texas", "cornell"], ["sheaf-diag", "sheaf-conn"], [0, 1], 100, None)]


def _configs(plan: list) -> dict:
    out = {}
    for datasets, variants, splits, epoch_cap, patience_cap in plan:
        for name in datasets:
            cfg = dict(CONFIGS[name])
            if epoch_cap:
                cfg["epochs"] = min(cfg["epochs"], epoch_cap)
            cfg["patience"] = min(cfg["patience"], cfg["epochs"], patience_cap or cfg["epochs"])
            out[name] = cfg | {"variants": variants, "splits": len(splits)}
    return out


@register("sheaf-webkb", "Sheaf diffusion (diag/O(d)/general/connection) on Texas, Cornell, Film",
          paper="Bodnar et al. 2022 (NSD), Barbero et al. 2022 (connection sheaf)")
def run(quick: bool, out: Path, plan: list | None = None) -> TaskResult:
    torch.set_num_threads(1)
    plan = plan or (QUICK_PLAN if quick else FULL_PLAN)
    rows, runs = [], []
    for datasets, variants, splits, epoch_cap, patience_cap in plan:
        part_rows, part_runs = evaluate(datasets, variants, splits, epoch_cap, patience_cap)
        rows += part_rows
        runs += part_runs
    best = max(rows, key=lambda r: float(r["ours (test acc)"].split()[0]))
    return TaskResult(rows, paper=f"{best['dataset']} {best['model']}: {best['paper']}",
                      ours=f"{best['dataset']} {best['model']}: {best['ours (test acc)']}",
                      notes="Test accuracy (%) at the epoch of best validation accuracy (ties: "
                            "lower validation loss), mean ± std over the Geom-GCN splits.",
                      config={"configs": _configs(plan)}, extra={"runs": runs})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/sheaf_webkb"))
    parser.add_argument("--datasets", nargs="+", default=None, choices=list(CONFIGS),
                        help="run these datasets instead of the recorded plan")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="cap on the configured epochs")
    parser.add_argument("--patience", type=int, default=None, help="cap on the patience")
    args = parser.parse_args(argv)
    plan = None
    if args.datasets:
        plan = [(args.datasets, args.variants, list(range(args.splits)), args.epochs,
                 args.patience)]
    return run_script("sheaf-webkb", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, plan))


if __name__ == "__main__":
    sys.exit(main())
