"""OGB graph property prediction at the papers' presets, for every graphlab layer family.

One command trains a list of registered models on a list of ``ogbg-mol*`` datasets, each at its
``paper`` preset (:func:`graphlab.presets.resolve_preset`): GIN / GIN-VN / GCN at OGB's protocol
(official scaffold split, 5 layers, 300 channels, dropout 0.5, Adam 1e-3, batch 32, 100 epochs, 10
seeds, OGB's ``Evaluator``, test score at the best validation epoch), and every other family
(PathNN, PR-MPNN, sheaf, EGNN on RDKit conformers, the aggregator variants) at its own preset,
whose deviations (e.g. a configuration published for molhiv applied to a small set) travel into
the results. The table prints the paper's mean ± std beside ours (Hu et al. 2020's OGB table and
its pre-training paper's no-pretrain GIN, the family's paper), and whether ours is within the
paper's std::

    python -m benchmarks.ogb_graphprop --datasets ogbg-molbace --models gin gin-vn gcn
    torchrun --nproc_per_node=2 -m benchmarks.ogb_graphprop --datasets ogbg-molbace --models gin
    python -m benchmarks --record ogb --out runs/paper   # the full plan (PLAN), resumable

Every (dataset, model) pair trains into ``OUT/<dataset>/<model>/`` (one ``run_<seed>/`` folder
per seed with the engine's per-epoch checkpoints); killing the command at any point and rerunning
it unchanged resumes without repeating or losing finished seeds or epochs, and the results say
which pairs and seeds were read back or continued (``resumed``). Changing a hyperparameter for
an existing folder is refused (use another ``--out``). ``OUT/ogb.{json,md}`` hold the results.
Pairs whose measured time exceeds a 3-hour CPU sitting (``BUDGET``) are "budget" rows in the
full plan: trained only when named with ``--datasets`` / ``--models``, otherwise shown with a
timed one-epoch probe and the projected CPU time (or their finished folders, read back).

Under ``torchrun`` the same command trains with ``DistributedDataParallel`` (gloo on CPU, nccl
on GPU) through :func:`graphlab.distributed.train_distributed`; rank 0 writes all files.

``--hidden`` / ``--layers`` / ``--epochs`` / ``--seeds`` / ``--batch-size`` / ``--lr`` override
the presets (each override is recorded as a deviation). ``egnn`` runs EGNN in invariant mode on
seeded RDKit ETKDG 3-D conformers (:func:`graphlab.datasets.add_conformers`; the optional extra
``graphlab[rdkit]``); without RDKit it is skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.common import TaskResult, TaskSkipped, load_dataset, register, run_script
from benchmarks.common.paper import (
    PaperFigure,
    Resumption,
    budget_row,
    cite,
    compare,
    note_runs,
)
from graphlab.datasets import DatasetBundle, add_conformers
from graphlab.presets import resolve_preset
from graphlab.train import TrainConfig

#: the five small molecule datasets of the offline mirror (molpcba for users who have it)
SMALL_DATASETS = ["ogbg-molbace", "ogbg-molesol", "ogbg-molfreesolv", "ogbg-mollipo"]
DATASETS = [*SMALL_DATASETS, "ogbg-molhiv", "ogbg-molpcba"]
#: every layer family, by registered model name
MODELS = ["gin", "gin-vn", "gcn", "pathnn-sp", "pathnn-sp+", "pathnn-ap", "prmpnn", "gin-lcm",
          "gin-recurrent", "gin-gnp", "gin-gnp-readout", "sheaf-graph", "egnn"]
BASELINES = ["gin", "gin-vn", "gcn"]

#: the full plan: (datasets, models) suites. OGB's three baselines on two small sets at OGB's
#: protocol, then one row per layer family at its preset on freesolv (the smallest set)
PLAN = [(["ogbg-molbace", "ogbg-molfreesolv"], BASELINES),
        (["ogbg-molfreesolv"], ["pathnn-sp", "prmpnn", "sheaf-graph", "egnn", "gin-lcm"])]
#: pairs whose full preset exceeds a 3-hour CPU sitting (CPU seconds per epoch on one core x
#: epochs x seeds; measured: bace GIN 9.4 -> 2.6 h, GIN-VN 14.1 -> 3.9 h, GCN 5.3 -> 1.5 h;
#: freesolv GIN 1.2, GIN-VN 1.4, GCN 0.46, GIN-LCM 4.5 -> 1.3 h, sheaf 0.06, PathNN-SP 1.4 x 200
#: epochs -> <= 0.8 h, EGNN 0.66 -> 0.2 h, PR-MPNN 2.3 x <= 1000 epochs -> <= 6.5 h before early
#: stopping): in the full plan they are probed and projected, not trained, unless
#: named explicitly with --datasets / --models
BUDGET: set[tuple[str, str]] = {("ogbg-molbace", "gin-vn"), ("ogbg-molfreesolv", "prmpnn")}
#: quick: OGB's baselines on molfreesolv, 1 seed x 2 epochs at width 32 (overrides of the preset)
QUICK = {"seeds": 1, "epochs": 2, "hidden": 32, "layers": 2, "batch_size": 32}
#: measured causes of rows outside the paper's std (from probes: --hidden/--epochs overrides
#: into another --out, the per-epoch histories in each run folder)
DIAGNOSES: dict[tuple[str, str], str] = {}


class SkipModel(RuntimeError):
    """A model that cannot run on this machine (a missing optional dependency)."""


def model_kwargs(model: str, hidden: int | None, layers: int | None) -> dict:
    """Map the common ``--hidden`` / ``--layers`` overrides onto each family's arguments."""
    kw: dict = {}
    if model.startswith("pathnn"):
        if hidden is not None:
            kw["hidden_channels"] = hidden
        if layers is not None:
            kw["num_layers"] = min(layers, 3)  # path length = number of PathConv layers
        return kw
    if model == "sheaf-graph":
        if hidden is not None:  # channels per stalk; 3 stalk dimensions give ~hidden columns
            kw["hidden_channels"] = max(1, hidden // 3)
    elif hidden is not None:
        kw["hidden_channels"] = hidden
    if layers is not None:
        kw["num_layers"] = layers
    return kw


def pair_config(dataset: str, model: str, out: Path, *, seeds: int | None = None,
                epochs: int | None = None, hidden: int | None = None,
                layers: int | None = None, batch_size: int | None = None,
                lr: float | None = None, root: str | None = None, device: str = "cpu",
                progress: bool = True) -> TrainConfig:
    """The ``paper`` preset of ``model`` on ``dataset`` with the given overrides (each recorded
    as a deviation in the config's ``preset``, except ``seeds``), training into
    ``out/<dataset>/<model>``."""
    changes: dict = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size),
                                       ("lr", lr)) if v is not None}
    kwargs = model_kwargs(model, hidden, layers)
    if kwargs:
        changes["model_kwargs"] = kwargs
    config = resolve_preset(model, dataset).train_config(
        out=str(out / dataset / model), root=root, device=device, progress=progress, **changes)
    # the number of seeds is not part of a folder's identity (train() adds or drops runs), so
    # it is set here rather than recorded as a preset deviation; the table shows it
    return replace(config, seeds=seeds) if seeds is not None else config


