"""OGB graph property prediction for every graphlab layer family, multi-seed, resumable, DDP-ready.

One command trains a list of registered models on a list of ``ogbg-mol*`` datasets with OGB's
protocol (official scaffold split, OGB's ``Evaluator``, test score at the best validation epoch,
mean ± std over seeds) and prints a table with OGB's leaderboard beside ours, parameter counts and
seconds per epoch::

    python -m benchmarks.ogb_graphprop --datasets ogbg-molhiv --models gin gin-vn gcn
    torchrun --nproc_per_node=2 -m benchmarks.ogb_graphprop --datasets ogbg-molbace --models gin
    graphlab bench ogb            # the recorded small budget (below); --quick: a 1-minute demo

Every (dataset, model) pair trains into ``OUT/<dataset>/<model>/`` with the training harness's
atomic per-epoch checkpoints; killing the command at any point and rerunning it unchanged resumes
without repeating or losing finished seeds or epochs. Changing a hyperparameter for an existing
folder is refused (use another ``--out``); adding seeds is allowed. ``OUT/summary.{json,md}`` are
rewritten atomically after every pair.

Under ``torchrun`` the same command trains with ``DistributedDataParallel`` (gloo on CPU, nccl
on GPU) through :func:`graphlab.distributed.train_distributed`; rank 0 writes all files.

Defaults are the papers' configurations (OGB's GIN/GCN: 5 layers, 300 channels, dropout 0.5,
Adam 1e-3, batch 32, 100 epochs, 10 seeds). ``--hidden`` / ``--layers`` / ``--epochs`` /
``--seeds`` shrink the budget; the recorded 2-core run states its budget in its results file.
``egnn`` runs EGNN in invariant mode (``update_pos=False``) on seeded RDKit ETKDG 3-D conformers
(:func:`graphlab.datasets.add_conformers`; the optional extra ``graphlab[rdkit]``); without
RDKit it is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from graphlab.bench import register
from graphlab.datasets import DatasetBundle, add_conformers
from graphlab.train import TrainConfig, atomic_write_json

#: the five small molecule datasets of the offline mirror (molpcba for users who have it)
SMALL_DATASETS = ["ogbg-molbace", "ogbg-molesol", "ogbg-molfreesolv", "ogbg-mollipo"]
DATASETS = [*SMALL_DATASETS, "ogbg-molhiv", "ogbg-molpcba"]
#: every layer family, by registered model name
MODELS = ["gin", "gin-vn", "gcn", "pathnn-sp", "pathnn-sp+", "pathnn-ap", "prmpnn", "gin-lcm",
          "gin-recurrent", "gin-gnp", "gin-gnp-readout", "sheaf-graph", "egnn"]
BASELINES = ["gin", "gin-vn", "gcn"]

#: OGB leaderboard test scores (mean ± std over 10 seeds), printed beside ours
LEADERBOARD = {
    ("ogbg-molhiv", "gin"): "0.7558 ± 0.0140",
    ("ogbg-molhiv", "gin-vn"): "0.7707 ± 0.0149",
    ("ogbg-molhiv", "gcn"): "0.7606 ± 0.0097",
    ("ogbg-molpcba", "gin"): "0.2266 ± 0.0028",
    ("ogbg-molpcba", "gin-vn"): "0.2703 ± 0.0023",
    ("ogbg-molpcba", "gcn"): "0.2020 ± 0.0024",
    # PathNN is not on the leaderboard: the authors' logs (10 seeds, hidden 128, cutoff 3)
    ("ogbg-molhiv", "pathnn-sp"): "0.7862 ± 0.0130 (paper)",
    ("ogbg-molhiv", "pathnn-sp+"): "0.7917 ± 0.0109 (paper)",
    ("ogbg-molhiv", "pathnn-ap"): "0.7884 ± 0.0146 (paper)",
}

#: the budget recorded on the 2-core machine (see benchmarks/results/ogb_graphprop.md): all
#: models on the four small datasets, then molhiv for the baselines and PathNN
RECORDED = {"seeds": 2, "epochs": 2, "hidden": 32, "layers": 2, "batch_size": 128}
QUICK = {"seeds": 1, "epochs": 2, "hidden": 32, "layers": 2, "batch_size": 32}


class SkipModel(RuntimeError):
    """A model that cannot run on this machine (a missing optional dependency)."""


def model_kwargs(model: str, hidden: int | None, layers: int | None) -> dict:
    """Map the common ``--hidden`` / ``--layers`` budget onto each family's arguments."""
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


