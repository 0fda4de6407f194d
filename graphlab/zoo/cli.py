"""``graphlab zoo build | health | predict | analyze``: model zoos from the command line.

Building the parser imports no torch (``graphlab --help`` stays fast): the command functions
import what they need.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphlab.zoo.store import Zoo

__all__ = ["add_zoo_parser"]

# kept literal so that building the parser imports no torch (tests check they match the modules)
PRESET_NAMES = ["arch-family", "digits-cnn", "digits-cnn-fixed", "digits-inr", "digits-mlp",
                "random-nets"]
MODEL_NAMES = ["statnn", "hparams", "neural", "gmn", "opgnn"]


def _cmd_build(args: argparse.Namespace) -> int:
    import torch

    from graphlab.zoo import build_zoo, load_zoo

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = build_zoo(args.preset, args.size, args.out, seed=args.seed, workers=args.workers,
                    shard=args.shard, progress=not args.no_progress, overwrite=args.overwrite)
    zoo = load_zoo(out)
    print(f"{zoo}: {len(zoo)} finished members in {out} ({time.perf_counter() - t0:.1f} s)")
    if len(zoo):
        _print_health(zoo)
    return 0


def _print_health(zoo: Zoo) -> None:
    from graphlab.zoo.health import health_markdown, write_health

    rep = write_health(zoo)
    saved = [n for n in ("health.json", "health.md", "health.png") if (zoo.path / n).exists()]
    print(health_markdown(rep), end="")
    print(f"(saved {', '.join(saved)} in {zoo.path})")


def _cmd_health(args: argparse.Namespace) -> int:
    from graphlab.cli import UsageError
    from graphlab.zoo import load_zoo

    zoo = load_zoo(args.zoo)
    if not len(zoo):
        raise UsageError(f"{args.zoo} has no finished members; run graphlab zoo build first")
    _print_health(zoo)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from graphlab.zoo import load_zoo, predict

    torch.set_num_threads(1)
    zoo = load_zoo(args.zoo)
    splits = list(zoo.splits) if args.split == "all" else [args.split]
    seeds = list(range(args.seeds))
    rows = []
    for split in splits:
        r = predict(zoo, args.target, args.model, split, seeds=seeds, epochs=args.epochs,
                    hidden=args.hidden, max_train=args.max_train)
        summary = {k: v for k, v in r.items() if k not in ("pred", "true", "test_indices",
                                                           "per_seed")}
        rows.append(summary)
        metric = ("acc_mean", "acc_std") if "acc_mean" in r else ("tau_mean", "tau_std")
        extra = "" if "r2_mean" not in r else \
            f"  R2 {r['r2_mean']:.3f}±{r['r2_std']:.3f}"
        if "tau_above_chance_mean" in r:
            extra += f"  tau(>chance) {r['tau_above_chance_mean']:.3f}"
        if "f1_macro_mean" in r:
            extra += f"  macro-F1 {r['f1_macro_mean']:.3f}±{r['f1_macro_std']:.3f}"
        if "majority_acc" in r:
            extra += f"  (majority {r['majority_acc']:.3f}, F1 {r['majority_f1_macro']:.3f})"
        if "baseline_tau" in r:  # edge-level pruning targets: per-network rank scores
            extra += (f"  spearman {r['spearman_mean']:.3f}  top-{r['top']:.0%} overlap "
                      f"{r['topk_mean']:.3f}  (|w| baseline: tau {r['baseline_tau']:.3f}, "
                      f"spearman {r['baseline_spearman']:.3f}, top-k {r['baseline_topk']:.3f})")
        print(f"{args.model:7s} {args.target:10s} split={split:7s} n={r['n_train']}/{r['n_test']}"
              f"  {metric[0].split('_')[0]} {r[metric[0]]:.3f}±{r[metric[1]]:.3f}{extra}")
    if args.out:
        from graphlab.runfolder import atomic_write_json

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, rows, indent=1)  # strict JSON: NaN -> null
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    import torch

    from graphlab.cli import UsageError
    from graphlab.zoo import analyze, load_zoo
    from graphlab.zoo.analysis import pyplot

    try:
        pyplot()  # fail before any work, in one line, when the plot extra is missing
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    torch.set_num_threads(1)
    models = args.models.split(",") if args.models else None
    analyze(load_zoo(args.zoo), args.out, quick=args.quick, seeds=list(range(args.seeds)),
            models=models, epochs=args.epochs)
    print((Path(args.out) / "summary.md").read_text())
    return 0


def add_zoo_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graphlab zoo ...`` on the main CLI's subparsers."""
    zoo = subparsers.add_parser("zoo", help="build model zoos and run graph tasks on them")
    sub = zoo.add_subparsers(dest="zoo_command", required=True)

    p = sub.add_parser("build", help="generate (or resume) a zoo")
    p.add_argument("--preset", required=True, choices=PRESET_NAMES)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--shard", default=None, help="I/N: build members with index %% N == I")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true",
                   help="if --out holds a zoo of another preset/seed, delete it and start over")
    p.set_defaults(fn=_cmd_build)

    p = sub.add_parser("health", help="(re)write and print a zoo's health report")
    p.add_argument("--zoo", required=True)
    p.set_defaults(fn=_cmd_health)

    p = sub.add_parser("predict", help="predict a member property from weights or graphs")
    p.add_argument("--zoo", required=True)
    p.add_argument("--target", required=True,
                   help="test_acc, gen_gap, phase, complexity, sharpness, ..., or the edge-level "
                        "prune_snip / prune_magnitude (model gmn)")
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--split", default="all", help="id, hparam, width, depth, family or all")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--hidden", type=int, default=32, help="graph-metanet hidden size")
    p.add_argument("--max-train", type=int, default=None, help="cap on training members")
    p.add_argument("--out", default=None, help="write the summary rows as JSON")
    p.set_defaults(fn=_cmd_predict)

    p = sub.add_parser("analyze", help="figures + Markdown report of a zoo")
    p.add_argument("--zoo", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", default=None, help="comma list (default statnn,neural,gmn)")
    p.add_argument("--epochs", type=int, default=None, help="graph-metanet training epochs")
    p.set_defaults(fn=_cmd_analyze)