# --------------------------------------------------------------------------- machinery
def _ordered(env, first: bool) -> None:
    """Barrier that lets rank 0 act alone first: call with ``first=False`` before and
    ``first=True`` after the step (rank 0 passes the first barrier late, the others early)."""
    if not env.distributed:
        return
    import torch.distributed as dist

    if env.is_main == first:
        dist.barrier()


def _paper(dataset: str, model: str) -> PaperFigure | None:
    preset = resolve_preset(model, dataset)
    return (PaperFigure.parse(preset.paper_result, cite(preset.source))
            if preset.paper_result else None)


def _scale(metric: str) -> float:
    """Papers print ROC-AUC / AP / accuracy in %; errors (RMSE, MAE) as they are."""
    return 100.0 if metric in ("rocauc", "ap", "acc") else 1.0


def _row(res: dict, world: int, resumed: bool) -> dict:
    """One table row from a ``graphlab.results/1`` training record."""
    s, dataset, model = res["summary"], res["dataset"], res["model"]
    scale = _scale(res["metric"])
    tests = [scale * r["test"] for r in res["runs"] if r["test"] is not None]
    cfg = res["config"]
    return {"dataset": dataset, "model": model, "metric": res["metric"],
            **compare(_paper(dataset, model), tests, digits=2 if scale > 1 else 3,
                      diagnosis=DIAGNOSES.get((dataset, model))),
            "valid": f"{scale * s['valid_mean']:.3f} ± {scale * s['valid_std']:.3f}",
            "params": s["num_params"], "s/epoch": round(res["timings"]["seconds_per_epoch"], 2),
            "wall s": round(res["timings"]["seconds"], 1), "seeds": s["num_runs"],
            "epochs": cfg["epochs"], "deviations": len((cfg.get("preset") or {})
                                                        .get("deviations", [])),
            "processes": world, "resumed": resumed}