# --------------------------------------------------------------------------- machinery
def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return (f"{os.cpu_count()}-core {platform.machine()} {dev}, torch {torch.__version__}, "
            f"{platform.python_implementation()} {platform.python_version()}")


_GUARDED = ("dataset", "model", "epochs", "batch_size", "lr", "weight_decay", "model_kwargs")


def _config_error(folder: Path, config: TrainConfig, is_main: bool) -> ValueError | None:
    """Refuse to resume a folder trained with other hyperparameters (seeds may grow)."""
    path = folder / "config.json"
    mine = {k: getattr(config, k) for k in _GUARDED}
    if path.exists():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(mine)):
            return ValueError(f"{folder} holds runs with another configuration ({old}); "
                              f"use another --out or remove the folder")
    elif is_main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, mine)
    return None


def _ordered(env, first: bool) -> None:
    """Barrier that lets rank 0 act alone first: call with ``first=False`` before and
    ``first=True`` after the step (rank 0 passes the first barrier late, the others early)."""
    if not env.distributed:
        return
    import torch.distributed as dist

    if env.is_main == first:
        dist.barrier()


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def _row(res: dict, world: int) -> dict:
    return {"dataset": res["dataset"], "model": res["model"], "metric": res["metric"],
            "ours (test)": _fmt(res["test_mean"], res["test_std"]),
            "valid": _fmt(res["valid_mean"], res["valid_std"]),
            "leaderboard": LEADERBOARD.get((res["dataset"], res["model"]), ""),
            "params": res["num_params"], "s/epoch": round(res["seconds_per_epoch"], 2),
            "seeds": res["num_runs"], "epochs": res["config"]["epochs"], "processes": world}


def run_suite(datasets: list[str], models: list[str], out: Path, seeds: int = 10,
              epochs: int = 100, hidden: int | None = None, layers: int | None = None,
              batch_size: int = 32, lr: float = 1e-3, root: str | None = None,
              device: str = "cpu", progress: bool = True,
              load: Callable[[str], DatasetBundle] | None = None) -> list[dict]:
    """Train every model on every dataset (resumably) and return the table's rows.

    ``load(name)`` replaces :func:`~graphlab.datasets.get_dataset` (e.g. for generated data).
    """
    from graphlab.datasets import get_dataset
    from graphlab.distributed import init_distributed, train_distributed

    env = init_distributed(device)
    say = print if env.is_main else (lambda *a, **k: None)
    out = Path(out)
    rows: list[dict] = []
    meta = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "commit": _commit(),
            "machine": _machine(), "processes": env.world_size,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "budget": {"seeds": seeds, "epochs": epochs, "hidden": hidden, "layers": layers,
                       "batch_size": batch_size, "lr": lr}}
    for name in datasets:
        # rank 0 processes a dataset into the cache first, the other ranks then read it
        _ordered(env, first=False)
        try:
            bundle = load(name) if load is not None else get_dataset(name, root=root)
            missing = None
        except (RuntimeError, FileNotFoundError) as exc:  # offline and not mirrored
            bundle, missing = None, exc
        _ordered(env, first=True)
        if missing is not None:
            say(f"skipping {name}: {missing}")
            rows.append({"dataset": name, "note": f"not available: {type(missing).__name__}"})
            continue
        for model in models:
            say(f"== {name} / {model}", flush=True)
            config = TrainConfig(dataset=name, model=model, epochs=epochs, seeds=seeds,
                                 batch_size=batch_size, lr=lr,
                                 model_kwargs=model_kwargs(model, hidden, layers),
                                 out=str(out / name / model), root=root, device=device,
                                 progress=progress and env.is_main)
            try:
                # rank 0 records the configuration, then every rank compares against it
                _ordered(env, first=False)
                error = _config_error(out / name / model, config, env.is_main)
                _ordered(env, first=True)
                if error is None and not env.is_main:
                    error = _config_error(out / name / model, config, False)
                if error is not None:
                    raise error
                data = bundle
                if model == "egnn":  # rank 0 embeds and caches, the other ranks then read
                    _ordered(env, first=False)
                    try:
                        data = add_conformers(bundle, cache=out / name / model / "conformers.pt")
                    except ImportError as exc:  # every rank fails alike without RDKit
                        raise SkipModel(f"{exc}: EGNN on RDKit 3-D conformers is skipped") from exc
                    finally:  # rank 0 must release the others even when it fails
                        _ordered(env, first=True)
                res = train_distributed(config, data, env)
            except SkipModel as exc:
                say(f"   skipped: {exc}")
                rows.append({"dataset": name, "model": model, "note": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one failing pair must not hide the rest
                say(f"   FAILED: {type(exc).__name__}: {exc}")
                rows.append({"dataset": name, "model": model,
                             "note": f"failed: {type(exc).__name__}: {exc}"[:200]})
                continue
            rows.append(_row(res, env.world_size))
            say(f"   test {res['metric']} {_fmt(res['test_mean'], res['test_std'])} "
                f"({res['num_params']:,} params, {res['seconds_per_epoch']:.2f} s/epoch)")
            if env.is_main:
                _write_summary(out, rows, meta)
    if env.is_main:
        _write_summary(out, rows, meta)
    return rows


def _write_summary(out: Path, rows: list[dict], meta: dict) -> None:
    """Merge ``rows`` into ``OUT/summary.{json,md}`` (atomically): a later command over other
    datasets or models adds its rows and its command line; a rerun replaces its own rows."""
    from graphlab.cli import format_table

    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    old = json.loads(path.read_text()) if path.exists() else {"runs": [], "rows": []}
    mine = {(r.get("dataset"), r.get("model")) for r in rows}
    merged = [r for r in old["rows"] if (r.get("dataset"), r.get("model")) not in mine] + rows
    runs = [m for m in old["runs"] if m["command"] != meta["command"]] + [meta]
    atomic_write_json(path, {"runs": runs, "rows": merged})
    lines = []
    for m in runs:
        lines += [f"- `{m['command']}` (commit {m['commit']}, {m['date']}, {m['processes']} "
                  f"process(es), {m['machine']}; budget {m['budget']})"]
    text = "\n".join(["commands:", *lines, "", format_table(merged), ""])
    tmp = out / "summary.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / "summary.md")


@register("ogb", "OGB graph property prediction for every layer family (quick: molfreesolv, "
                 "GIN / GIN-VN / GCN, 1 seed x 2 epochs)")
def run(quick: bool, out: Path) -> list[dict]:
    torch.set_num_threads(1)
    if quick:
        if os.environ.get("GRAPHLAB_DATA_DIR") is None:
            print("GRAPHLAB_DATA_DIR not set: the OGB benchmark needs the offline mirror; skipped")
            return []
        b = QUICK
        return run_suite(["ogbg-molfreesolv"], BASELINES, out, seeds=b["seeds"],
                         epochs=b["epochs"], hidden=b["hidden"], layers=b["layers"],
                         batch_size=b["batch_size"])
    b = RECORDED
    budget = dict(seeds=b["seeds"], epochs=b["epochs"], hidden=b["hidden"], layers=b["layers"],
                  batch_size=b["batch_size"])
    rows = run_suite(SMALL_DATASETS, MODELS, out, **budget)
    pathnn = [m for m in MODELS if m.startswith("pathnn")]
    return rows + run_suite(["ogbg-molhiv"], BASELINES + pathnn, out, **budget)


def main(argv: list[str] | None = None) -> None:
    from graphlab.cli import format_table

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ogbg-molhiv"],
                        help=f"any of {', '.join(DATASETS)} (or 'small' for the first four)")
    parser.add_argument("--models", nargs="+", default=BASELINES,
                        help=f"registered model names, e.g. {', '.join(MODELS)} (or 'all')")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=None, help="default: each paper's width")
    parser.add_argument("--layers", type=int, default=None, help="default: each paper's depth")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--root", default=None, help="dataset root (default: the cache)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="the 1-minute demo configuration")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default="runs/ogb_graphprop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.quick:
        rows = run(True, out)
    else:
        datasets = [d for name in args.datasets
                    for d in (SMALL_DATASETS if name == "small" else [name])]
        models = MODELS if args.models == ["all"] else args.models
        rows = run_suite(datasets, models, out, seeds=args.seeds, epochs=args.epochs,
                         hidden=args.hidden, layers=args.layers, batch_size=args.batch_size,
                         lr=args.lr, root=args.root, device=args.device,
                         progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(format_table(rows))


if __name__ == "__main__":
    main()