def _with_conformers(bundle: DatasetBundle, out: Path, name: str, env) -> DatasetBundle:
    """EGNN's input: the bundle with RDKit conformers (rank 0 embeds and caches first)."""
    _ordered(env, first=False)
    try:
        # beside the run folder: train() owns everything inside it
        return add_conformers(bundle, cache=out / name / "egnn-conformers.pt")
    except ImportError as exc:  # every rank fails alike without RDKit
        raise SkipModel(f"{exc}: EGNN on RDKit 3-D conformers is skipped") from exc
    finally:  # rank 0 must release the others even when it fails
        _ordered(env, first=True)


def run_suite(datasets: list[str], models: list[str], out: Path, *,
              budget_pairs: set[tuple[str, str]] = frozenset(), progress: bool = True,
              load: Callable[[str], DatasetBundle] | None = None,
              resumption: Resumption | None = None, **overrides) -> list[dict]:
    """Train every model on every dataset at its preset (resumably) and return the rows.

    ``overrides`` (``seeds``, ``epochs``, ``hidden``, ``layers``, ``batch_size``, ``lr``,
    ``root``, ``device``) go to :func:`pair_config`. A pair in ``budget_pairs`` whose folder
    holds no finished results is not trained: its row has a timed one-epoch probe and the
    projected CPU time. ``load(name)`` replaces :func:`benchmarks.common.load_dataset`. A
    dataset that is not available gives a row with ``status: "skipped"``; a pair that raises
    gives ``status: "failed"``; a pair whose folder already held runs is ``resumed``.
    """
    from graphlab.datasets import get_dataset
    from graphlab.distributed import init_distributed, train_distributed

    device, root = overrides.get("device", "cpu"), overrides.get("root")
    env = init_distributed(device)
    say = print if env.is_main else (lambda *a, **k: None)
    out = Path(out)
    rows: list[dict] = []
    for name in datasets:
        # rank 0 processes a dataset into the cache first, the other ranks then read it
        _ordered(env, first=False)
        try:
            if load is not None:
                bundle = load(name)
            else:
                bundle = get_dataset(name, root=root) if root else load_dataset(name)
            missing = None
        except TaskSkipped as exc:  # offline and not mirrored
            bundle, missing = None, exc
        _ordered(env, first=True)
        if missing is not None:
            say(f"skipping {name}: {missing}")
            rows.append({"dataset": name, "status": "skipped", "note": str(missing)})
            continue
        for model in models:
            say(f"== {name} / {model}", flush=True)
            config = pair_config(name, model, out, progress=progress and env.is_main,
                                 **overrides)
            folder = Path(config.out)
            # train() refuses a folder that holds another configuration, and resumes its own
            resumed = (folder / "config.json").exists()
            try:
                data = _with_conformers(bundle, out, name, env) if model == "egnn" else bundle
                if (name, model) in budget_pairs and not (folder / "results.json").exists():
                    rows.append(_budget_row(name, model, config, data))
                    say(f"   budget: {rows[-1]['projected CPU h']} CPU-hours projected")
                    continue
                if resumption is not None and env.is_main:
                    note_runs(folder, config.seeds, f"{name}/{model}", resumption)
                res = train_distributed(config, data, env)
            except SkipModel as exc:
                say(f"   skipped: {exc}")
                rows.append({"dataset": name, "model": model, "status": "skipped",
                             "note": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one failing pair must not hide the rest
                say(f"   FAILED: {type(exc).__name__}: {exc}")
                rows.append({"dataset": name, "model": model, "status": "failed",
                             "note": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            rows.append(_row(res, env.world_size, resumed))
            say(f"   test {res['metric']} {rows[-1]['ours']} (paper {rows[-1]['paper']}; "
                f"{rows[-1]['params']:,} params, {rows[-1]['s/epoch']:.2f} s/epoch)"
                f"{' (resumed)' if resumed else ''}")
    return rows


def _budget_row(name: str, model: str, config: TrainConfig, data: DatasetBundle) -> dict:
    """A pair too long for a sitting: one timed epoch of one seed (no run folder), projected
    over the preset's epochs and seeds."""
    from graphlab.train import train

    start = time.process_time()  # CPU time: the wall clock of a shared machine lies
    probe = train(replace(config, epochs=1, seeds=1, patience=None, out=None, progress=False),
                  bundle=data)
    per_epoch = time.process_time() - start
    paper = _paper(name, model)
    return {"dataset": name, "model": model, "metric": probe["metric"],
            "paper": paper.format() if paper else "-", "source": paper.source if paper else "-",
            "ours": "budget", "within paper std?": "-", "diagnosis": "",
            "seeds": config.seeds, "epochs": config.epochs,
            **budget_row(per_epoch, config.epochs, config.seeds)}


@register("ogb", "OGB graph property prediction at the papers' presets: GIN / GIN-VN / GCN on "
                 "bace and freesolv, one row per layer family (quick: molfreesolv baselines)",
          paper="Hu et al. 2020 (OGB) and Hu et al. ICLR 2020 (pre-training); each family's paper")
def run(quick: bool, out: Path, suites: list[tuple[list[str], list[str]]] | None = None,
        budget: dict | None = None, **kwargs) -> TaskResult:
    """The full plan at the presets (quick: three baselines on molfreesolv at a small budget),
    or the ``(datasets, models)`` suites given (budget pairs included)."""
    torch.set_num_threads(1)
    b = budget if budget is not None else (QUICK if quick else {})
    budget_pairs = set() if (quick or suites is not None) else BUDGET
    if suites is None:
        suites = [(["ogbg-molfreesolv"], BASELINES)] if quick else PLAN
    resumption = Resumption()
    rows = [row for datasets, models in suites
            for row in run_suite(datasets, models, out, budget_pairs=budget_pairs,
                                 resumption=resumption, **b, **kwargs)]
    failed = [f"{r['dataset']} / {r.get('model')}: {r['note']}" for r in rows
              if r.get("status") == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} pair(s) failed: " + "; ".join(failed))
    done = [r for r in rows if "ours" in r]
    skipped = [f"{r['dataset']}{' / ' + r['model'] if 'model' in r else ''}: {r['note']}"
               for r in rows if r.get("status") == "skipped"]
    if not done and skipped:
        raise TaskSkipped("; ".join(skipped))
    with_paper = [r for r in done if r["paper"] != "-"][:3] or done[:3]
    return TaskResult(
        done, paper="; ".join(f"{r['dataset']} {r['model']} {r['paper']}" for r in with_paper),
        ours="; ".join(f"{r['dataset']} {r['model']} {r['ours']}" for r in with_paper),
        notes=NOTES, skipped=skipped, resumed=resumption.note(out),
        config={"overrides": b, "suites": [list(map(list, s)) for s in suites],
                "budget_pairs": sorted(map(list, budget_pairs))})


NOTES = """Each pair at its paper preset (graphlab.presets; overrides and the preset's own
deviations are listed in each pair's results.json under extra.preset, and counted in
"deviations"): official scaffold split, OGB Evaluator, test score at the best-validation epoch
(or the preset's selection and early stopping), mean ± std (ddof 0) over seeds. ROC-AUC in %,
RMSE as is. "paper" is the preset's published figure: Hu et al. 2020 (OGB, Table 3) for
molhiv / molpcba, Hu et al. ICLR 2020 (no pre-training) for GIN on the MoleculeNet sets, the
family's paper where it reports the dataset; "-" where none exists for the pair. Budget rows:
one timed epoch of one seed on one thread, projected over the preset's epochs and seeds."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ogbg-molbace"],
                        help=f"any of {', '.join(DATASETS)} (or 'small' for the first four)")
    parser.add_argument("--models", nargs="+", default=BASELINES,
                        help=f"registered model names, e.g. {', '.join(MODELS)} (or 'all')")
    parser.add_argument("--seeds", type=int, default=None, help="default: the preset's runs")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--hidden", type=int, default=None, help="default: the preset's width")
    parser.add_argument("--layers", type=int, default=None, help="default: the preset's depth")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="global batch size (default: the preset's)")
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's")
    parser.add_argument("--root", default=None, help="dataset root (default: the cache)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="the 1-minute demo configuration")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/ogb_graphprop"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    suites = budget = None
    if not args.quick:
        datasets = [d for name in args.datasets
                    for d in (SMALL_DATASETS if name == "small" else [name])]
        suites = [(datasets, MODELS if args.models == ["all"] else args.models)]
        budget = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs),
                                    ("hidden", args.hidden), ("layers", args.layers),
                                    ("batch_size", args.batch_size), ("lr", args.lr))
                  if v is not None}
    kwargs = {"root": args.root, "device": args.device, "progress": not args.no_progress}
    if int(os.environ.get("RANK", "0")) != 0:  # other ranks train; rank 0 reports
        run(args.quick, args.out, suites, budget, **kwargs)
        return 0
    return run_script("ogb", argv, args.out, args.quick,
                      lambda: run(args.quick, args.out, suites, budget, **kwargs))


if __name__ == "__main__":
    sys.exit(main())
